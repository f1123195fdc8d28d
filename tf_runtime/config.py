"""Writing the resolved configuration of a run into its workdir."""

import json
import os

import tensorflow as tf


def config_to_dict(config):
    """Plain nested dict of an `ml_collections.ConfigDict` (or a dict); tuples become lists."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if isinstance(config, dict):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    return config


def write_config(config, workdir, filename="config.json"):
    """Writes `config` as sorted JSON to `workdir/filename` and returns the path.

    Raises:
      TypeError: naming the field when a value is not JSON-serialisable.
    """
    tf.io.gfile.makedirs(workdir)
    as_dict = config_to_dict(config)
    try:
        text = json.dumps(as_dict, indent=2, sort_keys=True)
    except TypeError as error:
        raise TypeError(f"Config is not JSON-serialisable: {error}") from error
    path = os.path.join(workdir, filename)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text + "\n")
    return path
