r"""Where a MADAN pixel step's time goes: each op type's share of the op time (profiler trace).

Traces a few DAIG train steps of the config's pixel stage (after warm-up) with
`tf.profiler.experimental`, reads the host plane of the trace and sums the durations of the
TensorFlow ops on the executor threads per op type (the enclosing executor events excluded).
Shares, not seconds, so a loaded machine still gives a usable picture.

Usage:
  python benchmarks/madan_step_profile.py --config=tf_madan/configs/cpu_benchmark_v4.py \
      --config.data.root=DATA [--sources=gta5] [--steps=5]
Prints one JSON object: percent of op time per op type (top 15), the convolutions' total.
"""

import collections
import glob
import json
import tempfile

import keras
import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tf_madan import builders, data

_CONFIG = config_flags.DEFINE_config_file(
    "config", "tf_madan/configs/cpu_benchmark_v4.py", "Config file."
)
_SOURCES = flags.DEFINE_list("sources", ["gta5"], "Sources of the pixel stage.")
_STEPS = flags.DEFINE_integer("steps", 5, "Traced steps (after three warm-up steps).")
# Events that enclose the ops (the executor's own work items), not ops.
_ENCLOSING = ("ExecutorState::Process", "ParallelFor", "ExecutorDoneCallback")


def op_time_by_type(xspace):
    """{op type: picoseconds} over the executor threads of the host plane."""
    by_type = collections.Counter()
    for plane in xspace.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name in _ENCLOSING or ":" not in name:
                    continue
                by_type[name.rsplit(":", 1)[1]] += event.duration_ps
    return by_type


def main(argv):
    del argv
    c = _CONFIG.value
    keras.utils.set_random_seed(0)
    sources = _SOURCES.value
    model = builders.build_madan_gan(c, num_sources=len(sources), variant="daig")
    iterator = iter(data.pixel_stage_fn(c, sources=sources)(None))
    step = tf.function(model.train_step)
    for _ in range(3):
        step(next(iterator))
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(_STEPS.value):
            logs = step(next(iterator))
        float(next(iter(logs.values())))
        tf.profiler.experimental.stop()
        (path,) = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        xspace = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            xspace.ParseFromString(handle.read())
    by_type = op_time_by_type(xspace)
    total = sum(by_type.values())
    share = {k: round(100 * v / total, 1) for k, v in by_type.most_common(15)}
    conv = sum(v for k, v in by_type.items() if "Conv" in k)
    print(
        json.dumps(
            {
                "sources": sources,
                "steps": _STEPS.value,
                "percent_of_op_time": share,
                "convolutions_percent": round(100 * conv / total, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    app.run(main)
