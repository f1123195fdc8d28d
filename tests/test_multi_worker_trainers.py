"""Each paper's trainer binary under MultiWorkerMirroredStrategy: two worker processes on
127.0.0.1 end with the same checkpointed weights as one process with the default strategy."""

import pathlib

import multiprocess_utils as mp
import numpy as np
import pytest

pytestmark = pytest.mark.multiprocess

TRAINERS = {
    "hessian": ["-m", "tf_hessian.train", "--config=tf_hessian/configs/default.py:smoke"],
    "ode": ["-m", "tf_ode.train", "--config=tf_ode/configs/default.py:smoke"],
}


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_two_workers_equal_one_process(tmp_path, trainer):
    def args_for(worker):
        workdir = tmp_path / ("single" if worker is None else f"worker_{worker}")
        strategy = "default" if worker is None else "multi_worker"
        return [*TRAINERS[trainer], f"--workdir={workdir}", f"--strategy={strategy}"]

    results = mp.run_single_and_workers(args_for)
    for returncode, output in results:
        assert returncode == 0, output[-4000:]
    single = _latest(tmp_path / "single")
    chief = _latest(tmp_path / "worker_0")
    assert single.name == chief.name  # same final step
    expected, found = mp.checkpoint_floats(str(single)), mp.checkpoint_floats(str(chief))
    assert sorted(expected) == sorted(found) and len(expected) > 2
    for name in expected:
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def _latest(workdir):
    indexes = sorted(
        pathlib.Path(workdir).glob("**/checkpoints/ckpt-*.index"),
        key=lambda p: int(p.stem.split("-")[1]),
    )
    assert indexes, f"no checkpoint under {workdir}"
    return indexes[-1].with_suffix("")
