"""Image history pool for discriminator updates, as a fixed-shape variable buffer.

Reference: Shrivastava et al. 2017; CycleGAN's `ImagePool(50)`
(junyanz/pytorch-CycleGAN-and-pix2pix `util/image_pool.py`), which walks the batch one
image at a time: while fewer than `pool_size` images are stored the image is stored and
returned; afterwards, with probability 0.5 a random stored image is returned and replaced
by the new one, otherwise the new image is returned. Because the walk is sequential, an
image of a batch that meets a full pool can swap with a slot that an earlier image of the
same batch has just filled: a never-written (zero) slot is never returned.

A Python list would not survive `tf.function`, so the pool is a [pool_size, H, W, C]
variable plus counters (checkpointed with the model). Its randomness is stateless, keyed
by (seed, name) and a checkpointed call counter, so a run killed and resumed from a
checkpoint draws exactly the numbers of an uninterrupted run. Under `tf.distribute` the
pool runs on the all-gathered global batch, identically on every replica (same counter,
same draws), and each replica takes its own slice: any replica split equals one device.
"""

import zlib

import keras
import tensorflow as tf


class ImagePool(keras.layers.Layer):
    """History of generated images for one fake stream.

    Args:
      pool_size: number of stored images (50 in CycleGAN; 0 disables the pool).
      seed: integer seed of the pool's stateless random stream. It is combined with the
        layer `name` when one is passed, so pools with distinct names draw independent
        streams from one seed. (Keras' automatic names depend on creation order; pass a
        name or a seed for a stream that is stable across processes.)

    Call args:
      images: float [B, H, W, C] fakes (gradients are stopped).

    Returns:
      float [B, H, W, C]: a mix of the new images and stored older ones.
    """

    def __init__(self, pool_size=50, seed=0, **kwargs):
        name_given = kwargs.get("name") is not None
        super().__init__(**kwargs)
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0. Received: pool_size={pool_size}")
        self.pool_size = int(pool_size)
        self.seed = int(seed)
        name_key = zlib.crc32(self.name.encode()) if name_given else 0
        # Stateless seeds are int64 pairs: [stream key, call counter].
        self._stream_key = (name_key * 1_000_003 + self.seed) % (2**31 - 1)

    def build(self, input_shape):
        if self.pool_size == 0:
            return
        if any(d is None for d in input_shape[1:]):
            raise ValueError(
                f"ImagePool needs a static image shape [B, H, W, C]. Received: {input_shape}"
            )
        # ONLY_FIRST_REPLICA: every replica computes the same new value from the global
        # batch, so the assign can run in replica context.
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
        self.draws = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="draws",
        )

    def call(self, images):
        images = tf.stop_gradient(images)
        if self.pool_size == 0:
            return images
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return self._pool(images)
        # Global batch in replica order; every replica runs the same pool update.
        sizes = ctx.all_gather(tf.shape(images)[:1], axis=0)  # [R]
        global_images = ctx.all_gather(images, axis=0)
        outputs = self._pool(global_images)
        replica = ctx.replica_id_in_sync_group
        offset = tf.reduce_sum(sizes[:replica])
        return outputs[offset : offset + sizes[replica]]

    def _pool(self, images):
        size = self.pool_size
        batch = tf.shape(images)[0]
        count = tf.convert_to_tensor(self.count)
        buffer = tf.convert_to_tensor(self.buffer)
        draws = tf.convert_to_tensor(self.draws)
        key = tf.constant(self._stream_key, tf.int64)
        # [B] draws for this call: swap coin and swap slot, keyed by the call counter.
        coin = tf.random.stateless_uniform([batch], seed=tf.stack([key, 2 * draws]))
        random_slots = tf.random.stateless_uniform(
            [batch], seed=tf.stack([key, 2 * draws + 1]), minval=0, maxval=size, dtype=tf.int32
        )

        # Sequential walk in index space over [old buffer slots 0..P-1, batch images P..].
        def body(i, slot_map, picks):
            fill = count + i < size
            swap = tf.logical_and(tf.logical_not(fill), coin[i] > 0.5)
            slot = tf.where(fill, tf.minimum(count + i, size - 1), random_slots[i])
            new_index = size + i
            pick = tf.where(swap, slot_map[slot], new_index)
            written = tf.tensor_scatter_nd_update(slot_map, [[slot]], [new_index])
            slot_map = tf.where(tf.logical_or(fill, swap), written, slot_map)
            return i + 1, slot_map, picks.write(i, pick)

        _, slot_map, picks = tf.while_loop(
            lambda i, *_: i < batch,
            body,
            (
                tf.constant(0),
                tf.range(size),
                tf.TensorArray(tf.int32, size=batch, element_shape=()),
            ),
        )
        everything = tf.concat([buffer, tf.cast(images, buffer.dtype)], axis=0)
        outputs = tf.cast(tf.gather(everything, picks.stack()), images.dtype)
        self.buffer.assign(tf.gather(everything, slot_map))
        self.count.assign(tf.minimum(count + batch, size))
        self.draws.assign(draws + 1)
        return tf.ensure_shape(outputs, images.shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
