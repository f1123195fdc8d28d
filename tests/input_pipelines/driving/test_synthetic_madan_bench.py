"""Tests of benchmark "madan_v2" (GTA5 + SYNTHIA -> Cityscapes miniature)."""

import hashlib
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from input_pipelines import driving, synthetic_driving
from input_pipelines.driving import labels
from input_pipelines.driving import synthetic_madan_bench as bench

_SIZE = (64, 128)
_TERRAIN, _TRUCK, _TRAIN = 9, 14, 16


def _layouts(domain, count, seed=0, size=_SIZE):
    rng = np.random.default_rng([seed, bench.DOMAINS.index(domain)])
    return [bench.sample_layout(rng, *size, domain) for _ in range(count)]


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("madan_v2")
    synthetic_driving.generate(
        str(root), seed=0, num_per_domain=8, num_val=4, height=64, width=128, benchmark="madan_v2"
    )
    return root


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(root).rglob("*.png")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_synthia_never_has_terrain_truck_train():
    seen = np.zeros(256, np.int64)
    for layout in _layouts("synthia", 60):
        seen += np.bincount(layout["train_ids"].ravel(), minlength=256)
    assert seen[[_TERRAIN, _TRUCK, _TRAIN]].tolist() == [0, 0, 0]
    # ... while the 16 shared classes do all occur.
    assert (seen[list(labels.CLASSES_16)] > 0).all()


def test_gta5_and_target_have_terrain_truck_train():
    for domain in ("gta5", "cityscapes"):
        seen = np.zeros(256, np.int64)
        for layout in _layouts(domain, 60):
            seen += np.bincount(layout["train_ids"].ravel(), minlength=256)
        assert (seen[[_TERRAIN, _TRUCK, _TRAIN]] > 0).all(), domain


def test_target_has_all_19_classes_over_a_40_image_split():
    seen = set()
    for layout in _layouts("cityscapes", 40, seed=7):
        seen |= set(np.unique(layout["train_ids"]).tolist())
    assert set(range(19)) <= seen


def test_synthia_horizon_is_higher_and_more_varied_than_gta5_on_labels():
    rows = {
        domain: np.array([bench.horizon_row(lay["train_ids"]) for lay in _layouts(domain, 60)])
        for domain in ("gta5", "synthia", "cityscapes")
    }
    # Row of the first ground pixels, as a fraction of the height from the top.
    assert rows["synthia"].mean() < rows["gta5"].mean() - 0.1
    assert rows["synthia"].std() > 3 * rows["gta5"].std()
    # The GTA5-style camera is street level like the target's (means within 0.05).
    assert abs(rows["gta5"].mean() - rows["cityscapes"].mean()) < 0.05
    # SYNTHIA-RAND-style top-down views: some frames have no sky at all.
    no_sky = [not (lay["train_ids"] == bench.SKY).any() for lay in _layouts("synthia", 60)]
    assert 0.2 < np.mean(no_sky) < 0.9


def test_horizon_row_measures_first_ground_row():
    ids = np.full((10, 20), bench.SKY, np.uint8)
    ids[6:, :] = bench.ROAD
    ids[4, :1] = bench.ROAD  # 5% of the row: counts
    ids[3, :0] = bench.ROAD
    assert bench.horizon_row(ids) == 0.4
    ids[4, :1] = bench.SKY
    assert bench.horizon_row(ids) == 0.6
    assert bench.horizon_row(np.full((4, 4), bench.SKY, np.uint8)) == 1.0


def test_sources_match_target_albedo_on_their_close_classes_only():
    gta_close, syn_close = bench.CLOSE_TO_TARGET["gta5"], bench.CLOSE_TO_TARGET["synthia"]
    assert bench.ROAD in gta_close and bench.CAR in gta_close and bench.ROAD not in syn_close
    assert bench.SKY in syn_close and bench.PERSON in syn_close and bench.SKY not in gta_close
    assert not gta_close & syn_close
    # Complementary: each source differs from the target on the other's close classes.
    assert bench._palette("synthia", bench.ROAD) != bench._palette("cityscapes", bench.ROAD)
    assert bench._palette("gta5", bench.ROAD) == bench._palette("cityscapes", bench.ROAD)
    assert bench._palette("gta5", bench.SKY) != bench._palette("cityscapes", bench.SKY)
    assert bench._palette("synthia", bench.SKY) == bench._palette("cityscapes", bench.SKY)


def test_rendered_styles_differ_in_global_colour_statistics():
    layout = _layouts("cityscapes", 1)[0]
    images = {d: bench.render(layout, d, np.random.default_rng(1)) for d in bench.DOMAINS}
    for domain, image in images.items():
        assert image.shape == (*_SIZE, 3) and image.dtype == np.uint8, domain

    def saturation(image, mask):
        image = image.astype(np.float64)
        return float((image.max(-1) - image.min(-1))[mask].mean())

    # Same layout: on road and cars, where GTA5 shares the target's albedo, GTA5's grading
    # is more saturated (measured 14.2 vs 9.0 on road, 37.2 vs 19.9 on cars); SYNTHIA's is
    # hazier (mean 138 vs 95).
    for cls in (bench.ROAD, bench.CAR):
        mask = layout["train_ids"] == cls
        assert saturation(images["gta5"], mask) > 1.3 * saturation(images["cityscapes"], mask)
    assert images["synthia"].mean() > images["cityscapes"].mean() + 15
    # Sensor noise in the target: high-frequency energy above GTA5's on the flat sky.
    sky = layout["train_ids"] == bench.SKY
    sky &= np.roll(sky, 1, 1)

    def grain(image):
        diff = np.diff(image.astype(np.float64).mean(-1), axis=1)
        return float(np.abs(diff[sky[:, 1:]]).mean())

    assert grain(images["cityscapes"]) > grain(images["gta5"])


