"""End-to-end smoke tests of the MADAN stages, export and evaluation (tiny config)."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import synthetic_driving
from tf_madan import builders, data, evaluation, export_lib, train_lib
from tf_madan.configs import smoke

SEGMENTER_STAGES = (
    "source_only_gta5",
    "source_only_synthia",
    "source_only",
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


def test_results_table_and_resume_is_a_no_op(smoke_run):
    config, workdir, results = smoke_run
    assert set(results) == {
        "source-only (gta5)",
        "source-only (synthia)",
        "source-only (combined)",
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


def test_export_reload_matches_at_two_batch_sizes(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    paths = export_lib.export_run(config, workdir, str(tmp_path))
    assert set(paths) == {"segmenter", "generator_s2t_gta5", "generator_s2t_synthia"}
    segmenter = builders.build_segmenter(config)
    segmenter.load_weights(os.path.join(workdir, "madan", train_lib.WEIGHTS))
    served = tf.saved_model.load(paths["segmenter"])
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch, 32, 48, 3)).astype(np.float32)
        np.testing.assert_allclose(served.serve(x), segmenter(x, training=False), atol=1e-5)


def test_export_uses_the_runs_config_json(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    other = smoke.get_config()  # a config file that builds other networks than the run's
    other.generator.filters = 8
    other.segmenter.filters = 8
    paths = export_lib.export_run(other, workdir, str(tmp_path / "a"))
    again = export_lib.export_run(None, workdir, str(tmp_path / "b"))
    x = np.random.default_rng(0).normal(size=(1, 30, 44, 3)).astype(np.float32)
    a, b = tf.saved_model.load(paths["segmenter"]), tf.saved_model.load(again["segmenter"])
    assert a.serve(x).shape == (1, 30, 44, 19)
    np.testing.assert_array_equal(a.serve(x), b.serve(x))
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_lib.export_run(None, str(tmp_path), str(tmp_path / "c"))


def test_missing_stage_and_bad_config_errors(smoke_run, tmp_path):
    config, _, _ = smoke_run
    with pytest.raises(FileNotFoundError, match="segmenter.weights.h5"):
        export_lib.export_run(config, str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="has not finished"):
        train_lib.load_generators(config, str(tmp_path))
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
    strategy = tf.distribute.get_strategy()
    dirs = [os.path.join(workdir, "adapted_ada", s) for s in config.data.sources]
    dataset_fn = data.adapted_multi_domain_fn(
        config, dirs, batch_size=config.seg.batch_size, crop_size=config.data.seg_crop_size
    )
    train_lib.train_segmenter(
        config, str(tmp_path), strategy, name="fla", dataset_fn=dataset_fn, num_steps=6, fla=True
    )
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
