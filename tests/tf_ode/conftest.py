"""Per-test seeding: weight initialisers draw from Keras' global seed, so without it a test's
numbers would depend on which tests ran before it."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _seed_keras():
    keras.utils.set_random_seed(1234)
