"""MADAN schedule under SIGKILL: killed between stages and during a stage, then re-run.

The final weights and results must equal those of an uninterrupted run (here in the test's own
process, so a stage started in a fresh process must also initialise like one started in-process).
"""

import json
import os
import signal
import time

import multiprocess_utils
import numpy as np
import tensorflow as tf

from input_pipelines import synthetic_driving
from tf_madan import layout, stage_runner, train_lib
from tf_madan.configs import smoke

STAGES = ("source_only_gta5", "source_only_synthia", "source_only")
STEPS = 5

# The run in a fresh process; `make_config` below is the same config for the in-process run.
RUNNER = """
import sys
import tensorflow as tf
from tf_madan import train_lib
from tf_madan.configs import smoke
c = smoke.get_config()
c.data.root = sys.argv[1]
c.stage = "source_only"
c.seg.source_only_steps = int(sys.argv[3])
c.train.checkpoint_every = 1
train_lib.train_and_evaluate(c, sys.argv[2], tf.distribute.get_strategy())
"""


def make_config(root):
    c = smoke.get_config()
    c.data.root = root
    c.stage = "source_only"
    c.seg.source_only_steps = STEPS
    c.train.checkpoint_every = 1
    return c


def _start(root, workdir):
    return multiprocess_utils.start(
        ["-c", RUNNER, root, workdir, str(STEPS)], multiprocess_utils.clean_env()
    )


def _kill_when(process, condition, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"run ended before the kill point:\n{process.stdout.read()}")
        if time.time() > deadline:
            process.kill()
            raise AssertionError("kill point not reached in time")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _weights(path):
    model = stage_runner._new_segmenter(smoke.get_config(), weights=path)
    return [np.asarray(v) for v in model.weights]


def test_killed_between_and_during_stages_equals_uninterrupted(tmp_path):
    root = str(tmp_path / "data")
    synthetic_driving.generate(root, seed=0, num_per_domain=6, num_val=3, height=32, width=64)
    killed = str(tmp_path / "killed")

    def done(stage):
        return lambda: os.path.exists(os.path.join(killed, stage, layout.WEIGHTS))

    def checkpoint(stage, step):
        ckpt = os.path.join(killed, stage, "checkpoints", f"ckpt-{step}.index")
        return lambda: os.path.exists(ckpt)

    # 1. Between stages: right after the first stage's weights appear.
    _kill_when(_start(root, killed), done("source_only_gta5"))
    # 2. During a stage: once the second stage has checkpointed step 3 of 6.
    _kill_when(_start(root, killed), checkpoint("source_only_synthia", 3))
    assert not os.path.exists(os.path.join(killed, "source_only_synthia", layout.WEIGHTS))
    finish = _start(root, killed)
    output = finish.communicate(timeout=300)[0]
    assert finish.returncode == 0, output

    reference = str(tmp_path / "reference")
    expected = train_lib.train_and_evaluate(
        make_config(root), reference, tf.distribute.get_strategy()
    )
    for stage in STAGES:
        a = _weights(os.path.join(killed, stage, layout.WEIGHTS))
        b = _weights(os.path.join(reference, stage, layout.WEIGHTS))
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)
    with open(os.path.join(killed, "results.json")) as handle:
        got = json.load(handle)
    assert set(got) == set(expected)
    for method, result in expected.items():
        assert abs(got[method]["miou_16"] - result["miou_16"]) < 1e-6, method
