"""Classification networks of ANODEV2's table: AlexNet-style, ResNet-4 and ResNet-10.

Each in three forms sharing the same f = ConvODEFunc: "baseline" (residual blocks z + f(z)),
"anode" (ODEBlock, theta constant in time) and "anodev2" (CoupledODEBlock, theta(t) evolved
by q). The paper's exact definitions are not public [spec 2.3, U]; ours, counted in weight
layers (one ODE/residual block = its two convs):

  resnet4:  conv3x3(w) -> block(w) -> head                                 (1 + 2 + 1 = 4)
  resnet10: conv3x3(w) -> block(w) -> [conv3x3/2(2w) -> block(2w)] -> [conv3x3/2(4w) -> block(4w)]
            -> head                                                         (1 + 2 + 3 + 3 + 1 = 10)
  alexnet:  conv5x5(w) -> maxpool -> block(w) -> conv3x3(2w) -> maxpool -> block(2w)
            -> avgpool4 -> flatten -> dense(8w) -> dense(4w) -> dense       (6 conv + 3 dense)

head = ANODE's `avg_pool2d(out, 4)` -> flatten -> dense (spec 2.1), which keeps a coarse spatial
map for the shallow models (a global average after one 3x3 block would see only 7x7 patches).

Stem/transition convs use BatchNorm + ReLU (outside ODE blocks, where BN is harmless). All
models end in a Dense "logits" layer (tf-keras-vis saliency replaces its activation).
"""

import keras
import tensorflow as tf

from tf_ode import blocks, functions, losses

ARCHITECTURES = ("alexnet", "resnet4", "resnet10")
VARIANTS = ("baseline", "anode", "anodev2")


@keras.saving.register_keras_serializable(package="tf_ode")
class ODEClassifier(keras.Model):
    """Functional classifier with a custom `train_step` for `tf_runtime.run_training`.

    `train_step` follows: 1. reset the ODE blocks' evaluation counters; 2. forward; 3. losses
    (cross-entropy + coupled weight decay, both scaled per replica); 4. gradients and one
    optimizer step; 5. trackers (loss, accuracy, nfe = all f evaluations of the step, forward
    and backward, summed over ODE blocks).
    """

    def __init__(self, *args, weight_decay=0.0, **kwargs):
        # (*args, **kwargs) keeps Keras' functional (de)serialization: ODEClassifier(inputs, outputs).
        super().__init__(*args, **kwargs)
        self.weight_decay = weight_decay
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.nfe_tracker = keras.metrics.Mean(name="nfe")

    def get_config(self):
        # The functional graph plus our argument, so `keras.models.load_model` can rebuild it.
        config = super().get_config()
        config["weight_decay"] = self.weight_decay
        return config

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.nfe_tracker]

    def ode_blocks(self):
        return [
            layer
            for layer in self.layers
            if isinstance(layer, blocks.ODEBlock | blocks.CoupledODEBlock)
        ]

    def _nfe(self):
        counters = [block.nfe for block in self.ode_blocks()]
        return (
            tf.add_n([tf.convert_to_tensor(c) for c in counters]) if counters else tf.constant(0.0)
        )

    def train_step(self, data):
        images, labels = data
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # 1. Counters count this step only.
        for block in self.ode_blocks():
            block.nfe.assign(0.0)
        with tf.GradientTape() as tape:
            # 2. Forward.
            logits = self(images, training=True)
            # 3. Losses.
            cross_entropy = losses.classification_loss(
                labels=labels, logits=logits, num_replicas=num_replicas
            )
            penalty = losses.weight_decay_penalty(
                weights=self.trainable_variables,
                weight_decay=self.weight_decay,
                num_replicas=num_replicas,
            )
            loss = cross_entropy + penalty
        # 4. Gradients and update.
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        # 5. Trackers (the loss is logged unscaled).
        self.loss_tracker.update_state(loss * num_replicas)
        self.accuracy_tracker.update_state(labels, logits)
        with tf.control_dependencies(grads):
            self.nfe_tracker.update_state(self._nfe())
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images, labels = data
        logits = self(images, training=False)
        self.loss_tracker.update_state(losses.classification_loss(labels=labels, logits=logits))
        self.accuracy_tracker.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics if m.name != "nfe"}


