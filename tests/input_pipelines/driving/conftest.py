"""Fixtures for the driving-data tests: one small generated multi-domain benchmark, and the
digest that pins a generator's output."""

import hashlib
import pathlib

import numpy as np
import pytest
from PIL import Image

from input_pipelines import synthetic_driving
from input_pipelines.driving import readers


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Generated GTA5/SYNTHIA/Cityscapes-format data: 6 per domain, 3 val, 64x128."""
    root = tmp_path_factory.mktemp("synthetic_driving")
    synthetic_driving.generate(str(root), seed=0, num_per_domain=6, num_val=3, height=64, width=128)
    return root


def _decoded_digest(root):
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(root).rglob("*.png")):
        digest.update(path.relative_to(root).as_posix().encode())
        if path.parent.name == "LABELS":
            array = readers.read_raw_label(str(path), "png16_first_channel")
        else:
            with Image.open(path) as image:
                array = np.asarray(image)
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@pytest.fixture
def decoded_digest():
    """sha256 of every PNG under a folder, decoded (pixels, not file bytes), with its path."""
    return _decoded_digest
