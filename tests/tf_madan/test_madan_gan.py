"""Tests for the pixel-level MADAN model (DAIG + ADA train steps)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_madan.madan_gan import MadanGAN
from tf_madan.models import build_small_segmenter
from tf_madan.models.discriminator import build_patchgan_discriminator
from tf_madan.models.generator import build_resnet_generator

SIZE = 32


def _g(name):
    return build_resnet_generator(
        filters=4, num_blocks=1, dropout_rate=0.0, input_shape=(SIZE, SIZE, 3), name=name
    )


def _d(name):
    return build_patchgan_discriminator(
        filters=4, num_layers=2, input_shape=(SIZE, SIZE, 3), name=name
    )


def make_model(strategy=None, *, m=2, optimizer=lambda: keras.optimizers.SGD(0.1), **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        options = dict(
            sad_discriminators=[_d(f"sad{i}") for i in range(m)],
            source_segmenters=[build_small_segmenter(5, filters=4, name=f"f{i}") for i in range(m)],
            adapted_segmenter=build_small_segmenter(5, filters=4, name="fa"),
            lambda_sad=1.0,
            lambda_ccd=0.2,
            lambda_dsc=1.0,
            pool_size=0,
        )
        options.update(kwargs)
        model = MadanGAN(
            generators_s2t=[_g(f"gs{i}") for i in range(m)],
            generators_t2s=[_g(f"gt{i}") for i in range(m)],
            discriminator_target=_d("dt"),
            discriminators_source=[_d(f"ds{i}") for i in range(m)],
            **options,
        )
        model.compile(optimizers={n: optimizer() for n in model.networks()})
        model.build_optimizers()
    return model


def make_batch(m=2, batch=2, seed=0):
    rng = np.random.default_rng(seed)

    def domain():
        image = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
        return image, np.zeros((batch, SIZE, SIZE), np.int32)

    return {"sources": tuple(domain() for _ in range(m)), "target": domain()}


def snapshot(networks):
    return [np.array(w) for net in networks for w in net.weights]


def changed(before, networks):
    after = snapshot(networks)
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


def test_generator_step_leaves_discriminators_and_segmenters_unchanged():
    model = make_model()
    nets = model.networks()
    gens = [nets[n] for n in model.generator_names()]
    discs = [nets[n] for n in model.discriminator_names()]
    frozen = model.source_segmenters + [model.adapted_segmenter]
    d_before, g_before, f_before = snapshot(discs), snapshot(gens), snapshot(frozen)
    logs, fakes = model.generator_step(make_batch())
    assert not any(changed(d_before, discs))
    assert not any(changed(f_before, frozen))
    assert sum(changed(g_before, gens)) > len(g_before) // 2
    g_before = snapshot(gens)
    model.discriminator_step(fakes)
    assert not any(changed(g_before, gens))
    assert sum(changed(d_before, discs)) > len(d_before) // 2
    assert {"dsc_0", "sad_generator_1", "ccd_generator_0", "cycle_1"} <= set(logs)


def test_generator_total_is_weighted_sum_and_gates_respect_start_step():
    # Distinct weights per term, so a weight applied to the wrong term cannot go unnoticed.
    model = make_model(
        lambda_s2t=3.0,
        lambda_t2s=5.0,
        lambda_cycle=7.0,
        lambda_dsc=11.0,
        lambda_ccd=13.0,
        lambda_sad=17.0,
        sad_start_step=1,
        ccd_start_step=0,
    )
    batch = make_batch()
    logs, _ = model.generator_step(batch)  # step 0: CCD active, SAD not yet

    def weighted(logs, sad):
        return sum(
            3.0 * float(logs[f"gan_s2t_{i}"])
            + 5.0 * float(logs[f"gan_t2s_{i}"])
            + 7.0 * float(logs[f"cycle_{i}"])
            + 11.0 * float(logs[f"dsc_{i}"])
            + 13.0 * float(logs[f"ccd_generator_{i}"])
            + sad * 17.0 * float(logs[f"sad_generator_{i}"])
            for i in range(2)
        )

    assert float(logs["sad_generator_0"]) > 0  # computed and logged, but not counted
    np.testing.assert_allclose(float(logs["generator_total"]), weighted(logs, 0), rtol=1e-5)
    logs, _ = model.generator_step(batch)  # step 1: SAD counts from here on
    np.testing.assert_allclose(float(logs["generator_total"]), weighted(logs, 1), rtol=1e-5)


@pytest.mark.parametrize("pool_size", [0, 1])
def test_two_replica_step_equals_one_device_step(mirrored_strategy, pool_size):
    # pool_size=1 with a global batch of 2: image 0 fills the pool, image 1 (on replica 1)
    # meets a full pool, so the pools must run on the global batch on both replicas.
    batch = make_batch()
    single = make_model(pool_size=pool_size, pool_seed=4)
    mirrored = make_model(mirrored_strategy, pool_size=pool_size, pool_seed=4)
    for model, strategy in ((single, tf.distribute.get_strategy()), (mirrored, mirrored_strategy)):
        with strategy.scope():
            model.build_pools((None, SIZE, SIZE, 3))
    single.train_step(batch)

    def split(ctx):
        k = ctx.replica_id_in_sync_group
        return tf.nest.map_structure(lambda x: x[k : k + 1], batch)

    dist = mirrored_strategy.experimental_distribute_values_from_function(split)
    # Eager replica execution: tracing this graph twice would dominate the test time.
    mirrored_strategy.run(mirrored.train_step, args=(dist,))
    for a, b in zip(single.weights, mirrored.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6, err_msg=a.path)


def test_three_sources_with_separate_ccd_discriminators():
    ccd = {f"{i}_{j}": _d(f"ccd{i}{j}") for i in range(3) for j in range(3) if i != j}
    model = make_model(m=3, ccd_discriminators=ccd, pool_size=2)
    assert len(model.discriminator_names()) == 1 + 3 + 3 + 6
    logs = model.train_step(make_batch(m=3))
    for i in range(3):
        for name in ("sad_generator", "sad_discriminator", "ccd_generator", "ccd_discriminator"):
            assert np.isfinite(float(logs[f"{name}_{i}"])) and float(logs[f"{name}_{i}"]) > 0
    assert int(model.pools_target[2].count.numpy()) == 2


def test_single_source_daig():
    model = make_model(m=1, sad_discriminators=None, lambda_sad=0.0, lambda_ccd=0.0, lambda_dsc=0.0)
    logs = model.train_step(make_batch(m=1))
    assert "sad_generator_0" not in logs and "dsc_0" not in logs
    assert np.isfinite(float(logs["generator_total"]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(m=1, lambda_ccd=0.2), ">= 2 sources"),
        (dict(lambda_sad=1.0), "one SAD discriminator per source"),
        (dict(lambda_dsc=1.0), "one source segmenter"),
        (dict(dsc_mode="kl"), "dsc_mode"),
        (dict(sad_mode="both"), "sad_mode"),
        (dict(gan_mode="wgan"), "gan_mode"),
        (dict(ccd_discriminators={"0_1": None}, lambda_ccd=0.2), "ccd_discriminators needs keys"),
    ],
)
def test_constructor_errors(kwargs, match):
    m = kwargs.pop("m", 2)
    g, d = _g("g"), _d("d")
    with pytest.raises(ValueError, match=match):
        MadanGAN(
            generators_s2t=[g] * m,
            generators_t2s=[g] * m,
            discriminator_target=d,
            discriminators_source=[d] * m,
            **kwargs,
        )


def test_compile_needs_every_optimizer():
    g, d = _g("g"), _d("d")
    model = MadanGAN(
        generators_s2t=[g], generators_t2s=[g], discriminator_target=d, discriminators_source=[d]
    )
    with pytest.raises(ValueError, match="optimizers needs keys"):
        model.compile(optimizers={"generator_s2t_0": keras.optimizers.SGD()})


@pytest.mark.parametrize("mode", ["cycada"])
def test_asymmetric_sad_and_cycada_consistency(mode):
    model = make_model(sad_mode="asymmetric", sad_discriminators=[_d("sad")], dsc_mode=mode)
    logs, _ = model.generator_step(make_batch())
    # The code's layout: source 1 pulled toward the anchor 0, the anchor gets no G-term.
    assert "sad_generator_0" not in logs
    assert float(logs["sad_generator_1"]) > 0.0
    assert float(logs["dsc_0"]) > 0.0


@pytest.mark.parametrize("anchor", [0, 1])
def test_asymmetric_sad_is_one_discriminator_pulling_the_non_anchor_source(anchor):
    # Luodian/MADAN multi_cycle_gan_semantic_model.py: D_3 real = the anchor's (GTA's) adapted
    # images, fake = the other's (lines 282-285); only G_{SYN->T} gets MSE(D_3(fake), 1) (349-355).
    other = 1 - anchor
    kwargs = dict(
        sad_mode="asymmetric",
        sad_anchor=anchor,
        sad_discriminators=[_d("sad")],
        lambda_ccd=0.0,
        lambda_dsc=0.0,
    )
    model = make_model(**kwargs)
    assert [n for n in model.networks() if n.startswith("sad")] == [f"sad_discriminator_{anchor}"]
    batch = make_batch()
    sources, target = [s[0] for s in batch["sources"]], batch["target"][0]
    out = model({"sources": sources, "target": target}, training=True)
    d = model.sad_discriminators[0]
    d_other = np.asarray(d(out["adapted"][other], training=True))
    d_anchor = np.asarray(d(out["adapted"][anchor], training=True))
    logs = model.train_step(batch)
    assert f"sad_generator_{anchor}" not in logs and f"sad_discriminator_{other}" not in logs
    np.testing.assert_allclose(
        float(logs[f"sad_generator_{other}"]), np.mean((d_other - 1.0) ** 2), rtol=1e-5
    )
    expected_d = 0.5 * (np.mean((d_anchor - 1.0) ** 2) + np.mean(d_other**2))
    np.testing.assert_allclose(float(logs[f"sad_discriminator_{anchor}"]), expected_d, rtol=1e-5)
    # The anchor's generator gets no SAD gradient (same step as without SAD); the other's does.
    plain = make_model(**{**kwargs, "lambda_sad": 0.0})
    plain.train_step(batch)
    for k, (w, w_plain) in enumerate(
        zip(snapshot([model.generators_s2t[anchor]]), snapshot([plain.generators_s2t[anchor]]))
    ):
        np.testing.assert_allclose(w, w_plain, rtol=0, atol=1e-6, err_msg=f"anchor[{k}]")
    pulled = zip(snapshot([model.generators_s2t[other]]), snapshot([plain.generators_s2t[other]]))
    assert max(np.abs(w - w_plain).max() for w, w_plain in pulled) > 1e-4


def test_asymmetric_sad_constructor_errors():
    g, d = _g("g"), _d("d")
    nets = dict(
        generators_s2t=[g, g],
        generators_t2s=[g, g],
        discriminator_target=d,
        discriminators_source=[d, d],
        sad_mode="asymmetric",
        lambda_sad=1.0,
    )
    with pytest.raises(ValueError, match="exactly one SAD discriminator"):
        MadanGAN(sad_discriminators=[d, d], **nets)
    with pytest.raises(ValueError, match="sad_anchor must be a source index"):
        MadanGAN(sad_discriminators=[d], sad_anchor=2, **nets)
    with pytest.raises(ValueError, match="target_discriminator_loss"):
        MadanGAN(sad_discriminators=[d], target_discriminator_loss="max", **nets)


def _checkpoint(model):
    optimizers = {name: model.get_optimizer(name) for name in model.networks()}
    return tf.train.Checkpoint(model=model, **optimizers)


def test_resume_inside_a_stage_is_bit_identical_with_image_pools(tmp_path):
    # Issue 12: the pools drew from the global RNG, so a resumed stage diverged. Now their
    # draws are keyed by checkpointed counters and the pools are in the model's checkpoint
    # (Keras lists are invisible to it): 2 steps + checkpoint + 1 step in a fresh
    # model equal 3 uninterrupted steps exactly (the pools are full and swapping by then).
    batches = [make_batch(seed=s) for s in range(3)]

    def fresh():
        model = make_model(pool_size=2, pool_seed=5, lambda_sad=0.0, lambda_ccd=0.0, lambda_dsc=0.0)
        model.build_pools((None, SIZE, SIZE, 3))
        return model

    reference = fresh()
    for batch in batches:
        reference.train_step(batch)

    first = fresh()
    for batch in batches[:2]:
        first.train_step(batch)
    path = _checkpoint(first).save(str(tmp_path / "ckpt"))
    resumed = fresh()
    tf.random.uniform([7])  # the global RNG state must not matter
    _checkpoint(resumed).restore(path).assert_existing_objects_matched()
    assert int(resumed.pools_target[0].draws.numpy()) == 2
    for batch in batches[2:]:
        resumed.train_step(batch)
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
