"""Training runtime shared by the three papers' trainers.

Strategies from a flag, checkpoints with resume and fallback, TensorBoard writers and progress
lines, the distributed custom loop, and around it what every trainer needs once: shared flags,
run settings, a locked run folder with a config check on resume, merged atomic results, atomic
markers, per-replica loss scaling and SavedModel export with a reload check. TensorFlow's start-up
lines and retracing warnings are hidden unless `TF_RUNTIME_VERBOSE=1` or `--verbosity=1`.
"""

# First: TensorFlow is imported with its start-up lines hidden (see tf_runtime/_quiet.py).
from tf_runtime import _quiet  # noqa: F401  # isort: skip
from tf_runtime.checkpointing import CheckpointHelper, load_weights, save_weights_atomic
from tf_runtime.config import (
    RUNTIME_DEFAULTS,
    config_to_dict,
    read_config,
    run_setting,
    runtime_config,
    write_config,
)
from tf_runtime.export import (
    check_export,
    example_inputs,
    export_and_check,
    export_saved_model,
    is_exported,
)
from tf_runtime.files import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    has_marker,
    read_json,
    remove_marker,
    write_marker,
)
from tf_runtime.flags import RunFlags, define_flags, flags_parser, parse_flags, run_flags
from tf_runtime.loop import collect_optimizers, load_history, run_training
from tf_runtime.replicas import num_replicas, replica_scale, scale_loss
from tf_runtime.results import load_results, merge_dicts, merge_results
from tf_runtime.run import (
    RUN_SETTING_KEYS,
    ConfigMismatchError,
    Run,
    WorkdirLock,
    WorkdirLockedError,
    check_config,
    config_differences,
    open_run,
)
from tf_runtime.strategy import STRATEGIES, build_strategy, configure_cpu_devices, is_chief
from tf_runtime.summaries import ProgressLogger, SummaryWriters, TaskProgress, flatten_dict
from tf_runtime.validation import (
    RUN_SETTING_RULES,
    Rule,
    boolean,
    check_fields,
    check_run_settings,
    integer,
    number,
    one_of,
    sequence_of,
    string,
)

__all__ = [
    "RUNTIME_DEFAULTS",
    "RUN_SETTING_KEYS",
    "RUN_SETTING_RULES",
    "Rule",
    "boolean",
    "check_fields",
    "check_run_settings",
    "integer",
    "number",
    "one_of",
    "sequence_of",
    "string",
    "STRATEGIES",
    "CheckpointHelper",
    "ConfigMismatchError",
    "ProgressLogger",
    "Run",
    "RunFlags",
    "SummaryWriters",
    "TaskProgress",
    "WorkdirLock",
    "WorkdirLockedError",
    "atomic_directory",
    "atomic_write_json",
    "atomic_write_text",
    "build_strategy",
    "check_config",
    "check_export",
    "collect_optimizers",
    "config_differences",
    "config_to_dict",
    "configure_cpu_devices",
    "define_flags",
    "example_inputs",
    "export_and_check",
    "export_saved_model",
    "flags_parser",
    "flatten_dict",
    "has_marker",
    "is_chief",
    "is_exported",
    "load_history",
    "load_results",
    "load_weights",
    "merge_dicts",
    "merge_results",
    "num_replicas",
    "open_run",
    "parse_flags",
    "read_config",
    "read_json",
    "remove_marker",
    "replica_scale",
    "run_flags",
    "run_setting",
    "run_training",
    "runtime_config",
    "save_weights_atomic",
    "scale_loss",
    "write_config",
    "write_marker",
]
