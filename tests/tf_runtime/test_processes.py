"""Two worker processes on 127.0.0.1, and SIGKILL mid-run followed by resume."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import multiprocess_utils as mp
import numpy as np
import pytest
import tensorflow as tf

SCRIPT = pathlib.Path(__file__).with_name("train_tiny_script.py")
pytestmark = pytest.mark.multiprocess


def _weights(workdir):
    with np.load(pathlib.Path(workdir) / "final_weights.npz") as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def _run(workdir, steps, strategy, env=None, checkpoint_every=2):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(workdir), str(steps), strategy, str(checkpoint_every)],
        env=env or mp.clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_workers_equal_single_process(tmp_path):
    single = _run(tmp_path / "single", 6, "default")
    ports = mp.free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [
        _run(
            tmp_path / "multi",
            6,
            "multi_worker",
            env=mp.clean_env(
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            ),
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in [single, *workers]]
    for process, output in zip([single, *workers], outputs):
        assert process.returncode == 0, output[-3000:]
    for a, b in zip(_weights(tmp_path / "single"), _weights(tmp_path / "multi")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "multi/checkpoints/ckpt-6.index").exists()
    assert not list(tmp_path.glob("multi/_worker_scratch_*"))  # the non-chief's scratch is removed


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path):
    # Enough steps that the victim, saving a checkpoint after every step, is still running when
    # the poll below sees its fifth checkpoint; the reference run saves only its final one
    # (checkpoints do not change the training).
    steps = 120
    straight = _run(tmp_path / "straight", steps, "default", checkpoint_every=steps)
    victim = _run(tmp_path / "victim", steps, "default", checkpoint_every=1)
    deadline = time.time() + 180
    # Kill once a few checkpoints exist, i.e. in the middle of the run (and possibly of a save).
    # Poll for any checkpoint >= 5: with max_to_keep=3 a given one is soon deleted again.
    while time.time() < deadline and victim.poll() is None:
        saved = [
            int(p.stem.split("-")[1])
            for p in (tmp_path / "victim/checkpoints").glob("ckpt-*.index")
        ]
        if max(saved, default=0) >= 5:
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "victim/final_weights.npz").exists()
    # The state file is written last, atomically: the latest checkpoint is complete and readable.
    latest = tf.train.latest_checkpoint(str(tmp_path / "victim/checkpoints"))
    killed_after = int(latest.rsplit("-", 1)[1])
    assert killed_after >= 4
    assert (
        tf.train.load_checkpoint(latest).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")
        == killed_after
    )
    resumed = _run(tmp_path / "victim", steps, "default", checkpoint_every=1)
    out_resumed, out_straight = (
        resumed.communicate(timeout=240)[0],
        straight.communicate(timeout=240)[0],
    )
    assert resumed.returncode == 0, out_resumed[-3000:]
    assert straight.returncode == 0, out_straight[-3000:]
    first_logged = int(out_resumed.split("step ")[1].split("/")[0])
    assert first_logged == killed_after + 1  # resumed from the kill point, not from scratch
    for a, b in zip(_weights(tmp_path / "straight"), _weights(tmp_path / "victim")):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
