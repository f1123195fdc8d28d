"""What a stage records (the config fields it reads) and reuse across run folders.

The paper and code readings (tf_madan/configs/code.py) differ only in fields that a
single-source or merged pixel stage does not read, so such a stage is recorded alike under both
and trains to the same weights; `reuse_from` then copies it from one reading's run folder into
the other's.
"""

import json
import os
import shutil

import pytest
import tensorflow as tf

import tf_runtime
from input_pipelines import synthetic_driving
from tf_madan import layout, stage_records, stage_runner, stages, train_lib
from tf_madan.configs import code, cpu_benchmark_v4, cpu_benchmark_v4_code, smoke

# Stages of the v4 table that each reading computes alike (one generator: single-source or
# merged) and those it computes differently (two generators: D_T's sum vs mean, SAD, CCD, DSC).
ALIKE = (
    "cyclegan_gta5_daig",
    "cyclegan_gta5",
    "cycada_gan_gta5",
    "cyclegan_synthia_daig",
    "cyclegan_synthia",
    "cycada_gan_synthia",
    "combined_cyclegan_daig",
    "combined_cyclegan",
    "combined_cycada_gan",
)
DIFFERENT = {
    "daig": {"config.gan.target_discriminator_loss"},
    "ada_plain": {"config.gan.target_discriminator_loss"},
    "ada_sad": {
        "config.gan.target_discriminator_loss",
        "config.sad.mode",
        "config.sad.start_epoch",
    },
    "ada_ccd": {"config.gan.target_discriminator_loss", "config.ccd.separate_discriminators"},
}


def _records(config):
    table = stages.table_for(config)
    sub = stage_runner.section_config(config, stage_records.SECTIONS["pixel"])
    fake_outputs = {s.name: {"digest": f"digest-of-{s.name}"} for s in table}
    return {
        s.name: stage_records.stage_record(s, sub, fake_outputs) for s in table if s.kind == "pixel"
    }


def test_one_generator_stages_are_recorded_alike_under_both_readings():
    paper = _records(cpu_benchmark_v4.get_config())
    code_reading = _records(cpu_benchmark_v4_code.get_config())
    for name in ALIKE:
        assert paper[name] == code_reading[name], name
    for name, fields in DIFFERENT.items():
        assert set(tf_runtime.config_differences(paper[name], code_reading[name])) == fields, name
    # The full MADAN stage reads every DSC / SAD / CCD field the readings set.
    full = set(tf_runtime.config_differences(paper["ada"], code_reading["ada"]))
    assert {"config.dsc.direction", "config.dsc.networks", "config.sad.mode"} <= full
    assert "config.ccd.separate_discriminators" in full
    # A stage without DSC records neither the DSC settings nor the segmenter it would build.
    assert "dsc" not in paper["cyclegan_gta5"]["config"]
    assert "segmenter" not in paper["cyclegan_gta5"]["config"]
    weight = cpu_benchmark_v4.get_config().dsc.weight
    assert paper["cycada_gan_gta5"]["config"]["dsc"] == {"weight": weight}


@pytest.mark.parametrize("reading", [cpu_benchmark_v4, cpu_benchmark_v4_code])
def test_records_of_whole_sections_stay_valid(reading):
    """A stored record holding the whole config sections a stage's kind is given agrees with
    the stage's record, so such a finished stage is reused, not re-run."""
    config = reading.get_config()
    table = stages.table_for(config)
    outputs = {s.name: {"digest": f"digest-of-{s.name}"} for s in table}
    for stage in table:
        names = stage_records.SECTIONS[stage.kind]
        sub = stage_runner.section_config(config, names)
        record = stage_records.stage_record(stage, sub, outputs)
        whole = dict(record, config={n: tf_runtime.config_to_dict(sub[n]) for n in names})
        assert stage_records.record_differences(whole, record) == [], stage.name


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("record_data")
    synthetic_driving.generate(str(root), seed=0, num_per_domain=6, num_val=3, height=32, width=64)
    return str(root)


def _smoke(root, reading):
    c = smoke.get_config()
    c.data.root = root
    c.gan.daig_epochs = 1
    c.seg.source_only_steps = 1
    c.train.checkpoint_every = 100
    if reading == "code":
        code.apply_reading(c)
    return c


def _stage(config, name):
    return {s.name: s for s in stages.table_for(config)}[name]


def _network_bytes(stage_dir):
    folder = layout.network_dir(stage_dir)
    return {
        f: open(os.path.join(folder, f), "rb").read()
        for f in sorted(os.listdir(folder))
        if f.endswith(".weights.h5")
    }


NAME = "cyclegan_gta5_daig"


@pytest.fixture(scope="module")
def paper_run(tiny_data, tmp_path_factory):
    """The paper reading's run folder after the single-source stage NAME (trained once)."""
    config = _smoke(tiny_data, "paper")
    workdir = str(tmp_path_factory.mktemp("paper_run"))
    out = stage_runner.run_stage(
        _stage(config, NAME), config, workdir, tf.distribute.get_strategy(), {}
    )
    return config, workdir, out


