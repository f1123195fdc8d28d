"""One MADAN training step against the official code's (a PyTorch twin, no torch needed here).

The fixtures (tests/tf_madan/fixtures/madan_twin*) were written by
scripts/make_madan_twin_fixtures.py with torch 2.13: a twin of the official multi-source step
of Luodian/MADAN (`cyclegan/models/multi_cycle_gan_semantic_model.py`
`CycleGANSemanticModel.optimize_parameters`, the multi-source script's options, every term on)
and one iteration of its FLA step (`scripts/train_fcn_adda.py`, `--weights_shared
--discrim_score`), in float64, with tiny networks; the script's docstring lists the fixes the
official code needs to run (a CPU, the undefined `D1D2_weight`, the DSC network's train mode and
input scaling, dropout off).

Our side: the `code` preset (tf_madan/configs/code.py) with the twin's tiny sizes, built by
`builders.build_madan_gan` / `build_segmenter_trainer`, initial weights read by
`tf_madan.torch_reader` and mapped by `tf_madan.convert_lib`'s plans. Required:
every loss term, every gradient and every post-step weight update equal the twin's to 1e-5
relative, in float64 (measured <= 3e-7: the twin's gradients and updates are stored in float32
and DRN's bilinear resize runs in float32; docs/tf_madan_official_code.md has the table and the
mutations that turn these tests red).

Adam: Keras's `epsilon` is Kingma & Ba's epsilon-hat (added to sqrt(v_hat * (1 - beta_2^t))),
PyTorch's is added to sqrt(v_hat); on the first step they agree when
epsilon_keras = epsilon_torch * sqrt(1 - beta_2), which these tests use (beta_2 as np.float64).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_madan import builders, convert_lib, torch_reader
from tf_madan.configs import code

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
NUM_CLASSES = 5
SIZE = 16
TORCH_EPSILON = 1e-8
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def twin():
    init = torch_reader.load(os.path.join(FIXTURES, "madan_twin_init.pth"))
    arrays = dict(np.load(os.path.join(FIXTURES, "madan_twin.npz")))
    return init, arrays


def twin_config():
    """The `code` preset at the twin's sizes (scripts/make_madan_twin_fixtures.py FIX 5-7)."""
    c = code.get_config()
    c.num_classes = NUM_CLASSES
    c.dsc.weight = 200.0 / NUM_CLASSES  # general 20 x dynamic 10 x element mean over C
    c.generator.update(dict(filters=4, num_blocks=1, num_downsampling=2, dropout_rate=0.0))
    c.discriminator.update(dict(filters=4, num_layers=1))
    c.data.gan_crop_size = SIZE
    c.sad.start_epoch = 0  # the twin's current_epoch 11 is past SAD_frozen_epoch 5 ...
    c.ccd.start_epoch = 0  # ... and CCD_frozen_epoch 10: both G-terms on
    c.fla.update(
        dict(
            hidden=(8, 4),
            dropout_rate=0.0,
            learning_rate=1e-2,
            discriminator_learning_rate=1e-2,
            gate_window=100,
            patience=0,
        )
    )
    return c


def _plan(name, state_dict):
    if name.startswith("generator"):
        return convert_lib.plan_cyclegan_resnet(state_dict)
    if name.startswith("dsc") or name == "segmenter":
        return convert_lib.plan_drn_c26(state_dict)
    return convert_lib.plan_patchgan(state_dict)


def _converted(name, state_dict):
    """Our network (a convert_lib plan's model) holding the PyTorch `state_dict`."""
    plan = _plan(name, state_dict)
    convert_lib.apply_plan(plan, state_dict, name)
    return plan.model


def _load_into(net, converted):
    for layer in converted.layers:
        if layer.weights:
            net.get_layer(layer.name).set_weights(layer.get_weights())


def _twin_tensors(arrays, prefix, name, reference):
    """The twin's per-key arrays `prefix/name/*` in our layout, as {layer/weight: array}."""
    state_dict = {key: np.asarray(value, np.float64) for key, value in reference.items()}
    for key in state_dict:
        stored = arrays.get(f"{prefix}/{name}/{key}")
        state_dict[key] = np.zeros_like(state_dict[key]) if stored is None else stored
    model = _converted(name, state_dict)
    return {w.path: np.asarray(w) for w in model.trainable_weights}, model


