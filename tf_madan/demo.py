"""A 3-4 minute MADAN demo on 2 CPU cores for the project-wide demo report.

`run_demo(workdir)` generates a small synthetic GTA5/SYNTHIA/Cityscapes-format
benchmark, runs source-only and the MADAN stages (DAIG -> ADA -> FLA) with the
`demo` config, and writes a translation grid, a segmentation overlay and the
mIoU table.
"""

import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from input_pipelines import driving, synthetic_driving
from tf_madan import data, evaluation, layout, train_lib
from tf_madan.configs import demo as demo_config


def _to_uint8(images01):
    return (np.clip(np.asarray(images01), 0.0, 1.0) * 255).round().astype(np.uint8)


def _tile(rows):
    """rows: list of lists of uint8 [H, W, 3] -> one uint8 image."""
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def translation_grid_png(config, workdir, path, stage="ada", count=4):
    """Rows per source: source images, adapted G_{S->T}(x), cycled G_{T->S}(G_{S->T}(x))."""
    stage_dir = os.path.join(workdir, stage)
    s2t = layout.load_generators(config, stage_dir, "s2t")
    t2s = layout.load_generators(config, stage_dir, "t2s")
    rows = []
    for name in s2t:
        g, f = s2t[name], t2s[name]
        images, _ = next(iter(data.source_dataset(config, name, batch_size=count)))
        adapted = g(images, training=False)
        cycled = f(adapted, training=False)
        for batch in (images, adapted, cycled):
            rows.append(list(_to_uint8((np.asarray(batch) + 1.0) * 0.5)))
    Image.fromarray(_tile(rows)).save(path)
    return path


def overlay_png(config, weights, path, count=4):
    """Rows: target images, predicted overlay, ground-truth colours."""
    segmenter = layout.load_segmenter(config, weights)
    images, labels = next(iter(data.eval_dataset(config, batch_size=count)))
    logits = segmenter(images, training=False)
    rgb = _to_uint8(evaluation.overlay(images, logits, alpha=0.0))
    overlay = _to_uint8(evaluation.overlay(images, logits, alpha=0.6))
    truth = driving.colorize(np.asarray(labels))
    Image.fromarray(_tile([list(rgb), list(overlay), list(truth)])).save(path)
    return path


def run_demo(workdir, *, num_per_domain=60, num_val=20, seed=0):
    """Runs the demo; returns paths, the markdown table and the results.

    Returns:
      Dict with "translation_grid", "segmentation_overlay", "table_markdown" (path),
      "table" (markdown text), "results" ({method: metrics}) and "seconds".
    """
    start = time.time()
    os.makedirs(workdir, exist_ok=True)
    data_root = os.path.join(workdir, "data")
    if not os.path.exists(os.path.join(data_root, "cityscapes")):
        synthetic_driving.generate(
            data_root,
            seed=seed,
            num_per_domain=num_per_domain,
            num_val=num_val,
            height=64,
            width=128,
        )
    config = demo_config.get_config()
    config.data.root = data_root
    config.seed = seed
    run_dir = os.path.join(workdir, "run")
    results = train_lib.train_and_evaluate(config, run_dir, tf.distribute.get_strategy())
    order = [
        "source-only (combined)",
        "CycleGAN multi-source, stage 1 (F_A)",
        "+SAD+CCD+DSC",
        "MADAN (+SAD+CCD+DSC+Feat)",
    ]
    ordered = {k: results[k] for k in order if k in results}
    ordered.update({k: v for k, v in results.items() if k not in ordered})
    table = evaluation.markdown_table(ordered)
    table_path = os.path.join(workdir, "madan_miou.md")
    with open(table_path, "w") as handle:
        handle.write(table)
    return {
        "translation_grid": translation_grid_png(
            config, run_dir, os.path.join(workdir, "madan_translation_grid.png")
        ),
        "segmentation_overlay": overlay_png(
            config,
            layout.segmenter_weights(run_dir, "madan"),
            os.path.join(workdir, "madan_segmentation_overlay.png"),
        ),
        "table_markdown": table_path,
        "table": table,
        "results": ordered,
        "seconds": round(time.time() - start, 1),
    }
