"""Multi-source MadanGAN against single-source ones built from the same networks.

The multi-source CycleGAN (M generator pairs, one shared D_T) must give source i's networks
exactly the update a single-source CycleGAN of (G_{S_i->T}, G_{T->S_i}, D_T, D_i) would give
them on the same source-i and target batches (MADAN §1.2: GAN both ways and cycle are per
source), and D_T the official code's update: 0.5 [MSE(D_T(x_T), 1) + MSE(D_T(fake_i), 0)] for
every source i (the code calls `backward_D_basic(netD_A, real_B, fake_B_i)` once per source;
this implementation averages the M terms, the same direction under Adam).

Float64 and SGD(lr=1) make "the update" the gradient itself: gradient = weights before -
weights after, compared to 1e-12 relative.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import synthetic_driving
from tf_madan import builders, data, layout, stage_runner, stages
from tf_madan.configs import smoke
from tf_madan.madan_gan import MadanGAN
from tf_madan.models.discriminator import build_patchgan_discriminator
from tf_madan.models.generator import build_resnet_generator
from tf_runtime import files as rt_files

SIZE = 16


def _nets(m, seed):
    keras.utils.set_random_seed(seed)

    def g(name):
        return build_resnet_generator(
            filters=3,
            num_blocks=1,
            num_downsampling=1,
            dropout_rate=0.0,
            input_shape=(SIZE, SIZE, 3),
            name=name,
        )

    def d(name):
        return build_patchgan_discriminator(
            filters=3, num_layers=1, input_shape=(SIZE, SIZE, 3), name=name
        )

    return dict(
        generators_s2t=[g(f"gs{i}") for i in range(m)],
        generators_t2s=[g(f"gt{i}") for i in range(m)],
        discriminator_target=d("dt"),
        discriminators_source=[d(f"ds{i}") for i in range(m)],
    )


def _model(nets, **kwargs):
    # Weights as in the benchmark config (lambda_cycle 10), pool off: D sees the current fakes.
    model = MadanGAN(
        **nets, lambda_s2t=2.0, lambda_t2s=1.0, lambda_cycle=10.0, pool_size=0, **kwargs
    )
    model.compile(optimizers={n: keras.optimizers.SGD(1.0) for n in model.networks()})
    model.build_optimizers()
    return model


def _copy(src, dst):
    dst.set_weights(src.get_weights())


def _single_from(multi_nets, i):
    """A 1-source model whose networks start as copies of source i's (and D_T) in `multi_nets`."""
    single = _nets(1, seed=123)
    _copy(multi_nets["generators_s2t"][i], single["generators_s2t"][0])
    _copy(multi_nets["generators_t2s"][i], single["generators_t2s"][0])
    _copy(multi_nets["discriminator_target"], single["discriminator_target"])
    _copy(multi_nets["discriminators_source"][i], single["discriminators_source"][0])
    return single


def _gradients(model):
    """{network name: [weights]} snapshot (the caller subtracts after the step)."""
    return {n: [np.array(w) for w in net.trainable_weights] for n, net in model.networks().items()}


def _step_gradients(model, batch):
    before = _gradients(model)
    model.train_step(batch)
    after = _gradients(model)
    # SGD(1): w_after = w_before - g.
    return {n: [b - a for b, a in zip(before[n], after[n])] for n in before}


def _batch(m, seed):
    rng = np.random.default_rng(seed)

    def domain():
        image = tf.constant(rng.uniform(-1, 1, (2, SIZE, SIZE, 3)))
        return image, tf.zeros((2, SIZE, SIZE), tf.int32)

    return {"sources": tuple(domain() for _ in range(m)), "target": domain()}


def _assert_same(actual, expected, what):
    assert len(actual) == len(expected), what
    for k, (a, e) in enumerate(zip(actual, expected)):
        scale = max(np.abs(e).max(), 1e-30)
        np.testing.assert_allclose(a, e, rtol=0, atol=1e-12 * scale, err_msg=f"{what}[{k}]")
    # Not a vacuous comparison: the gradients are non-zero.
    assert max(np.abs(e).max() for e in expected) > 1e-6, what


def test_two_source_gradients_equal_single_source_ones(float64):
    multi_nets = _nets(2, seed=0)
    assert multi_nets["generators_s2t"][0].weights[0].dtype == "float64"
    singles = [_single_from(multi_nets, i) for i in range(2)]
    multi = _model(multi_nets)
    batch = _batch(2, seed=1)
    single_models = [_model(s) for s in singles]
    multi_grads = _step_gradients(multi, batch)
    for i, single in enumerate(single_models):
        one = {"sources": (batch["sources"][i],), "target": batch["target"]}
        single_grads = _step_gradients(single, one)
        for multi_name, single_name in (
            (f"generator_s2t_{i}", "generator_s2t_0"),
            (f"generator_t2s_{i}", "generator_t2s_0"),
            (f"discriminator_source_{i}", "discriminator_source_0"),
        ):
            _assert_same(multi_grads[multi_name], single_grads[single_name], multi_name)
        if i == 0:
            d_t_single = [g / 2.0 for g in single_grads["discriminator_target"]]
        else:
            d_t_single = [
                a + g / 2.0 for a, g in zip(d_t_single, single_grads["discriminator_target"])
            ]
    # D_T: the mean over sources of each source's real-target-vs-fake_i gradient.
    _assert_same(multi_grads["discriminator_target"], d_t_single, "discriminator_target")


