"""SpectrumTracker: lambda_max and trace during model.fit, in JSON and TensorBoard."""

import glob
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from tf_hessian.testing import classification_data, loss64, tiny_mlp
from tf_hessian.tracking import SpectrumTracker


def _scalars(log_dir, tag):
    values = {}
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_tracker_records_exact_lambda_max_every_k_steps(tmp_path):
    model = tiny_mlp(seed=5)
    x, y = classification_data(12, (3,), num_classes=2, seed=5)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss64())
    json_path = tmp_path / "spectrum.json"
    tracker = SpectrumTracker(
        (x, y),
        every_steps=2,
        log_dir=str(tmp_path / "tb"),
        json_path=str(json_path),
        max_iter=100,
        tol=1e-10,
        trace_probes=200,
    )
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[tracker])
    records = json.loads(json_path.read_text())
    assert [r["step"] for r in records] == [2, 4, 6]
    # The last record is the trained model's: compare with its explicit Hessian.
    op = tf_hessian.HessianOperator(model, loss64(), (x, y))
    hessian = op.full_hessian()
    spectrum = np.linalg.eigvalsh(hessian)
    assert records[-1]["lambda_max"] == pytest.approx(spectrum[-1], rel=1e-8)
    assert abs(records[-1]["trace"] - np.trace(hessian)) < 4 * records[-1]["trace_stderr"] + 1e-12
    assert records[0]["lambda_max"] != pytest.approx(records[-1]["lambda_max"], rel=1e-6)
    tensorboard = _scalars(tmp_path / "tb", "hessian/lambda_max")
    assert sorted(tensorboard) == [2, 4, 6]
    assert tensorboard[6] == pytest.approx(records[-1]["lambda_max"], rel=1e-6)
    # A resumed tracker replaces the record of a step it tracks again.
    again = SpectrumTracker((x, y), every_steps=2, json_path=str(json_path), network=model)
    again.track(6)
    assert [r["step"] for r in json.loads(json_path.read_text())] == [2, 4, 6]
