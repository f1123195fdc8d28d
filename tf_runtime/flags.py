"""The flags every binary shares, defined once (tensorflow/models:official/common/flags.py style).

A binary defines its flags in a function it calls under `__main__`, so importing it registers
nothing, and tests parse a private `FlagValues` without touching the global one:

    def define_flags(flag_values=flags.FLAGS, sys_argv=None):
        tf_runtime.define_flags("tf_ode/configs/default.py", flag_values=flag_values,
                                sys_argv=sys_argv)

    def main(argv, flag_values=flags.FLAGS):
        run = tf_runtime.run_flags(flag_values)
        train_lib.train_and_evaluate(run.config, run.workdir, run.build_strategy(),
                                     allow_config_change=run.allow_config_change)

    if __name__ == "__main__":
        define_flags()
        app.run(main, flags_parser=tf_runtime.flags_parser)

    # in a test:
    values = tf_runtime.parse_flags(["prog", "--workdir=/tmp/w"], train.define_flags)
    train.main([], flag_values=values)
"""

import dataclasses
import re
import sys

from absl import flags
from ml_collections import config_flags

from tf_runtime import strategy as strategy_lib


def define_flags(
    default_config,
    *,
    workdir=True,
    workdir_name="workdir",
    workdir_help="Run folder (config.json, checkpoints/, tensorboard/, results).",
    strategy=True,
    resumable=True,
    config_help="Config file (path[:variant]); override fields with --config.<field>=<value>.",
    flag_values=flags.FLAGS,
    sys_argv=None,
):
    """Defines `--config`, `--<workdir_name>`, `--strategy`, `--num_cpu_devices`, `--allow_config_change`.

    Args:
      default_config: default value of `--config` (a config file, optionally `:variant`).
      workdir: define the required folder flag (`--workdir` by default).
      workdir_name: the folder flag's name (e.g. "output_dir").
      workdir_help: its help text.
      strategy: define `--strategy` and `--num_cpu_devices`.
      resumable: define `--allow_config_change` (binaries whose run folder can be resumed).
      config_help: help of `--config`.
      flag_values: where to register (a fresh `flags.FlagValues()` in tests).
      sys_argv: the argv `--config.<field>` overrides are read from (default `sys.argv`); pass
        the same list given to `parse_flags`.
    """
    before = set(flag_values)
    config_flags.DEFINE_config_file(
        "config", default_config, config_help, flag_values=flag_values, sys_argv=sys_argv
    )
    if workdir:
        flags.DEFINE_string(
            workdir_name, None, workdir_help, required=True, flag_values=flag_values
        )
    if resumable:
        flags.DEFINE_boolean(
            "allow_config_change",
            False,
            "Resume a run folder whose recorded config.json differs from --config (the "
            "differences are otherwise an error naming the keys).",
            flag_values=flag_values,
        )
    if strategy:
        flags.DEFINE_enum(
            "strategy",
            "default",
            list(strategy_lib.STRATEGIES),
            "Distribution strategy: default (one device), mirrored (local GPUs or logical "
            "CPUs), multi_worker (cluster from TF_CONFIG).",
            flag_values=flag_values,
        )
        flags.DEFINE_integer(
            "num_cpu_devices",
            0,
            "Logical CPU devices to split the CPU into for mirrored/multi_worker without GPUs.",
            lower_bound=0,
            flag_values=flag_values,
        )
    # absl's --help lists the key flags of the main module only; these flags were defined here
    # (and in ml_collections), so they are made key flags of the binary that asked for them.
    caller = _calling_module_name()
    for name in sorted(set(flag_values) - before):
        flag_values.register_key_flag_for_module(caller, flag_values[name])


def _calling_module_name(depth=2):
    """The module that called our caller, spelt as absl spells the main module (its path)."""
    name = sys._getframe(depth).f_globals.get("__name__", "__main__")
    return sys.argv[0] if name == "__main__" else name


