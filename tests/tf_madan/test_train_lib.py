"""End-to-end smoke tests of the MADAN stages, export and evaluation (tiny config)."""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import tf_runtime
from input_pipelines import synthetic_driving
from tf_madan import (
    builders,
    data,
    evaluation,
    export_lib,
    layout,
    stage_records,
    stage_runner,
    stages,
    train_lib,
)
from tf_madan.configs import smoke

SEGMENTER_STAGES = (
    "source_only_gta5",
    "source_only_synthia",
    "seg_daig",
    "seg_ada",
    "madan",
)
PIXEL_STAGES = ("daig", "ada")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("madan")
    synthetic_driving.generate(
        str(root / "data"), seed=0, num_per_domain=6, num_val=3, height=32, width=64
    )
    config = smoke.get_config()
    config.data.root = str(root / "data")
    config.stage = "madan"
    workdir = str(root / "run")
    results = train_lib.train_and_evaluate(config, workdir, tf.distribute.get_strategy())
    return config, workdir, results


def test_every_stage_writes_checkpoint_events_and_saved_model(smoke_run):
    _, workdir, _ = smoke_run
    for stage in SEGMENTER_STAGES + PIXEL_STAGES:
        stage_dir = os.path.join(workdir, stage)
        assert os.path.exists(os.path.join(stage_dir, "checkpoints", "checkpoint")), stage
        assert glob.glob(os.path.join(stage_dir, "**", "events.out.tfevents*"), recursive=True), (
            stage
        )
    for stage in SEGMENTER_STAGES:
        assert os.path.exists(os.path.join(workdir, stage, "saved_model", "saved_model.pb")), stage
    for stage in PIXEL_STAGES:
        for i in range(2):
            path = os.path.join(
                workdir, stage, "saved_model", f"generator_s2t_{i}", "saved_model.pb"
            )
            assert os.path.exists(path)
    for source in ("gta5", "synthia"):
        adapted = sorted(os.listdir(os.path.join(workdir, "adapted_ada", source, "images")))
        assert len(adapted) == 6