def _ours(net, converted):
    # The same layer names in both models: key our weights by the converted model's paths.
    out = {}
    for layer in converted.layers:
        for theirs, mine in zip(
            layer.trainable_weights, net.get_layer(layer.name).trainable_weights
        ):
            out[theirs.path] = np.asarray(mine)
    return out


def _max_relative(actual, expected):
    scale = max(np.abs(e).max() for e in expected.values())
    assert scale > 0
    return max(np.abs(actual[k] - expected[k]).max() for k in expected) / scale


def build_madan(init, optimizer):
    config = twin_config()
    dsc = [_converted(n, init["madan"][n]) for n in ("dsc_source_0", "dsc_source_1")]
    model = builders.build_madan_gan(
        config, num_sources=2, variant="ada", source_segmenters=dsc, adapted_segmenter=None
    )
    for name, net in model.networks().items():
        _load_into(net, _converted(name, init["madan"][name]))
    model.compile(optimizers={name: optimizer() for name in model.networks()})
    model.build_optimizers()
    return model


def madan_batch(arrays):
    def domain(key):
        image = tf.constant(arrays[f"input/{key}"], tf.float64)
        return image, tf.zeros(image.shape[:3], tf.int32)

    return {"sources": (domain("source_0"), domain("source_1")), "target": domain("target")}


def run_madan(twin, optimizer):
    init, arrays = twin
    model = build_madan(init, optimizer)
    before = {
        n: [np.array(w) for w in net.trainable_weights] for n, net in model.networks().items()
    }
    logs = model.train_step(madan_batch(arrays))
    for name, net in model.networks().items():
        for w, b in zip(net.trainable_weights, before[name]):
            w.assign(np.asarray(w) - b)  # the network now holds its update
    return model, logs


def adam():
    # PyTorch Adam(2e-4, (0.5, 0.999), eps=1e-8) on its first step (module docstring).
    # np.float64: Keras's TF backend casts a Python float hyperparameter through float32, and
    # sqrt(1 - float32(0.999)) is 6.4e-6 off sqrt(0.001).
    beta_2 = np.float64(0.999)
    return keras.optimizers.Adam(
        2e-4, beta_1=0.5, beta_2=beta_2, epsilon=TORCH_EPSILON * np.sqrt(1 - beta_2)
    )


def test_madan_losses_and_adam_updates_equal_the_official_step(float64, twin):
    init, arrays = twin
    model, logs = run_madan(twin, adam)
    expected = {
        k[len("loss/madan/") :]: float(v) for k, v in arrays.items() if k.startswith("loss/madan/")
    }
    # Every term of the official step has a log of ours, and nothing the step logs is unchecked
    # (sad_generator_0: the anchor gets no SAD term).
    assert set(expected) == set(logs)
    for key, value in expected.items():
        np.testing.assert_allclose(float(logs[key]), value, rtol=TOLERANCE, err_msg=key)
    for name, net in model.networks().items():
        twin_delta, converted = _twin_tensors(arrays, "delta", name, init["madan"][name])
        twin_grad, _ = _twin_tensors(arrays, "grad", name, init["madan"][name])
        # Biases followed by InstanceNorm have a zero gradient (float64 roundoff, ~1e-16 of the
        # network's largest), which Adam's first step turns into roundoff / epsilon: compared
        # in the gradient test, left out here.
        scale = max(np.abs(g).max() for g in twin_grad.values())
        ours = _ours(net, converted)
        for key, grad in twin_grad.items():
            noise = np.abs(grad) <= 1e-9 * scale
            ours[key] = np.where(noise, 0.0, ours[key])
            twin_delta[key] = np.where(noise, 0.0, twin_delta[key])
        assert _max_relative(ours, twin_delta) <= TOLERANCE, name


def test_madan_gradients_equal_the_official_step(float64, twin):
    # SGD(1): the update is minus the gradient, so every loss weight, direction and detach
    # shows up in magnitude too (Adam's first step is nearly lr * sign(gradient)).
    init, arrays = twin
    model, _ = run_madan(twin, lambda: keras.optimizers.SGD(1.0))
    for name, net in model.networks().items():
        twin_grad, converted = _twin_tensors(arrays, "grad", name, init["madan"][name])
        ours = {k: -v for k, v in _ours(net, converted).items()}
        assert _max_relative(ours, twin_grad) <= TOLERANCE, name


