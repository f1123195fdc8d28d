import json
import os

import pytest

from tf_madan import compare_readings
from tf_runtime import files as rt_files
from tf_runtime import run as run_lib

MADAN = "MADAN (+SAD+CCD+DSC+Feat)"
COMBINED = "source-combined CyCADA"


def _seed(workdir, seed, rows, seconds, done=True):
    folder = os.path.join(workdir, f"seed_{seed}")
    os.makedirs(folder)
    results = {m: {"miou_16": v, "fcn_score": {"miou_16": v / 2}} for m, v in rows.items()}
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(results, f)
    with open(os.path.join(folder, "timing.json"), "w") as f:
        json.dump({"seconds": seconds}, f)
    if done:
        rt_files.write_marker(os.path.join(folder, run_lib.DONE_NAME))


def test_readings_paired_per_seed_and_unfinished_seed_left_out(tmp_path):
    paper, code = str(tmp_path / "paper"), str(tmp_path / "code")
    _seed(paper, 0, {MADAN: 20.0, COMBINED: 22.0}, 100.0)
    _seed(paper, 1, {MADAN: 24.0, COMBINED: 21.0}, 110.0)
    _seed(paper, 2, {MADAN: 99.0, COMBINED: 0.0}, 1.0, done=False)  # unfinished: ignored
    _seed(code, 0, {MADAN: 25.0, COMBINED: 22.0}, 120.0)
    _seed(code, 1, {MADAN: 26.0, COMBINED: 23.0}, 130.0)
    result = compare_readings.compare(paper, code)
    assert result["paper"]["seeds"] == [0, 1]
    assert result["paper"]["rows"][MADAN]["miou_16"]["mean"] == 22.0
    assert result["code_minus_paper"][MADAN]["values"] == {"0": 5.0, "1": 2.0}
    assert result["code_minus_paper"][MADAN]["positive"] == 2
    claim = result["paper"]["paired"][0]
    assert (claim["a"], claim["b"]) == (MADAN, COMBINED)
    assert claim["values"] == {"0": -2.0, "1": 3.0} and claim["positive"] == 1
    text = compare_readings.markdown(result)
    assert f"| {MADAN} | 22.0 ± 2.8 | 25.5 ± 0.7 | +3.5 ± 2.1 (+5.0 / +2.0) | 11.0 ± 1.4 |" in text
    assert "seed 0: 100 s, seed 1: 110 s" in text


def test_run_without_finished_seed_is_an_error_naming_it(tmp_path):
    paper = str(tmp_path / "paper")
    _seed(paper, 0, {MADAN: 20.0}, 1.0, done=False)
    with pytest.raises(FileNotFoundError, match="No finished seed.*paper"):
        compare_readings.finished_seeds(paper)
