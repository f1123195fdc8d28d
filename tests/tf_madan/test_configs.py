"""MADAN config presets: each loads, validates and differs from `default` exactly as documented."""

import importlib

import pytest

from tf_madan import builders, train_lib
from tf_madan.configs import default, smoke
from tf_madan.models import build_small_segmenter

# Hand-written from each preset's docstring (spec §1-3): {dotted key: (default, preset)}.
EXPECTED = {
    "paper": {
        "gan.learning_rate": (2e-4, 1e-4),
        "gan.batch_size": (4, 8),
        "data.gan_resize_shorter": (500, 600),
    },
    "code": {
        "gan.mode": ("bce", "lsgan"),
        "gan.target_discriminator_loss": ("mean", "sum"),
        "dsc.direction": ("paper", "code"),
        "dsc.networks": ("paper", "shared"),
        "dsc.shared_network": ("source_only", "adapted"),
        "sad.mode": ("symmetric", "asymmetric"),
        "ccd.separate_discriminators": (False, True),
        "fla.input": ("features", "score"),
        "fla.hidden": ((1024, 512), (512, 256)),
        "fla.weight_decay_mode": ("decoupled", "l2"),
    },
    "all_ones": {
        "gan.lambda_s2t": (2.0, 1.0),
        "dsc.weight": (200.0 / 19, 1.0),
        "ccd.weight": (0.2, 1.0),
        "fla.lambda_g": (0.1, 1.0),
    },
}


def _flat(config, prefix=""):
    out = {}
    for key, value in config.items():
        if hasattr(value, "items"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, (list, tuple)) else value
    return out


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_differs_from_default_exactly_as_documented(preset):
    module = importlib.import_module(f"tf_madan.configs.{preset}")
    config = module.get_config()
    config.data.root = "/data"
    train_lib.validate_config(config)
    base, got = _flat(default.get_config()), _flat(config)
    got.pop("data.root")
    base.pop("data.root")
    diffs = {k: (base[k], got[k]) for k in base if base[k] != got[k]}
    assert set(got) == set(base)
    assert diffs.keys() == EXPECTED[preset].keys()
    for key, expected in EXPECTED[preset].items():
        if isinstance(expected[1], float):
            assert diffs[key] == pytest.approx(expected), key
        else:
            assert diffs[key] == expected, key
    for key in EXPECTED[preset]:
        assert key.split(".")[-1] in module.__doc__, key  # every difference is documented


def test_code_preset_keeps_the_codes_weights():
    config = importlib.import_module("tf_madan.configs.code").get_config()
    assert (config.gan.lambda_s2t, config.gan.lambda_t2s, config.gan.lambda_cycle) == (
        2.0,
        1.0,
        1.0,
    )
    assert config.gan.lambda_identity == 0.0
    assert config.dsc.weight == pytest.approx(10.526315789)  # 20 x 10 over C = 19
    assert (config.sad.start_epoch, config.ccd.start_epoch, config.ccd.weight) == (5, 10, 0.2)
    assert (config.fla.lambda_g, config.fla.lambda_d, config.fla.gate_threshold) == (0.1, 1.0, 0.6)
    assert (config.gan.learning_rate, config.gan.beta_1, config.gan.batch_size) == (2e-4, 0.5, 4)
    # The code's anchor is GTA (SAD pulls SYNTHIA toward it), source 0 in data.sources.
    assert config.sad.anchor == 0 and config.data.sources[0] == "gta5"
    assert config.sad.warmup_steps == 0  # the warm-up is start_epoch 5 (SAD_frozen_epoch)