def _tags(stage_dir):
    tags = set()
    for path in glob.glob(os.path.join(stage_dir, "**", "events.out.tfevents*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags |= {v.tag for v in event.summary.value}
    return tags


def test_tensorboard_has_losses_and_images(smoke_run):
    _, workdir, _ = smoke_run
    ada = _tags(os.path.join(workdir, "ada"))
    assert {"dsc_0", "sad_generator_1", "ccd_discriminator_0", "source_adapted_cycled"} <= ada
    madan = _tags(os.path.join(workdir, "madan"))
    assert {"feature_discriminator", "domain_accuracy", "segmentation_overlay"} <= madan
    # Every segmenter stage writes its evaluation (percent) to TensorBoard.
    for stage in SEGMENTER_STAGES:
        assert {"miou_16", "miou_19", "pixel_accuracy", "iou/road"} <= _tags(
            os.path.join(workdir, stage)
        ), stage


def test_results_table_and_resume_is_a_no_op(smoke_run):
    config, workdir, results = smoke_run
    assert set(results) == {
        "source-only (gta5)",
        "source-only (synthia)",
        "CycleGAN multi-source, stage 1 (F_A)",
        "+SAD+CCD+DSC",
        "MADAN (+SAD+CCD+DSC+Feat)",
    }
    for result in results.values():
        assert result["num_images"] == 3
        assert len(result["per_class_iou"]) == 19
    # Source-only and +SAD+CCD+DSC are different models: their numbers are not copies.
    assert (
        results["source-only (gta5)"]["per_class_iou"] != results["+SAD+CCD+DSC"]["per_class_iou"]
    )
    with open(os.path.join(workdir, "results.json")) as handle:
        assert json.load(handle).keys() == results.keys()
    assert "| MADAN (+SAD+CCD+DSC+Feat) |" in open(os.path.join(workdir, "results.md")).read()
    again = train_lib.train_and_evaluate(config, workdir, tf.distribute.get_strategy())
    for name in results:
        assert again[name]["miou_19"] == pytest.approx(results[name]["miou_19"])


def test_export_takes_rgb_0_255_with_preprocessing_inside(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    paths = export_lib.export_run(config, workdir, str(tmp_path))
    assert set(paths) == {"segmenter", "generator_s2t_gta5", "generator_s2t_synthia"}
    segmenter = layout.load_segmenter(config, layout.segmenter_weights(workdir, "madan"))
    served = tf.saved_model.load(paths["segmenter"])
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for batch in (1, 3):
        rgb = np.random.default_rng(batch).integers(0, 256, size=(batch, 30, 44, 3))
        expected = segmenter(((rgb / 255.0 - mean) / std).astype(np.float32), training=False)
        np.testing.assert_allclose(served.serve(rgb.astype(np.float32)), expected, atol=1e-4)
        np.testing.assert_allclose(served.serve_uint8(rgb.astype(np.uint8)), expected, atol=1e-4)
    generator = layout.load_generators(config, os.path.join(workdir, "ada"))["synthia"]
    g = tf.saved_model.load(paths["generator_s2t_synthia"])
    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 32, 48, 3)).astype(np.float32)
    expected = (np.asarray(generator(rgb / 127.5 - 1.0, training=False)) + 1.0) * 127.5
    np.testing.assert_allclose(g.serve(rgb), np.clip(expected, 0, 255), atol=1e-2)
    contract = json.load(open(os.path.join(paths["segmenter"], "assets.extra", "serving.json")))
    assert "[0, 255]" in contract["input"] and "ImageNet" in contract["preprocessing"]


def test_binaries_read_the_runs_config_json(smoke_run, tmp_path):
    from tf_madan import export as export_binary
    from tf_madan import translate as translate_binary

    config, workdir, _ = smoke_run
    # No --config: the run's own config builds the networks (not configs/default.py).
    argv = ["translate", f"--workdir={workdir}", "--stage=ada", f"--out={tmp_path / 'a'}"]
    translate_binary.main(
        [], flag_values=tf_runtime.parse_flags(argv, translate_binary.define_flags)
    )
    assert len(os.listdir(tmp_path / "a" / "gta5" / "images")) == 6
    # A --config that differs from the run's is an error naming the keys...
    other = ["--config=tf_madan/configs/smoke.py", "--config.generator.filters=8"]
    argv = ["export", f"--workdir={workdir}", f"--out={tmp_path / 'e'}", *other]
    with pytest.raises(tf_runtime.ConfigMismatchError, match="generator.filters"):
        export_binary.main([], flag_values=tf_runtime.parse_flags(argv, export_binary.define_flags))
    assert layout.run_config(workdir).generator.filters == config.generator.filters
    with pytest.raises(FileNotFoundError, match="config.json"):
        layout.run_config(str(tmp_path))


def test_explain_reads_the_madan_run(smoke_run, tmp_path):
    from visuals import explain_lib

    _, workdir, _ = smoke_run
    model, dataset, data_dir, split = explain_lib.load_madan_segmenter(workdir, "madan")
    assert (dataset, split) == ("cityscapes", "val") and model.count_params() > 0
    path = explain_lib.explain_segmenter(
        model,
        dataset,
        data_dir=data_dir,
        split=split,
        class_names=["road", "car"],
        num_images=2,
        out=str(tmp_path),
    )
    assert open(path, "rb").read(4) == b"\x89PNG"
    with pytest.raises(FileNotFoundError, match="config.json"):
        explain_lib.load_madan_segmenter(str(tmp_path), "madan")


def test_translate_pairs_each_source_with_its_own_generator(smoke_run, tmp_path):
    from tf_madan import translate as translate_binary

    config, workdir, _ = smoke_run
    # A single-source stage for SYNTHIA: its only generator must translate SYNTHIA, not the
    # first source of config.data.sources.
    stage = tmp_path / "run" / "cyclegan_synthia" / layout.NETWORKS
    os.makedirs(stage)
    for net in ("generator_s2t_1", "generator_t2s_1"):
        src = os.path.join(workdir, "ada", layout.NETWORKS, f"{net}.weights.h5")
        os.symlink(src, stage / f"{net.replace('_1', '_0')}.weights.h5")
    tf_runtime.write_marker(str(stage / layout.COMPLETE), {"sources": ["synthia"], "merged": False})
    tf_runtime.write_config(config, str(tmp_path / "run"))
    out = tmp_path / "out"
    argv = [
        "translate",
        f"--workdir={tmp_path / 'run'}",
        "--stage=cyclegan_synthia",
        f"--out={out}",
    ]
    translate_binary.main(
        [], flag_values=tf_runtime.parse_flags(argv, translate_binary.define_flags)
    )
    assert sorted(os.listdir(out)) == ["synthia"]
    ada = os.path.join(workdir, "ada", "synthia")
    reference = os.path.join(workdir, "adapted_ada", "synthia", "images", "000000.png")
    written = out / "synthia" / "images" / "000000.png"
    assert open(reference, "rb").read() == open(written, "rb").read(), ada


def test_a_folder_written_by_another_stage_is_rewritten(smoke_run, tmp_path):
    from tf_madan import translate as translate_binary

    _, workdir, _ = smoke_run
    out = tmp_path / "x"

    def run(stage):
        argv = ["translate", f"--workdir={workdir}", f"--stage={stage}", f"--out={out}"]
        translate_binary.main(
            [], flag_values=tf_runtime.parse_flags(argv, translate_binary.define_flags)
        )
        return open(out / "gta5" / "images" / "000000.png", "rb").read()

    daig, ada = run("daig"), run("ada")
    assert json.load(open(out / "gta5" / "COMPLETE"))["producer"]["stage"] == "ada"
    assert daig != ada
    assert (
        ada
        == open(os.path.join(workdir, "adapted_ada", "gta5", "images", "000000.png"), "rb").read()
    )


def test_truncated_stage_weights_rerun_the_stage(smoke_run, tmp_path, capsys):
    config, workdir, results = smoke_run
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    weights = layout.segmenter_weights(copy, "seg_daig")
    intact = open(weights, "rb").read()
    with open(weights, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(ValueError, match=r"seg_daig/segmenter.weights.h5 \(1000 bytes"):
        layout.load_segmenter(config, weights)
    again = train_lib.train_and_evaluate(config, copy, tf.distribute.get_strategy())
    out = capsys.readouterr().out
    assert "seg_daig/segmenter.weights.h5 differs from what the stage wrote" in out
    # The progress line says the stage trained again, not that it was reused.
    (line,) = [x for x in out.splitlines() if "seg_daig: mIoU-16" in x]
    assert "reused" not in line
    assert open(weights, "rb").read() == intact  # re-trained: the same seeded stage
    assert again["+SAD+CCD+DSC"]["miou_19"] == pytest.approx(results["+SAD+CCD+DSC"]["miou_19"])


def test_a_changed_config_section_rewrites_only_its_stages(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    stored = json.load(open(os.path.join(workdir, "seg_daig", "config.json")))
    # A stage records only the sections its kind reads.
    assert set(stored["config"]) == {
        "seed",
        "num_classes",
        "ignore_label",
        "data",
        "train",
        "eval",
        "segmenter",
        "seg",
    }
    assert stored["upstream"].keys() == {"adapted_daig"}
    record = dict(
        stored,
        config={**stored["config"], "seg": {**stored["config"]["seg"], "learning_rate": 0.5}},
    )
    assert "config.seg.learning_rate" in stage_records.stale(
        os.path.join(workdir, "seg_daig"), record
    )
    assert stage_records.stale(os.path.join(workdir, "seg_daig"), stored) is None


def test_missing_stage_and_bad_config_errors(smoke_run, tmp_path):
    config, _, _ = smoke_run
    with pytest.raises(FileNotFoundError, match="segmenter.weights.h5"):
        export_lib.export_run(config, str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="has not finished"):
        layout.load_generators(config, str(tmp_path))
    bad = smoke.get_config()
    bad.data.root = config.data.root
    bad.stage = "fla"
    with pytest.raises(ValueError, match="config.stage"):
        train_lib.validate_config(bad)
    bad.stage, bad.segmenter.name = "all", "unet"
    with pytest.raises(ValueError, match="config.segmenter.name"):
        train_lib.validate_config(bad)
    with pytest.raises(FileNotFoundError, match="COMPLETE"):
        data.adapted_dataset(str(tmp_path), batch_size=1, crop_size=8, seed=0)


@pytest.mark.parametrize(
    "target,split,folder,count",
    [("cityscapes", "val", "cityscapes_small_256x128", 1), ("bdd100k", "val", "bdd100k", 8)],
)
def test_evaluation_on_real_samples(shared_data_dir, tmp_path, target, split, folder, count):
    if not (shared_data_dir / folder).is_dir():
        pytest.skip(f"{folder} not in the shared data")
    os.symlink(shared_data_dir / folder, tmp_path / target)
    config = smoke.get_config()
    config.data.root = str(tmp_path)
    config.data.target = target
    config.data.eval_split = split
    config.data.eval_resize_shorter = 128
    segmenter = builders.build_segmenter(config)
    result = evaluation.evaluate_on_target(config, segmenter)
    assert result["num_images"] == count
    # The real labels reach the protocol: road is in every sample's ground truth.
    assert "road" in result["gt_present_classes"]
    assert set(result["gt_present_classes"]) <= set(result["per_class_iou"])


def test_train_binary_evaluate_stage_writes_config_and_results(smoke_run, tmp_path):
    import tf_runtime
    from tf_madan import train as train_binary

    config, workdir, results = smoke_run
    config_file = tmp_path / "eval_config.py"
    config_file.write_text(
        "from tf_madan.configs import smoke\n\n\ndef get_config():\n"
        "    c = smoke.get_config()\n"
        f"    c.data.root = {config.data.root!r}\n"
        "    c.stage = 'evaluate'\n"
        "    return c\n"
    )
    argv = ["train", f"--config={config_file}", f"--workdir={workdir}"]
    train_binary.main([], flag_values=tf_runtime.parse_flags(argv, train_binary.define_flags))
    with open(os.path.join(workdir, "config.json")) as handle:
        written = json.load(handle)
    assert written["stage"] == "evaluate" and written["data"]["root"] == config.data.root
    with open(os.path.join(workdir, "results.json")) as handle:
        again = json.load(handle)
    assert again["+SAD+CCD+DSC"]["miou_19"] == pytest.approx(results["+SAD+CCD+DSC"]["miou_19"])


def test_fla_stops_when_no_suitable_discriminator_and_config_reaches_trainers(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    config = config.copy_and_resolve_references()
    # A gate that never opens (accuracy never exceeds 1.01): F is never updated, so with
    # patience 2 ADDA's "no suitable discriminator" stop ends the stage at step 2 of 6.
    config.fla.gate_threshold = 1.01
    config.fla.gate_window = 1
    config.fla.patience = 2
    config.seed = 3
    config.fla.steps = 6
    strategy = tf.distribute.get_strategy()
    stage = stages._stage("fla", "fla", "madan", images="imgs", init_from="seg")
    inputs = {
        "imgs": {
            "dirs": [os.path.join(workdir, "adapted_ada", s) for s in config.data.sources],
            "digest": "a",
        },
        "seg": {"weights": layout.segmenter_weights(workdir, "seg_ada"), "digest": "b"},
    }
    stage_runner.run_stage(stage, config, str(tmp_path), strategy, inputs)
    with open(tmp_path / "fla" / "history.json") as handle:
        assert json.load(handle)["stopped_early_at"] == 2
    assert sorted(os.listdir(tmp_path / "fla" / "checkpoints"))[-1].startswith("ckpt-2")
    with strategy.scope():
        trainer = builders.build_segmenter_trainer(
            config, builders.build_segmenter(config), fla=True
        )
        gan = builders.build_madan_gan(config, num_sources=2, variant="daig")
    assert trainer.patience == 2
    assert {pool.seed for pool in gan.pools_target + gan.pools_source} == {3}
