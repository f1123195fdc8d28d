"""Every binary defines its flags in `define_flags`, called under `__main__` only."""

import importlib

import pytest
from absl import flags

import tf_runtime

BINARIES = {
    "tf_hessian.train": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_hessian.analyze": {"config", "workdir", "strategy", "num_cpu_devices", "output_dir",
                           "checkpoint"},
    "tf_hessian.study": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_ode.train": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_ode.compare": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change"},
    "tf_ode.gradcheck": {"config", "output_dir"},
    "tf_madan.train": {"config", "workdir", "strategy", "num_cpu_devices", "allow_config_change",
                       "init_checkpoint"},
    "tf_madan.evaluate": {"config", "weights", "workdir", "split", "out"},
    "tf_madan.translate": {"config", "workdir", "stage", "out", "batch_size"},
    "tf_madan.export": {"config", "workdir", "out", "segmenter_stage", "generator_stage"},
    "visuals.explain": {"task", "model", "dataset", "data_dir", "split", "normalize",
                        "num_images", "classes", "out"},
}  # fmt: skip


def test_importing_binaries_registers_no_flags():
    before = set(flags.FLAGS)
    for name in BINARIES:
        importlib.import_module(name)
    assert set(flags.FLAGS) == before


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_define_flags_registers_the_documented_flags(name):
    module = importlib.import_module(name)
    values = flags.FlagValues()
    if name == "visuals.explain":
        module.define_flags(flag_values=values)
    else:
        module.define_flags(flag_values=values, sys_argv=[name])
    assert set(values) == BINARIES[name]


def test_a_required_folder_flag_is_reported():
    from tf_madan import translate

    with pytest.raises(flags.IllegalFlagValueError, match="--out"):
        tf_runtime.parse_flags(["translate", "--workdir=/tmp/run"], translate.define_flags)
