"""SavedModel export of MADAN segmenters and generators (atomic, checked after reload).

Serving contracts (the networks pad to their stride and crop back themselves, see
tf_madan.models; the serving functions check the result):
  segmenter  image [B, H, W, 3] (segmenter-normalised) -> logits [B, H, W, C] at ANY H, W;
             exports are reload-checked at 30 x 44, a size that is not a multiple of 8.
  generator  image [B, H, W, 3] in [-1, 1] -> image of the SAME size.
A network returning another size fails with an error naming it (never a silent resize).
"""

import os

import tensorflow as tf

import tf_runtime
from tf_madan import builders

IMAGE_SPEC = [tf.TensorSpec([None, None, None, 3], tf.float32, name="image")]


def _same_size_fn(model, what):
    def serve(images):
        out = model(images, training=False)
        check = tf.debugging.assert_equal(
            tf.shape(images)[1:3],
            tf.shape(out)[1:3],
            message=f"{what} {model.name} changed the image size (input H, W vs output H, W); "
            f"a MADAN {what.lower()} must return its input's size",
        )
        with tf.control_dependencies([check]):
            return tf.identity(out)

    return serve


def segmenter_serving_fn(segmenter):
    """image -> logits, checked to keep the image's height and width."""
    return _same_size_fn(segmenter, "Segmenter")


def generator_serving_fn(generator):
    """image -> translated image, checked to keep the input's height and width."""
    return _same_size_fn(generator, "Generator")


def _inputs(shape):
    def make(batch):
        return (tf.random.stateless_uniform((batch, *shape, 3), [7, batch], -1.0, 1.0),)

    return make


def export_segmenter(segmenter, path, *, check_size=(30, 44)):
    """Exports F at `path` (atomic, reload-checked at two batch sizes); returns the path.

    The check runs at `check_size`, which is not a multiple of 8.
    """
    serve = segmenter_serving_fn(segmenter)
    return tf_runtime.export_and_check(
        segmenter, path, IMAGE_SPEC, fn=serve, make_inputs=_inputs(check_size), atol=1e-4
    )


def export_generator(generator, path, *, check_size=(32, 48)):
    """Exports G_{S->T} at `path` (atomic, reload-checked at two batch sizes); returns the path."""
    serve = generator_serving_fn(generator)
    return tf_runtime.export_and_check(
        generator, path, IMAGE_SPEC, fn=serve, make_inputs=_inputs(check_size), atol=1e-4
    )


def run_config(workdir):
    """The `config.json` a training run recorded in `workdir` (the config to rebuild its nets)."""
    return tf_runtime.read_config(workdir)


def export_run(config, workdir, out_dir, *, segmenter_stage="madan", generator_stage="ada"):
    """Exports `<workdir>/<segmenter_stage>` F and every G_{S_i->T} of `generator_stage`.

    Args:
      config: used only when the run has no `config.json`; a run's own `config.json` always
        wins, so the networks are rebuilt exactly as trained (a mismatching config file passed
        by mistake cannot build other networks). None: the run must have `config.json`.
      workdir: a finished training run.
      out_dir: export folder.

    Returns:
      {name: SavedModel path}.

    Raises:
      FileNotFoundError: when a stage has not finished or there is no config (names the file).
    """
    from tf_madan import train_lib

    if os.path.exists(os.path.join(workdir, "config.json")) or config is None:
        config = run_config(workdir)
    weights = os.path.join(workdir, segmenter_stage, train_lib.WEIGHTS)
    if not os.path.exists(weights):
        raise FileNotFoundError(f"Segmenter weights {weights} not found: run that stage first.")
    segmenter = builders.build_segmenter(config)
    segmenter.load_weights(weights)
    paths = {"segmenter": export_segmenter(segmenter, os.path.join(out_dir, "segmenter"))}
    stage_dir = os.path.join(workdir, generator_stage)
    sources, _ = train_lib._stage_sources(config, stage_dir)
    for name, generator in zip(sources, train_lib.load_generators(config, stage_dir)):
        key = f"generator_s2t_{name}"
        paths[key] = export_generator(generator, os.path.join(out_dir, key))
    return paths
