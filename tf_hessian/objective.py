"""The data loss a ``HessianOperator`` differentiates: losses, outputs, data structures.

Keras's conventions (keras/src/trainers/compile_utils.py ``CompileLoss``,
keras/src/trainers/data_adapters/data_adapter_utils.py ``unpack_x_y_sample_weight``):
a data element is ``(x, y)`` or ``(x, y, sample_weight)``, each of them any nest
(tensor, tuple, list, dict); a model with several outputs takes one loss per
output (a dict keyed by output name or a list in output order, or one loss for
all), weighted by ``loss_weights``; ``sample_weight`` is one array for every
output or one per output. The objective is
``sum_o loss_weight_o * reduce_o(loss_o)`` over the WHOLE data, each output's
reduction exact over any batching and replica split (see ``HessianOperator``).
"""

from __future__ import annotations

import dataclasses
import inspect

import keras
import tensorflow as tf

# Keras loss reductions reproduced exactly over any batching and replica split.
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum")


class FunctionLoss(keras.losses.Loss):
    """A Keras loss function (``keras.losses.get("name")``) as a ``keras.losses.Loss``."""

    def __init__(self, fn, **kwargs):
        super().__init__(name=getattr(fn, "__name__", "loss"), **kwargs)
        self.fn = fn
        parameter = inspect.signature(fn).parameters.get("from_logits")
        self.from_logits = None if parameter is None else parameter.default

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


@dataclasses.dataclass
class OutputLoss:
    """The loss of one model output: ``loss_weight * reduce(unreduced(y, y_pred, w))``."""

    name: str
    loss: object  # the loss as given (a keras Loss or a plain callable)
    unreduced: object  # a reduction="none" copy of a keras Loss, or None for a plain callable
    reduction: str | None
    weight: float


def _as_loss(loss, where, dtype):
    """A keras Loss or a plain callable from a loss, a string or a registered name.

    A loss given by name computes in ``dtype`` (the parameters' dtype).
    """
    if isinstance(loss, keras.losses.Loss):
        return loss
    if isinstance(loss, str):
        try:
            resolved = keras.losses.get(loss)
        except ValueError as error:
            raise ValueError(f"Unknown Keras loss {loss!r} for {where}.") from error
        if isinstance(resolved, keras.losses.Loss):
            return type(resolved).from_config({**resolved.get_config(), "dtype": dtype})
        return FunctionLoss(resolved, dtype=dtype)
    if callable(loss):
        return loss
    raise ValueError(
        f"loss_fn for {where} must be a keras loss, its name or a callable. Received: {loss!r}."
    )


def _unreduced(loss):
    if not isinstance(loss, keras.losses.Loss):
        return None, None
    reduction = loss.reduction
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{type(loss).__name__} has reduction={reduction!r}, which does not define a "
            f"scalar objective; use one of {REDUCTIONS}."
        )
    # A shallow copy by __dict__: copy.copy goes through get_config/from_config,
    # which drops the loss's dtype (a float64 loss would come back float32).
    unreduced = object.__new__(type(loss))
    unreduced.__dict__.update(loss.__dict__)
    unreduced.reduction = "none"
    return reduction, unreduced


def _per_output(value, names, what):
    """One entry per output name from a single value, a dict by name or a list in order."""
    if isinstance(value, dict):
        missing = sorted(set(value) - set(names))
        if missing:
            raise ValueError(f"{what} names {missing}, which are not model outputs {names}.")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and not isinstance(value, str) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(
                f"{what} has {len(value)} entries but the model has {len(names)} outputs {names}."
            )
        return list(value)
    return [value] * len(names)


def output_names(model) -> list[str]:
    """Names of the model's outputs in the order ``flatten_outputs`` returns them."""
    outputs = getattr(model, "_outputs_struct", None)
    if isinstance(outputs, dict):
        return sorted(outputs)
    names = list(getattr(model, "output_names", None) or [])
    return names or ["output"]


def resolve_losses(loss_fn, model, loss_weights=None, dtype="float32") -> list[OutputLoss]:
    """Per-output losses of ``model``; ``loss_fn=None`` takes the model's compiled loss.

    Losses given by name compute in ``dtype``.
    """
    if loss_fn is None:
        compiled = getattr(model, "_compile_loss", None)
        if compiled is None or getattr(compiled, "_user_loss", None) is None:
            raise ValueError(
                "loss_fn=None takes the loss given to model.compile(), but the model was not "
                "compiled with a loss; pass loss_fn."
            )
        loss_fn = compiled._user_loss
        if loss_weights is None:
            loss_weights = compiled._user_loss_weights
    names = output_names(model)
    losses = _per_output(loss_fn, names, "loss_fn")
    weights = _per_output(1.0 if loss_weights is None else loss_weights, names, "loss_weights")
    result = []
    for name, loss, weight in zip(names, losses, weights):
        if loss is None:
            continue  # Keras: an output without a loss does not enter the objective.
        loss = _as_loss(loss, f"output {name!r}", dtype)
        reduction, unreduced = _unreduced(loss)
        result.append(
            OutputLoss(name, loss, unreduced, reduction, 1.0 if weight is None else float(weight))
        )
    if not result:
        raise ValueError(f"No output of the model {names} has a loss.")
    if len(result) > 1 and any(o.unreduced is None for o in result):
        raise ValueError(
            "Several outputs need keras.losses.Loss objects (or their names) so that each "
            "output's reduction is exact; a plain callable returns an already reduced value."
        )
    return result