def test_summed_target_discriminator_loss_is_the_codes_gradient(float64):
    # target_discriminator_loss="sum": one backward per source as the official backward_D_A
    # (multi_cycle_gan_semantic_model.py lines 259-271): D_T's gradient is the SUM of the
    # single-source gradients, the logged loss the sum of the per-source losses.
    multi_nets = _nets(2, seed=0)
    singles = [_single_from(multi_nets, i) for i in range(2)]
    multi = _model(multi_nets, target_discriminator_loss="sum")
    batch = _batch(2, seed=1)
    single_models = [_model(s) for s in singles]
    before = _gradients(multi)
    logs = multi.train_step(batch)
    multi_grad = [
        b - a
        for b, a in zip(before["discriminator_target"], _gradients(multi)["discriminator_target"])
    ]
    expected, loss = None, 0.0
    for i, single in enumerate(single_models):
        one = {"sources": (batch["sources"][i],), "target": batch["target"]}
        single_before = _gradients(single)["discriminator_target"]
        loss += float(single.train_step(one)["discriminator_target"])
        grads = [b - a for b, a in zip(single_before, _gradients(single)["discriminator_target"])]
        expected = grads if expected is None else [e + g for e, g in zip(expected, grads)]
    _assert_same(multi_grad, expected, "discriminator_target")
    np.testing.assert_allclose(float(logs["discriminator_target"]), loss, rtol=1e-12)


def test_source_losses_logged_per_source_equal_single_source_logs(float64):
    multi_nets = _nets(2, seed=4)
    singles = [_single_from(multi_nets, i) for i in range(2)]
    multi, single_models = _model(multi_nets), [_model(s) for s in singles]
    batch = _batch(2, seed=5)
    logs = multi.train_step(batch)
    totals = []
    for i, single in enumerate(single_models):
        one = single.train_step({"sources": (batch["sources"][i],), "target": batch["target"]})
        for key in ("gan_s2t", "gan_t2s", "cycle", "discriminator_source"):
            np.testing.assert_allclose(
                float(logs[f"{key}_{i}"]), float(one[f"{key}_0"]), rtol=1e-12, err_msg=key
            )
        # Generator total is the plain sum of the two single-source totals (nothing scaled by 1/M).
        totals.append(float(one["generator_total"]))
    np.testing.assert_allclose(float(logs["generator_total"]), sum(totals), rtol=1e-12)


# ------------------------------------------------------------- data and translate mapping
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("multisource")
    synthetic_driving.generate(
        str(root / "data"), seed=0, num_per_domain=4, num_val=2, height=32, width=64
    )
    config = smoke.get_config()
    config.data.root = str(root / "data")
    return config, root


def _all_images(config, name):
    images, labels = [], []
    for x, y in data.source_dataset(config, name, batch_size=8):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_multi_domain_batch_sources_follow_config_order(tiny_data):
    config, _ = tiny_data
    assert list(config.data.sources) == ["gta5", "synthia"]
    pools = {name: _all_images(config, name)[0] for name in config.data.sources}
    # The two synthetic sources differ: an image of one is never an image of the other.
    assert not np.isclose(pools["gta5"][:, None], pools["synthia"][None]).all(axis=(2, 3, 4)).any()
    for order in (["gta5", "synthia"], ["synthia", "gta5"]):
        fn = data.multi_domain_fn(
            config,
            normalization="generator",
            batch_size=2,
            crop_size=None,
            resize_shorter=config.data.translate_resize_shorter,
            sources=order,
        )
        for batch in fn(None).take(3):
            assert len(batch["sources"]) == 2
            for i, name in enumerate(order):
                images = batch["sources"][i][0].numpy()
                for image in images:
                    match = np.isclose(image[None], pools[name], atol=1e-6).all(axis=(1, 2, 3))
                    assert match.any(), f"sources[{i}] is not an image of {name}"


def _constant_generator(config, name, value):
    g = builders.build_generator(config, name)
    head = g.get_layer("head_conv")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.full_like(bias, np.arctanh(value))])
    return g


def test_translate_stage_maps_source_i_to_generator_i(tiny_data, tmp_path):
    config, _ = tiny_data
    stage = tmp_path / "stage"
    networks = stage / layout.NETWORKS
    networks.mkdir(parents=True)
    # Generator i outputs the constant value_i (head conv zero, bias arctanh(value_i)).
    values = {"gta5": 0.5, "synthia": -0.25}
    for i, name in enumerate(config.data.sources):
        g = _constant_generator(config, f"generator_s2t_{i}", values[name])
        g.save_weights(str(networks / f"generator_s2t_{i}.weights.h5"))
    rt_files.write_marker(
        str(networks / layout.COMPLETE),
        {"steps": 1, "sources": list(config.data.sources), "merged": False},
    )
    loaded = layout.load_generators(config, str(stage))
    x = tf.zeros((1, 32, 32, 3))
    for name in config.data.sources:
        np.testing.assert_allclose(loaded[name](x).numpy(), values[name], atol=1e-6)
    translate = stages._stage("adapted", "translate", "ada", pixel="stage")
    env = stage_runner.StageEnv(
        config, str(tmp_path), translate, None, {"stage": {"dir": str(stage)}}
    )
    dirs = stage_runner.translate(translate, env)["dirs"]
    assert [os.path.basename(d) for d in dirs] == list(config.data.sources)
    for d, name in zip(dirs, config.data.sources):
        images, labels = data.adapted_files(d)
        _, source_labels = _all_images(config, name)
        assert len(images) == len(source_labels)
        expected_uint8 = np.round((values[name] + 1.0) * 127.5)
        for k, (image_path, label_path) in enumerate(zip(images, labels)):
            image = tf.io.decode_png(tf.io.read_file(image_path)).numpy()
            label = tf.io.decode_png(tf.io.read_file(label_path)).numpy()[..., 0]
            assert np.abs(image.astype(float) - expected_uint8).max() <= 1, (name, k)
            np.testing.assert_array_equal(label, source_labels[k].astype(np.uint8))
