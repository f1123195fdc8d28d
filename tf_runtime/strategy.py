"""Distribution strategies from a flag value.

`build_strategy("mirrored", num_cpu_devices=2)` on a CPU-only machine splits the one physical CPU
into two logical devices so a two-replica `MirroredStrategy` can be exercised without GPUs; the
split must happen before TensorFlow initializes its devices, hence `configure_cpu_devices`.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def configure_cpu_devices(num_devices):
    """Splits the first physical CPU into `num_devices` logical devices.

    Args:
      num_devices: int >= 1.

    Returns:
      The number of logical CPU devices now visible.

    Raises:
      ValueError: if `num_devices` < 1, or TensorFlow already initialized its devices with a
        different split (the split cannot change after initialization).
    """
    if num_devices < 1:
        raise ValueError(f"num_cpu_devices must be >= 1. Received: num_cpu_devices={num_devices}")
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == num_devices:
        return num_devices
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == num_devices:
            return have
        raise ValueError(
            f"Cannot split the CPU into {num_devices} logical devices: TensorFlow is already "
            f"initialized with {have}. Call configure_cpu_devices before any TensorFlow op."
        ) from error
    return len(tf.config.list_logical_devices("CPU"))


def _gpus_or_cpus(num_cpu_devices):
    # Physical listing does not initialize the runtime, so the CPU can still be split afterwards.
    if tf.config.list_physical_devices("GPU"):
        return [d.name for d in tf.config.list_logical_devices("GPU")]
    if num_cpu_devices:
        configure_cpu_devices(num_cpu_devices)
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def build_strategy(name, num_cpu_devices=0):
    """Returns the `tf.distribute.Strategy` named by a `--strategy` flag.

    Args:
      name: "default" (one device), "mirrored" (all local GPUs, or on a CPU-only machine
        `num_cpu_devices` logical CPUs), or "multi_worker" (`MultiWorkerMirroredStrategy`, cluster
        read from the `TF_CONFIG` environment variable).
      num_cpu_devices: number of logical CPU devices to split the CPU into when no GPU exists
        (0 keeps the current device list). Applies to "mirrored" and "multi_worker".

    Raises:
      ValueError: for an unknown name, or "multi_worker" with a missing or malformed TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_gpus_or_cpus(num_cpu_devices))
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable (unset)."
        )
    try:
        tf_config = json.loads(raw)
        tf_config["cluster"]["worker"], tf_config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG must be JSON with cluster.worker and task.index. Received: {raw!r}"
        ) from error
    if num_cpu_devices:
        configure_cpu_devices(num_cpu_devices)
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    """True on the one task that writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_id(strategy):
    """The task index within its job (0 for a single process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None and resolver.task_type else 0
