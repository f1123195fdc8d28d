"""Fixtures for the driving-data tests: one small generated multi-domain benchmark."""

import pytest

from input_pipelines import synthetic_driving


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Generated GTA5/SYNTHIA/Cityscapes-format data: 6 per domain, 3 val, 64x128."""
    root = tmp_path_factory.mktemp("synthetic_driving")
    synthetic_driving.generate(str(root), seed=0, num_per_domain=6, num_val=3, height=64, width=128)
    return root
