r"""MADAN on the `madan_v4` benchmark (GTA5 + SYNTHIA -> Cityscapes miniature), 2 CPU cores.

Data (`madan_v4` was frozen with its design criteria before any adaptation method ran on it;
input_pipelines/driving/synthetic_madan_bench_v4.py, docs/driving.md "Benchmark madan_v4"):
  python -m input_pipelines.synthetic_driving --benchmark=madan_v4 --out /tmp/driving_v4 \
      --seed 0 --num_per_domain 120 --num_val 40 --height 64 --width 128
Design criteria (perfect translations and the oracle only, never an adaptation method; same
segmenter, crops and budgets as this config):
  python benchmarks/madan_headroom.py --benchmark=madan_v4 --data_seed=0 --seeds=0,1,2
Run (one seed; `--config.seeds=(0,1,2)` runs three in workdir/seed_<s>/):
  python -m tf_madan.train --config=tf_madan/configs/cpu_benchmark_v4.py \
      --config.data.root=/tmp/driving_v4 --workdir=runs/madan_v4

The schedule is `cpu_benchmark_v3`'s (the pixel stages of `cpu_benchmark_v2`, every segmenter
row at 600 steps); only the data differ.
"""

from tf_madan.configs import cpu_benchmark_v3

# The data this config expects (read by benchmarks/madan_headroom.py; the command above).
DATA = dict(cpu_benchmark_v3.DATA, benchmark="madan_v4")


def get_config():
    return cpu_benchmark_v3.get_config()
