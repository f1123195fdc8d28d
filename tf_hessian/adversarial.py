"""Adversarial examples, robustness measures and the input-space Hessian.

Reference: Yao et al. 2018, §5 (robust optimisation
``min_theta E max_{||dx|| <= eps} loss(x + dx, y; theta)``, FGSM robustness of
small- vs large-batch models) and the theorem that the inner maximisation is
saddle-free almost everywhere for piecewise-linear networks:
``grad_x^2 loss = J^T (diag(p) - p p^T) J >= 0`` (spec §1.9).
Every attack runs the model in inference mode, so BatchNorm statistics are
never polluted (HessianFlow / ABSA do the same).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

CLIP_MODES = ("range", "batch", "none")


def _as(value, dtype):
    # tf.cast of a Python float goes through float32 (0.1 -> 0.10000000149).
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.cast(value, dtype)
    return tf.constant(value, dtype)


def per_example_loss(model: keras.Model, x, y) -> tf.Tensor:
    """Softmax cross-entropy of each example, [B], inference mode."""
    logits = model(x, training=False)
    return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


def input_gradient(model: keras.Model, x, y) -> tf.Tensor:
    """Per-example input gradients ``grad_x loss(x_i, y_i)``, same shape as x."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        # Examples are independent in inference mode: the gradient of the sum
        # is the stack of per-example gradients.
        total = tf.reduce_sum(per_example_loss(model, x, y))
    return tape.gradient(total, x)


def _clip(x_adv, x, clip: str, clip_min, clip_max):
    if clip not in CLIP_MODES:
        raise ValueError(f"clip must be one of {CLIP_MODES}. Received: clip={clip!r}.")
    if clip == "range":
        if clip_min is None or clip_max is None:
            raise ValueError("clip='range' needs clip_min and clip_max (the valid input range).")
        return tf.clip_by_value(x_adv, _as(clip_min, x.dtype), _as(clip_max, x.dtype))
    if clip == "batch":  # HessianFlow / ABSA: clamp to the batch's min and max.
        return tf.clip_by_value(x_adv, tf.reduce_min(x), tf.reduce_max(x))
    return x_adv


def fgsm(
    model: keras.Model, x, y, *, epsilon, clip: str = "range", clip_min=0.0, clip_max=1.0
) -> tf.Tensor:
    """Fast gradient sign method, ``x + epsilon * sign(grad_x loss)``.

    Args:
      model: Classifier returning logits.
      x: Inputs [B, ...].
      y: Integer labels [B].
      epsilon: L-inf radius in input units (scalar, or per channel [C]).
      clip: ``"range"`` clamps to [clip_min, clip_max] (recommended),
        ``"batch"`` to the batch min/max (official code), ``"none"``.
      clip_min, clip_max: Valid input range (scalars or per channel).

    Returns:
      Adversarial inputs, shape and dtype of x.
    """
    x = tf.convert_to_tensor(x)
    x_adv = x + _as(epsilon, x.dtype) * tf.sign(input_gradient(model, x, y))
    return _clip(x_adv, x, clip, clip_min, clip_max)


