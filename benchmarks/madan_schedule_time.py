r"""Estimated wall time of one seed of the MADAN schedule from measured per-step times, and
its arithmetic floor on this machine.

Times each kind of stage the schedule runs (pixel stages with two sources, one source, with
DSC/SAD/CCD or CyCADA's SC; segmenter stages with one or two source batches, with FLA) on the
config's real data for a few steps after a warm-up, then multiplies by the config's step counts
and adds each stage's warm-up (tracing) time. On a shared machine the per-step times are
inflated by the other processes; run it on idle cores for the figure in docs/tf_madan.md.

The floor: each kind's floating-point operations per step are counted on its traced train step
(TensorFlow's profiler: the convolutions forward, backward-input and backward-filter, matmuls),
summed over the schedule, and divided by the throughput this machine reaches on one large
float32 convolution and one large matmul with all its threads (the better of the two): no
implementation of the same arithmetic on these cores runs one seed faster than that.

Usage:
  python benchmarks/madan_schedule_time.py --config=tf_madan/configs/cpu_benchmark_v2.py \
      --config.data.root=/tmp/driving_v2 [--steps 5]
Prints one JSON object: seconds, warm-up and GFLOP per step per kind, the machine's peak
GFLOP/s, the schedule's TFLOP, the floor at peak and the estimate.
"""

import json
import time

import keras
import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from tf_madan import builders, data

_CONFIG = config_flags.DEFINE_config_file(
    "config", "tf_madan/configs/cpu_benchmark_v2.py", "Config file."
)
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per kind (after two warm-up steps).")


