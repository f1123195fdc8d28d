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
from tf_madan import data, layout, report, stage_runner, stages, train_lib
from tf_madan.configs import smoke

SOURCES = ("gta5", "synthia")


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
def table():
    return {s.name: s for s in stages.build_table(SOURCES)}


def _selected(config):
    return [
        s.name for s in stages.select(stages.build_table(SOURCES), config.stage, config.pipeline)
    ]


def test_single_source_cyclegans_are_trained_alone(table):
    for s in SOURCES:
        for name in (f"cyclegan_{s}_daig", f"cyclegan_{s}", f"cycada_gan_{s}"):
            assert table[name].options["sources"] == (s,), name  # its own D_T: one source only
            assert not table[name].options["merged"]
        # The single-source CycleGAN row trains F on that source's own CycleGAN images.
        assert table[f"adapted_cyclegan_{s}"].options["pixel"] == f"cyclegan_{s}"
        assert table[f"single_{s}"].images == f"adapted_cyclegan_{s}"
        assert table[f"single_{s}"].row == f"single-source CycleGAN ({s})"


def test_cycada_fla_starts_from_f_trained_on_the_images_it_aligns(table):
    for s in SOURCES:
        sc, fla = table[f"seg_cycada_{s}"], table[f"cycada_{s}"]
        assert sc.images == fla.images == f"adapted_cycada_{s}"
        assert table[f"adapted_cycada_{s}"].options["pixel"] == f"cycada_gan_{s}"
        assert fla.kind == "fla" and fla.options["init_from"] == f"seg_cycada_{s}"
        gan = table[f"cycada_gan_{s}"].options
        # CyCADA's semantic consistency: CE against the fixed source-only model of that source.
        assert gan["dsc_mode"] == "cycada" and gan["use_dsc"]
        assert not gan.get("use_sad") and not gan.get("use_ccd")  # the runner's default: off
        plain = table[f"cyclegan_{s}"].options
        assert not any(plain.get(k) for k in ("use_dsc", "use_sad", "use_ccd"))
        assert gan["source_networks"] == (f"source_only_{s}",)
        assert gan["init_from"] == f"cyclegan_{s}_daig"
        assert fla.row == f"single-source CyCADA ({s})"


def test_source_combined_is_one_merged_domain(table):
    for name in ("combined_cyclegan_daig", "combined_cyclegan", "combined_cycada_gan"):
        assert table[name].options["merged"] is True
        assert table[name].options["sources"] == SOURCES
    assert table["combined_cycada_gan"].options["source_networks"] == ("source_only",)
    assert table["combined_cycada"].images == "adapted_combined_cycada"
    assert table["combined_cycada"].options["init_from"] == "seg_combined_cycada"
    assert table["combined_cycada"].row == "source-combined CyCADA"


def test_oracle_colour_transfer_and_source_only(table):
    assert table["oracle"].options["domains"] == (stage_runner.TARGET,)
    assert table["oracle"].options["budget"] == "oracle"
    assert table["seg_color_transfer"].images == "adapted_color"
    assert table["adapted_color"].kind == "color_transfer"
    assert table["source_only"].options["domains"] == SOURCES
    assert table["source_only_gta5"].options == {"budget": "source_only", "domains": ("gta5",)}
    config = _config()
    assert stage_runner._steps(config, "oracle") == 9
    assert stage_runner._steps(config, "source_only") == 5
    assert stage_runner._steps(config, "fla") == 4


def test_every_adapted_row_has_the_same_pixel_budget(table):
    config = _config()

    def total(name):
        """Steps of a pixel stage plus those of the stages it continues."""
        o = table[name].options
        steps = stage_runner._steps(config, o["budget"])
        return steps + (total(o["init_from"]) if o.get("init_from") else 0)

    pixel = [n for n, s in table.items() if s.kind == "pixel"]
    budget = {n: total(n) for n in pixel if not n.endswith("_daig") and n != "daig"}
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
    assert total("daig") == 30