def pgd(
    model: keras.Model,
    x,
    y,
    *,
    epsilon,
    step_size,
    num_steps: int = 10,
    random_start: bool = True,
    seed: int = 0,
    start_noise=None,
    clip: str = "range",
    clip_min=0.0,
    clip_max=1.0,
) -> tf.Tensor:
    """L-inf projected gradient ascent (Madry et al. 2018).

    Each step moves by ``step_size * sign(grad)`` and projects back onto the
    epsilon-ball around x and onto the valid input range.

    Args:
      model, x, y, epsilon, clip, clip_min, clip_max: As for ``fgsm``.
      step_size: Step length (input units).
      num_steps: Ascent steps.
      random_start: Start from a uniform point in the ball.
      seed: Seed of the random start (stateless).
      start_noise: Optional uniform [0, 1) noise shaped like x for the random
        start (the trainer draws it per example, independent of the batch split).

    Returns:
      Adversarial inputs within epsilon of x (L-inf) and within the range.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1. Received: num_steps={num_steps}.")
    x = tf.convert_to_tensor(x)
    eps = _as(epsilon, x.dtype)
    x_adv = x
    if random_start:
        noise = (
            tf.random.stateless_uniform(tf.shape(x), [seed, 0], dtype=x.dtype)
            if start_noise is None
            else tf.cast(start_noise, x.dtype)
        )
        x_adv = _clip(x + eps * (2.0 * noise - 1.0), x, clip, clip_min, clip_max)
    for _ in range(num_steps):
        x_adv = x_adv + _as(step_size, x.dtype) * tf.sign(input_gradient(model, x_adv, y))
        x_adv = tf.clip_by_value(x_adv, x - eps, x + eps)
        x_adv = _clip(x_adv, x, clip, clip_min, clip_max)
    return x_adv


def robust_accuracy(
    model: keras.Model,
    dataset: tf.data.Dataset,
    epsilons,
    *,
    attack: str = "fgsm",
    epsilon_scale=1.0,
    **attack_kwargs,
) -> dict[float, float]:
    """Accuracy under attack for each epsilon (epsilon 0 is clean accuracy).

    Args:
      model: Classifier returning logits.
      dataset: Finite dataset of ``(x, y)`` batches.
      epsilons: Radii; the attack uses ``epsilon * epsilon_scale``.
      attack: ``"fgsm"`` or ``"pgd"``.
      epsilon_scale: Scalar or per-channel [C] factor from the given units to
        input units (``data.pixel_epsilon(1.0, ...)`` for pixel units).
      **attack_kwargs: Passed to the attack (clip range, PGD steps...).

    Returns:
      ``{epsilon: accuracy}``.
    """
    attacks = {"fgsm": fgsm, "pgd": pgd}
    if attack not in attacks:
        raise ValueError(f"attack must be one of {sorted(attacks)}. Received: attack={attack!r}.")
    attack_fn = attacks[attack]

    @tf.function(reduce_retracing=True)
    def correct(x, y, eps):
        radius = eps * _as(epsilon_scale, x.dtype)
        x_adv = tf.cond(
            eps > 0, lambda: attack_fn(model, x, y, epsilon=radius, **attack_kwargs), lambda: x
        )
        pred = tf.argmax(model(x_adv, training=False), axis=-1, output_type=tf.int32)
        return tf.reduce_sum(tf.cast(pred == tf.cast(y, tf.int32), tf.float64))

    results = {}
    for eps in epsilons:
        hits, total = 0.0, 0
        for x, y in dataset:
            hits += float(correct(x, y, tf.constant(float(eps), x.dtype)))
            total += int(x.shape[0])
        if total == 0:
            raise ValueError("robust_accuracy got an empty dataset.")
        results[float(eps)] = hits / total
    return results


def input_hessian(model: keras.Model, x, y) -> np.ndarray:
    """Per-example input Hessians ``grad_x^2 loss``, float64 [B, d, d], d = prod(x.shape[1:])."""
    x = tf.convert_to_tensor(x)
    batch = int(x.shape[0])
    with tf.GradientTape() as outer:
        outer.watch(x)
        grads = tf.reshape(input_gradient(model, x, y), [batch, -1])
    jac = outer.batch_jacobian(grads, x)
    return np.asarray(jac, np.float64).reshape(batch, grads.shape[1], -1)


def input_hessian_spectrum(model: keras.Model, x, y) -> dict[str, np.ndarray]:
    """Eigen-summary of each example's input Hessian (small inputs).

    Returns:
      Dict of float64 [B] arrays: ``min``, ``max`` eigenvalue and
      ``min_over_max_abs`` = lambda_min / max|lambda| (about -1e-16 for ReLU
      networks: positive semi-definite to rounding; order -1 for tanh).
    """
    hessians = input_hessian(model, x, y)
    eig = np.linalg.eigvalsh(0.5 * (hessians + np.transpose(hessians, (0, 2, 1))))
    scale = np.maximum(np.max(np.abs(eig), axis=1), 1e-300)
    return {"min": eig[:, 0], "max": eig[:, -1], "min_over_max_abs": eig[:, 0] / scale}


def input_hessian_top_eigenvalue(
    model: keras.Model, x, y, *, num_iter: int = 20, seed: int = 0
) -> tf.Tensor:
    """Largest-magnitude eigenvalue of each example's input Hessian by batched power iteration.

    Uses input-space HVPs (forward-over-reverse), so it scales to images
    where the d x d Hessian cannot be formed.

    Returns:
      Float tensor [B].
    """
    x = tf.convert_to_tensor(x)
    axes = list(range(1, len(x.shape)))

    @tf.function
    def iterate(x, y):
        v = tf.random.stateless_normal(tf.shape(x), [seed, 1], dtype=x.dtype)
        v = v / tf.sqrt(tf.reduce_sum(v * v, axis=axes, keepdims=True))
        eigenvalue = tf.zeros([tf.shape(x)[0]], x.dtype)
        for _ in tf.range(num_iter):
            with tf.autodiff.ForwardAccumulator(x, v) as acc:
                g = input_gradient(model, x, y)
            hv = acc.jvp(g)
            eigenvalue = tf.reduce_sum(v * hv, axis=axes)
            norm = tf.sqrt(tf.reduce_sum(hv * hv, axis=axes, keepdims=True))
            v = hv / tf.maximum(norm, tf.constant(1e-30, x.dtype))
        return eigenvalue

    return iterate(x, tf.convert_to_tensor(y))


def deepfool(
    model: keras.Model,
    x,
    *,
    num_classes: int,
    max_iter: int = 50,
    overshoot: float = 0.02,
    clip_min=None,
    clip_max=None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Minimal L2 perturbations that change the prediction (DeepFool, Moosavi-Dezfooli et al. 2016).

    Every iteration linearises the logits z at the current point and steps to
    the nearest linearised class boundary: for the predicted class c and
    ``w_k = grad z_k - grad z_c``, ``f_k = z_k - z_c``, the step is
    ``(|f_l| + 1e-4) / ||w_l||^2 w_l`` with ``l = argmin_k |f_k| / ||w_k||``.
    The total perturbation is scaled by ``1 + overshoot``. For an affine
    classifier one iteration gives the exact minimal perturbation.

    Args:
      model: Classifier returning logits, inference mode.
      x: Inputs [B, ...] (float).
      num_classes: Number of logits K.
      max_iter: Iterations at most (an example stops once its prediction changed).
      overshoot: Relative overshoot past the boundary.
      clip_min, clip_max: Optional valid input range of the perturbed inputs.

    Returns:
      ``(perturbation [B, ...], flipped [B] bool)``.
    """
    x = tf.convert_to_tensor(x)
    flat_dim = int(np.prod(x.shape[1:]))

    def clipped(t):
        if clip_min is None:
            return t
        return tf.clip_by_value(t, _as(clip_min, x.dtype), _as(clip_max, x.dtype))

    @tf.function(reduce_retracing=True)
    def run(x):
        batch = tf.shape(x)[0]
        original = tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)
        one_hot = tf.one_hot(original, num_classes, dtype=x.dtype)
        r_total = tf.zeros_like(x)
        for _ in tf.range(max_iter):
            x_adv = clipped(x + (1.0 + overshoot) * r_total)
            with tf.GradientTape() as tape:
                tape.watch(x_adv)
                logits = model(x_adv, training=False)
            jac = tf.reshape(tape.batch_jacobian(logits, x_adv), [batch, num_classes, flat_dim])
            active = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), original)
            if not tf.reduce_any(active):
                break
            z_c = tf.reduce_sum(logits * one_hot, axis=-1, keepdims=True)
            grad_c = tf.einsum("bk,bkd->bd", one_hot, jac)
            w = jac - grad_c[:, None, :]
            f = logits - z_c
            w_norm = tf.norm(w, axis=-1) + tf.constant(1e-12, x.dtype)
            ratio = tf.where(one_hot > 0, tf.constant(np.inf, x.dtype), tf.abs(f) / w_norm)
            pick = tf.one_hot(
                tf.argmin(ratio, axis=-1, output_type=tf.int32), num_classes, dtype=x.dtype
            )
            w_l = tf.einsum("bk,bkd->bd", pick, w)
            f_l = tf.reduce_sum(pick * f, axis=-1)
            step = (tf.abs(f_l) + 1e-4) / tf.square(tf.reduce_sum(pick * w_norm, axis=-1))
            # An example whose prediction already changed keeps its perturbation.
            step = tf.where(active, step, tf.zeros_like(step))
            r_total = r_total + tf.reshape(step[:, None] * w_l, tf.shape(x))
        x_adv = clipped(x + (1.0 + overshoot) * r_total)
        prediction = tf.argmax(model(x_adv, training=False), -1, output_type=tf.int32)
        return x_adv - x, tf.not_equal(prediction, original)

    return run(x)


