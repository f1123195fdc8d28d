"""Training runtime shared by the three papers' trainers.

Strategies from a flag, checkpoints with resume, TensorBoard writers and progress lines,
SavedModel export with a reload check, the resolved config in the workdir, and the distributed
custom loop that runs each model's own `train_step` under any `tf.distribute` strategy.
"""

from tf_runtime.checkpointing import CheckpointHelper
from tf_runtime.config import config_to_dict, write_config
from tf_runtime.export import check_export, export_saved_model
from tf_runtime.loop import collect_optimizers, run_training
from tf_runtime.strategy import STRATEGIES, build_strategy, configure_cpu_devices, is_chief
from tf_runtime.summaries import ProgressLogger, SummaryWriters, flatten_dict

__all__ = [
    "STRATEGIES",
    "CheckpointHelper",
    "ProgressLogger",
    "SummaryWriters",
    "build_strategy",
    "check_export",
    "collect_optimizers",
    "config_to_dict",
    "configure_cpu_devices",
    "export_saved_model",
    "flatten_dict",
    "is_chief",
    "run_training",
    "write_config",
]
