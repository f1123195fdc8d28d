"""Every binary defines its flags in `define_flags`, called under `__main__` only."""

import importlib
import logging
import os
import re
import subprocess
import sys

import pytest
from absl import flags

import tf_runtime

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BINARIES = {
    "tf_hessian.train": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_hessian.analyze": {"config", "workdir", "strategy", "num_cpu_devices", "output_dir",
                           "checkpoint"},
    "tf_hessian.study": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_ode.train": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_ode.compare": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_ode.gradcheck": {"config", "output_dir"},
    "tf_madan.train": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change",
                       "init_checkpoint", "reuse_from"},
    "tf_madan.evaluate": {"config", "weights", "workdir", "split", "out", "allow_config_change"},
    "tf_madan.translate": {"config", "workdir", "stage", "out", "batch_size",
                           "allow_config_change"},
    "tf_madan.export": {"config", "workdir", "out", "segmenter_stage", "generator_stage",
                        "allow_config_change"},
    "tf_madan.compare_readings": {"paper", "code", "out", "translations"},
    "visuals.explain": {"task", "model", "workdir", "stage", "dataset", "data_dir", "split",
                        "normalize", "num_images", "classes", "out"},
}  # fmt: skip
# Binaries whose flags are all their own (no tf_runtime / ml_collections flags): `define_flags`
# takes no sys_argv, and absl's --help lists the main module's flags.
OWN_FLAGS_ONLY = {"visuals.explain", "tf_madan.compare_readings"}


def test_importing_binaries_registers_no_flags():
    before = set(flags.FLAGS)
    for name in BINARIES:
        importlib.import_module(name)
    assert set(flags.FLAGS) == before


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_define_flags_registers_the_documented_flags(name):
    module = importlib.import_module(name)
    values = flags.FlagValues()
    if name in OWN_FLAGS_ONLY:
        module.define_flags(flag_values=values)
    else:
        module.define_flags(flag_values=values, sys_argv=[name])
    assert set(values) == BINARIES[name]


def test_a_required_folder_flag_is_reported():
    from tf_madan import translate

    with pytest.raises(flags.IllegalFlagValueError, match="--out"):
        tf_runtime.parse_flags(["translate", "--workdir=/tmp/run"], translate.define_flags)


@pytest.mark.parametrize("name", sorted(set(BINARIES) - OWN_FLAGS_ONLY))
def test_help_lists_the_binary_own_flags(name):
    # absl's --help shows the main module's key flags only; the shared flags are defined in
    # tf_runtime / ml_collections and must be listed under the binary.
    module = importlib.import_module(name)
    values = flags.FlagValues()
    module.define_flags(flag_values=values, sys_argv=[name])
    text = values.module_help(name)
    for flag in BINARIES[name]:
        assert re.search(rf"--(\[no\])?{flag}\b", text), (name, flag)


def test_python_m_help_lists_flags_and_prints_no_tensorflow_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "tf_hessian.study", "--help"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr  # absl's --help exits with 1
    binary_section = done.stdout.split("tf_hessian/study.py:", 1)[1]
    for flag in ("--workdir", "--config", "--strategy", "--[no]allow_config_change"):
        assert flag in binary_section
    assert done.stderr == ""  # no oneDNN / cudart / cpu_feature_guard lines


def test_retracing_warnings_are_dropped_unless_verbose(monkeypatch):
    from tf_runtime import _quiet

    record = logging.LogRecord(
        "tensorflow", logging.WARNING, __file__, 1,
        "5 out of the last 5 calls to <function f> triggered tf.function retracing.", (), None,
    )  # fmt: skip
    other = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "other", (), None)
    monkeypatch.delenv(_quiet.VERBOSE_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["prog"])
    assert not _quiet.RetracingFilter().filter(record)
    assert _quiet.RetracingFilter().filter(other)
    monkeypatch.setattr(sys, "argv", ["prog", "--verbosity=1"])
    assert _quiet.RetracingFilter().filter(record)
    monkeypatch.setattr(sys, "argv", ["prog"])
    monkeypatch.setenv(_quiet.VERBOSE_ENV, "1")
    assert _quiet.RetracingFilter().filter(record)
    assert any(
        isinstance(f, _quiet.RetracingFilter) for f in logging.getLogger("tensorflow").filters
    )


def test_tensorflow_info_lines_are_off_unless_verbose():
    # Its own level, so absl's INFO root level under app.run does not let them through.
    assert logging.getLogger("tensorflow").level == logging.WARNING


def test_tensorflow_info_lines_through_absl_are_dropped_unless_verbose(monkeypatch, tmp_path):
    from tf_runtime import _quiet

    def record(path, level=logging.INFO):
        return logging.LogRecord("absl", level, path, 1, "Sharding callback duration", (), None)

    tf_file = os.path.join("site-packages", "tensorflow", "python", "checkpoint", "saver.py")
    monkeypatch.delenv(_quiet.VERBOSE_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["prog"])
    keep = _quiet.TensorFlowInfoFilter()
    assert not keep.filter(record(tf_file))
    assert keep.filter(record(tf_file, logging.WARNING))
    assert keep.filter(record(os.path.join("tf_madan", "train.py")))
    monkeypatch.setattr(sys, "argv", ["prog", "--verbosity=1"])
    assert keep.filter(record(tf_file))
    assert any(
        isinstance(f, _quiet.TensorFlowInfoFilter) for f in logging.getLogger("absl").filters
    )
    # End to end: a SavedModel export logs nothing through absl at INFO.
    import tensorflow as tf
    from absl import logging as absl_logging

    monkeypatch.setattr(sys, "argv", ["prog"])
    absl_logging.set_verbosity(absl_logging.INFO)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda r: lines.append(r.getMessage())
    logging.getLogger("absl").addHandler(handler)
    try:
        module = tf.Module()
        module.v = tf.Variable(1.0)
        module.f = tf.function(
            lambda x: x * module.v, input_signature=[tf.TensorSpec([], tf.float32)]
        )
        tf.saved_model.save(module, str(tmp_path / "m"))
    finally:
        logging.getLogger("absl").removeHandler(handler)
    assert lines == []
