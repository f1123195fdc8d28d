"""The MADAN schedule's wiring (which stage trains on what, from what) and its bookkeeping.

The wiring tests replace the trainers by recorders, so they check the whole `stage=all`
schedule in milliseconds; the seeded-init and seed-aggregation tests run real (tiny) stages.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import synthetic_driving
from tf_madan import data, train_lib
from tf_madan.configs import smoke

SOURCES = ("gta5", "synthia")


class Recorder:
    """Stands in for the trainers: records every stage call, returns fake paths."""

    def __init__(self, monkeypatch, workdir):
        self.workdir = workdir
        self.seg = {}
        self.pixel = {}
        monkeypatch.setattr(train_lib, "train_segmenter", self.train_segmenter)
        monkeypatch.setattr(train_lib, "train_pixel_stage", self.train_pixel_stage)
        monkeypatch.setattr(train_lib, "translate_stage", self.translate_stage)
        monkeypatch.setattr(train_lib, "color_transfer_stage", self.color_transfer_stage)
        monkeypatch.setattr(
            data, "multi_domain_fn", lambda config, **kw: ("raw", tuple(kw["sources"]))
        )
        monkeypatch.setattr(
            data, "adapted_multi_domain_fn", lambda config, dirs, **kw: ("adapted", tuple(dirs))
        )

    def train_segmenter(self, config, workdir, strategy, *, name, dataset_fn, num_steps, **kw):
        assert name not in self.seg, f"segmenter stage {name} trained twice"
        self.seg[name] = dict(data=dataset_fn, steps=num_steps, **kw)
        return f"{workdir}/{name}/{train_lib.WEIGHTS}"

    def train_pixel_stage(self, config, workdir, strategy, *, name, **kw):
        assert name not in self.pixel, f"pixel stage {name} trained twice"
        kw.setdefault("sources", list(config.data.sources))
        self.pixel[name] = kw
        return f"{workdir}/{name}"

    def translate_stage(self, config, workdir, stage_dir, out_name):
        sources = self.pixel[os.path.basename(stage_dir)]["sources"]
        return [f"{workdir}/{out_name}/{s}" for s in sources]

    def color_transfer_stage(self, config, workdir):
        return [f"{workdir}/adapted_color/{s}" for s in config.data.sources]

    def total_pixel_steps(self, name):
        """Steps of a pixel stage plus those of the stages it continues."""
        stage = self.pixel[name]
        steps = stage["num_steps"]
        if stage.get("init_from"):
            steps += self.total_pixel_steps(os.path.basename(stage["init_from"]))
        return steps


def _config(**pipeline):
    c = smoke.get_config()
    c.data.root = "/nonexistent"
    c.stage = "all"
    c.gan.steps_per_epoch = 10
    c.gan.daig_epochs, c.gan.ada_epochs = 3, 2  # 30 + 20 pixel-level steps
    c.seg.steps, c.seg.source_only_steps, c.seg.oracle_steps, c.fla.steps = 7, 5, 9, 4
    c.pipeline.update(
        dict(ablation=True, single_source=True, combined=True, oracle=True, color_transfer=True)
    )
    c.pipeline.update(pipeline)
    return c


@pytest.fixture
def schedule(monkeypatch, tmp_path):
    recorder = Recorder(monkeypatch, str(tmp_path))
    methods = train_lib.run_schedule(_config(), str(tmp_path), None)
    return recorder, methods, str(tmp_path)


def test_single_source_cyclegans_are_trained_alone(schedule):
    rec, methods, w = schedule
    for s in SOURCES:
        for stage in (f"cyclegan_{s}_daig", f"cyclegan_{s}", f"cycada_gan_{s}"):
            assert rec.pixel[stage]["sources"] == [s], stage  # its own D_T: one source only
            assert not rec.pixel[stage].get("merged")
        # The single-source CycleGAN row trains F on that source's own CycleGAN images.
        assert rec.seg[f"single_{s}"]["data"] == ("adapted", (f"{w}/adapted_cyclegan_{s}/{s}",))
        assert methods[f"single-source CycleGAN ({s})"] == f"{w}/single_{s}/{train_lib.WEIGHTS}"


def test_cycada_fla_starts_from_f_trained_on_the_images_it_aligns(schedule):
    rec, methods, w = schedule
    for s in SOURCES:
        images = ("adapted", (f"{w}/adapted_cycada_{s}/{s}",))
        sc, fla = rec.seg[f"seg_cycada_{s}"], rec.seg[f"cycada_{s}"]
        assert sc["data"] == images and fla["data"] == images
        assert fla["fla"] is True and fla["steps"] == 4
        assert fla["init_from"] == f"{w}/seg_cycada_{s}/{train_lib.WEIGHTS}"
        gan = rec.pixel[f"cycada_gan_{s}"]
        # CyCADA's semantic consistency: CE against the fixed source-only model of that source.
        assert gan["dsc_mode"] == "cycada" and gan["use_sad"] is False and gan["use_ccd"] is False
        assert gan["source_weights"] == [f"{w}/source_only_{s}/{train_lib.WEIGHTS}"]
        assert methods[f"single-source CyCADA ({s})"] == f"{w}/cycada_{s}/{train_lib.WEIGHTS}"


def test_source_combined_is_one_merged_domain(schedule):
    rec, methods, w = schedule
    for stage in ("combined_cyclegan_daig", "combined_cyclegan", "combined_cycada_gan"):
        assert rec.pixel[stage]["merged"] is True
        assert rec.pixel[stage]["sources"] == list(SOURCES)
    assert rec.pixel["combined_cycada_gan"]["source_weights"] == [
        f"{w}/source_only/{train_lib.WEIGHTS}"
    ]
    both = tuple(f"{w}/adapted_combined_cycada/{s}" for s in SOURCES)
    assert rec.seg["combined_cycada"]["data"] == ("adapted", both)
    assert rec.seg["combined_cycada"]["init_from"] == (
        f"{w}/seg_combined_cycada/{train_lib.WEIGHTS}"
    )
    assert "source-combined CyCADA" in methods and "source-combined CycleGAN" in methods


def test_oracle_colour_transfer_and_source_only(schedule):
    rec, methods, w = schedule
    assert rec.seg["oracle"] == dict(data=("raw", ("cityscapes",)), steps=9)
    assert rec.seg["seg_color_transfer"]["data"] == (
        "adapted",
        tuple(f"{w}/adapted_color/{s}" for s in SOURCES),
    )
    assert rec.seg["source_only"]["data"] == ("raw", SOURCES)
    assert rec.seg["source_only_gta5"] == dict(data=("raw", ("gta5",)), steps=5)


def test_every_adapted_row_has_the_same_pixel_budget(schedule):
    rec, _, _ = schedule
    budget = {
        name: rec.total_pixel_steps(name)
        for name in rec.pixel
        if not name.endswith("_daig") and name != "daig"
    }
    assert budget == {
        name: 50
        for name in (
            "ada_plain",
            "ada",
            "ada_sad",
            "ada_ccd",
            "ada_sad_ccd",
            "cyclegan_gta5",
            "cycada_gan_gta5",
            "cyclegan_synthia",
            "cycada_gan_synthia",
            "combined_cyclegan",
            "combined_cycada_gan",
        )
    }
    assert rec.pixel["daig"]["num_steps"] == 30


def test_madan_ablation_rows(schedule):
    rec, methods, w = schedule
    assert [m for m in methods if m.startswith("+") or m.startswith("baseline")] == [
        "baseline (multi-source CycleGAN)",
        "+SAD+CCD+DSC",
        "+SAD",
        "+CCD",
        "+SAD+CCD",
    ]
    switches = {
        n: (rec.pixel[n].get("use_dsc", True), rec.pixel[n]["use_sad"], rec.pixel[n]["use_ccd"])
        for n in ("ada_plain", "ada_sad", "ada_ccd", "ada_sad_ccd")
    }
    assert switches == {
        "ada_plain": (False, False, False),
        "ada_sad": (False, True, False),
        "ada_ccd": (False, False, True),
        "ada_sad_ccd": (False, True, True),
    }
    assert rec.pixel["ada"]["adapted_weights"] == f"{w}/seg_daig/{train_lib.WEIGHTS}"
    assert rec.seg["madan"]["init_from"] == f"{w}/seg_ada/{train_lib.WEIGHTS}"
    assert rec.seg["madan"]["data"] == rec.seg["seg_ada"]["data"]


def test_pipeline_switches_leave_out_baselines(monkeypatch, tmp_path):
    rec = Recorder(monkeypatch, str(tmp_path))
    config = _config(
        ablation=False, single_source=False, combined=False, oracle=False, color_transfer=False
    )
    train_lib.run_schedule(config, str(tmp_path), None)
    assert set(rec.pixel) == {"daig", "ada"}
    assert set(rec.seg) == {
        "source_only_gta5",
        "source_only_synthia",
        "source_only",
        "seg_daig",
        "seg_ada",
        "madan",
    }


# ---------------------------------------------------------------- real tiny stages
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("schedule_data")
    synthetic_driving.generate(str(root), seed=0, num_per_domain=6, num_val=3, height=32, width=64)
    return str(root)


def _tiny_config(root):
    c = smoke.get_config()
    c.data.root = root
    c.stage = "source_only"
    c.seg.source_only_steps = 1
    return c


def _weights(path):
    segmenter = train_lib._new_segmenter(smoke.get_config(), weights=path)
    return [np.asarray(v) for v in segmenter.weights]


def test_stage_init_does_not_depend_on_what_ran_before(tiny_data, tmp_path):
    config = _tiny_config(tiny_data)
    strategy = tf.distribute.get_strategy()
    fn = data.multi_domain_fn(
        config,
        normalization="segmenter",
        batch_size=2,
        crop_size=32,
        resize_shorter=0,
        sources=["gta5"],
        batch_field="config.seg.batch_size",
    )
    paths = []
    for k, global_seed in enumerate((1, 12345)):
        # A different history: another global seed, other random draws and models built.
        keras.utils.set_random_seed(global_seed)
        tf.random.uniform([k + 3])
        keras.Sequential([keras.layers.Dense(k + 2)]).build((None, 4))
        keras.backend.clear_session() if k else None
        paths.append(
            train_lib.train_segmenter(
                config,
                str(tmp_path / f"run{k}"),
                strategy,
                name="stage_b",
                dataset_fn=fn,
                num_steps=1,
            )
        )
    for a, b in zip(_weights(paths[0]), _weights(paths[1])):
        np.testing.assert_array_equal(a, b)


def test_stage_seed_pins():
    assert train_lib.stage_seed(0, "madan") != train_lib.stage_seed(1, "madan")
    assert train_lib.stage_seed(0, "madan") != train_lib.stage_seed(0, "seg_ada")
    assert train_lib.stage_seed(0, "madan") == train_lib.stage_seed(0, "madan")
    assert 0 <= train_lib.stage_seed(3, "x") < 2**31


def test_aggregate_seeds_mean_and_sample_sd():
    per_seed = {
        0: {"A": {"miou_16": 10.0, "miou_19": 1.0, "fcn_score": {"miou_16": 5.0}}},
        1: {"A": {"miou_16": 20.0, "miou_19": 2.0, "fcn_score": {"miou_16": 7.0}}},
        2: {"A": {"miou_16": 30.0, "miou_19": float("nan")}, "B": {"miou_16": 4.0}},
    }
    rows = train_lib.aggregate_seeds(per_seed)
    assert rows["A"]["miou_16"] == {
        "mean": 20.0,
        "sd": 10.0,
        "values": {"0": 10.0, "1": 20.0, "2": 30.0},
    }
    assert rows["A"]["miou_19"]["mean"] == pytest.approx(1.5)
    assert rows["A"]["miou_19"]["sd"] == pytest.approx(0.7071068)
    assert rows["A"]["fcn_score"]["mean"] == 6.0
    assert rows["B"]["miou_16"] == {"mean": 4.0, "sd": 0.0, "values": {"2": 4.0}}
    table = train_lib.aggregate_table(rows, {0: 61.0, 1: 59.4})
    assert "| A | 20.0 ± 10.0 | - | 1.5 ± 0.7 | 6.0 ± 1.4 | 3 |" in table
    assert "seed 0: 61 s, seed 1: 59 s" in table


def test_seeds_run_per_seed_folder_and_resume(tiny_data, tmp_path, monkeypatch):
    config = _tiny_config(tiny_data)
    config.seeds = (0, 1)
    workdir = str(tmp_path / "seeds")
    strategy = tf.distribute.get_strategy()
    rows = train_lib.train_and_evaluate(config, workdir, strategy)
    assert set(rows) == {"source-only (gta5)", "source-only (synthia)", "source-only (combined)"}
    for seed in (0, 1):
        seed_dir = os.path.join(workdir, f"seed_{seed}")
        assert json.load(open(os.path.join(seed_dir, "config.json")))["seed"] == seed
        assert os.path.exists(os.path.join(seed_dir, "source_only_gta5", train_lib.WEIGHTS))
    stored = json.load(open(os.path.join(workdir, "results.json")))
    assert stored["seeds"] == [0, 1] and set(stored["seconds_per_seed"]) == {"0", "1"}
    values = stored["rows"]["source-only (gta5)"]["miou_16"]["values"]
    assert set(values) == {"0", "1"} and values["0"] != values["1"]  # seeds differ
    assert "mean" in stored["rows"]["source-only (gta5)"]["miou_16"]
    assert "± " in open(os.path.join(workdir, "results.md")).read()

    def no_rerun(*args):
        raise AssertionError("a finished seed was re-run")

    monkeypatch.setattr(train_lib, "_train_and_evaluate_one", no_rerun)
    again = train_lib.train_and_evaluate(config, workdir, strategy)
    assert again == rows


def test_config_validated_before_written_and_checked_on_resume(tiny_data, tmp_path):
    strategy = tf.distribute.get_strategy()
    bad = _tiny_config(tiny_data)
    bad.seg.batch_size = 0
    with pytest.raises(ValueError, match="config.seg.batch_size"):
        train_lib.train_and_evaluate(bad, str(tmp_path / "bad"), strategy)
    assert not os.path.exists(tmp_path / "bad" / "config.json")
    config = _tiny_config(tiny_data)
    workdir = str(tmp_path / "run")
    train_lib.train_and_evaluate(config, workdir, strategy)
    changed = _tiny_config(tiny_data)
    changed.seg.learning_rate = 0.5
    with pytest.raises(ValueError, match="seg.learning_rate"):
        train_lib.train_and_evaluate(changed, workdir, strategy)
    assert json.load(open(os.path.join(workdir, "config.json")))["seg"]["learning_rate"] == 1e-3
    changed.seg.learning_rate = 1e-3
    changed.stage = "evaluate"  # another stage in the same run folder is fine
    assert "source-only (gta5)" in train_lib.train_and_evaluate(changed, workdir, strategy)


def test_batch_larger_than_dataset_is_an_error(tiny_data):
    config = _tiny_config(tiny_data)
    with pytest.raises(ValueError, match=r"config.gan.batch_size=7 is larger than the 6 examples"):
        data.multi_domain_fn(
            config, normalization="generator", batch_size=7, crop_size=32, resize_shorter=0
        )
    with pytest.raises(ValueError, match=r"config.seg.batch_size=7 is larger than the 6 exam"):
        data.check_batch_size(config, ["cityscapes"], 7, "config.seg.batch_size", "train")


def _row(miou_16):
    return {
        "miou_16": miou_16,
        "miou_19": 1.0,
        "miou_16_gt_present": 2.0,
        "gt_present_classes": ["road"],
        "pixel_accuracy": 3.0,
        "per_class_iou": {"road": 4.0},
    }


def test_results_files_carry_the_fcn_score(tmp_path):
    config = _config()
    results = {
        "single-source CycleGAN (gta5)": _row(20.0),
        "+SAD+CCD+DSC": _row(30.0),
        "MADAN (+SAD+CCD+DSC+Feat)": _row(31.0),
    }
    scores = {
        "raw (gta5)": {"gta5": _row(15.42)},
        "adapted_cyclegan_gta5": {"gta5": _row(11.66)},
        "adapted_ada": {"gta5": _row(12.0), "synthia": _row(14.0), "all": _row(13.04)},
    }
    train_lib.write_results(config, str(tmp_path), results, scores, 61.2)
    text = open(tmp_path / "results.md").read()
    assert "| raw (gta5) | 15.4 | - | 15.4 |" in text
    assert "| adapted_cyclegan_gta5 (single-source CycleGAN (gta5)) | 11.7 | - | 11.7 |" in text
    assert "| adapted_ada (+SAD+CCD+DSC; MADAN (+SAD+CCD+DSC+Feat)) | 12.0 | 14.0 | 13.0 |" in text
    assert "Wall time: 61 s" in text
    stored = json.load(open(tmp_path / "results.json"))
    assert stored["MADAN (+SAD+CCD+DSC+Feat)"]["fcn_score"] == {
        "miou_16": 13.04,
        "per_source": {"gta5": 12.0, "synthia": 14.0},
    }
    assert stored["single-source CycleGAN (gta5)"]["fcn_score"]["miou_16"] == 11.66
    assert json.load(open(tmp_path / "fcn_score.json")).keys() == scores.keys()