def test_madan_ablation_rows(table):
    rows = [label for label, _, _ in stages.result_rows(table.values())]
    assert [m for m in rows if m.startswith("+") or m.startswith("baseline")] == [
        "baseline (multi-source CycleGAN)",
        "+SAD",
        "+CCD",
        "+SAD+CCD",
        "+SAD+CCD+DSC",
    ]
    switches = {
        n: tuple(bool(table[n].options.get(k)) for k in ("use_dsc", "use_sad", "use_ccd"))
        for n in ("ada_plain", "ada_sad", "ada_ccd", "ada_sad_ccd", "ada")
    }
    assert switches == {
        "ada_plain": (False, False, False),
        "ada_sad": (False, True, False),
        "ada_ccd": (False, False, True),
        "ada_sad_ccd": (False, True, True),
        "ada": (True, True, True),
    }
    assert table["ada"].options["adapted_network"] == "seg_daig"
    assert table["ada"].options["source_networks"] == ("source_only_gta5", "source_only_synthia")
    assert table["madan"].options["init_from"] == "seg_ada"
    assert table["madan"].images == table["seg_ada"].images == "adapted_ada"


def test_code_reading_takes_dsc_networks_trained_on_each_sources_adapted_images():
    from tf_madan.configs import code

    config = code.get_config()
    ada = {s.name: s for s in stages.table_for(config)}["ada"]
    assert ada.options["source_networks"] == ("single_gta5", "single_synthia")
    config.stage = "madan"
    selected = [s.name for s in stages.select(stages.table_for(config), "madan", config.pipeline)]
    assert {"cyclegan_gta5_daig", "cyclegan_gta5", "adapted_cyclegan_gta5", "single_gta5"} <= set(
        selected
    )
    assert {s.name: s for s in stages.table_for(_config())}["ada"].options["source_networks"] == (
        "source_only_gta5",
        "source_only_synthia",
    )
    bad = code.get_config()
    bad.data.root = "/x"
    bad.dsc.networks = "paper"
    with pytest.raises(ValueError, match="config.dsc.shared_network"):
        train_lib.validate_config(bad)
    bad = code.get_config()
    bad.data.root = "/x"
    bad.sad.anchor = 2
    with pytest.raises(ValueError, match=r"config.sad.anchor must be a source index in \[0, 2\)"):
        train_lib.validate_config(bad)


def test_table_is_topologically_sorted_and_rows_unique(table):
    seen = set()
    for name, stage in table.items():
        assert set(stage.upstream) <= seen, name
        seen.add(name)
    labels = [label for label, _, _ in stages.result_rows(table.values())]
    assert len(labels) == len(set(labels)) == 21
    assert labels[0] == "source-only (gta5)" and labels[-1] == "oracle (target labels)"


def test_a_duplicate_or_misordered_stage_is_refused(monkeypatch):
    original = stages._cyclegan_family
    monkeypatch.setattr(stages, "_cyclegan_family", lambda *a: original(*a)[1:] + original(*a)[:1])
    with pytest.raises(ValueError, match="reads .* before they run"):
        stages.build_table(SOURCES)


def test_pipeline_switches_leave_out_baselines():
    config = _config(
        ablation=False, single_source=False, combined=False, oracle=False, color_transfer=False
    )
    assert _selected(config) == [
        "source_only_gta5",
        "source_only_synthia",
        "source_only",
        "daig",
        "adapted_daig",
        "seg_daig",
        "ada",
        "adapted_ada",
        "seg_ada",
        "madan",
    ]
    config = _config(cycada_fla=False)
    assert not [n for n in _selected(config) if "cycada" in n]
    assert "single_gta5" in _selected(config)


def test_one_stage_runs_with_its_upstream_only():
    config = _config()
    config.stage = "madan"
    assert _selected(config) == [
        "source_only_gta5",
        "source_only_synthia",
        "daig",
        "adapted_daig",
        "seg_daig",
        "ada",
        "adapted_ada",
        "seg_ada",
        "madan",
    ]
    config.stage = "oracle"
    config.pipeline.oracle = False  # an explicit stage runs regardless of its switch
    assert _selected(config) == ["oracle"]
    config.stage = "evaluate"
    assert _selected(config) == []
    with pytest.raises(ValueError, match="config.stage must be one of"):
        stages.select(stages.build_table(SOURCES), "adaa", config.pipeline)


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


def _one_stage_config(root):
    """`_tiny_config` whose target is the one-stage group "oracle" (one segmenter step)."""
    c = _tiny_config(root)
    c.stage = "oracle"
    c.seg.oracle_steps = 1
    return c


