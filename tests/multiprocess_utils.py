"""Helpers to run a binary as one process or as several MultiWorkerMirroredStrategy workers."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def start(args, env):
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_single_and_workers(args_for, num_workers=2, timeout=600):
    """Runs `args_for(None)` as one process and `args_for(i)` as worker i of a local cluster.

    Returns:
      list of (returncode, output) for the single process, then each worker.
    """
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(num_workers)]}
    processes = [start(args_for(None), clean_env())]
    for index in range(num_workers):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(start(args_for(index), clean_env(TF_CONFIG=tf_config)))
    results = []
    for process in processes:
        try:
            output = process.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
        results.append((process.returncode, output))
    return results


def checkpoint_floats(checkpoint_prefix):
    """{name: array} of the float variables in a checkpoint (weights and optimizer slots)."""
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    values = {}
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating and "OPTIMIZER_SLOT" not in name and ".ATTRIBUTES" in name:
            values[name] = np.asarray(reader.get_tensor(name))
    return values


FAULT_SCRIPT = os.path.join(PROJECT_ROOT, "tests", "fault_script.py")


def run_killed_then_resumed(trainer, workdir, kills, timeout=300):
    """Runs `tests/fault_script.py` once per `(kill_point, kill_at)` (each must die by SIGKILL),
    then once more to the end in the same `workdir`.

    Returns:
      (outputs of every process, the step of the latest checkpoint after each kill, the final
      results dict printed by the completing run).
    """
    outputs, latest = [], []
    for kill_point, kill_at in kills:
        process = subprocess.run(
            [sys.executable, FAULT_SCRIPT, trainer, str(workdir), kill_point, str(kill_at)],
            env=clean_env(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        outputs.append(process.stdout + process.stderr)
        if process.returncode != -9:
            raise AssertionError(
                f"{kill_point}@{kill_at} was not killed (rc={process.returncode}):\n"
                + outputs[-1][-3000:]
            )
        path = tf.train.latest_checkpoint(os.path.join(str(workdir), "checkpoints"))
        latest.append(int(path.rsplit("-", 1)[1]) if path else 0)
    process = subprocess.run(
        [sys.executable, FAULT_SCRIPT, trainer, str(workdir), "none"],
        env=clean_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    outputs.append(process.stdout + process.stderr)
    if process.returncode != 0:
        raise AssertionError(
            f"resumed run failed (rc={process.returncode}):\n{outputs[-1][-3000:]}"
        )
    final = [line for line in process.stdout.splitlines() if line.startswith("FINAL ")]
    return outputs, latest, json.loads(final[-1][len("FINAL ") :])


class LockHolder:
    """A forked child process that holds `tf_runtime.WorkdirLock(workdir)` until killed.

    Forked (not spawned) so no TensorFlow import is paid; the child only takes the lock and sleeps.
    Use as a context manager: `with LockHolder(path) as holder: ... holder.pid ... holder.kill()`.
    """

    def __init__(self, workdir):
        import multiprocessing

        from tf_runtime import run

        def hold(ready):
            run._HELD.clear()  # the parent's locks are not this process's
            run.WorkdirLock(workdir).acquire()
            ready.set()
            import time

            time.sleep(600)

        context = multiprocessing.get_context("fork")
        self._ready = context.Event()
        self._process = context.Process(target=hold, args=(self._ready,), daemon=True)

    def __enter__(self):
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("The lock holder did not take the lock within 30 s.")
        return self

    @property
    def pid(self):
        return self._process.pid

    def kill(self):
        if self._process.is_alive():
            self._process.kill()
        self._process.join()

    def __exit__(self, *exc):
        self.kill()
