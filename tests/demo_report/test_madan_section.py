"""The MADAN demo section's description of its own run size."""

from demo_report import madan_section
from tf_madan.configs import demo as demo_config


def test_scale_note_reads_every_number_from_the_config():
    config = demo_config.get_config()
    config.gan.steps_per_epoch, config.gan.daig_epochs, config.gan.ada_epochs = 7, 3, 2
    config.data.gan_crop_size = 24
    config.seg.source_only_steps, config.seg.steps, config.fla.steps = 41, 43, 47
    note = madan_section.scale_note(config, num_per_domain=13, num_val=5)
    assert "13 images per domain (5 target validation images)" in note
    assert "21 DAIG + 14 ADA steps on 24x24 crops" in note
    assert "41 steps per source-only segmenter, 43 per adapted one, 47 FLA steps" in note


def test_demo_config_is_valid_and_runs_the_madan_schedule():
    from tf_madan import train_lib

    config = demo_config.get_config()
    config.data.root = "/nonexistent"  # validate_config checks the fields, not the data
    train_lib.validate_config(config)
    assert config.stage == "madan"  # the sections after it read the `madan` stage's segmenter
