"""Per-replica loss scaling: the one place where a mean loss is divided by the replica count.

Gradients are all-reduced by SUM across replicas, so a loss averaged over the local (per-replica)
batch must be divided by `num_replicas_in_sync` for the summed gradient to equal the gradient of
the global-batch mean (tensorflow/models:official/vision/tasks/semantic_segmentation.py). Keras
loss objects do this themselves; a loss written with `tf.reduce_mean` does not.
"""

import tensorflow as tf


def num_replicas():
    """`num_replicas_in_sync` of the current strategy (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_scale():
    """`1 / num_replicas_in_sync` as a Python float."""
    return 1.0 / num_replicas()


def scale_loss(loss):
    """`loss / num_replicas_in_sync`: the per-replica share of a mean loss, for the gradient.

    Use the unscaled `loss` for metrics and the scaled one under the `GradientTape`.
    """
    return loss * tf.cast(replica_scale(), loss.dtype)