def rho_adv(model: keras.Model, dataset, *, num_classes: int, **deepfool_kwargs) -> dict:
    """The robustness measure ``rho_adv = mean_x ||r(x)||_2 / ||x||_2`` with DeepFool's r(x).

    Averaged over the examples whose prediction DeepFool changed (the
    fraction is reported); a larger value means a more robust model.

    Returns:
      Dict with ``rho_adv``, ``flipped_fraction`` and ``num_examples``.
    """
    # One DeepFool call on all examples (one trace; rho_adv uses a few hundred examples).
    inputs = [x for x, _ in dataset]
    if not inputs:
        raise ValueError("rho_adv got an empty dataset.")
    x = tf.concat(inputs, axis=0)
    total = int(x.shape[0])
    r, flipped = deepfool(model, x, num_classes=num_classes, **deepfool_kwargs)
    r_norm = tf.norm(tf.reshape(r, [total, -1]), axis=-1).numpy()
    x_norm = tf.norm(tf.reshape(tf.cast(x, r.dtype), [total, -1]), axis=-1).numpy()
    keep = flipped.numpy()
    ratios = (r_norm / np.maximum(x_norm, 1e-12))[keep]
    return {
        "rho_adv": float(np.mean(ratios)) if ratios.size else float("nan"),
        "flipped_fraction": float(keep.mean()),
        "num_examples": total,
    }


