"""MADAN losses as pure, keyword-only functions of tensors.

Every function returns a scalar float tensor: the mean over the *local*
batch. Callers running under a tf.distribute strategy divide by
`num_replicas_in_sync` (gradients are all-reduced by SUM).

Reference: MADAN (NeurIPS 2019) Eq. 1 (GAN), cycle loss, Eq. 4 (DSC), SAD,
CCD, task loss and feature loss; spec §1.2-1.6.
"""

import tensorflow as tf

GAN_MODES = ("bce", "lsgan")
DSC_DIRECTIONS = ("paper", "code")


def _check_gan_mode(gan_mode):
    if gan_mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}. Received: gan_mode={gan_mode!r}")


def gan_generator_loss(*, fake_logits, gan_mode="lsgan"):
    """Generator loss: make D call fakes real.

    Args:
      fake_logits: D(G(x)), float [B, h, w, 1] (patch logits, no sigmoid).
      gan_mode: "lsgan" -> mean((D - 1)^2); "bce" -> mean(-log sigmoid(D)).

    Returns:
      Scalar loss.
    """
    _check_gan_mode(gan_mode)
    if gan_mode == "lsgan":
        return tf.reduce_mean(tf.square(fake_logits - 1.0))
    # -log(sigmoid(z)) = softplus(-z), stable for large |z|.
    return tf.reduce_mean(tf.nn.softplus(-fake_logits))


def gan_discriminator_loss(*, real_logits, fake_logits, gan_mode="lsgan"):
    """Discriminator loss 0.5 * [loss(D(real), 1) + loss(D(fake), 0)].

    Reference: Eq. 1 (bce) and the official code's LSGAN form (spec §1.2).

    Args:
      real_logits: D(real), float [B, h, w, 1].
      fake_logits: D(fake) on detached (pooled) fakes, float [B', h, w, 1].
      gan_mode: "lsgan" or "bce".

    Returns:
      Scalar loss.
    """
    _check_gan_mode(gan_mode)
    if gan_mode == "lsgan":
        real = tf.reduce_mean(tf.square(real_logits - 1.0))
        fake = tf.reduce_mean(tf.square(fake_logits))
    else:
        real = tf.reduce_mean(tf.nn.softplus(-real_logits))
        fake = tf.reduce_mean(tf.nn.softplus(fake_logits))
    return 0.5 * (real + fake)


def cycle_consistency_loss(*, real, cycled):
    """L1 cycle loss mean |G_{T->S}(G_{S->T}(x)) - x| over all elements.

    Args:
      real: images x, float [B, H, W, 3].
      cycled: reconstructions, same shape.
    """
    return tf.reduce_mean(tf.abs(cycled - real))


def identity_loss(*, real, same):
    """Optional identity loss mean |G_{S->T}(x_T) - x_T| (weight 0 in MADAN)."""
    return tf.reduce_mean(tf.abs(same - real))


def _pixel_kl(p_logits, q_logits):
    # KL(P || Q) per pixel from logits via log-softmax (no clipping): [B, H, W].
    log_p = tf.nn.log_softmax(p_logits, axis=-1)
    log_q = tf.nn.log_softmax(q_logits, axis=-1)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def dynamic_semantic_consistency_loss(*, adapted_logits, source_logits, direction="paper"):
    """Dynamic semantic consistency (DSC), pixel mean of a per-pixel KL.

    Reference: Eq. 4, L_DSC = E KL(F_A(G_{S->T}(x)) || F_i(x)).

    Args:
      adapted_logits: F_A(G_{S->T}(x)), float [B, H, W, C].
      source_logits: F_i(x), float [B, H, W, C].
      direction: "paper" -> KL(softmax adapted || softmax source);
        "code" -> the official code's reversed KL(source || adapted).

    Returns:
      Scalar: mean over B*H*W of sum_c P_c (log P_c - log Q_c). (The code's
      element mean over B*C*H*W equals this divided by C.)
    """
    if direction not in DSC_DIRECTIONS:
        raise ValueError(
            f"direction must be one of {DSC_DIRECTIONS}. Received: direction={direction!r}"
        )
    if direction == "paper":
        return tf.reduce_mean(_pixel_kl(adapted_logits, source_logits))
    return tf.reduce_mean(_pixel_kl(source_logits, adapted_logits))


