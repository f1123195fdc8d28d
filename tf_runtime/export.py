"""SavedModel export with an explicit serving signature, a reload check, atomically in place.

`export_and_check` is the one export every trainer uses: write the SavedModel into a temporary
folder, reload it with `tf.saved_model.load`, compare `serve(x)` with the model at two batch sizes,
and only then rename it to `path`, so a killed or failed export never leaves a folder that looks
finished.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tf_runtime import files


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


def check_export(path, model_fn, inputs, *, atol=1e-5, endpoint="serve", name=None):
    """Reloads the SavedModel at `path` and compares `endpoint(*inputs)` with `model_fn(*inputs)`.

    Args:
      path: SavedModel folder written by `export_saved_model`, or the object
        `tf.saved_model.load` returned for it (to check several inputs or endpoints with one
        reload: a reload costs seconds).
      model_fn: the in-memory reference, e.g. `lambda x: model(x, training=False)`.
      inputs: tuple of input tensors (one per signature argument).
      atol: largest accepted absolute difference.
      name: what the error messages call the export (default: `path`; give the folder when
        `path` is a reloaded object).

    Returns:
      The largest absolute difference over all outputs.

    Raises:
      ValueError: if the outputs differ by more than `atol` or their structures differ.
    """
    is_path = isinstance(path, (str, os.PathLike))
    name = name or (os.fspath(path) if is_path else "the reloaded SavedModel")
    reloaded = tf.saved_model.load(os.fspath(path)) if is_path else path
    served = getattr(reloaded, endpoint)(*inputs)
    expected = model_fn(*inputs)
    try:
        tf.nest.assert_same_structure(served, expected)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Export {name}: output structure differs from the model's: {error}"
        ) from error
    diffs = [
        float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))
        for a, b in zip(tf.nest.flatten(served), tf.nest.flatten(expected))
    ]
    worst = max(diffs, default=0.0)
    if worst > atol:
        raise ValueError(
            f"Export {name}: reloaded outputs differ from the model by {worst} > {atol}"
        )
    return worst


def example_inputs(input_signature, batch_size, seed=0):
    """Deterministic inputs for `input_signature` with the batch dimension set to `batch_size`.

    Floating specs get uniform values in [0, 1); integer specs zeros; the dtype of each spec is
    kept.
    """
    inputs = []
    for index, spec in enumerate(input_signature):
        shape = [batch_size if d is None else d for d in spec.shape.as_list()]
        if any(d is None for d in shape):
            raise ValueError(
                f"Only the first dimension of an export signature may be None. Received: {spec}"
            )
        if spec.dtype.is_floating:
            value = tf.random.stateless_uniform(shape, [seed, batch_size * 31 + index])
            inputs.append(tf.cast(value, spec.dtype))
        else:
            inputs.append(tf.zeros(shape, spec.dtype))
    return tuple(inputs)


def export_and_check(
    model,
    path,
    input_signature,
    *,
    fn=None,
    reference=None,
    batch_sizes=(1, 3),
    atol=1e-4,
    make_inputs=None,
    endpoint="serve",
):
    """Exports `model` (or `fn`) as a SavedModel at `path`, checked after reload, atomically.

    Args:
      model: a built `keras.Model` whose variables the endpoint reads.
      path: final SavedModel folder (replaced only when the new export passed the check).
      input_signature: list of `tf.TensorSpec` with `None` as batch dimension.
      fn: optional callable served instead of `model(*x, training=False)`.
      reference: in-memory callable the reloaded endpoint must match (default `fn`, else the
        model with `training=False`).
      batch_sizes: batch sizes checked after reload (two, to catch a baked-in batch dimension).
      atol: largest accepted absolute difference between `serve(x)` and the model.
      make_inputs: optional `callable(batch_size) -> tuple of tensors`; default
        `example_inputs(input_signature, batch_size)`.
      endpoint: name of the serving function.

    Returns:
      `path` (str).

    Raises:
      ValueError: naming `path` and the batch size if the reloaded outputs differ by more than
        `atol` (then `path` keeps its previous content).
    """
    path = os.fspath(path)
    if reference is None:
        reference = fn if fn is not None else (lambda *args: model(*args, training=False))
    make_inputs = make_inputs or (lambda b: example_inputs(input_signature, b))
    with files.atomic_directory(path) as tmp:
        export_saved_model(model, tmp, input_signature, endpoint=endpoint, fn=fn)
        for batch in batch_sizes:
            try:
                check_export(tmp, reference, make_inputs(batch), atol=atol, endpoint=endpoint)
            except ValueError as error:
                raise ValueError(
                    f"Export {path} failed its reload check at batch size {batch}: {error}"
                ) from error
    return path


def is_exported(path):
    """True when `path` holds a SavedModel put there by `export_and_check` (complete by rename)."""
    return os.path.exists(os.path.join(os.fspath(path), "saved_model.pb"))
