"""Fixtures shared by the tf_madan tests."""

import keras
import pytest


@pytest.fixture
def float64():
    """Runs a test with float64 Keras networks.

    Keras caches the global dtype policy on first use: set and restore it with floatx, or
    float64 leaks into later tests' networks.
    """
    previous, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(previous)
    keras.config.set_dtype_policy(policy)
