"""SavedModel export of MADAN segmenters and generators (atomic, checked after reload).

Serving contracts (the networks pad to their stride and crop back themselves, see
tf_madan.models; the preprocessing is inside the SavedModel):
  segmenter  `serve`: RGB image float32 [B, H, W, 3] in [0, 255] -> logits [B, H, W, C];
             `serve_uint8`: the same for uint8 images. ANY H, W (checked at 30 x 44).
  generator  `serve`: RGB image float32 [B, H, W, 3] in [0, 255] -> translated RGB image
             float32 [B, H, W, 3] in [0, 255]; `serve_uint8`: the same for uint8 images.
Each export carries its contract in `assets.extra/serving.json`. A network returning another
size fails with an error naming it (never a silent resize).
"""

import json
import os

import keras
import tensorflow as tf

import tf_runtime
from tf_madan import layout
from tf_madan.normalization import IMAGENET_MEAN, IMAGENET_STD
from tf_runtime import files as rt_files

SEGMENTER_CONTRACT = {
    "input": "RGB image [B, H, W, 3] in [0, 255], float32 (serve) or uint8 (serve_uint8), any H, W",
    "output": "logits [B, H, W, num_classes] (Cityscapes train ids; argmax = label)",
    "preprocessing": "inside: x / 255, minus ImageNet mean, divided by ImageNet std",
}
GENERATOR_CONTRACT = {
    "input": "RGB source image [B, H, W, 3] in [0, 255], float32 (serve) or uint8 (serve_uint8)",
    "output": "translated RGB image [B, H, W, 3] in [0, 255], float32",
    "preprocessing": "inside: x / 127.5 - 1 in, (y + 1) * 127.5 clipped out",
}


def _check_size(images, out, what, name):
    return tf.debugging.assert_equal(
        tf.shape(images)[1:3],
        tf.shape(out)[1:3],
        message=f"{what} {name} changed the image size (input H, W vs output H, W); "
        f"a MADAN {what.lower()} must return its input's size",
    )


def segmenter_serving_fn(segmenter):
    """RGB [0, 255] image -> logits (ImageNet normalisation inside), size-checked."""

    def serve(images):
        """RGB image [B, H, W, 3] in [0, 255] -> logits [B, H, W, C]."""
        x = tf.cast(images, tf.float32) / 255.0
        x = (x - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
        out = segmenter(x, training=False)
        with tf.control_dependencies([_check_size(images, out, "Segmenter", segmenter.name)]):
            return tf.identity(out)

    return serve


def generator_serving_fn(generator):
    """RGB [0, 255] image -> translated RGB [0, 255] image ([-1, 1] scaling inside)."""

    def serve(images):
        """RGB image [B, H, W, 3] in [0, 255] -> translated RGB image in [0, 255]."""
        x = tf.cast(images, tf.float32) / 127.5 - 1.0
        out = generator(x, training=False)
        out = tf.clip_by_value((out + 1.0) * 127.5, 0.0, 255.0)
        with tf.control_dependencies([_check_size(images, out, "Generator", generator.name)]):
            return tf.identity(out)

    return serve


def _inputs(shape, dtype):
    def make(batch):
        x = tf.random.stateless_uniform((batch, *shape, 3), [7, batch], 0.0, 255.0)
        return (tf.cast(tf.round(x), dtype),)

    return make


def _export(model, path, serve, contract, check_size, atol):
    """Both endpoints into a temporary folder, reload-checked at two batch sizes, renamed."""
    path = os.fspath(path)
    with rt_files.atomic_directory(path) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for endpoint, dtype in (("serve", tf.float32), ("serve_uint8", tf.uint8)):
            spec = [tf.TensorSpec([None, None, None, 3], dtype, name="image")]
            archive.add_endpoint(name=endpoint, fn=serve, input_signature=spec)
        archive.write_out(tmp, verbose=False)
        reloaded = tf.saved_model.load(tmp)  # once: each reload costs seconds
        for endpoint, dtype in (("serve", tf.float32), ("serve_uint8", tf.uint8)):
            for batch in (1, 3):
                tf_runtime.check_export(
                    reloaded, serve, _inputs(check_size, dtype)(batch), atol=atol,
                    endpoint=endpoint, name=path,
                )  # fmt: skip
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, "assets.extra", "serving.json"), "w") as handle:
            json.dump({"model": model.name, **contract}, handle, indent=2)
    return path


def export_segmenter(segmenter, path, *, check_size=(30, 44)):
    """Exports F at `path` (atomic, reload-checked at two batch sizes); returns the path.

    The check runs at `check_size`, which is not a multiple of 8.
    """
    return _export(
        segmenter, path, segmenter_serving_fn(segmenter), SEGMENTER_CONTRACT, check_size, 1e-4
    )


def export_generator(generator, path, *, check_size=(32, 48)):
    """Exports G_{S->T} at `path` (atomic, reload-checked at two batch sizes); returns the path."""
    return _export(
        generator, path, generator_serving_fn(generator), GENERATOR_CONTRACT, check_size, 1e-2
    )


def run_config(workdir):
    """The `config.json` a training run recorded in `workdir` (the config to rebuild its nets)."""
    return tf_runtime.read_config(workdir)


def export_run(config, workdir, out_dir, *, segmenter_stage="madan", generator_stage="ada"):
    """Exports `<workdir>/<segmenter_stage>` F and every G_{S_i->T} of `generator_stage`.

    Args:
      config: the run's config (its `config.json`, see `tf_madan.run_config`).
      workdir: a finished training run.
      out_dir: export folder.

    Returns:
      {name: SavedModel path}; generators are named `generator_s2t_<source>`.

    Raises:
      FileNotFoundError / ValueError: when a stage has not finished or a weights file is
        missing or unreadable (names the file).
    """
    segmenter = layout.load_segmenter(config, layout.segmenter_weights(workdir, segmenter_stage))
    paths = {"segmenter": export_segmenter(segmenter, os.path.join(out_dir, "segmenter"))}
    generators = layout.load_generators(config, layout.stage_dir(workdir, generator_stage))
    for name, generator in generators.items():
        key = f"generator_s2t_{name}"
        paths[key] = export_generator(generator, os.path.join(out_dir, key))
    return paths
