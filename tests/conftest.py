"""Shared fixtures: two logical CPU devices, strategies, the shared real-data folder.

The CPU is split into two logical devices here, before any test touches TensorFlow, so that every
package's tests can run a two-replica `MirroredStrategy` on a machine without GPUs.
"""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tf_runtime.strategy import configure_cpu_devices  # noqa: E402

NUM_TEST_DEVICES = 2
configure_cpu_devices(NUM_TEST_DEVICES)

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_root():
    """`$SHARED_DATA_DIR`, else `../shared/data` beside the project root."""
    return pathlib.Path(os.environ.get("SHARED_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data_dir():
    """The folder of small real dataset samples; skips the test when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"shared sample data not found at {root} (set SHARED_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def mirrored_strategy():
    """Two replicas on the logical devices CPU:0 and CPU:1."""
    return tf.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def default_strategy():
    return tf.distribute.get_strategy()


@pytest.fixture
def tmp_workdir(tmp_path):
    path = tmp_path / "workdir"
    path.mkdir()
    return path
