"""The two `python -m` entry points: synthetic_driving and inspect."""

import json
import subprocess
import sys

import numpy as np
import pytest
from absl import app, flags
from PIL import Image

from input_pipelines import inspect as inspect_lib
from input_pipelines import synthetic_driving
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


# ---------------------------------------------- synthetic_driving: --out, --overwrite, counts
def _flag_values(*args):
    values = flags.FlagValues()
    synthetic_driving.define_flags(values)
    values(["synthetic_driving", *args])
    return values


@pytest.mark.parametrize(
    "flag", ["--num_val=0", "--num_val=-2", "--num_per_domain=0", "--num_per_domain=-1"]
)
def test_cli_rejects_counts_below_one_naming_the_flag(tmp_path, flag):
    with pytest.raises(flags.IllegalFlagValueError, match=flag.split("=")[0] + " must be >= 1"):
        _flag_values(f"--out={tmp_path / 'x'}", flag)


def test_generate_rejects_an_empty_val_split(tmp_path):
    with pytest.raises(ValueError, match="num_val >= 1"):
        synthetic_driving.generate(str(tmp_path), num_per_domain=2, num_val=0, height=16, width=16)


def test_cli_refuses_a_non_empty_out_and_overwrite_clears_it(tmp_path):
    out = tmp_path / "bench"
    size = ["--height=16", "--width=24", "--num_per_domain=3", "--num_val=1"]
    synthetic_driving.run(_flag_values(f"--out={out}", *size))
    stale = out / "gta5" / "images" / "99999.png"
    stale.write_bytes((out / "gta5" / "images" / "00001.png").read_bytes())
    smaller = ["--height=16", "--width=24", "--num_per_domain=2", "--num_val=1"]
    with pytest.raises(app.UsageError, match=r"--out=.*not empty.*--overwrite"):
        synthetic_driving.run(_flag_values(f"--out={out}", *smaller))
    assert stale.exists()  # refused: nothing touched
    synthetic_driving.run(_flag_values(f"--out={out}", "--overwrite", *smaller))
    assert sorted(p.name for p in (out / "gta5" / "images").iterdir()) == ["00001.png", "00002.png"]
    assert json.loads((out / "synthetic_driving.json").read_text())["num_per_domain"] == 2
    # --overwrite never clears a folder holding files no benchmark writes.
    (out / "notes.txt").write_text("mine")
    with pytest.raises(app.UsageError, match=r"refuses to clear.*notes\.txt"):
        synthetic_driving.run(_flag_values(f"--out={out}", "--overwrite", *smaller))
    assert (out / "notes.txt").exists() and (out / "gta5").exists()


def test_cli_non_empty_out_exits_with_an_error_naming_the_flag(tmp_path):
    (tmp_path / "old.png").write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "input_pipelines.synthetic_driving", f"--out={tmp_path}",
         "--num_per_domain=1", "--num_val=1", "--height=16", "--width=16"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"--out={tmp_path} is not empty" in result.stderr and "--overwrite" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]
