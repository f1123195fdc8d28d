"""Tests of benchmarks "madan_v3" and "madan_v4" and that "madan_v2" / "v1" stay byte-identical."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from input_pipelines import synthetic_driving
from input_pipelines.driving import labels
from input_pipelines.driving import synthetic_madan_bench_v3 as bench
from input_pipelines.driving import synthetic_madan_bench_v3 as v3
from input_pipelines.driving import synthetic_madan_bench_v4 as v4

_SMALL = dict(seed=0, num_per_domain=3, num_val=2, height=32, width=64)
# Decoded-pixel digests of generate(**_SMALL, benchmark=...). madan_v2's was computed with the
# generator of commit 2e1105e (before madan_v3 existed); madan_v3's when it was frozen.
EXPECTED_V2_DIGEST = "d190e77fc5694cbc342cc264d11acf848af7ea8920158679574d7e9fb925fd02"
EXPECTED_V3_DIGEST = "9b5aec28c13d11d641ea7f8c068b9b837fe61b3864bf2b003753923de7317e5c"
# madan_v4's when it was frozen.
EXPECTED_V4_DIGEST = "b27bef92008feceb0bbb6a2f25d4c78a719711162cb851bd5f1a9f12405f5cd4"


def _scenes(domain, count, seed=5, perfect=False, size=(32, 64)):
    rng = np.random.default_rng([seed, bench.DOMAINS.index(domain)])
    return list(bench.scenes(rng, count, *size, domain, perfect=perfect))


def test_madan_v2_output_is_unchanged(tmp_path, decoded_digest):
    synthetic_driving.generate(str(tmp_path), benchmark="madan_v2", **_SMALL)
    assert decoded_digest(tmp_path) == EXPECTED_V2_DIGEST


def test_madan_v3_is_deterministic_per_seed(tmp_path, decoded_digest):
    synthetic_driving.generate(str(tmp_path / "a"), benchmark="madan_v3", **_SMALL)
    assert decoded_digest(tmp_path / "a") == EXPECTED_V3_DIGEST
    synthetic_driving.generate(str(tmp_path / "b"), benchmark="madan_v3", **{**_SMALL, "seed": 1})
    assert decoded_digest(tmp_path / "b") != EXPECTED_V3_DIGEST


def test_perfect_translation_writes_the_same_labels_with_other_images(tmp_path):
    kwargs = dict(benchmark="madan_v3", domains=("gta5", "synthia"), **_SMALL)
    synthetic_driving.generate(str(tmp_path / "raw"), **kwargs)
    synthetic_driving.generate(str(tmp_path / "perfect"), perfect_translation=True, **kwargs)
    for labels_dir, images_dir in (
        ("gta5/labels", "gta5/images"),
        ("synthia/GT/LABELS", "synthia/RGB"),
    ):
        raw_labels = sorted((tmp_path / "raw" / labels_dir).iterdir())
        assert len(raw_labels) == 3
        for path in raw_labels:
            assert path.read_bytes() == (tmp_path / "perfect" / labels_dir / path.name).read_bytes()
        for path in sorted((tmp_path / "raw" / images_dir).iterdir()):
            assert path.read_bytes() != (tmp_path / "perfect" / images_dir / path.name).read_bytes()
    with pytest.raises(ValueError, match="perfect_translation needs benchmark in"):
        synthetic_driving.generate(str(tmp_path / "x"), benchmark="madan_v2",
                                   perfect_translation=True, **_SMALL)  # fmt: skip


def _class_colours(scenes, classes):
    colours = {}
    for cls in classes:
        pixels = [image[layout["train_ids"] == cls] for layout, image in scenes]
        colours[cls] = np.concatenate(pixels).astype(np.float64).mean(0)
    return colours


@pytest.mark.parametrize(
    "domain, own_classes",
    [("gta5", (bench.SKY, bench.VEGETATION)), ("synthia", (bench.ROAD, bench.SIDEWALK))],
)
def test_perfect_rerender_has_the_source_layout_and_the_target_style(domain, own_classes):
    raw, perfect = _scenes(domain, 12), _scenes(domain, 12, perfect=True)
    for (layout, _), (same, _) in zip(raw, perfect):
        for key in ("train_ids", "lane", "instances", "static"):
            np.testing.assert_array_equal(layout[key], same[key])
    # On the classes where the source has its own appearance, the raw images are far from the
    # target's per-class colour and the perfect ones within the per-image jitter (measured:
    # raw 49-166 grey levels away, perfect 3.3-9.0).
    target = _class_colours(_scenes("cityscapes", 12), own_classes)
    raw_colours, perfect_colours = (
        _class_colours(raw, own_classes),
        _class_colours(perfect, own_classes),
    )
    for cls in own_classes:
        assert np.abs(raw_colours[cls] - target[cls]).max() > 20, cls
        assert np.abs(perfect_colours[cls] - target[cls]).max() < 12, cls


def test_no_hood_or_other_target_only_region(tmp_path):
    """v2's target had an ego hood (label id 1) in every crop; v3's target has none, and its
    only ignored pixels are the static furniture every domain has."""
    for domain in bench.DOMAINS:
        for layout, _ in _scenes(domain, 8):
            assert not layout["ego"].any()
            ignored = layout["train_ids"] == 255
            np.testing.assert_array_equal(ignored, layout["static"])
    synthetic_driving.generate(str(tmp_path), benchmark="madan_v3", domains=("cityscapes",),
                               **_SMALL)  # fmt: skip
    label_ids = [np.asarray(Image.open(p)) for p in sorted(tmp_path.rglob("*_labelIds.png"))]
    assert len(label_ids) == 5 and not any((ids == 1).any() for ids in label_ids)
    # The bottom rows hold ground like the sources', not a fixed dark region.
    bottom = np.stack([image[-3:] for _, image in _scenes("cityscapes", 8)]).astype(np.float64)
    assert bottom.mean() > 60 and bottom.std() > 10


def _share(domain, classes, count=40):
    pixels = np.concatenate([layout["train_ids"].ravel() for layout, _ in _scenes(domain, count)])
    return float(np.isin(pixels, classes).mean())


def test_sources_are_complementary_in_content_and_neither_is_the_target():
    people = (bench.PERSON, bench.RIDER, bench.BICYCLE, bench.POLE)
    traffic = (bench.CAR, bench.WALL, bench.FENCE)
    # Measured on 40 images at 32x64: persons/riders/bicycles/poles 8.8x more in SYNTHIA-style,
    # cars/walls/fences 8.0x more in GTA5-style.
    assert _share("synthia", people) > 4 * _share("gta5", people)
    assert _share("gta5", traffic) > 4 * _share("synthia", traffic)
    # The street-level source has no riders and no bicycles at all (Table 1: 0.1 and 0.0).
    gta = np.concatenate([lay["train_ids"].ravel() for lay, _ in _scenes("gta5", 40)])
    assert not np.isin(gta, (bench.RIDER, bench.BICYCLE)).any()
    for source in ("gta5", "synthia"):
        for table in (bench.CAMERAS, bench.STREETS, bench.CONTENT):
            assert table[source] != table["cityscapes"], source
    # SYNTHIA-style scenes never have the three classes SYNTHIA lacks.
    pixels = np.concatenate([lay["train_ids"].ravel() for lay, _ in _scenes("synthia", 40)])
    assert not np.isin(pixels, bench.SYNTHIA_MISSING).any()


# ----------------------------------------------------------------- madan_v4
def _layouts(module, domain, count=60, seed=5):
    rng = np.random.default_rng([seed, v3.DOMAINS.index(domain)])
    return np.stack([lay["train_ids"] for lay, _ in module.scenes(rng, count, 64, 128, domain)])


def test_madan_v4_is_deterministic_and_differs_from_v3(tmp_path, decoded_digest):
    synthetic_driving.generate(str(tmp_path / "a"), benchmark="madan_v4", **_SMALL)
    digest = decoded_digest(tmp_path / "a")
    assert digest == EXPECTED_V4_DIGEST
    assert digest != EXPECTED_V3_DIGEST
    synthetic_driving.generate(str(tmp_path / "b"), benchmark="madan_v4", **_SMALL)
    assert decoded_digest(tmp_path / "b") == digest


def test_madan_v4_perfect_translation_keeps_the_labels(tmp_path):
    kwargs = dict(benchmark="madan_v4", domains=("gta5", "synthia"), **_SMALL)
    synthetic_driving.generate(str(tmp_path / "raw"), **kwargs)
    synthetic_driving.generate(str(tmp_path / "perfect"), perfect_translation=True, **kwargs)
    for labels_dir, images_dir in (
        ("gta5/labels", "gta5/images"),
        ("synthia/GT/LABELS", "synthia/RGB"),
    ):
        for path in sorted((tmp_path / "raw" / labels_dir).iterdir()):
            assert path.read_bytes() == (tmp_path / "perfect" / labels_dir / path.name).read_bytes()
        for path in sorted((tmp_path / "raw" / images_dir).iterdir()):
            assert path.read_bytes() != (tmp_path / "perfect" / images_dir / path.name).read_bytes()


def test_the_three_changes_from_v3():
    # SYNTHIA-style frames show sky far more often (measured on 120 frames at 64x128:
    # 0.45 in v3, 0.74 in v4); GTA5-style frames keep theirs.
    sky_frames = lambda ids: (ids == v3.SKY).any(axis=(1, 2)).mean()  # noqa: E731
    assert sky_frames(_layouts(v4, "synthia")) > sky_frames(_layouts(v3, "synthia")) + 0.15
    assert sky_frames(_layouts(v4, "gta5")) > 0.8
    # More bicycle pixels in the SYNTHIA-style source and in the target; none in GTA5-style.
    for domain in ("synthia", "cityscapes"):
        v4_share = (_layouts(v4, domain) == v3.BICYCLE).mean()
        assert v4_share > 1.2 * (_layouts(v3, domain) == v3.BICYCLE).mean(), domain
    assert not (_layouts(v4, "gta5") == v3.BICYCLE).any()
    # The GTA5-style camera is nearer the target's rig, but still not the target's.
    for key in ("height", "horizon", "focal"):
        lo, hi = v4.CAMERAS["gta5"][key]
        lo3, hi3 = v3.CAMERAS["gta5"][key]
        assert (hi - lo) <= (hi3 - lo3) + 1e-9 and v4.CAMERAS["gta5"][key] != v4.CAMERAS[
            "cityscapes"
        ][key]
    assert v4.CAMERAS["gta5"]["height"][0] > v4.CAMERAS["cityscapes"]["height"][1]
    # GTA5-style roads as wide as the target's; its buildings and frontage stay its own.
    gta, target = v4.STREETS["gta5"], v4.STREETS["cityscapes"]
    assert gta["road_half"] == target["road_half"] != v3.STREETS["gta5"]["road_half"]
    assert gta != target and v4.STREETS["synthia"] == v3.STREETS["synthia"]


def test_perfect_translation_needs_a_benchmark_that_renders_it(tmp_path):
    with pytest.raises(ValueError, match="perfect_translation needs benchmark in"):
        synthetic_driving.generate(str(tmp_path), benchmark="v1", perfect_translation=True,
                                   **_SMALL)  # fmt: skip


# ----------------------------------------------------------------- benchmarks/madan_headroom.py
def _headroom_module():
    import importlib.util

    path = pathlib.Path(__file__).resolve().parents[3] / "benchmarks" / "madan_headroom.py"
    spec = importlib.util.spec_from_file_location("madan_headroom", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(miou, per_class=None):
    names = labels.TRAIN_ID_NAMES
    return {"miou_16": miou, "per_class_iou": {n: (per_class or {}).get(n, 0.0) for n in names}}


def test_headroom_gap_and_winners_from_hand_values():
    headroom = _headroom_module()
    gta = {"road": 50.0, "sidewalk": 20.0, "car": 40.0, "sky": 10.0, "pole": None, "rider": 0.0,
           "bicycle": 0.0, "wall": 3.0}  # fmt: skip
    syn = {"road": 5.0, "sidewalk": 10.0, "car": 39.5, "sky": 60.0, "pole": 3.0, "rider": 4.0,
           "bicycle": 2.0, "wall": 3.0}  # fmt: skip
    per_seed = [
        {"oracle": _rows(45.0), "raw_gta5": _rows(15.0, gta), "raw_synthia": _rows(12.0, syn),
         "raw_both": _rows(18.0), "perfect_gta5": _rows(30.0), "perfect_synthia": _rows(28.0),
         "perfect_both": _rows(36.0)},
        {"oracle": _rows(47.0), "raw_gta5": _rows(17.0, gta), "raw_synthia": _rows(10.0, syn),
         "raw_both": _rows(18.0), "perfect_gta5": _rows(32.0), "perfect_synthia": _rows(27.0),
         "perfect_both": _rows(39.0)},
    ]  # fmt: skip
    pair = lambda a: {"crop_accuracy": a, "patch_accuracy": a}  # noqa: E731
    classifiers = [
        {"target_vs_perfect_gta5": pair(0.55), "target_vs_perfect_synthia": pair(0.8),
         "perfect_gta5_vs_perfect_synthia": pair(0.7)},
        {"target_vs_perfect_gta5": pair(0.57), "target_vs_perfect_synthia": pair(0.9),
         "perfect_gta5_vs_perfect_synthia": pair(0.8)},
    ]  # fmt: skip
    report = headroom.derive(per_seed, classifiers)
    # perfect_both - perfect_gta5 per seed: 6, 7 -> 6.5 +- 0.71; perfect_gta5 - raw_gta5: 15, 15.
    assert report["headroom"] == {"best_single": "perfect_gta5", "per_seed": [6.0, 7.0],
                                  "mean": 6.5, "sd": 0.71}  # fmt: skip
    assert (
        report["gap"]["per_seed"] == [15.0, 15.0] and report["gap"]["raw_best_single"] == "raw_gta5"
    )
    winners = report["per_class_winner"]
    assert (winners["road"], winners["sky"], winners["pole"]) == ("gta5", "synthia", "synthia")
    assert winners["car"] == winners["wall"] == "tie"  # within 1 point
    assert report["paper_pattern"]["disagree"] == ["building", "car", "fence", "wall"]
    assert report["paper_pattern"]["required_hold"] is False  # car is a tie
    # The artefact criterion is the street-level (GTA5-style) source's: 0.56; SYNTHIA's is
    # reported with the layout separability.
    assert report["target_artifact_accuracy"]["gta5"]["mean"] == 0.56
    assert report["layout_separability"]["mean"] == 0.75
    assert report["criteria"] == {"headroom >= 5": True, "gap >= 10": True,
                                  "paper pattern (required classes)": False,
                                  "target_artifact_accuracy <= 0.6": True}  # fmt: skip
    assert report["criteria_met"] is False


@pytest.mark.slow
def test_headroom_tool_reports_every_key_on_a_tiny_run(tmp_path):
    headroom = _headroom_module()
    from tf_madan.configs import cpu_benchmark_v3

    config = cpu_benchmark_v3.get_config()
    config.data.seg_crop_size = config.data.gan_crop_size = 32
    config.seg.batch_size = config.gan.batch_size = 2
    data_spec = dict(cpu_benchmark_v3.DATA, num_per_domain=5, num_val=2, height=32, width=64)
    report = headroom.measure(config, data_spec, data_seed=0, seeds=[0], out_dir=str(tmp_path),
                              steps=1, patch_steps=1, log=lambda line: None)  # fmt: skip
    for key in ("headroom", "gap", "per_class_winner", "target_artifact_accuracy",
                "layout_separability", "rows", "per_seed", "criteria", "paper_pattern"):  # fmt: skip
        assert key in report, key
    assert set(report["rows"]) == set(headroom.ROWS)
    assert set(report["per_seed"][0]) == {"seed", *headroom.ROWS, "patch_classifiers"}
    assert report["budgets"] == {"oracle": 1, "raw": 1, "perfect": 1, "patch_classifier": 1}
    assert 0.0 <= report["target_artifact_accuracy"]["gta5"]["mean"] <= 1.0
    assert set(report["per_class_winner"].values()) <= {"gta5", "synthia", "tie"}
    with pytest.raises(ValueError, match="--benchmark must be one of"):
        headroom.generate_data(str(tmp_path / "x"), dict(data_spec, benchmark="madan_v2"), 0)