def input_hessian_extreme_eigenvalues(
    model: keras.Model, x, y, *, num_iter: int = 50, seed: int = 0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-example ``(lambda_max, lambda_min)`` of the input Hessian by batched power iterations.

    lambda_max is the largest-magnitude eigenvalue (``input_hessian_top_eigenvalue``);
    lambda_min comes from a second power iteration on ``|lambda_max| I - H``,
    whose dominant eigenvalue is ``|lambda_max| - lambda_min``. For piecewise-
    linear networks lambda_min is 0 up to rounding (the input Hessian
    ``J^T (diag p - p p^T) J`` is PSD: the saddle-free inner loop, spec §1.9).

    Returns:
      Two float tensors [B].
    """
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y)
    axes = list(range(1, len(x.shape)))
    top = input_hessian_top_eigenvalue(model, x, y, num_iter=num_iter, seed=seed)
    shift = tf.abs(top)

    @tf.function
    def shifted(x, y, shift):
        v = tf.random.stateless_normal(tf.shape(x), [seed, 2], dtype=x.dtype)
        v = v / tf.sqrt(tf.reduce_sum(v * v, axis=axes, keepdims=True))
        s = tf.reshape(shift, [-1] + [1] * len(axes))
        value = tf.zeros([tf.shape(x)[0]], x.dtype)
        for _ in tf.range(num_iter):
            with tf.autodiff.ForwardAccumulator(x, v) as acc:
                g = input_gradient(model, x, y)
            hv = s * v - acc.jvp(g)
            value = tf.reduce_sum(v * hv, axis=axes)
            norm = tf.sqrt(tf.reduce_sum(hv * hv, axis=axes, keepdims=True))
            v = hv / tf.maximum(norm, tf.constant(1e-30, x.dtype))
        return value

    return top, shift - shifted(x, y, shift)
