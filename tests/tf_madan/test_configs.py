"""MADAN config presets: each loads, validates and differs from `default` exactly as documented."""

import importlib

import pytest

from tf_madan import train_lib
from tf_madan.configs import default

# Hand-written from each preset's docstring (spec §1-3): {dotted key: (default, preset)}.
EXPECTED = {
    "paper": {
        "gan.learning_rate": (2e-4, 1e-4),
        "gan.batch_size": (4, 8),
        "data.gan_resize_shorter": (500, 600),
    },
    "code": {
        "gan.mode": ("bce", "lsgan"),
        "dsc.direction": ("paper", "code"),
        "dsc.networks": ("paper", "shared"),
        "sad.mode": ("symmetric", "asymmetric"),
        "ccd.separate_discriminators": (False, True),
        "fla.input": ("features", "score"),
        "fla.hidden": ((1024, 512), (512, 256)),
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