def _probability_output(model, index):
    """True/False when output ``index`` visibly is a softmax/sigmoid/linear layer, else None."""
    try:
        layer = model.outputs[index]._keras_history.operation
    except (AttributeError, IndexError):
        return None
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax):
        return True
    if activation in (keras.activations.softmax, keras.activations.sigmoid):
        return True
    if activation is keras.activations.linear:
        return False
    return None


def check_logits(model, losses: list[OutputLoss]) -> None:
    """Rejects a from_logits loss on a softmax/sigmoid output and a probability loss on logits."""
    names = output_names(model)
    for output in losses:
        from_logits = getattr(output.loss, "from_logits", None)
        if from_logits is None:
            from_logits = getattr(output.loss, "_fn_kwargs", {}).get("from_logits")
        if from_logits is None or output.name not in names:
            continue
        probabilities = _probability_output(model, names.index(output.name))
        if probabilities is True and from_logits:
            raise ValueError(
                f"Output {output.name!r} ends in a softmax/sigmoid (probabilities) but its loss "
                f"{type(output.loss).__name__} has from_logits=True; pass from_logits=False, or "
                "build the model without the final activation."
            )
        if probabilities is False and not from_logits:
            raise ValueError(
                f"Output {output.name!r} is a linear layer (logits) but its loss "
                f"{type(output.loss).__name__} expects probabilities (from_logits=False, also "
                "the default of a loss given by name); pass e.g. "
                "keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )


def flatten_outputs(y_pred, names):
    """The model output as a list in ``names`` order."""
    if isinstance(y_pred, dict):
        return [y_pred[name] for name in names]
    if isinstance(y_pred, (list, tuple)):
        return list(y_pred)
    return [y_pred]


def per_output_labels(y, names, what="y"):
    """Labels (or sample weights) as a list in ``names`` order; a single value goes to all."""
    if y is None:
        return [None] * len(names)
    if isinstance(y, dict):
        missing = [name for name in names if name not in y]
        if missing:
            raise ValueError(
                f"{what} has no entry for the model outputs {missing}. Received keys: {sorted(y)}."
            )
        return [y[name] for name in names]
    if isinstance(y, (list, tuple)) and len(names) > 1:
        if len(y) != len(names):
            raise ValueError(
                f"{what} has {len(y)} entries but the model has {len(names)} outputs {names}."
            )
        return list(y)
    if len(names) > 1 and what != "sample_weight":
        raise ValueError(
            f"The model has {len(names)} outputs {names}; {what} must be a list/tuple in output "
            "order or a dict keyed by output name."
        )
    return [y] * len(names)


def check_element_spec(spec) -> bool:
    """Checks a dataset's element_spec; returns whether it carries sample weights."""
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            "The dataset must yield (x, y) or (x, y, sample_weight) batches, each of them a "
            f"tensor or a nest (tuple, list, dict) of tensors. Received: element_spec={spec}."
        )
    for what, part in zip(("x", "y", "sample_weight"), spec):
        for leaf in tf.nest.flatten(part):
            if leaf.shape.rank == 0:
                raise ValueError(
                    f"The dataset looks unbatched: an element of {what} is a scalar "
                    f"({leaf}); call dataset.batch(batch_size) first."
                )
    return len(spec) == 3


def as_tensors(data):
    """An in-memory ``(x, y[, sample_weight])`` batch as nests of tensors, lists made tuples."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError(
            "data must be an (x, y) or (x, y, sample_weight) batch (each a tensor or a nest of "
            f"tensors) or a tf.data.Dataset of them. Received: {type(data)}."
        )

    def convert(part):
        if isinstance(part, list):
            part = tuple(part)
        if isinstance(part, (tuple, dict)):
            return tf.nest.map_structure(tf.convert_to_tensor, part)
        return tf.convert_to_tensor(part)

    tensors = tuple(convert(part) for part in data)
    sizes = {tuple(t.shape)[0] if t.shape.rank else None for t in tf.nest.flatten(tensors)}
    if None in sizes or len(sizes) != 1:
        shapes = tf.nest.map_structure(lambda t: tuple(t.shape), tensors)
        raise ValueError(
            "x, y (and sample_weight) disagree on the batch size (one leading batch axis for "
            f"every tensor). Received shapes: {shapes}."
        )
    return tensors, sizes.pop()