def semantic_consistency_loss(*, adapted_logits, source_logits):
    """CyCADA's semantic consistency: CE of F(G(x)) against argmax f_s(x).

    Args:
      adapted_logits: logits on the adapted image, float [B, H, W, C].
      source_logits: fixed source model's logits on x, float [B, H, W, C].
    """
    pseudo = tf.stop_gradient(tf.argmax(source_logits, axis=-1))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=pseudo, logits=adapted_logits)
    return tf.reduce_mean(ce)


def sub_domain_aggregation_discriminator_loss(*, own_logits, other_logits, gan_mode="lsgan"):
    """SAD discriminator D_A^i loss: own adapted domain real, others fake.

    Reference: L_SAD^{S_i} = E log D_A^i(G_i(x_i)) + 1/(M-1) sum_{j!=i} E log(1 - D_A^i(G_j(x_j))).

    Args:
      own_logits: D_A^i(G_{S_i->T}(x_i)), float [B, h, w, 1].
      other_logits: list of M-1 tensors D_A^i(G_{S_j->T}(x_j)), j != i.
      gan_mode: "lsgan" or "bce".

    Returns:
      Scalar: mean over j of gan_discriminator_loss(own, other_j).
    """
    if not other_logits:
        raise ValueError("SAD needs at least two sources: other_logits is empty.")
    losses = [
        gan_discriminator_loss(real_logits=own_logits, fake_logits=o, gan_mode=gan_mode)
        for o in other_logits
    ]
    return tf.add_n(losses) / float(len(losses))


def sub_domain_aggregation_generator_loss(*, other_logits, gan_mode="lsgan"):
    """SAD generator term: adapted images of S_j (j != i) fool D_A^i.

    Args:
      other_logits: list of M-1 tensors D_A^i(G_{S_j->T}(x_j)).
      gan_mode: "lsgan" or "bce".

    Returns:
      Scalar: 1/(M-1) sum_j gan_generator_loss(other_j).
    """
    if not other_logits:
        raise ValueError("SAD needs at least two sources: other_logits is empty.")
    losses = [gan_generator_loss(fake_logits=o, gan_mode=gan_mode) for o in other_logits]
    return tf.add_n(losses) / float(len(losses))


def cross_domain_cycle_discriminator_loss(*, real_logits, cross_logits, gan_mode="lsgan"):
    """CCD discriminator D_i loss: real S_i images vs cross-domain cycles.

    Reference: L_CCD^{S_i} = E log D_i(x_i)
      + 1/(M-1) sum_{j!=i} E log(1 - D_i(G_{T->S_i}(G_{S_j->T}(x_j)))).

    Args:
      real_logits: D_i(x_i), float [B, h, w, 1].
      cross_logits: list of M-1 tensors D_i(G_{T->S_i}(G_{S_j->T}(x_j))).
      gan_mode: "lsgan" or "bce".
    """
    if not cross_logits:
        raise ValueError("CCD needs at least two sources: cross_logits is empty.")
    losses = [
        gan_discriminator_loss(real_logits=real_logits, fake_logits=c, gan_mode=gan_mode)
        for c in cross_logits
    ]
    return tf.add_n(losses) / float(len(losses))


def cross_domain_cycle_generator_loss(*, cross_logits, gan_mode="lsgan"):
    """CCD generator term: cross-domain cycles G_{T->S_i}(G_{S_j->T}(x_j)) fool D_i.

    Returns:
      Scalar: 1/(M-1) sum_j gan_generator_loss(cross_j).
    """
    if not cross_logits:
        raise ValueError("CCD needs at least two sources: cross_logits is empty.")
    losses = [gan_generator_loss(fake_logits=c, gan_mode=gan_mode) for c in cross_logits]
    return tf.add_n(losses) / float(len(losses))