def test_files_decode_with_the_project_readers(v2_root):
    expected = {}
    for domain, split, count in (
        ("gta5", "all", 8),
        ("synthia", "all", 8),
        ("cityscapes", "train", 8),
        ("cityscapes", "val", 4),
    ):
        ds = driving.build_dataset(
            domain,
            split,
            data_dir=str(v2_root / domain),
            batch_size=4,
            normalization=None,
            validate="full",
        )
        labels_seen = np.concatenate([lbl.numpy().ravel() for _, lbl in ds])
        assert labels_seen.size == count * 64 * 128, (domain, split)
        assert set(np.unique(labels_seen)) <= set(range(19)) | {255}
        expected[(domain, split)] = np.bincount(labels_seen, minlength=256)
    assert expected[("synthia", "all")][[_TERRAIN, _TRUCK, _TRAIN]].tolist() == [0, 0, 0]


def test_reader_gives_the_generated_train_ids(v2_root):
    """Each format decodes to the layout's train ids (lane markings: road in GTA5 and
    Cityscapes, ignored in SYNTHIA; static furniture and the ego hood ignored)."""
    rng = np.random.default_rng([0, 0])
    first = bench.sample_layout(rng, 64, 128, "gta5")
    ds = driving.build_dataset(
        "gta5",
        "all",
        data_dir=str(v2_root / "gta5"),
        batch_size=1,
        normalization=None,
        shuffle=False,
    )
    _, label = next(iter(ds))
    np.testing.assert_array_equal(label.numpy()[0], first["train_ids"].astype(np.int32))

    rng = np.random.default_rng([0, 1])
    first = bench.sample_layout(rng, 64, 128, "synthia")
    ds = driving.build_dataset(
        "synthia",
        "all",
        data_dir=str(v2_root / "synthia"),
        batch_size=1,
        normalization=None,
        shuffle=False,
    )
    _, label = next(iter(ds))
    want = first["train_ids"].astype(np.int32)
    want[first["lane"]] = 255
    np.testing.assert_array_equal(label.numpy()[0], want)
    raw = (v2_root / "synthia" / "GT" / "LABELS" / "0000000.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 2  # 16-bit, RGB

    rng = np.random.default_rng([0, 2])
    first = bench.sample_layout(rng, 64, 128, "cityscapes")
    label_dir = v2_root / "cityscapes" / "gtFine" / "train" / "synthtown"
    label_ids = np.asarray(Image.open(label_dir / "synthtown_000000_000019_gtFine_labelIds.png"))
    assert (label_ids[first["ego"]] == 1).all() and first["ego"].any()
    want = first["train_ids"].copy()
    want[first["ego"]] = 255
    np.testing.assert_array_equal(labels.map_to_train_ids(label_ids, "cityscapes"), want)
    with Image.open(v2_root / "gta5" / "labels" / "00001.png") as image:
        assert image.mode == "P"


def test_instances_are_the_visible_thing_pixels():
    for layout in _layouts("synthia", 5) + _layouts("cityscapes", 5):
        things = np.isin(layout["train_ids"], bench.THING_CLASSES) & ~layout["ego"]
        np.testing.assert_array_equal(layout["instances"] > 0, things)
        for index, obj in enumerate(layout["objects"], start=1):
            assert (layout["train_ids"][layout["instances"] == index] == obj["class"]).all()


def test_generation_is_deterministic_and_benchmark_selects_generator(tmp_path):
    kwargs = dict(seed=3, num_per_domain=2, num_val=1, height=32, width=64)
    synthetic_driving.generate(str(tmp_path / "a"), benchmark="madan_v2", **kwargs)
    synthetic_driving.generate(str(tmp_path / "b"), benchmark="madan_v2", **kwargs)
    synthetic_driving.generate(str(tmp_path / "c"), benchmark="madan_v2", **{**kwargs, "seed": 4})
    synthetic_driving.generate(str(tmp_path / "d"), **kwargs)  # default stays v1
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "d")
    assert (
        json.loads((tmp_path / "a" / "synthetic_driving.json").read_text())["benchmark"]
        == "madan_v2"
    )
    assert json.loads((tmp_path / "d" / "synthetic_driving.json").read_text())["benchmark"] == "v1"
    with pytest.raises(ValueError, match="unknown benchmark 'v3'"):
        synthetic_driving.generate(str(tmp_path / "e"), benchmark="v3", **kwargs)
    with pytest.raises(ValueError, match="unknown domain 'kitti'"):
        bench.sample_layout(np.random.default_rng(0), 32, 64, "kitti")


def test_cli_writes_madan_v2(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "bench"
    result = subprocess.run(
        [
            sys.executable, "-m", "input_pipelines.synthetic_driving", "--benchmark=madan_v2",
            f"--out={out}", "--seed=0", "--num_per_domain=3", "--num_val=2",
            "--height=32", "--width=64",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["synthia"] == str(out / "synthia")
    manifest = json.loads((out / "synthetic_driving.json").read_text())
    assert manifest["benchmark"] == "madan_v2" and manifest["num_val"] == 2
    # Same bytes as the library call with the same arguments.
    synthetic_driving.generate(
        str(tmp_path / "lib"), seed=0, num_per_domain=3, num_val=2, height=32, width=64,
        benchmark="madan_v2",
    )  # fmt: skip
    assert _digest(out) == _digest(tmp_path / "lib")
