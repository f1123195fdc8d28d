"""The demo report writer, with its data section."""

import importlib

import pytest

from demo_report import report as demo_main


def test_report_lists_embedded_sets_and_writes_pngs(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_main, "SECTIONS", (("Embedded data", "demo_report.data_section"),))
    path = demo_main.write_report(str(tmp_path))
    text = open(path).read()
    assert "| digits | 1294 | 144 | 359 | (8, 8, 1) | 10 |" in text
    assert "| mnist5k | 3600 | 400 | 1000 | (28, 28, 1) | 10 |" in text
    assert "](data_section/embedded_samples.png)" in text
    png = tmp_path / "data_section" / "embedded_samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000


@pytest.mark.parametrize("module", ["tf_runtime", "input_pipelines"])
def test_packages_import(module):
    assert importlib.import_module(module).__doc__


def test_second_demo_in_the_same_folder_is_refused_naming_the_first(tmp_path, monkeypatch):
    import multiprocess_utils as mp

    import tf_runtime

    monkeypatch.setattr(demo_main, "SECTIONS", (("Embedded data", "demo_report.data_section"),))
    with mp.LockHolder(tmp_path) as first:
        with pytest.raises(tf_runtime.WorkdirLockedError, match=rf"{tmp_path}.*pid {first.pid}"):
            demo_main.write_report(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing written