@dataclasses.dataclass
class RunFlags:
    """The shared flags' values (absent flags are None / defaults)."""

    config: object
    workdir: str | None = None
    strategy: str = "default"
    num_cpu_devices: int = 0
    allow_config_change: bool = False

    def build_strategy(self):
        """The `tf.distribute.Strategy` named by `--strategy`."""
        return strategy_lib.build_strategy(self.strategy, self.num_cpu_devices)


def run_flags(flag_values=flags.FLAGS, workdir_name="workdir"):
    """`RunFlags` from parsed flags (only the flags `define_flags` defined are read)."""

    def get(name, default=None):
        return flag_values[name].value if name in flag_values else default

    return RunFlags(
        config=get("config"),
        workdir=get(workdir_name),
        strategy=get("strategy", "default"),
        num_cpu_devices=get("num_cpu_devices", 0),
        allow_config_change=bool(get("allow_config_change", False)),
    )


def _has_path(config, dotted):
    node = config
    for part in dotted.split("."):
        if not hasattr(node, "keys") or part not in node.keys():
            return False
        node = node[part]
    return True


def _config_field_error(flag_values, argv, error):
    config = None
    try:
        config = flag_values["config"].value
    except (KeyError, AttributeError):
        pass
    overrides = [a for a in argv if a.startswith("--config.")]
    paths = {a: a[len("--config.") :].split("=", 1)[0] for a in overrides}
    if config is not None and hasattr(config, "keys"):
        bad = [a for a in overrides if not _has_path(config, paths[a])]
        known = f" Top-level fields: {', '.join(sorted(config.keys()))}."
    else:
        names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(error))
        bad = [a for a in overrides if names and paths[a].split(".")[-1] == names[-1]]
        known = ""
    bad = bad or overrides
    fields = ", ".join(repr(paths[a]) for a in bad) or repr(str(error))
    return flags.IllegalFlagValueError(
        f"{' '.join(bad) or '--config.<field>'}: the config has no field {fields} "
        f"(a misspelt name, or a field of another section?).{known}"
    )


def parse_argv(flag_values, argv):
    """Parses `argv` into `flag_values`; returns the remaining arguments.

    Raises:
      flags.Error: for bad flags, including `--config.<field>` on a field the config lacks
        (a clear message instead of ml_collections' bare AttributeError).
    """
    try:
        return flag_values(argv)
    except (AttributeError, KeyError) as error:
        raise _config_field_error(flag_values, argv, error) from error
    except flags.IllegalFlagValueError as error:
        raise _config_file_error(argv, error) from error


def _config_file_error(argv, error):
    """ml_collections reports an error inside a config file with its whole traceback; keep the
    exception's line, and explain a variant given to a config file that takes none."""
    message = str(error)
    if "Error whilst parsing config file" not in message:
        return error
    lines = [line for line in message.splitlines() if line.strip()]
    cause = lines[-1].strip()
    given = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    spec = given[-1] if given else "--config"
    path, _, variant = spec.rpartition(":")
    if "get_config() takes 0 positional arguments" in cause and variant:
        return flags.IllegalFlagValueError(
            f"--config={spec}: Unknown config variant {variant!r}: {path} has no variants (its "
            f"get_config takes no argument); drop ':{variant}'."
        )
    return flags.IllegalFlagValueError(f"--config={spec}: {cause}")


def parse_flags(argv, define_fn):
    """A fresh `FlagValues` with `define_fn(flag_values, sys_argv)`'s flags, parsed from `argv`.

    `argv[0]` is the program name. For tests: no global flag state is touched.
    """
    flag_values = flags.FlagValues()
    define_fn(flag_values=flag_values, sys_argv=list(argv))
    parse_argv(flag_values, list(argv))
    return flag_values


def flags_parser(argv):
    """`app.run(main, flags_parser=tf_runtime.flags_parser)`: absl's parser with clear errors."""
    try:
        return parse_argv(flags.FLAGS, argv)
    except flags.Error as error:
        sys.stderr.write(f"FATAL Flags parsing error: {error}\n")
        sys.stderr.write("Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)
