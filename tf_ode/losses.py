"""Pure, keyword-only loss functions of the classification trainers."""

import tensorflow as tf


def classification_loss(*, labels, logits, num_replicas=1):
    """Mean softmax cross-entropy of this replica's batch, divided by the replica count.

    Gradients are all-reduced by SUM across replicas, so dividing by `num_replicas` makes the
    step equal to a one-device step on the global batch (equal per-replica batches).

    Args:
      labels: int [B] class ids.
      logits: float [B, K].
      num_replicas: `strategy.num_replicas_in_sync`.

    Returns:
      Scalar float tensor.
    """
    # per_example: [B]
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits
    )
    return tf.reduce_mean(per_example) / num_replicas


def weight_decay_penalty(*, weights, weight_decay, num_replicas=1):
    """Coupled (PyTorch-SGD-style) weight decay as a loss: 0.5 * wd * sum ||w||^2 / num_replicas.

    Its gradient wd * w goes through momentum, as `torch.optim.SGD(weight_decay=wd)` in ANODE's
    code (spec section 3), unlike Keras' decoupled `weight_decay`.

    Args:
      weights: list of float tensors/variables (theta_0 and p included for ANODEV2).
      weight_decay: the decay factor wd.
      num_replicas: `strategy.num_replicas_in_sync` (the penalty is summed over replicas).

    Returns:
      Scalar float32 tensor (0.0 when `weights` is empty or `weight_decay` is 0).
    """
    if not weights or weight_decay == 0:
        return tf.constant(0.0)
    total = tf.add_n([tf.reduce_sum(tf.square(tf.cast(w, tf.float32))) for w in weights])
    return 0.5 * weight_decay * total / num_replicas
