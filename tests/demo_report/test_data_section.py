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
