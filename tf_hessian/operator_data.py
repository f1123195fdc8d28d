"""Data and objective of a ``HessianOperator``: batches, padding, per-output loss terms.

The per-replica objective of one batch is ``(S, W)`` (see ``ObjectiveMixin._objective``);
``hvp.HessianOperator`` differentiates it and sums over batches and replicas. Loss and
data structures follow Keras's conventions (``tf_hessian.objective``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_hessian import objective as objective_lib


class ObjectiveMixin:
    """The data pipeline and the per-replica objective of ``hvp.HessianOperator``."""

    # ------------------------------------------------------------------ data
    def _prepare_data(self, data):
        if isinstance(data, tf.data.Dataset):
            weighted = objective_lib.check_element_spec(data.element_spec)
            dataset = data
        else:
            tensors, size = objective_lib.as_tensors(data)
            weighted = len(tensors) == 3
            if self.strategy.num_replicas_in_sync == 1:
                dataset = [tensors]
            else:
                dataset = tf.data.Dataset.from_tensor_slices(tensors).batch(int(size))
        structure = data.element_spec if isinstance(data, tf.data.Dataset) else tensors
        # Label / weight structures against the outputs, before any tracing.
        objective_lib.per_output_labels(structure[1], self._output_names)
        if weighted:
            objective_lib.per_output_labels(structure[2], self._output_names, "sample_weight")
        if weighted and self._unreduced_loss is None:
            raise ValueError(
                "The data carries sample weights but loss_fn is a plain function; pass a "
                "keras.losses.Loss (its reduction says how weights normalise the loss)."
            )
        if isinstance(dataset, list) or self.strategy.num_replicas_in_sync == 1:
            return dataset
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    # ------------------------------------------------------- per-replica math
    def _objective(self, batch):
        """Returns ``(S, W)`` of one (per-replica) batch: the loss is ``sum S / sum W``.

        ``S`` is the batch's unnormalised loss (``sum_i w_i loss_i``) and ``W``
        its share of the normaliser: the number of loss elements for
        ``sum_over_batch_size``/``mean``, the sum of the sample weights for
        ``mean_with_sample_weight``, unused (``sum`` is not normalised). This
        makes every batching and every replica split give the same objective as
        one device on the whole data, whatever Keras does to a reduced loss under
        a strategy (it divides mean reductions by the replica count). With
        several outputs ``S = sum_o scale_o S_o`` (scale: loss weight over the
        output's whole-data normaliser) and the operator does not normalise.
        """
        inputs = self._padded(batch)
        return self._objective_of(inputs, self._forward(inputs[0]))

    def _forward(self, x):
        if not self.training:
            return self.model(x, training=False)
        # Training mode without side effects: the updated BN statistics and seeds are dropped.
        outputs, _ = self.model.stateless_call(
            [v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables],
            x,
            training=True,
        )
        return outputs

    def _padded(self, batch):
        """``(x, y, weight or None, real [B] 0/1, n_real)`` of a batch, an empty one padded."""
        x, y = batch[0], batch[1]
        weight = batch[2] if len(batch) == 3 else None
        n_real = tf.shape(tf.nest.flatten(x)[0])[0]
        x, y, weight, real = self._non_empty(x, y, weight, n_real)
        return x, y, weight, real, n_real

    def _output_terms(self, inputs, y_pred):
        """``[(S_o, W_o)]`` per output loss (see ``_objective``)."""
        _, y, weight, real, n_real = inputs
        names = self._output_names
        predictions = objective_lib.flatten_outputs(y_pred, names)
        for prediction in predictions:
            if getattr(prediction, "_keras_mask", None) is not None:
                raise ValueError(
                    "The model output carries a Keras mask; HessianOperator does not support "
                    "masked losses (give explicit sample weights instead)."
                )
        labels = objective_lib.per_output_labels(y, names)
        weights = objective_lib.per_output_labels(weight, names, "sample_weight")
        terms = []
        for output in self._losses:
            i = names.index(output.name)
            terms.append(
                self._loss_terms(output, labels[i], predictions[i], weights[i], real, n_real)
            )
        return terms

    def _loss_terms(self, output, y, y_pred, weight, real, n_real):
        if output.unreduced is None:
            # A plain function returns the per-replica batch mean, unscaled.
            count = tf.cast(n_real, self.dtype)
            return tf.cast(output.loss(y, y_pred), self.dtype) * count, count
        values = tf.cast(output.unreduced(y, y_pred, sample_weight=weight), self.dtype)
        if values.shape.rank == 0:
            raise ValueError(
                f"{type(output.loss).__name__} with reduction='none' returned a scalar; "
                "HessianOperator needs per-example losses."
            )
        real_values = tf.reshape(real, [-1] + [1] * (values.shape.rank - 1))
        total = tf.reduce_sum(values * real_values)
        if output.reduction == "mean_with_sample_weight" and weight is not None:
            weight = tf.cast(weight, self.dtype)
            norm = tf.reduce_sum(weight * tf.reshape(real, [-1] + [1] * (weight.shape.rank - 1)))
        else:
            per_example = tf.cast(tf.reduce_prod(tf.shape(values)[1:]), self.dtype)
            norm = tf.reduce_sum(real) * per_example
        return total, norm

    def _objective_of(self, inputs, y_pred):
        """``(S, W)`` (see ``_objective``) from the model output of padded inputs."""
        terms = self._output_terms(inputs, y_pred)
        if not self._multi_output:
            total, norm = terms[0]
            return total * self._losses[0].weight, norm
        scale = tf.cast(self._output_scale, self.dtype)
        total = tf.add_n([scale[i] * s for i, (s, _) in enumerate(terms)])
        return total, tf.ones([], self.dtype)

    @property
    def _data(self):
        """The (distributed) batches; with several outputs their normalisers are found first."""
        self._ensure_output_scale()
        return self._batches

    def _weighted_norms(self, batch):
        """Per-output normaliser shares ``[W_o]`` of one (per-replica) batch (forward only)."""
        inputs = self._padded(batch)
        return tf.stack([n for _, n in self._output_terms(inputs, self._forward(inputs[0]))])

    def _ensure_output_scale(self):
        """Several outputs: one forward pass over the data for each output's normaliser."""
        if not self._multi_output or self._output_scale is not None:
            return
        step = tf.function(
            lambda batch: self._reduce([self.strategy.run(self._weighted_norms, args=(batch,))])[0]
        )
        norms = None
        for batch in self._batches:
            value = step(batch).numpy().astype(np.float64)
            norms = value if norms is None else norms + value
        if norms is None:
            raise ValueError("The data given to HessianOperator is empty.")
        scale = []
        for output, norm in zip(self._losses, norms):
            if output.reduction == "sum":
                scale.append(output.weight)
            elif norm == 0:
                raise ValueError(
                    f"The data of output {output.name!r} is empty (or all its weights are 0)."
                )
            else:
                scale.append(output.weight / norm)
        self._output_scale = tf.Variable(np.array(scale), dtype=self.dtype, trainable=False)

    def _non_empty(self, x, y, weight, n):
        """Appends one zero example to an empty batch; returns the batch and a 0/1 mask [B].

        A short last batch split over replicas can leave a replica empty, and
        keras losses of empty batches are not scalars. Padding avoids a
        ``tf.cond`` around the autodiff, which is slow to trace under a strategy;
        the padded example is masked out of the objective.
        """
        pad = tf.maximum(1 - n, 0)

        def padded(t):
            t = tf.convert_to_tensor(t)
            return tf.concat([t, tf.zeros(tf.concat([[pad], tf.shape(t)[1:]], 0), t.dtype)], 0)

        real = tf.concat([tf.ones([n], self.dtype), tf.zeros([pad], self.dtype)], 0)
        nest = tf.nest.map_structure
        return (
            nest(padded, x),
            nest(padded, y),
            None if weight is None else nest(padded, weight),
            real,
        )