def test_sad_and_ccd_warmup_step_equals_the_official_one(float64, twin):
    # The official current_epoch 1 (not past SAD_frozen_epoch 5 / CCD_frozen_epoch 10): no SAD
    # or CCD generator term, their discriminators train. Ours: the SAD G-term from step
    # sad.warmup_steps = 1, CCD from epoch 1; the gated G-terms are logged but not counted.
    init, arrays = twin
    config = twin_config()
    config.sad.warmup_steps = 1
    config.ccd.start_epoch = 1
    dsc = [_converted(n, init["madan"][n]) for n in ("dsc_source_0", "dsc_source_1")]
    model = builders.build_madan_gan(config, num_sources=2, variant="ada", source_segmenters=dsc)
    for name, net in model.networks().items():
        _load_into(net, _converted(name, init["madan"][name]))
    model.compile(optimizers={name: keras.optimizers.SGD(1.0) for name in model.networks()})
    model.build_optimizers()
    before = {
        n: [np.array(w) for w in net.trainable_weights] for n, net in model.networks().items()
    }
    logs = model.train_step(madan_batch(arrays))
    expected = {
        k.split("/")[-1]: float(v) for k, v in arrays.items() if k.startswith("loss/warmup/")
    }
    assert set(logs) - set(expected) == {"sad_generator_1", "ccd_generator_0", "ccd_generator_1"}
    for key, value in expected.items():
        np.testing.assert_allclose(float(logs[key]), value, rtol=TOLERANCE, err_msg=key)
    for name, net in model.networks().items():
        for w, b in zip(net.trainable_weights, before[name]):
            w.assign(b - np.asarray(w))  # SGD(1): the gradient
        twin_grad, converted = _twin_tensors(arrays, "grad_warmup", name, init["madan"][name])
        assert _max_relative(_ours(net, converted), twin_grad) <= TOLERANCE, name


def test_fla_step_equals_the_official_adda_iteration(float64, twin):
    init, arrays = twin
    config = twin_config()
    segmenter = _converted("segmenter", init["fla"]["segmenter"])
    model = builders.build_segmenter_trainer(config, segmenter, fla=True)
    disc = model.feature_discriminator
    # cycada Discriminator D.0 / D.3 / D.6 (1x1 convs) -> hidden0 / hidden1 / domain_logits.
    for layer, index in (("hidden0", 0), ("hidden1", 3), ("domain_logits", 6)):
        key = f"fla_discriminator_init/D.{index}"
        disc.get_layer(layer).set_weights(
            [convert_lib.conv_kernel(arrays[f"{key}.weight"]), arrays[f"{key}.bias"]]
        )
    seg_before = [np.array(w) for w in segmenter.trainable_weights]
    disc_before = [np.array(w) for w in disc.trainable_weights]

    def domain(key):
        return (
            tf.constant(arrays[f"fla_input/{key}"], tf.float64),
            tf.constant(arrays[f"fla_input/{key}_label"]),
        )

    batch = {"sources": (domain("source_0"), domain("source_1")), "target": domain("target")}
    logs = model.train_step(batch)
    for key in (
        "feature_discriminator",
        "domain_accuracy",
        "gate_open",
        "feature_generator",
        "segmentation",
    ):
        np.testing.assert_allclose(
            float(logs[key]), float(arrays[f"loss/fla/{key}"]), rtol=TOLERANCE, err_msg=key
        )
    for w, b in zip(segmenter.trainable_weights, seg_before):
        w.assign(np.asarray(w) - b)
    twin_delta, converted = _twin_tensors(arrays, "delta", "segmenter", init["fla"]["segmenter"])
    assert _max_relative(_ours(segmenter, converted), twin_delta) <= TOLERANCE
    expected = []
    for index in (0, 3, 6):
        expected += [
            convert_lib.conv_kernel(arrays[f"delta/feature_discriminator/D.{index}.weight"]),
            arrays[f"delta/feature_discriminator/D.{index}.bias"],
        ]
    ours = [np.asarray(w) - b for w, b in zip(disc.trainable_weights, disc_before)]
    scale = max(np.abs(e).max() for e in expected)
    assert max(np.abs(o - e).max() for o, e in zip(ours, expected)) <= TOLERANCE * scale
