r"""Combined MADAN training throughput of P concurrent single-threaded processes, and of one
process with one thread per op and two ops at a time, against one process with TensorFlow's
default threads, on the same kind of step.

On a few CPU cores TensorFlow's thread pools do not keep every core busy on the schedule's small
convolutions; independent work (seeds, the two readings, stages that do not depend on each other)
can instead run as separate processes with one thread each (`TF_NUM_INTRAOP_THREADS=1
TF_NUM_INTEROP_THREADS=1`). This measures what that gains: each process times the same kind of
train step (`benchmarks/madan_schedule_time.py`'s builders) after a warm-up, all processes at once,
and the combined GFLOP/s is compared with one process on all cores, measured first, alone. The
single process with `TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=2` runs independent ops of
one step side by side instead of splitting each op over the cores.

Usage (on idle cores; every other job paused):
  python benchmarks/madan_process_throughput.py --config=tf_madan/configs/cpu_benchmark_v4.py \
      --config.data.root=DATA [--kinds=pixel_2src_plain,seg_2src] [--processes=2,3] [--steps=5]
(--steps: timed pixel steps per process; segmenter kinds time five times as many.)
Prints one JSON object: per kind, seconds per step and GFLOP/s of the default single process; of
the single process with one intra-op and two inter-op threads; and for each P the per-process
seconds per step, the combined GFLOP/s and each one's ratio to the default single process.
"""

import json
import os
import subprocess
import sys

# The step builders, the timer and the --config / --steps flags (this script's folder is on the
# path when it runs as a script).
import madan_schedule_time as schedule
from absl import app, flags

_KINDS = flags.DEFINE_list(
    "kinds", ["pixel_2src_plain", "seg_2src"], "Kinds of step (pixel_2src_plain, seg_2src)."
)
_PROCESSES = flags.DEFINE_list("processes", ["2", "3"], "Concurrent single-threaded processes.")
_WORKER = flags.DEFINE_string("worker", None, "Internal: time one kind in this process.")


def _measure(kind, steps):
    """(seconds per step, FLOPs per step) of `kind` in this process (`steps` timed steps)."""
    c = schedule._CONFIG.value
    two = list(c.data.sources)
    if kind == "pixel_2src_plain":
        seconds, _, flops = schedule._pixel(c, two, steps)
    elif kind == "seg_2src":
        seconds, _, flops = schedule._seg(c, two, steps * 5)
    else:
        raise ValueError(f"--kinds: unknown kind {kind!r}; use pixel_2src_plain or seg_2src.")
    return seconds, flops


def _launch(kind, count, intra, inter):
    """Starts `count` processes timing `kind` with `intra` / `inter` op threads (0: TensorFlow's
    default); their JSON results."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if intra:
        env["TF_NUM_INTRAOP_THREADS"] = str(intra)
    if inter:
        env["TF_NUM_INTEROP_THREADS"] = str(inter)
    args = [a for a in sys.argv[1:] if not a.startswith(("--kinds", "--processes", "--worker"))]
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), f"--worker={kind}", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a worker timing {kind!r} exited with status {p.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main(argv):
    del argv
    if _WORKER.value:
        seconds, flops = _measure(_WORKER.value, schedule._STEPS.value)
        print(json.dumps({"seconds": seconds, "flops": flops}))
        return
    counts = [int(p) for p in _PROCESSES.value]
    report = {"cores": os.cpu_count()}
    for kind in _KINDS.value:
        (single,) = _launch(kind, 1, 0, 0)  # TensorFlow's default threads: every core
        base = single["flops"] / single["seconds"]
        (ops,) = _launch(kind, 1, 1, 2)
        row = {
            "single_process": {
                "seconds_per_step": round(single["seconds"], 4),
                "gflop_per_second": round(base / 1e9, 1),
            },
            "single_process_intra_1_inter_2": {
                "seconds_per_step": round(ops["seconds"], 4),
                "gflop_per_second": round(ops["flops"] / ops["seconds"] / 1e9, 1),
                "ratio_to_single_process": round(ops["flops"] / ops["seconds"] / base, 2),
            },
        }
        for count in counts:
            runs = _launch(kind, count, 1, 1)
            combined = sum(r["flops"] / r["seconds"] for r in runs)
            row[f"{count}_processes_1_thread"] = {
                "seconds_per_step": [round(r["seconds"], 4) for r in runs],
                "combined_gflop_per_second": round(combined / 1e9, 1),
                "ratio_to_single_process": round(combined / base, 2),
            }
        report[kind] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