def _weights(path):
    segmenter = stage_runner._new_segmenter(smoke.get_config(), weights=path)
    return [np.asarray(v) for v in segmenter.weights]


def test_stage_init_does_not_depend_on_what_ran_before(tiny_data, tmp_path):
    config = _tiny_config(tiny_data)
    strategy = tf.distribute.get_strategy()
    stage = {s.name: s for s in stages.build_table(SOURCES)}["source_only_gta5"]
    paths = []
    for k, global_seed in enumerate((1, 12345)):
        # A different history: another global seed, other random draws and models built.
        keras.utils.set_random_seed(global_seed)
        tf.random.uniform([k + 3])
        keras.Sequential([keras.layers.Dense(k + 2)]).build((None, 4))
        keras.backend.clear_session() if k else None
        out = stage_runner.run_stage(stage, config, str(tmp_path / f"run{k}"), strategy, {})
        paths.append(out["weights"])
    for a, b in zip(_weights(paths[0]), _weights(paths[1])):
        np.testing.assert_array_equal(a, b)


def test_stage_seed_pins():
    assert stage_runner.stage_seed(0, "madan") != stage_runner.stage_seed(1, "madan")
    assert stage_runner.stage_seed(0, "madan") != stage_runner.stage_seed(0, "seg_ada")
    assert stage_runner.stage_seed(0, "madan") == stage_runner.stage_seed(0, "madan")
    assert 0 <= stage_runner.stage_seed(3, "x") < 2**31
    assert stage_runner.stage_seed(0, "madan") == 956275472  # zlib.crc32(b"0/madan")


def test_aggregate_seeds_mean_and_sample_sd():
    per_seed = {
        0: {"A": {"miou_16": 10.0, "miou_19": 1.0, "fcn_score": {"miou_16": 5.0}}},
        1: {"A": {"miou_16": 20.0, "miou_19": 2.0, "fcn_score": {"miou_16": 7.0}}},
        2: {"A": {"miou_16": 30.0, "miou_19": float("nan")}, "B": {"miou_16": 4.0}},
    }
    rows = report.aggregate_seeds(per_seed)
    assert rows["A"]["miou_16"] == {
        "mean": 20.0,
        "sd": 10.0,
        "values": {"0": 10.0, "1": 20.0, "2": 30.0},
    }
    assert rows["A"]["miou_19"]["mean"] == pytest.approx(1.5)
    assert rows["A"]["miou_19"]["sd"] == pytest.approx(0.7071068)
    assert rows["A"]["fcn_score"]["mean"] == 6.0
    assert rows["B"]["miou_16"] == {"mean": 4.0, "sd": 0.0, "values": {"2": 4.0}}
    table = report.aggregate_table(rows, {0: 61.0, 1: 59.4})
    assert "| A | 20.0 ± 10.0 | - | 1.5 ± 0.7 | 6.0 ± 1.4 | 3 |" in table
    assert "seed 0: 61 s, seed 1: 59 s" in table


def test_paired_differences_per_seed_and_best_single_by_mean():
    def row(*values):
        return {"miou_16": {"values": {str(i): v for i, v in enumerate(values)}}}

    rows = {
        "single-source CyCADA (gta5)": row(30.0, 20.0, 25.0),  # mean 25
        "single-source CyCADA (synthia)": row(10.0, 40.0, 16.0),  # mean 22, wins seed 1
        "source-combined CyCADA": row(20.0, 21.0, 22.0),
        "MADAN (+SAD+CCD+DSC+Feat)": row(26.0, 25.0, 24.0),
        "+SAD": row(1.0, 2.0),
    }
    for r in rows.values():
        v = list(r["miou_16"]["values"].values())
        r["miou_16"]["mean"] = sum(v) / len(v)
    diffs = {(d["a"], d["b"]): d for d in report.paired_differences(rows)}
    madan_combined = diffs[("MADAN (+SAD+CCD+DSC+Feat)", "source-combined CyCADA")]
    assert madan_combined["values"] == {"0": 6.0, "1": 4.0, "2": 2.0}
    assert madan_combined["mean"] == 4.0 and madan_combined["sd"] == 2.0
    assert madan_combined["positive"] == 3
    # The best single source is chosen once, by mean (GTA5), not per seed.
    madan_best = diffs[("MADAN (+SAD+CCD+DSC+Feat)", "single-source CyCADA (gta5)")]
    assert madan_best["values"] == {"0": -4.0, "1": 5.0, "2": -1.0}
    assert madan_best["positive"] == 1
    # A comparison with a missing row is left out.
    assert not any(a == "+SAD" for a, _ in diffs)
    table = report.paired_table(report.paired_differences(rows))
    assert (
        "| MADAN (+SAD+CCD+DSC+Feat) − source-combined CyCADA | +4.0 ± 2.0 | +6.0 / +4.0 / +2.0 "
        "| 3 of 3 |" in table
    )