def test_a_single_source_stage_trains_alike_and_is_copied_across_readings(
    paper_run, tiny_data, tmp_path, monkeypatch, capsys
):
    strategy = tf.distribute.get_strategy()
    paper, paper_dir, out_paper = paper_run
    code_reading = _smoke(tiny_data, "code")
    assert tf_runtime.config_differences(paper, code_reading)  # the readings differ
    stage = _stage(code_reading, NAME)
    out_code = stage_runner.run_stage(stage, code_reading, str(tmp_path / "code"), strategy, {})
    assert _network_bytes(out_paper["dir"]) == _network_bytes(out_code["dir"])
    assert out_paper["digest"] == out_code["digest"]

    # Copied from the paper run instead of trained (the kind function must not run).
    monkeypatch.setitem(stage_runner.KIND_FUNCTIONS, "pixel", _refuse)
    copy = str(tmp_path / "copy")
    copied = stage_runner.run_stage(stage, code_reading, copy, strategy, {}, reuse_from=paper_dir)
    assert "copying the finished stage" in capsys.readouterr().out
    assert copied["digest"] == out_paper["digest"]
    assert _network_bytes(copied["dir"]) == _network_bytes(out_paper["dir"])
    assert not os.path.exists(os.path.join(copy, NAME, ".lock"))
    # Re-running the copy changes nothing.
    again = stage_runner.run_stage(stage, code_reading, copy, strategy, {})
    assert again["digest"] == copied["digest"]

    # A stage recorded differently (here: another learning rate) is not copied, nor is a
    # stage whose artefacts changed since it finished.
    other = _smoke(tiny_data, "code")
    other.gan.learning_rate = 0.5
    with pytest.raises(AssertionError, match="trained again"):
        stage_runner.run_stage(stage, other, str(tmp_path / "c2"), strategy, {}, paper_dir)
    changed = str(tmp_path / "changed")
    shutil.copytree(paper_dir, changed)
    weights = os.path.join(
        layout.network_dir(os.path.join(changed, NAME)), "generator_s2t_0.weights.h5"
    )
    with open(weights, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(AssertionError, match="trained again"):
        stage_runner.run_stage(stage, code_reading, str(tmp_path / "c3"), strategy, {}, changed)


def test_a_copy_killed_halfway_is_redone(paper_run, tmp_path, monkeypatch):
    # A kill during the copy leaves `<stage>.copying` (and maybe a partial stage folder); the
    # same command again copies the whole stage and leaves no temporary folder.
    config, paper_dir, out = paper_run
    workdir = tmp_path / "run"
    (workdir / (NAME + ".copying") / "networks").mkdir(parents=True)
    (workdir / NAME).mkdir()
    (workdir / NAME / "history.json").write_text("{}")
    monkeypatch.setitem(stage_runner.KIND_FUNCTIONS, "pixel", _refuse)
    copied = stage_runner.run_stage(
        _stage(config, NAME), config, str(workdir), tf.distribute.get_strategy(), {}, paper_dir
    )
    assert copied["digest"] == out["digest"] and copied["reused"]
    assert _network_bytes(copied["dir"]) == _network_bytes(out["dir"])
    assert not (workdir / (NAME + ".copying")).exists()


def test_a_stored_record_with_more_fields_is_kept_while_it_agrees(paper_run, tmp_path, monkeypatch):
    strategy = tf.distribute.get_strategy()
    config, paper_dir, out = paper_run
    workdir = str(tmp_path / "run")
    shutil.copytree(paper_dir, workdir)
    stage = _stage(config, NAME)
    # A stored record holding whole sections (SAD and D_T's reduction included).
    producer = os.path.join(workdir, NAME, layout.PRODUCER)
    stored = json.load(open(producer))
    stored["config"]["sad"] = {"mode": "symmetric", "weight": 1.0}
    stored["config"]["gan"]["target_discriminator_loss"] = "mean"
    with open(producer, "w") as handle:
        json.dump(stored, handle)
    monkeypatch.setitem(stage_runner.KIND_FUNCTIONS, "pixel", _refuse)
    again = stage_runner.run_stage(stage, config, workdir, strategy, {})
    assert again["digest"] == out["digest"]
    assert json.load(open(producer)) == stored
    # A disagreeing field still rewrites the stage.
    stored["config"]["gan"]["learning_rate"] = 0.5
    with open(producer, "w") as handle:
        json.dump(stored, handle)
    assert "config.gan.learning_rate" in stage_records.stale(
        os.path.dirname(producer), stage_records.stage_record(stage, config, {})
    )


def _refuse(*args):
    raise AssertionError("the stage trained again")


def test_reuse_from_must_be_another_run_folder(tmp_path):
    with pytest.raises(ValueError, match="--reuse_from='/nonexistent' is not a folder"):
        train_lib.check_reuse_from("/nonexistent", str(tmp_path))
    with pytest.raises(ValueError, match="the run's own workdir"):
        train_lib.check_reuse_from(str(tmp_path), str(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="holds no config.json"):
        train_lib.check_reuse_from(str(other), str(tmp_path / "run"))
    (other / "config.json").write_text("{}")
    train_lib.check_reuse_from(str(other), str(tmp_path / "run"))  # accepted
