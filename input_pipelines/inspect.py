r"""Inspects a driving dataset split: example count, class histogram and a preview grid.

Usage:
  python -m input_pipelines.inspect --dataset=cityscapes --data_dir=DIR --split=val \
      [--json] [--grid=/tmp/grid.png] [--num_grid=8]

Counts are taken at full resolution (no resizing, no cropping) after mapping to the 19
Cityscapes train ids; 255 is counted as "ignore". With --json one JSON object is printed:
{"dataset", "split", "num_examples", "class_pixel_counts": {class name: pixels, ...,
"ignore": pixels}, "image_sizes": {"HxW": count}, "grid": path}.
"""

import json
import os
import tempfile

import numpy as np
from absl import app, flags
from PIL import Image

from input_pipelines.driving import labels as labels_lib
from input_pipelines.driving import pipeline

_PANEL_WIDTH = 384


def _panel(image, label):
    """Image beside its colour-coded labels, scaled to `_PANEL_WIDTH` per half."""
    image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    colours = Image.fromarray(labels_lib.colorize(label))
    height = max(1, round(image.height * _PANEL_WIDTH / image.width))
    image = image.resize((_PANEL_WIDTH, height), Image.BILINEAR)
    colours = colours.resize((_PANEL_WIDTH, height), Image.NEAREST)
    return np.concatenate([np.asarray(image), np.asarray(colours)], axis=1)


def inspect_dataset(name, split, data_dir, *, grid_path=None, num_grid=8):
    """Counts examples and train-id pixels of a split and writes a preview grid.

    Args:
      name: dataset name ("gta5", "synthia", "cityscapes", "bdd100k").
      split: split name.
      data_dir: dataset root.
      grid_path: PNG path of the preview grid (image | colour-coded labels per row);
        None writes into the system temp folder.
      num_grid: number of rows in the grid.

    Returns:
      dict with "dataset", "split", "num_examples", "class_pixel_counts" (19 class
      names and "ignore"), "image_sizes" and "grid".
    """
    ds = pipeline.build_dataset(name, split, data_dir=data_dir, batch_size=1, shuffle=False,
                                normalization=None, deterministic=True)  # fmt: skip
    counts = np.zeros(256, np.int64)
    sizes = {}
    rows = []
    num_examples = 0
    for image, label in ds:
        label = label[0].numpy()
        counts += np.bincount(label.ravel(), minlength=256)
        size = f"{label.shape[0]}x{label.shape[1]}"
        sizes[size] = sizes.get(size, 0) + 1
        if len(rows) < num_grid:
            rows.append(_panel(image[0].numpy(), label))
        num_examples += 1
    if grid_path is None:
        grid_path = os.path.join(tempfile.gettempdir(), f"inspect_{name}_{split}.png")
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    os.makedirs(os.path.dirname(os.path.abspath(grid_path)), exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(grid_path)
    class_counts = {n: int(counts[i]) for i, n in enumerate(labels_lib.TRAIN_ID_NAMES)}
    class_counts["ignore"] = int(counts[labels_lib.IGNORE_LABEL])
    return {"dataset": name, "split": split, "num_examples": num_examples,
            "class_pixel_counts": class_counts, "image_sizes": sizes,
            "grid": os.path.abspath(grid_path)}  # fmt: skip


def format_report(report):
    """Human-readable form of an `inspect_dataset` report."""
    counts = report["class_pixel_counts"]
    total = max(sum(counts.values()), 1)
    lines = [f"{report['dataset']} {report['split']}: {report['num_examples']} examples, "
             f"sizes {report['image_sizes']}",
             f"{'class':<14} {'pixels':>14} {'%':>7}"]  # fmt: skip
    for class_name, count in counts.items():
        bar = "#" * round(40 * count / total)
        lines.append(f"{class_name:<14} {count:>14d} {100 * count / total:7.2f} {bar}")
    lines.append(f"grid: {report['grid']}")
    return "\n".join(lines)


def _define_flags():
    flags.DEFINE_enum("dataset", None, ["gta5", "synthia", "cityscapes", "bdd100k"], "Dataset.",
                      required=True)  # fmt: skip
    flags.DEFINE_string("data_dir", None, "Dataset root.", required=True)
    flags.DEFINE_string("split", None, "Split (gta5/synthia: all).", required=True)
    flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
    flags.DEFINE_string("grid", None, "Preview grid PNG path (default: temp folder).")
    flags.DEFINE_integer("num_grid", 8, "Examples in the preview grid.")


def main(argv):
    del argv
    values = flags.FLAGS
    report = inspect_dataset(values.dataset, values.split, values.data_dir,
                             grid_path=values.grid, num_grid=values.num_grid)  # fmt: skip
    print(json.dumps(report) if values.json else format_report(report))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