def _flops(concrete):
    """Floating-point operations of one call of a traced function (TensorFlow's profiler)."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=concrete.graph, options=options).total_float_ops


def _time(model, dataset, steps):
    """(seconds per step, warm-up seconds, FLOPs per step) of `model.train_step`."""
    step = tf.function(model.train_step)
    iterator = iter(dataset)
    start = time.perf_counter()
    for _ in range(2):
        step(next(iterator))
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        logs = step(next(iterator))
    float(next(iter(logs.values())))
    seconds = (time.perf_counter() - start) / steps
    return seconds, warm, _flops(step.get_concrete_function(next(iterator)))


def _peak_flops_per_second(repeats=10):
    """The best float32 throughput of one large convolution and one large matmul here."""
    cases = {
        # 3x3 convolution, 96 -> 96 channels at 64 x 64, batch 16 (the generators' widest
        # layers are 96 channels; larger maps keep every thread busy).
        "conv": (
            lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"),
            (tf.random.normal([16, 64, 64, 96]), tf.random.normal([3, 3, 96, 96])),
            2 * 16 * 64 * 64 * 3 * 3 * 96 * 96,
        ),
        "matmul": (
            tf.linalg.matmul,
            (tf.random.normal([2048, 2048]), tf.random.normal([2048, 2048])),
            2 * 2048**3,
        ),
    }
    best = {}
    for name, (op, args, flops) in cases.items():
        fn = tf.function(op)
        float(tf.reduce_sum(fn(*args)))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            float(tf.reduce_sum(fn(*args)))
            times.append(time.perf_counter() - start)
        best[name] = flops / min(times)
    return best


def _pixel(config, sources, steps, *, variant="daig", dsc=False, sad=False, ccd=False, sc=False):
    keras.utils.set_random_seed(0)
    m = len(sources)
    segs = [builders.build_segmenter(config, f"f{i}") for i in range(m)] if dsc or sc else None
    adapted = builders.build_segmenter(config, "fa") if dsc else None
    model = builders.build_madan_gan(
        config,
        num_sources=m,
        variant=variant,
        use_dsc=dsc or sc,
        use_sad=sad,
        use_ccd=ccd,
        source_segmenters=segs,
        adapted_segmenter=adapted,
        dsc_mode="cycada" if sc else "dsc",
    )
    fn = data.pixel_stage_fn(config, sources=sources)
    return _time(model, fn(None), steps)


def _seg(config, sources, steps, *, fla=False):
    keras.utils.set_random_seed(0)
    model = builders.build_segmenter_trainer(config, builders.build_segmenter(config), fla=fla)
    fn = data.multi_domain_fn(
        config,
        normalization="segmenter",
        batch_size=config.seg.batch_size,
        crop_size=config.data.seg_crop_size,
        resize_shorter=config.data.seg_resize_shorter,
        sources=sources,
    )
    return _time(model, fn(None), steps)


def main(argv):
    del argv
    c = _CONFIG.value
    n = _STEPS.value
    two, one = list(c.data.sources), [c.data.sources[0]]
    kinds = {
        "pixel_2src_plain": _pixel(c, two, n),
        "pixel_2src_sad_ccd": _pixel(c, two, n, variant="ada", sad=True, ccd=True),
        "pixel_2src_dsc_sad_ccd": _pixel(c, two, n, variant="ada", dsc=True, sad=True, ccd=True),
        "pixel_1src_plain": _pixel(c, one, n),
        "pixel_1src_sc": _pixel(c, one, n, variant="ada", sc=True),
        "seg_1src": _seg(c, one, n),
        "seg_2src": _seg(c, two, n),
        "fla_1src": _seg(c, one, n, fla=True),
        "fla_2src": _seg(c, two, n, fla=True),
    }
    d = c.gan.daig_epochs * c.gan.steps_per_epoch
    a = c.gan.ada_epochs * c.gan.steps_per_epoch
    s, so, orc, f = c.seg.steps, c.seg.source_only_steps, c.seg.oracle_steps, c.fla.steps
    m = len(two)
    # (kind, steps, number of such stages) of `stage=all` with every pipeline row on.
    stages = [
        ("seg_1src", so, m),  # source_only_<src>
        ("seg_2src", so, 1),  # source_only
        ("seg_1src", orc, 1),  # oracle
        ("seg_2src", s, 1),  # seg_color_transfer
        ("pixel_2src_plain", d, 1),  # daig
        ("seg_2src", s, 1),  # seg_daig
        ("pixel_2src_plain", a, 1),  # ada_plain
        ("seg_2src", s, 1),  # seg_ada_plain
        ("pixel_2src_dsc_sad_ccd", a, 1),  # ada
        ("seg_2src", s, 1),  # seg_ada
        ("fla_2src", f, 1),  # madan
        ("pixel_2src_sad_ccd", a, 3),  # ada_sad / ada_ccd / ada_sad_ccd (upper bound)
        ("seg_2src", s, 3),  # their segmenters
        ("pixel_1src_plain", d + a, m),  # cyclegan_<src>_daig + cyclegan_<src>
        ("pixel_1src_sc", a, m),  # cycada_gan_<src>
        ("seg_1src", s, 2 * m),  # single_<src>, seg_cycada_<src>
        ("fla_1src", f, m),  # cycada_<src>
        ("pixel_1src_plain", d + a, 1),  # combined_cyclegan_daig + combined_cyclegan (1 pair)
        ("pixel_1src_sc", a, 1),  # combined_cycada_gan
        ("seg_2src", s, 2),  # seg_combined_cyclegan, seg_combined_cycada
        ("fla_2src", f, 1),  # combined_cycada
    ]
    train = sum(kinds[k][0] * steps * count for k, steps, count in stages)
    warm = sum(kinds[k][1] * count for k, _, count in stages)
    flops = sum(kinds[k][2] * steps * count for k, steps, count in stages)
    peak = _peak_flops_per_second()
    ceiling = max(peak.values())
    print(
        json.dumps(
            {
                "seconds_per_step": {k: round(v[0], 4) for k, v in kinds.items()},
                "warmup_seconds": {k: round(v[1], 1) for k, v in kinds.items()},
                "gflop_per_step": {k: round(v[2] / 1e9, 2) for k, v in kinds.items()},
                "achieved_gflop_per_second": {
                    k: round(v[2] / v[0] / 1e9, 1) for k, v in kinds.items()
                },
                "peak_gflop_per_second": {k: round(v / 1e9, 1) for k, v in peak.items()},
                "stages": len(stages),
                "schedule_tflop": round(flops / 1e12, 1),
                "floor_minutes_at_peak": round(flops / ceiling / 60, 1),
                "estimated_train_seconds": round(train, 1),
                "estimated_warmup_seconds": round(warm, 1),
                "estimated_total_minutes": round((train + warm) / 60, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    app.run(main)
