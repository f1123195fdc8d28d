"""TensorFlow's start-up lines and retracing warnings off by default (imported first by tf_runtime).

Importing TensorFlow prints lines that say nothing about the run (oneDNN, cudart and CUDA
platform probes, cpu_feature_guard), TensorFlow's Python logger and the TensorFlow modules that
log through absl print INFO lines (checkpoint sharding, SavedModel fingerprints), and
`tf.function` retracing warnings repeat on every call of an evaluation helper. All are
hidden unless asked for:

  * `TF_RUNTIME_VERBOSE=1` in the environment, or `--verbosity=1` (`-v 1`) on the command line,
    shows everything (TensorFlow's C++ start-up lines are printed before flags are parsed, so
    the command line is read from `sys.argv` here);
  * a `TF_CPP_MIN_LOG_LEVEL` set by the user is kept.

The start-up lines are hidden by pointing file descriptor 2 at /dev/null while TensorFlow is
imported and its physical devices are listed (the probes log from C++ before absl's logging is
initialised, so no log level reaches them); Python exceptions are unaffected.
"""

import logging
import os
import re
import sys

VERBOSE_ENV = "TF_RUNTIME_VERBOSE"
_RETRACING = "triggered tf.function retracing"


def _argv_verbosity(argv):
    for i, arg in enumerate(argv):
        match = re.fullmatch(r"(?:--verbosity|-v)=(-?\d+)", arg)
        if match:
            return int(match.group(1))
        if arg in ("--verbosity", "-v") and i + 1 < len(argv):
            try:
                return int(argv[i + 1])
            except ValueError:
                return None
    return None


def verbose(argv=None):
    """True when TensorFlow's own messages were asked for (environment or command line)."""
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        return True
    level = _argv_verbosity(sys.argv if argv is None else argv)
    return level is not None and level >= 1


def _absl_verbosity():
    try:
        from absl import logging as absl_logging

        return absl_logging.get_verbosity()
    except Exception:  # noqa: BLE001 - absl flags not parsed yet
        return -1


class RetracingFilter(logging.Filter):
    """Drops TensorFlow's retracing warnings unless verbose (`--verbosity>=1` or the env var)."""

    def filter(self, record):
        if _RETRACING not in record.getMessage():
            return True
        return verbose() or _absl_verbosity() >= 1


class TensorFlowInfoFilter(logging.Filter):
    """Drops INFO / DEBUG lines that TensorFlow's own modules log through absl (SavedModel
    fingerprints, checkpoint sharding, signature renames) unless verbose; warnings, errors and
    every other module's lines pass."""

    def filter(self, record):
        if record.levelno >= logging.WARNING or verbose() or _absl_verbosity() >= 1:
            return True
        return f"{os.sep}tensorflow{os.sep}" not in record.pathname


def import_tensorflow_quietly():
    """Imports TensorFlow (once) with its start-up lines hidden unless `verbose()`."""
    if "tensorflow" in sys.modules or verbose():
        import tensorflow as tf
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA/platform probes log here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
    logger = tf.get_logger()
    if not any(isinstance(f, RetracingFilter) for f in logger.filters):
        logger.addFilter(RetracingFilter())
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, TensorFlowInfoFilter) for f in absl_logger.filters):
        absl_logger.addFilter(TensorFlowInfoFilter())
    if not verbose() and logger.level == logging.NOTSET:
        # absl's handler prints the root level (INFO under app.run): TensorFlow's own INFO
        # lines (checkpoint sharding, ...) only with --verbosity=1.
        logger.setLevel(logging.WARNING)
    return tf


import_tensorflow_quietly()
