"""CycleGAN ResNet generator (`resnet_9blocks`) used for every G in MADAN.

Reference: Zhu et al. 2017 (CycleGAN); MADAN §2.1 of the spec: reflection
pad 3 -> c7s1-64 -> d128 -> d256 -> 9 x R256 (dropout 0.5 in the official
code) -> u128 -> u64 -> c7s1-3 -> tanh, instance norm without affine.
"""

import keras

from tf_madan.models.layers import (
    CropToInput,
    PadToMultiple,
    ReflectionPad2D,
    gan_initializer,
    instance_norm,
)


def _residual_block(x, filters, dropout_rate, name):
    y = ReflectionPad2D(1, name=f"{name}_pad1")(x)
    y = keras.layers.Conv2D(filters, 3, kernel_initializer=gan_initializer(), name=f"{name}_conv1")(
        y
    )
    y = instance_norm(f"{name}_norm1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu")(y)
    if dropout_rate > 0:
        y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
    y = ReflectionPad2D(1, name=f"{name}_pad2")(y)
    y = keras.layers.Conv2D(filters, 3, kernel_initializer=gan_initializer(), name=f"{name}_conv2")(
        y
    )
    y = instance_norm(f"{name}_norm2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def build_resnet_generator(
    *,
    filters=64,
    num_blocks=9,
    num_downsampling=2,
    dropout_rate=0.5,
    input_shape=(None, None, 3),
    name="generator",
):
    """Builds the CycleGAN ResNet generator.

    Args:
      filters: ngf, width of the first layer (64 in the paper).
      num_blocks: residual blocks at the bottleneck (9 in the paper).
      num_downsampling: stride-2 stages (2 in the paper).
      dropout_rate: dropout inside residual blocks (0.5 in the official code,
        which never passes `--no_dropout`; 0 for standard CycleGAN).
      input_shape: per-example input shape. Any H, W >= 4: sizes that are
        not multiples of 2**num_downsampling are reflect-padded inside the
        network and the output is cropped back to H x W.
      name: model name.

    Returns:
      keras.Model mapping images in [-1, 1] float32 [B, H, W, 3] to images in
      [-1, 1] float32 [B, H, W, 3].

    Raises:
      ValueError: on non-positive sizes or a bad input shape.
    """
    if filters < 1 or num_blocks < 0 or num_downsampling < 0:
        raise ValueError(
            "filters must be >= 1 and num_blocks, num_downsampling >= 0. Received: "
            f"filters={filters}, num_blocks={num_blocks}, num_downsampling={num_downsampling}"
        )
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"dropout_rate must be in [0, 1). Received: dropout_rate={dropout_rate}")
    multiple = 2**num_downsampling
    for size in input_shape[:2]:
        if size is not None and size < max(4, multiple):
            raise ValueError(
                f"Input height and width must be >= {max(4, multiple)} (reflection "
                f"padding). Received: input_shape={input_shape}"
            )
    images = keras.Input(shape=input_shape, name="image")
    # Sizes that are not multiples of 2**num_downsampling (GTA5 is 1914 wide)
    # are reflect-padded at the bottom/right and cropped back at the end; the
    # pad is empty (bit-identical) on multiples.
    x = PadToMultiple(multiple, name="pad_to_multiple")(images)
    x = ReflectionPad2D(3, name="stem_pad")(x)
    x = keras.layers.Conv2D(filters, 7, kernel_initializer=gan_initializer(), name="stem_conv")(x)
    x = instance_norm("stem_norm")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    width = filters
    for i in range(num_downsampling):
        width *= 2
        x = keras.layers.ZeroPadding2D(1, name=f"down{i}_pad")(x)
        x = keras.layers.Conv2D(
            width, 3, strides=2, kernel_initializer=gan_initializer(), name=f"down{i}_conv"
        )(x)
        x = instance_norm(f"down{i}_norm")(x)
        x = keras.layers.ReLU(name=f"down{i}_relu")(x)
    for i in range(num_blocks):
        x = _residual_block(x, width, dropout_rate, name=f"block{i}")
    for i in range(num_downsampling):
        width //= 2
        # ConvTranspose2d(k3, s2, p1, output_padding=1): the full transposed conv
        # has 2H + 1 rows; PyTorch drops row 0 (padding 1) and keeps 2H rows.
        # Keras 'same' would keep rows 0..2H-1, one row off.
        x = keras.layers.Conv2DTranspose(
            width,
            3,
            strides=2,
            padding="valid",
            kernel_initializer=gan_initializer(),
            name=f"up{i}_conv",
        )(x)
        x = keras.layers.Cropping2D(((1, 0), (1, 0)), name=f"up{i}_crop")(x)
        x = instance_norm(f"up{i}_norm")(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    x = ReflectionPad2D(3, name="head_pad")(x)
    x = keras.layers.Conv2D(3, 7, kernel_initializer=gan_initializer(), name="head_conv")(x)
    x = keras.layers.Activation("tanh", name="head_tanh")(x)
    outputs = CropToInput(name="crop_to_input")([x, images])
    return keras.Model(images, outputs, name=name)