def segmentation_cross_entropy(*, labels, logits, ignore_label=255, normalizer=None):
    """Pixel-wise softmax cross-entropy, ignoring `ignore_label`.

    Reference: L_task = -E sum_{h,w} sum_l 1[l = y_hw] log softmax(F(x'))_l.

    Args:
      labels: int [B, H, W] train IDs, `ignore_label` = unlabelled.
      logits: float [B, H, W, C].
      ignore_label: label value excluded from the loss.
      normalizer: divide the summed loss by this (e.g. the global number of
        valid pixels across replicas); None = local number of valid pixels.

    Returns:
      Scalar mean CE over valid pixels (0 when no pixel is valid).
    """
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, ignore_label)
    # Ignored pixels get label 0 and weight 0 so that sparse CE stays in range.
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    weights = tf.cast(valid, ce.dtype)
    total = tf.reduce_sum(ce * weights)
    if normalizer is None:
        normalizer = tf.reduce_sum(weights)
    return tf.math.divide_no_nan(total, tf.cast(normalizer, ce.dtype))


def _location_count(*logits):
    return tf.add_n([tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype) for x in logits])


def feature_discriminator_loss(*, source_logits, target_logits, normalizer=None):
    """FLA discriminator: 2-way softmax CE, source (adapted) = 1, target = 0.

    Reference: L_feat = E log D(F_f(x')) + E log(1 - D(F_f(x_T))) (ADDA form); the
    official `train_fcn_adda.py` takes ONE mean over the concatenated source + target
    batch (`NLLLoss(cat(D(f_s), D(f_t)), cat(1, 0))`), so with M sources per target image
    the source locations weigh M times more than in a sum of two means.

    Args:
      source_logits: D(F_f(x')), float [B_s, h, w, 2].
      target_logits: D(F_f(x_T)), float [B_t, h, w, 2].
      normalizer: divide the summed CE by this (e.g. the global location count across
        replicas); None = the local count B_s*h*w + B_t*h*w.

    Returns:
      Scalar CE summed over all source and target locations / normalizer.
    """
    src = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.ones(tf.shape(source_logits)[:-1], tf.int32), logits=source_logits
    )
    tgt = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.zeros(tf.shape(target_logits)[:-1], tf.int32), logits=target_logits
    )
    if normalizer is None:
        normalizer = _location_count(source_logits, target_logits)
    total = tf.reduce_sum(src) + tf.reduce_sum(tgt)
    return total / tf.cast(normalizer, total.dtype)


def feature_generator_loss(*, target_logits, normalizer=None):
    """FLA segmenter term: target features classified as source (label 1).

    Args:
      target_logits: D(F_f(x_T)), float [B_t, h, w, 2].
      normalizer: divide the summed CE by this; None = the local count B_t*h*w.

    Returns:
      Scalar mean CE of the target locations against the source label.
    """
    tgt = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.ones(tf.shape(target_logits)[:-1], tf.int32), logits=target_logits
    )
    if normalizer is None:
        normalizer = _location_count(target_logits)
    return tf.reduce_sum(tgt) / tf.cast(normalizer, tgt.dtype)


def domain_accuracy(*, source_logits, target_logits, normalizer=None):
    """Fraction of all source + target locations the FLA discriminator labels correctly.

    As the code's `(pred_dis == dis_label_concat).float().mean()`: one mean over the
    concatenated batch. `normalizer` as in `feature_discriminator_loss`.
    """
    src = tf.cast(tf.equal(tf.argmax(source_logits, -1), 1), source_logits.dtype)
    tgt = tf.cast(tf.equal(tf.argmax(target_logits, -1), 0), target_logits.dtype)
    if normalizer is None:
        normalizer = _location_count(source_logits, target_logits)
    total = tf.reduce_sum(src) + tf.reduce_sum(tgt)
    return total / tf.cast(normalizer, total.dtype)
