"""In-graph decoding of one (image, label) pair into (uint8 image, int32 train ids).

The checks here back up `readers.validate_headers`, which already catches missing,
unreadable and mismatched files while the file list is built. What cannot be known
from headers (label ids outside the dataset's table) fails here with an
`InvalidArgumentError` whose message names the file and the offending ids;
`build_dataset(validate="full")` catches those up front instead.
"""

import numpy as np
import tensorflow as tf

from input_pipelines.driving import labels as labels_lib
from input_pipelines.driving import readers


def _read_index_png(path):
    """Reads palette indices (not colours) of an 8-bit palette or grey PNG via PIL."""
    path = path.decode() if isinstance(path, bytes) else str(path)
    return readers.read_raw_label(path, "png8_index").astype(np.uint8)


def _assert(condition, *message):
    return tf.debugging.Assert(condition, [tf.strings.join(list(message))], summarize=64)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every PNG ends with


def check_intact(data, path):
    """Assert op: `data` (a file's bytes) is a whole PNG (signature + IEND) or JPEG (SOI + EOI).

    TF's decoders report a truncated or overwritten file without its name ("Invalid PNG data");
    this check fails first, naming the file, also mid-training.
    """
    size = tf.strings.length(data)
    is_png = tf.equal(tf.strings.substr(data, 0, 8), _PNG_SIGNATURE)
    png_whole = tf.logical_and(
        size >= 20, tf.equal(tf.strings.substr(data, tf.maximum(size - 12, 0), 12), _PNG_TRAILER)
    )
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")
    jpeg_whole = tf.equal(tf.strings.substr(data, tf.maximum(size - 2, 0), 2), b"\xff\xd9")
    intact = tf.logical_or(tf.logical_and(is_png, png_whole), tf.logical_and(is_jpeg, jpeg_whole))
    return _assert(intact, "corrupt or truncated image file (not a whole PNG/JPEG): ", path)


def decode_image(image_path):
    """Decodes an RGB PNG/JPEG file into uint8 [H, W, 3]."""
    data = tf.io.read_file(image_path)
    with tf.control_dependencies([check_intact(data, image_path)]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def decode_raw_label(label_path, label_format):
    """Decodes the raw label ids of one file (no remapping).

    Args:
      label_path: scalar string tensor.
      label_format: a `readers.DatasetSpec.label_format`.

    Returns:
      integer tensor [H, W] (uint8 or uint16).
    """
    if label_format == "png8_index":
        raw = tf.numpy_function(_read_index_png, [label_path], tf.uint8, stateful=False)
        raw.set_shape([None, None])
        return raw
    data = tf.io.read_file(label_path)
    with tf.control_dependencies([check_intact(data, label_path)]):
        data = tf.identity(data)
    color_type = tf.strings.substr(data, 25, 1)
    if label_format == "png16_first_channel":
        bit_depth = tf.strings.substr(data, 24, 1)
        check = _assert(
            tf.logical_and(
                tf.equal(bit_depth, b"\x10"),
                tf.logical_or(tf.equal(color_type, b"\x02"), tf.equal(color_type, b"\x06")),
            ),
            "expected a 16-bit multi-channel label PNG: ",
            label_path,
        )
        with tf.control_dependencies([check]):
            raw = tf.io.decode_png(data, channels=0, dtype=tf.uint16)[..., 0]
    else:
        # TF expands palettes to colours; a palette file here would give luminance.
        check = _assert(
            tf.equal(color_type, b"\x00"), "expected a greyscale label PNG: ", label_path
        )
        with tf.control_dependencies([check]):
            raw = tf.io.decode_png(data, channels=1)[..., 0]
    raw.set_shape([None, None])
    return raw


def map_label(raw, dataset, label_path):
    """Maps raw ids to train ids with an in-graph check naming the file on bad ids.

    Args:
      raw: integer tensor [H, W] of raw ids.
      dataset: dataset name (selects the table).
      label_path: scalar string tensor, used in the error message.

    Returns:
      int32 tensor [H, W] with values in 0..18 or 255.
    """
    size = 65536 if raw.dtype == tf.uint16 else 256
    table = tf.constant(labels_lib.lookup_table(dataset, size=size))
    mapped = tf.gather(table, tf.cast(raw, tf.int32))
    bad_ids, _ = tf.unique(
        tf.boolean_mask(tf.reshape(tf.cast(raw, tf.int32), [-1]), tf.reshape(mapped < 0, [-1]))
    )
    check = _assert(
        tf.reduce_all(mapped >= 0),
        f"label ids outside the {dataset} table in ",
        label_path,
        ": ",
        tf.strings.reduce_join(tf.strings.as_string(bad_ids[:16]), separator=","),
    )
    with tf.control_dependencies([check]):
        return tf.identity(mapped)


def decode_example(image_path, label_path, *, dataset):
    """Decodes and remaps one example.

    Args:
      image_path: scalar string tensor.
      label_path: scalar string tensor.
      dataset: dataset name in `readers.DATASET_NAMES`.

    Returns:
      (image uint8 [H, W, 3], label int32 [H, W] train ids / 255).
    """
    spec = readers.get_spec(dataset)
    image = decode_image(image_path)
    raw = decode_raw_label(label_path, spec.label_format)
    label = map_label(raw, dataset, label_path)
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(label)))
    check = _assert(same_size, "image/label size mismatch: ", image_path, " vs ", label_path)
    with tf.control_dependencies([check]):
        return tf.identity(image), tf.identity(label)
