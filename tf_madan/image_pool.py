"""Image history pool for discriminator updates, as a fixed-shape variable buffer.

Reference: Shrivastava et al. 2017; CycleGAN's `ImagePool(50)`: until the
pool is full every new image is stored and returned; afterwards, with
probability 0.5 a random stored image is returned and replaced by the new
one, otherwise the new image is returned. A Python list would not survive
`tf.function`, so the pool is a [pool_size, H, W, C] variable plus a counter
(checkpointed with the model).
"""

import keras
import tensorflow as tf


class ImagePool(keras.layers.Layer):
    """History of generated images for one fake stream.

    Args:
      pool_size: number of stored images (50 in CycleGAN; 0 disables the pool).

    Call args:
      images: float [B, H, W, C] fakes (gradients are stopped).

    Returns:
      float [B, H, W, C]: a mix of the new images and stored older ones.
    """

    def __init__(self, pool_size=50, **kwargs):
        super().__init__(**kwargs)
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0. Received: pool_size={pool_size}")
        self.pool_size = int(pool_size)

    def build(self, input_shape):
        if self.pool_size == 0:
            return
        if any(d is None for d in input_shape[1:]):
            raise ValueError(
                f"ImagePool needs a static image shape [B, H, W, C]. Received: {input_shape}"
            )
        # ONLY_FIRST_REPLICA: under MirroredStrategy all replicas keep replica 0's history,
        # which lets the assign run in replica context.
        self.buffer = self.add_weight(
            shape=(self.pool_size, *input_shape[1:]),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="buffer",
        )
        self.count = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            aggregation="only_first_replica",
            name="count",
        )

    def call(self, images):
        images = tf.stop_gradient(images)
        if self.pool_size == 0:
            return images
        batch = tf.shape(images)[0]
        count = tf.convert_to_tensor(self.count)
        buffer = tf.convert_to_tensor(self.buffer)
        slots = count + tf.range(batch)
        # [B] booleans: store into a free slot, or swap with a random stored image.
        fill = slots < self.pool_size
        swap = tf.logical_and(~fill, tf.random.uniform([batch]) > 0.5)
        random_slots = tf.random.uniform([batch], 0, self.pool_size, dtype=tf.int32)
        slots = tf.where(fill, slots, random_slots)
        old = tf.gather(buffer, tf.minimum(slots, self.pool_size - 1))
        outputs = tf.where(swap[:, None, None, None], old, images)
        write = tf.logical_or(fill, swap)
        new_buffer = tf.tensor_scatter_nd_update(
            buffer,
            tf.boolean_mask(slots, write)[:, None],
            tf.cast(tf.boolean_mask(images, write), buffer.dtype),
        )
        self.buffer.assign(new_buffer)
        self.count.assign(tf.minimum(count + batch, self.pool_size))
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
