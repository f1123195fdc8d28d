"""Each paper's trainer binary under MultiWorkerMirroredStrategy: two worker processes on
127.0.0.1 end with the same checkpointed weights as one process with the default strategy.

Each binary runs its smallest config: TensorFlow's start-up and the tracing of the train step
dominate, so steps beyond the second add time and no coverage. The Hessian and ODE runs skip
their SavedModel export; MADAN's stages export under the same strategy (`tf_runtime.export`),
so the multi-worker export path stays covered.
"""

import pathlib

import multiprocess_utils as mp
import numpy as np
import pytest

pytestmark = pytest.mark.multiprocess

# (binary and config arguments, folder under the workdir whose latest checkpoint is compared).
TRAINERS = {
    "hessian": (
        [
            "-m",
            "tf_hessian.train",
            "--config=tf_hessian/configs/default.py:smoke",
            "--config.export=False",
        ],
        "checkpoints",
    ),
    "ode": (
        [
            "-m",
            "tf_ode.train",
            "--config=tf_ode/configs/default.py:smoke",
            "--config.export=False",
            "--config.num_steps=1",  # one Euler step per ODE block: a smaller graph to trace
        ],
        "checkpoints",
    ),
    # The DAIG group: the two-source CycleGANs (one optimizer per network), then the stage-1
    # segmenter, trained here for one step only; the pixel stage's checkpoint is compared.
    "madan_daig": (
        [
            "-m",
            "tf_madan.train",
            "--config=tf_madan/configs/smoke.py",
            "--config.stage=daig",
            "--config.seg.steps=1",
        ],
        "daig/checkpoints",
    ),
}
# Absolute tolerance on the checkpointed floats. SGD trainers match to round-off; MADAN's Adam
# (lr 2e-4) turns round-off in near-zero gradients into updates of up to ~lr per step, so two
# steps may differ by a few lr where a gradient is ~0.
ATOL = {"hessian": 1e-6, "ode": 1e-6, "madan_daig": 6e-4}


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_two_workers_equal_one_process(tmp_path, trainer):
    arguments, checkpoints = TRAINERS[trainer]
    extra = []
    if trainer.startswith("madan"):
        from input_pipelines import synthetic_driving

        synthetic_driving.generate(
            str(tmp_path / "data"), seed=0, num_per_domain=6, num_val=2, height=32, width=64
        )
        extra = [f"--config.data.root={tmp_path / 'data'}"]

    def args_for(worker):
        workdir = tmp_path / ("single" if worker is None else f"worker_{worker}")
        strategy = "default" if worker is None else "multi_worker"
        return [*arguments, *extra, f"--workdir={workdir}", f"--strategy={strategy}"]

    results = mp.run_single_and_workers(args_for)
    for returncode, output in results:
        assert returncode == 0, output[-4000:]
    single = _latest(tmp_path / "single" / checkpoints)
    chief = _latest(tmp_path / "worker_0" / checkpoints)
    assert single.name == chief.name  # same final step
    expected, found = mp.checkpoint_floats(str(single)), mp.checkpoint_floats(str(chief))
    assert sorted(expected) == sorted(found) and len(expected) > 2
    for name in expected:
        np.testing.assert_allclose(
            found[name], expected[name], rtol=1e-5, atol=ATOL[trainer], err_msg=name
        )


def _latest(checkpoints):
    indexes = sorted(
        pathlib.Path(checkpoints).glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1])
    )
    assert indexes, f"no checkpoint in {checkpoints}"
    return indexes[-1].with_suffix("")