def test_benchmark_code_reading_differs_from_its_paper_reading_only_in_the_codes_choices():
    from tf_madan.configs import code, cpu_benchmark_v4, cpu_benchmark_v4_code

    paper, reading = cpu_benchmark_v4.get_config(), cpu_benchmark_v4_code.get_config()
    reading.data.root = "/data"
    train_lib.validate_config(reading)
    base, got = _flat(paper), _flat(reading)
    got["data.root"] = base["data.root"]
    diffs = {k for k in base if base[k] != got[k]}
    # Every READING field the benchmark did not already share, plus the scaled SAD warm-up.
    expected = {k for k, v in code.READING.items() if base[k] != v} | {"sad.start_epoch"}
    assert diffs == expected and "fla.hidden" not in diffs  # sizes stay the benchmark's
    assert all(got[k] == v for k, v in code.READING.items())
    assert (got["sad.start_epoch"], got["gan.ada_epochs"]) == (1, 3)  # 5 of 20 -> 1 of 3
    for key in diffs - set(code.READING):
        assert key.split(".")[-1] in cpu_benchmark_v4_code.__doc__, key
    assert cpu_benchmark_v4_code.DATA == cpu_benchmark_v4.DATA


def _tiny(preset="code"):
    config = importlib.import_module(f"tf_madan.configs.{preset}").get_config()
    tiny = smoke.get_config()
    for key in ("generator", "discriminator"):
        config[key] = tiny[key]
    config.data.gan_crop_size = 0
    config.gan.pool_size = 0
    return config


def test_code_preset_builds_the_codes_pixel_step():
    config = _tiny()
    config.gan.steps_per_epoch = 3
    config.sad.warmup_steps = 2
    model = builders.build_madan_gan(config, num_sources=2, variant="ada", use_dsc=False)
    names = sorted(model.networks())
    assert [n for n in names if n.startswith("sad")] == ["sad_discriminator_0"]
    assert [n for n in names if n.startswith("ccd")] == [
        "ccd_discriminator_0_1",
        "ccd_discriminator_1_0",
    ]
    assert (model.sad_mode, model.sad_anchor, model.target_discriminator_loss) == (
        "asymmetric",
        0,
        "sum",
    )
    assert model.sad_start_step == 5 * 3 + 2  # start_epoch x steps_per_epoch + warm-up
    assert model.gan_mode == "lsgan" and model.dsc_direction == "code"


def test_default_config_builds_todays_pixel_step():
    config = _tiny("default")
    model = builders.build_madan_gan(config, num_sources=2, variant="ada", use_dsc=False)
    assert sorted(n for n in model.networks() if n.startswith("sad")) == [
        "sad_discriminator_0",
        "sad_discriminator_1",
    ]
    assert model.target_discriminator_loss == "mean"
    assert model.sad_start_step == config.sad.start_epoch * config.gan.steps_per_epoch


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("sad.anchor", 2, r"config\.sad\.anchor must be a source index in \[0, 2\)"),
        ("sad.warmup_steps", -1, r"config\.sad\.warmup_steps must be an integer >= 0"),
        ("sad.mode", "both", r"config\.sad\.mode must be one of"),
        ("gan.target_discriminator_loss", "max", r"config\.gan\.target_discriminator_loss"),
        ("dsc.shared_network", "fa", r"config\.dsc\.shared_network must be one of"),
    ],
)
def test_bad_pixel_options_name_the_field(field, value, match):
    config = _tiny()
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(ValueError, match=match):
        builders.build_madan_gan(config, num_sources=2, variant="ada", use_dsc=False)


def test_adapted_dsc_network_needs_the_shared_layout():
    config = _tiny()
    config.dsc.networks = "paper"
    with pytest.raises(ValueError, match=r'config\.dsc\.shared_network="adapted" needs'):
        builders.build_madan_gan(config, num_sources=2, variant="ada", use_dsc=False)


def test_code_preset_fla_uses_torch_sgd_weight_decay():
    config = _tiny()
    config.num_classes = 5
    config.fla.hidden = (8,)
    segmenter = build_small_segmenter(5, filters=4)
    model = builders.build_segmenter_trainer(config, segmenter, fla=True)
    assert model.weight_decay == 5e-4
    for name in ("segmenter", "feature_discriminator"):
        assert model.get_optimizer(name).weight_decay is None  # in the gradient instead
    config.fla.weight_decay_mode = "adamw"
    with pytest.raises(ValueError, match=r"config\.fla\.weight_decay_mode must be"):
        builders.build_segmenter_trainer(config, segmenter, fla=True)
    default_model = builders.build_segmenter_trainer(_tiny("default"), segmenter, fla=False)
    assert default_model.weight_decay == 0.0
