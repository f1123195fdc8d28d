"""Runs a trainer in a subprocess and SIGKILLs itself at a chosen point (not collected by pytest).

Usage: python tests/fault_script.py TRAINER WORKDIR KILL_POINT [KILL_AT]
  TRAINER: hessian | ode (their smoke configs, 6 steps, checkpoint every 2; hessian exports).
  KILL_POINT:
    none              run to the end
    mid_step          while training step KILL_AT's batch is being produced (inside the step)
    checkpoint_write  after ckpt-KILL_AT's data and index files, before the state file names it
    export            after the SavedModel is written, during its reload check (before rename)
    before_done       after the results file is merged, before the DONE marker
Prints "FINAL <results json>" at the end of a complete run.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from tensorflow.python.checkpoint import checkpoint_management  # noqa: E402

import tf_runtime  # noqa: E402
import tf_runtime.export  # noqa: E402
import tf_runtime.run  # noqa: E402
from input_pipelines import classification  # noqa: E402


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def hessian_config():
    from tf_hessian.configs import default

    config = default.get_config("smoke")
    config.num_steps, config.checkpoint_every, config.log_every = 6, 2, 1
    return config


def ode_config():
    from tf_ode.configs import default

    config = default.get_config("smoke")
    config.num_train_steps, config.checkpoint_every, config.log_every = 6, 2, 1
    config.train_limit, config.eval_every_epochs = 16, 1  # 2 steps per epoch: eval at 2, 4, 6
    config.export = False  # the export kill point is exercised by the hessian trainer
    return config


def install(kill_point, kill_at):
    if kill_point == "mid_step":
        build = classification.build_dataset
        produced = [0]

        def hook():
            produced[0] += 1
            if produced[0] == kill_at:
                _die()
            return 0

        def patched(*args, **kwargs):
            dataset = build(*args, **kwargs)
            if not kwargs.get("repeat"):  # evaluation data: untouched
                return dataset

            def with_hook(images, labels):
                with tf.control_dependencies([tf.py_function(hook, [], tf.int32)]):
                    return tf.identity(images), labels

            return dataset.map(with_hook)

        classification.build_dataset = patched
    elif kill_point == "checkpoint_write":
        original = checkpoint_management.update_checkpoint_state_internal

        def patched(save_dir, model_checkpoint_path, *args, **kwargs):
            if model_checkpoint_path.endswith(f"ckpt-{kill_at}"):
                _die()
            return original(save_dir, model_checkpoint_path, *args, **kwargs)

        checkpoint_management.update_checkpoint_state_internal = patched
    elif kill_point == "export":
        tf_runtime.export.check_export = lambda *a, **k: _die()
    elif kill_point == "before_done":
        original_marker = tf_runtime.run.files.write_marker

        def patched_marker(path, info=None):
            if str(path).endswith("DONE"):
                _die()
            return original_marker(path, info)

        tf_runtime.run.files.write_marker = patched_marker
    elif kill_point != "none":
        raise ValueError(f"Unknown kill point {kill_point!r}")


def main(trainer, workdir, kill_point, kill_at=0):
    install(kill_point, kill_at)
    strategy = tf.distribute.get_strategy()
    if trainer == "hessian":
        from tf_hessian import train_lib

        results = train_lib.train_and_evaluate(hessian_config(), workdir, strategy)
    else:
        from tf_ode import train_lib

        results = train_lib.train_and_evaluate(ode_config(), workdir, strategy)
    print("FINAL", json.dumps(results, default=float), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:]))
