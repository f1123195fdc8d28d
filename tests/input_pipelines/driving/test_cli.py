"""The two `python -m` entry points: synthetic_driving and inspect."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from input_pipelines import inspect as inspect_lib
from input_pipelines.driving import labels


def _run(*args):
    result = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_generate_then_inspect_json(tmp_path):
    out = tmp_path / "bench"
    printed = _run(
        "input_pipelines.synthetic_driving",
        f"--out={out}",
        "--seed=1",
        "--num_per_domain=2",
        "--num_val=2",
        "--height=32",
        "--width=64",
    )
    assert json.loads(printed)["cityscapes"] == str(out / "cityscapes")
    grid = tmp_path / "grid.png"
    report = json.loads(
        _run(
            "input_pipelines.inspect",
            "--dataset=cityscapes",
            f"--data_dir={out / 'cityscapes'}",
            "--split=val",
            "--json",
            f"--grid={grid}",
        )
    )
    assert report["num_examples"] == 2
    expected = np.zeros(256, np.int64)
    for path in sorted((out / "cityscapes" / "gtFine" / "val").rglob("*_labelTrainIds.png")):
        expected += np.bincount(np.asarray(Image.open(path)).ravel(), minlength=256)
    counts = report["class_pixel_counts"]
    assert list(counts) == [*labels.TRAIN_ID_NAMES, "ignore"]
    assert [counts[n] for n in labels.TRAIN_ID_NAMES] == expected[:19].tolist()
    assert counts["ignore"] == expected[255] and sum(counts.values()) == 2 * 32 * 64
    with Image.open(grid) as image:
        assert image.size == (768, 2 * (192 + 4))


def test_format_report_lists_every_class(synthetic_root, tmp_path):
    report = inspect_lib.inspect_dataset(
        "synthia",
        "all",
        str(synthetic_root / "synthia"),
        grid_path=str(tmp_path / "g.png"),
        num_grid=2,
    )
    text = inspect_lib.format_report(report)
    assert text.startswith("synthia all: 6 examples, sizes {'64x128': 6}")
    assert all(name in text for name in labels.TRAIN_ID_NAMES)
    assert report["class_pixel_counts"]["ignore"] > 0  # lane markings and void
