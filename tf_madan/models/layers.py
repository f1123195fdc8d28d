"""Small layers shared by the MADAN networks (Keras 3 ports of PyTorch ops)."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def gan_initializer(seed=None):
    """N(0, 0.02) weight init used by CycleGAN's `init_weights(init_type='normal')`."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seed)


def instance_norm(name):
    """InstanceNorm2d(affine=False, eps=1e-5) as GroupNormalization(groups=-1)."""
    return keras.layers.GroupNormalization(
        groups=-1, center=False, scale=False, epsilon=1e-5, name=name
    )


@keras.saving.register_keras_serializable(package="tf_madan")
class ReflectionPad2D(keras.layers.Layer):
    """Reflection padding of H and W (PyTorch `nn.ReflectionPad2d(p)`).

    Input [B, H, W, C] -> output [B, H + 2p, W + 2p, C].
    """

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p = 2 * self.padding
        return (b, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tf_madan")
class CropToReference(keras.layers.Layer):
    """Crops `x` to the spatial size of `reference`, starting at `offset`.

    FCN's `crop(x, ref, offset)`: inputs [x [B, H, W, C], reference
    [B, h, w, *]] -> x[:, o:o + h, o:o + w, :].
    """

    def __init__(self, offset, **kwargs):
        super().__init__(**kwargs)
        self.offset = int(offset)

    def call(self, inputs):
        x, reference = inputs
        o = self.offset
        shape = ops.shape(reference)
        return x[:, o : o + shape[1], o : o + shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@keras.saving.register_keras_serializable(package="tf_madan")
class ScaleLayer(keras.layers.Layer):
    """Multiplies by a fixed constant (FCN8s's 0.01 * pool4, 1e-4 * pool3)."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return inputs * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def bilinear_kernel(kernel_size, channels):
    """Per-channel bilinear upsampling kernel [k, k, C, C] (FCN's `get_upsampling_weight`)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.ogrid[:kernel_size, :kernel_size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    weight = np.zeros((kernel_size, kernel_size, channels, channels), np.float32)
    for c in range(channels):
        weight[:, :, c, c] = filt
    return weight


def fixed_bilinear_upsampling(channels, kernel_size, stride, name):
    """Non-trainable bilinear Conv2DTranspose without bias (padding 'valid')."""
    return keras.layers.Conv2DTranspose(
        channels,
        kernel_size,
        strides=stride,
        padding="valid",
        use_bias=False,
        kernel_initializer=keras.initializers.Constant(bilinear_kernel(kernel_size, channels)),
        trainable=False,
        name=name,
    )


@keras.saving.register_keras_serializable(package="tf_madan")
class BilinearUpsample(keras.layers.Layer):
    """Bilinear upsampling by an integer factor that works with dynamic H, W.

    `keras.layers.UpSampling2D` needs static spatial sizes inside a traced
    SavedModel signature; this layer reads the shape at run time.
    Input [B, H, W, C] -> [B, factor*H, factor*W, C]. `align_corners=True`
    matches PyTorch's `nn.Upsample(align_corners=True)` (DRN's head).
    """

    def __init__(self, factor, align_corners=False, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * self.factor
        if self.align_corners:
            return tf.compat.v1.image.resize_bilinear(inputs, size, align_corners=True)
        return tf.image.resize(inputs, size, method="bilinear")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "align_corners": self.align_corners,
        }


@keras.saving.register_keras_serializable(package="tf_madan")
class PadToMultiple(keras.layers.Layer):
    """Reflect-pads H and W at the bottom/right up to a multiple of `multiple`.

    Input [B, H, W, C] -> [B, ceil(H / m) * m, ceil(W / m) * m, C]; the
    identity when H and W are multiples already. Pair with `CropToInput` to
    return to [B, H, W, C] (issue 12: GTA5 frames are 1914 wide).
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        m = self.multiple
        shape = tf.shape(inputs)
        pad_h = (-shape[1]) % m
        pad_w = (-shape[2]) % m
        return tf.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        m = self.multiple

        def up(size):
            return None if size is None else -(-size // m) * m

        return (b, up(h), up(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="tf_madan")
class CropToInput(keras.layers.Layer):
    """Crops `x` [B, H', W', C] to the H, W of `reference` [B, H, W, *] (top-left)."""

    def call(self, inputs):
        x, reference = inputs
        shape = tf.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package="tf_madan")
class ResizeToReference(keras.layers.Layer):
    """Bilinear resize of `x` to the H, W of `reference`, PyTorch-style.

    CyCADA's DRN head: `F.upsample(x, (h, w), mode="bilinear",
    align_corners=True)`, which returns the input size for any H, W.
    Inputs [x [B, h, w, C], reference [B, H, W, *]] -> [B, H, W, C].
    """

    def __init__(self, align_corners=True, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        if self.align_corners:
            return tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)
        return tf.image.resize(x, size, method="bilinear")

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "align_corners": self.align_corners}
