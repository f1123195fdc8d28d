"""SavedModel export with an explicit serving signature, and a reload check."""

import keras
import numpy as np
import tensorflow as tf


def export_saved_model(model, path, input_signature, *, endpoint="serve", fn=None):
    """Exports `model` (or `fn`, tracked with `model`'s variables) as a SavedModel.

    Args:
      model: a built `keras.Model` (or Layer) whose variables the endpoint reads.
      path: output folder.
      input_signature: list of `tf.TensorSpec` (use `None` for the batch dimension).
      endpoint: name of the serving function.
      fn: optional callable to serve instead of `model(x, training=False)` (for a dict output
        or a post-processed output); it must only read `model`'s variables.

    Returns:
      `path`.
    """
    if not model.built:
        raise ValueError(f"Model {model.name!r} must be built (called once) before export.")
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = fn if fn is not None else (lambda *args: model(*args, training=False))
    archive.add_endpoint(name=endpoint, fn=serve, input_signature=list(input_signature))
    archive.write_out(str(path), verbose=False)
    return path


def check_export(path, model_fn, inputs, *, atol=1e-5, endpoint="serve"):
    """Reloads the SavedModel at `path` and compares `endpoint(*inputs)` with `model_fn(*inputs)`.

    Args:
      path: SavedModel folder written by `export_saved_model`.
      model_fn: the in-memory reference, e.g. `lambda x: model(x, training=False)`.
      inputs: tuple of input tensors (one per signature argument).
      atol: largest accepted absolute difference.

    Returns:
      The largest absolute difference over all outputs.

    Raises:
      ValueError: if the outputs differ by more than `atol` or their structures differ.
    """
    reloaded = tf.saved_model.load(str(path))
    served = getattr(reloaded, endpoint)(*inputs)
    expected = model_fn(*inputs)
    try:
        tf.nest.assert_same_structure(served, expected)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Export {path}: output structure differs from the model's: {error}"
        ) from error
    diffs = [
        float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))
        for a, b in zip(tf.nest.flatten(served), tf.nest.flatten(expected))
    ]
    worst = max(diffs, default=0.0)
    if worst > atol:
        raise ValueError(
            f"Export {path}: reloaded outputs differ from the model by {worst} > {atol}"
        )
    return worst
