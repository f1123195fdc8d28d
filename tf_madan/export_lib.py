"""SavedModel export of the segmenter and the generators of a finished run."""

import os

import numpy as np
import tensorflow as tf

import tf_runtime
from tf_madan import builders, train_lib

IMAGE_SPEC = [tf.TensorSpec([None, None, None, 3], tf.float32, name="image")]


def export_model(model, path, *, check_shapes=((1, 32, 32, 3), (2, 32, 32, 3)), atol=1e-5):
    """Exports `model` (image -> tensor) and checks the reload at two batch sizes.

    Returns:
      (path, largest absolute difference over the checks).
    """
    tf_runtime.export_saved_model(model, path, IMAGE_SPEC)
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in check_shapes:
        x = tf.constant(rng.uniform(-1, 1, shape).astype(np.float32))
        worst = max(
            worst,
            tf_runtime.check_export(path, lambda t: model(t, training=False), (x,), atol=atol),
        )
    return path, worst


def export_run(config, workdir, out_dir, *, segmenter_stage="madan", generator_stage="ada"):
    """Exports `<workdir>/<segmenter_stage>` F and every G_{S_i->T} of `generator_stage`.

    Returns:
      {name: SavedModel path}.

    Raises:
      FileNotFoundError: when a stage has not finished (names the missing file).
    """
    weights = os.path.join(workdir, segmenter_stage, train_lib.WEIGHTS)
    if not os.path.exists(weights):
        raise FileNotFoundError(f"Segmenter weights {weights} not found: run that stage first.")
    segmenter = builders.build_segmenter(config)
    segmenter.load_weights(weights)
    paths = {"segmenter": export_model(segmenter, os.path.join(out_dir, "segmenter"))[0]}
    stage_dir = os.path.join(workdir, generator_stage)
    for i, generator in enumerate(train_lib.load_generators(config, stage_dir)):
        name = f"generator_s2t_{config.data.sources[i]}"
        paths[name] = export_model(generator, os.path.join(out_dir, name))[0]
    return paths