def _conv_bn_relu(x, filters, kernel_size, strides, name):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", name=f"{name}_conv"
    )(x)
    # synchronized: replicas share batch statistics, so a multi-replica step equals one device.
    # momentum 0.9 / epsilon 1e-5 are PyTorch's BatchNorm2d defaults (ANODE's code).
    x = keras.layers.BatchNormalization(
        synchronized=True, momentum=0.9, epsilon=1e-5, name=f"{name}_bn"
    )(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_model(
    *,
    architecture,
    variant,
    num_classes,
    input_shape,
    width=16,
    method="euler",
    num_steps=2,
    gradient="checkpoint",
    weight_dynamics="rda",
    dynamics_config=None,
    norm="group",
    activation="relu",
    rtol=1e-3,
    atol=1e-6,
    max_num_steps=1000,
    weight_decay=0.0,
    name=None,
):
    """Builds an `ODEClassifier`: images [B, H, W, C] -> logits [B, num_classes].

    Args:
      architecture: "alexnet", "resnet4" or "resnet10".
      variant: "baseline", "anode" or "anodev2".
      num_classes: number of logits.
      input_shape: (H, W, C).
      width: channels w of the first stage.
      method, num_steps, gradient, rtol, atol, max_num_steps: ODE solver options (ODE variants).
      weight_dynamics, dynamics_config: q of the "anodev2" variant.
      norm, activation: options of f (`ConvODEFunc`).
      weight_decay: coupled weight decay of `train_step`.
      name: model name (default "<architecture>_<variant>").

    Raises:
      ValueError: on an unknown architecture/variant or a non-positive width/num_classes.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture. Expected one of {ARCHITECTURES}. Received: {architecture!r}"
        )
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant. Expected one of {VARIANTS}. Received: {variant!r}")
    if width < 1 or num_classes < 2:
        raise ValueError(
            f"width must be >= 1 and num_classes >= 2. Received: width={width}, num_classes={num_classes}"
        )
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C). Received: input_shape={input_shape}")

    counter = iter(range(100))

    def block(x):
        index = next(counter)
        func = functions.ConvODEFunc(norm=norm, activation=activation, name=f"f_{index}")
        if variant == "baseline":
            return blocks.ResidualBlock(func, name=f"residual_{index}")(x)
        solver = dict(
            method=method,
            num_steps=num_steps,
            gradient=gradient,
            rtol=rtol,
            atol=atol,
            max_num_steps=max_num_steps,
        )
        if variant == "anode":
            return blocks.ODEBlock(func, name=f"ode_{index}", **solver)(x)
        return blocks.CoupledODEBlock(
            func,
            weight_dynamics=weight_dynamics,
            dynamics_config=dynamics_config,
            name=f"coupled_ode_{index}",
            **solver,
        )(x)

    # keras.Input defaults to floatx, not the global dtype policy: follow the policy (float64 checks).
    inputs = keras.Input(
        shape=tuple(input_shape), name="images", dtype=keras.config.dtype_policy().compute_dtype
    )
    if architecture == "resnet4":
        x = _conv_bn_relu(inputs, width, 3, 1, "stem")
        x = block(x)
    elif architecture == "resnet10":
        x = _conv_bn_relu(inputs, width, 3, 1, "stem")
        x = block(x)
        x = _conv_bn_relu(x, 2 * width, 3, 2, "transition_1")
        x = block(x)
        x = _conv_bn_relu(x, 4 * width, 3, 2, "transition_2")
        x = block(x)
    else:
        x = _conv_bn_relu(inputs, width, 5, 1, "conv_1")
        x = keras.layers.MaxPooling2D(2, padding="same", name="pool_1")(x)
        x = block(x)
        x = _conv_bn_relu(x, 2 * width, 3, 1, "conv_4")
        x = keras.layers.MaxPooling2D(2, padding="same", name="pool_2")(x)
        x = block(x)
    x = keras.layers.AveragePooling2D(4, padding="same", name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if architecture == "alexnet":
        x = keras.layers.Dense(8 * width, activation="relu", name="fc_1")(x)
        x = keras.layers.Dense(4 * width, activation="relu", name="fc_2")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return ODEClassifier(
        inputs, logits, weight_decay=weight_decay, name=name or f"{architecture}_{variant}"
    )