def test_seeds_run_per_seed_folder_and_resume(tiny_data, tmp_path, monkeypatch):
    config = _one_stage_config(tiny_data)
    config.seeds = (0, 1)
    workdir = str(tmp_path / "seeds")
    strategy = tf.distribute.get_strategy()
    rows = train_lib.train_and_evaluate(config, workdir, strategy)
    assert set(rows) == {"oracle (target labels)"}
    for seed in (0, 1):
        seed_dir = os.path.join(workdir, f"seed_{seed}")
        assert json.load(open(os.path.join(seed_dir, "config.json")))["seed"] == seed
        assert os.path.exists(layout.segmenter_weights(seed_dir, "oracle"))
    stored = json.load(open(os.path.join(workdir, "results.json")))
    assert stored["seeds"] == [0, 1] and set(stored["seconds_per_seed"]) == {"0", "1"}
    values = stored["rows"]["oracle (target labels)"]["miou_16"]["values"]
    assert set(values) == {"0", "1"} and values["0"] != values["1"]  # seeds differ
    assert "mean" in stored["rows"]["oracle (target labels)"]["miou_16"]
    assert stored["paired"] == report.paired_differences(stored["rows"])
    assert "± " in open(os.path.join(workdir, "results.md")).read()

    def no_rerun(*args):
        raise AssertionError("a finished seed was re-run")

    monkeypatch.setattr(train_lib, "_run_one", no_rerun)
    again = train_lib.train_and_evaluate(config, workdir, strategy)
    assert again == rows


def test_config_validated_before_written_and_checked_on_resume(tiny_data, tmp_path):
    strategy = tf.distribute.get_strategy()
    bad = _one_stage_config(tiny_data)
    bad.seg.batch_size = 0
    with pytest.raises(ValueError, match="config.seg.batch_size"):
        train_lib.train_and_evaluate(bad, str(tmp_path / "bad"), strategy)
    assert not os.path.exists(tmp_path / "bad" / "config.json")
    config = _one_stage_config(tiny_data)
    workdir = str(tmp_path / "run")
    train_lib.train_and_evaluate(config, workdir, strategy)
    changed = _one_stage_config(tiny_data)
    changed.seg.learning_rate = 0.5
    with pytest.raises(ValueError, match="seg.learning_rate"):
        train_lib.train_and_evaluate(changed, workdir, strategy)
    assert json.load(open(os.path.join(workdir, "config.json")))["seg"]["learning_rate"] == 1e-3
    changed.seg.learning_rate = 1e-3
    changed.stage = "evaluate"  # another stage in the same run folder is fine
    assert "oracle (target labels)" in train_lib.train_and_evaluate(changed, workdir, strategy)


def test_batch_larger_than_dataset_is_an_error(tiny_data, tmp_path):
    config = _tiny_config(tiny_data)
    config.gan.batch_size = 7
    with pytest.raises(ValueError, match=r"config.gan.batch_size=7 is larger than the 6 examples"):
        train_lib.train_and_evaluate(config, str(tmp_path / "run"), tf.distribute.get_strategy())
    assert not os.path.exists(tmp_path / "run" / "config.json")  # refused before any write
    with pytest.raises(ValueError, match=r"batch_size=7 is larger than the 6 examples of gta5"):
        data.multi_domain_fn(
            config, normalization="generator", batch_size=7, crop_size=32, resize_shorter=0
        )


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
    report.write_results(config, str(tmp_path), results, scores, 61.2)
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
