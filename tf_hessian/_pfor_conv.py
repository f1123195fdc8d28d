"""pfor converters for per-vector conv filters, depthwise convs and a batched max-pool gradient.

``HessianOperator.hvp_batch`` maps the Hessian-vector product over k vectors
with ``tf.vectorized_map``. The tangent of a convolution with respect to its
kernel is ``conv(x, dW)``, and its backward pass needs
``conv2d_backprop_input(dW, dy)`` and ``conv2d_backprop_filter(dx, dy)``, where
dW, dx differ per vector while x, dy are the (shared) primal values. TF 2.21's
pfor rejects the first two ("Input "filter" of op 'Conv2D' expected to be loop
invariant") and runs the third as a ``while_loop``. All three are one larger
convolution: convolutions are independent per output channel (Conv2D) or per
input channel (the two backward ops), so the k filters (or k inputs) are merged
into the channel axis, run as one op and split again. TF's pfor has no
converter at all for ``DepthwiseConv2dNative`` with a per-vector filter nor for
its two backward ops (MobileNetV2, EfficientNet); a depthwise convolution is
independent per input channel, so the k vectors' inputs, filters and output
gradients (the vector-independent ones tiled) become k groups of input channels
of one depthwise op. ``MaxPoolGrad`` of k
per-vector gradients with a shared input is run on the tiled input after
re-running the forward pool on it, so that the oneDNN rewrite pairs the two
(TF's converter tiles too, but its lone ``MaxPoolGrad`` then runs on the Eigen
kernel, about 10x slower on CPU for C1's shapes). Every other case is left to
TF's own converter.

This patches TF's private converter registry
(``tensorflow.python.ops.parallel_for.pfor._pfor_converter_registry``); if the
registry is not found the patch is skipped and pfor keeps its behaviour
(``hvp_batch`` then falls back to ``tf.map_fn`` with a warning, never a wrong
result). The patch is process-wide once a ``HessianOperator`` is built, so other pfor users
(``tape.jacobian``, ``full_hessian``) get the same converters: they only handle cases TF
rejected, looped over, or ran on its slow kernel, and compute the same values. Tested
against explicit Hessians in tests/tf_hessian/test_hvp_batch.py.
"""

from __future__ import annotations

import functools

import tensorflow as tf

try:  # A private TF module: guard it, the batched HVP degrades to map_fn without it.
    from tensorflow.python.ops.parallel_for import pfor as _pfor
except ImportError:  # pragma: no cover - depends on the TF build
    _pfor = None

_MARK = "_tf_hessian_filter_stacked"


def _channels_to_vectors(out, k, channels):
    """[B, H, W, k * channels] -> [k, B, H, W, channels]: splits the k merged channel groups."""
    shape = tf.shape(out)
    out = tf.reshape(out, tf.stack([shape[0], shape[1], shape[2], k, channels]))
    return tf.transpose(out, [3, 0, 1, 2, 4])


def _conv2d(original):
    def convert(pfor_input):
        x, x_stacked, _ = pfor_input.input(0)
        kernel, kernel_stacked, _ = pfor_input.input(1)
        if not kernel_stacked or x_stacked or pfor_input.get_attr("data_format") != b"NHWC":
            return original(pfor_input)
        # kernel [k, kh, kw, cin, cout] -> [kh, kw, cin, k * cout]: k output-channel groups.
        shape = tf.shape(kernel)
        merged = tf.reshape(
            tf.transpose(kernel, [1, 2, 3, 0, 4]),
            tf.stack([shape[1], shape[2], shape[3], shape[0] * shape[4]]),
        )
        out = _pfor._create_op(
            "Conv2D", [x, merged], [x.dtype], attrs=pfor_input.op.node_def.attr
        ).outputs[0]
        return _pfor.wrap(_channels_to_vectors(out, shape[0], shape[4]), True)

    return convert


def _conv2d_backprop_input(original):
    def convert(pfor_input):
        sizes = pfor_input.input(0)
        kernel, kernel_stacked, _ = pfor_input.input(1)
        grads, grads_stacked, _ = pfor_input.input(2)
        if (
            not kernel_stacked
            or grads_stacked
            or sizes[1]
            or pfor_input.get_attr("data_format") != b"NHWC"
        ):
            return original(pfor_input)
        # kernel [k, kh, kw, cin, cout] -> [kh, kw, k * cin, cout]: k input-channel groups.
        shape = tf.shape(kernel)
        merged = tf.reshape(
            tf.transpose(kernel, [1, 2, 0, 3, 4]),
            tf.stack([shape[1], shape[2], shape[0] * shape[3], shape[4]]),
        )
        input_sizes = sizes[0] * tf.stack([1, 1, 1, tf.cast(shape[0], sizes[0].dtype)])
        out = _pfor._create_op(
            "Conv2DBackpropInput",
            [input_sizes, merged, grads],
            [grads.dtype],
            attrs=pfor_input.op.node_def.attr,
        ).outputs[0]
        return _pfor.wrap(_channels_to_vectors(out, shape[0], shape[3]), True)

    return convert


def _conv2d_backprop_filter(original):
    def convert(pfor_input):
        x, x_stacked, _ = pfor_input.input(0)
        sizes = pfor_input.input(1)
        grads, grads_stacked, _ = pfor_input.input(2)
        if (
            not x_stacked
            or grads_stacked
            or sizes[1]
            or pfor_input.get_attr("data_format") != b"NHWC"
        ):
            return original(pfor_input)
        # x [k, B, H, W, cin] -> [B, H, W, k * cin]; the filter gradient splits the same way.
        shape = tf.shape(x)
        merged = tf.reshape(
            tf.transpose(x, [1, 2, 3, 0, 4]),
            tf.stack([shape[1], shape[2], shape[3], shape[0] * shape[4]]),
        )
        filter_sizes = sizes[0] * tf.stack([1, 1, tf.cast(shape[0], sizes[0].dtype), 1])
        out = _pfor._create_op(
            "Conv2DBackpropFilter",
            [merged, filter_sizes, grads],
            [grads.dtype],
            attrs=pfor_input.op.node_def.attr,
        ).outputs[0]
        fs = sizes[0]  # [kh, kw, cin, cout]
        out = tf.reshape(out, tf.stack([fs[0], fs[1], tf.cast(shape[0], fs.dtype), fs[2], fs[3]]))
        return _pfor.wrap(tf.transpose(out, [2, 0, 1, 3, 4]), True)

    return convert


def _max_pool_grad(original):
    def convert(pfor_input):
        x, x_stacked, _ = pfor_input.input(0)
        y_stacked = pfor_input.input(1)[1]
        grads, grads_stacked, _ = pfor_input.input(2)
        if x_stacked or y_stacked or not grads_stacked:
            return original(pfor_input)
        # TF's converter tiles x and y to k * B; its MaxPoolGrad then runs on the plain Eigen
        # kernel (10x slower on CPU than oneDNN's, which needs the workspace of its own forward
        # pool). Re-running the forward pool on the tiled x lets the oneDNN rewrite pair the two.
        k = pfor_input.pfor.loop_len_vector
        tiled = tf.tile(x, tf.concat([k, tf.ones([tf.rank(x) - 1], k.dtype)], 0))
        attrs = {
            name: pfor_input.op.node_def.attr[name]
            for name in ("ksize", "strides", "padding", "data_format", "T")
        }
        pooled = _pfor._create_op("MaxPool", [tiled], [x.dtype], attrs=attrs).outputs[0]
        out = _pfor._create_op(
            "MaxPoolGrad",
            [tiled, pooled, _pfor._flatten_first_two_dims(grads)],
            [x.dtype],
            attrs=pfor_input.op.node_def.attr,
        ).outputs[0]
        return _pfor.wrap(_pfor._unflatten_first_dim(out, k), True)

    return convert


def _to_channels(t, k):
    """[k, B, H, W, C] -> [B, H, W, k * C] (vector-major channel groups)."""
    shape = tf.shape(t)
    return tf.reshape(
        tf.transpose(t, [1, 2, 3, 0, 4]), tf.stack([shape[1], shape[2], shape[3], k * shape[4]])
    )


def _depthwise_filter_to_channels(f, k):
    """[k, kh, kw, cin, mult] -> [kh, kw, k * cin, mult]."""
    shape = tf.shape(f)
    return tf.reshape(
        tf.transpose(f, [1, 2, 0, 3, 4]), tf.stack([shape[1], shape[2], k * shape[3], shape[4]])
    )


def _depthwise_ready(pfor_input, sizes_index=None):
    """Whether the converter applies: NHWC and no per-vector input/filter sizes."""
    if pfor_input.get_attr("data_format") != b"NHWC":
        return False
    return sizes_index is None or not pfor_input.input(sizes_index)[1]


def _depthwise(original):
    # A depthwise conv is independent per input channel, so the k vectors' inputs and filters
    # become k groups of input channels of one depthwise conv (output channel (j, c, m)).
    def convert(pfor_input):
        if not _depthwise_ready(pfor_input):
            return original(pfor_input)
        k = pfor_input.pfor.loop_len_vector[0]
        pfor_input.stack_inputs([0, 1])  # the vector-independent operand is tiled k times
        x = _to_channels(pfor_input.stacked_input(0), k)
        f = _depthwise_filter_to_channels(pfor_input.stacked_input(1), k)
        out = _pfor._create_op(
            "DepthwiseConv2dNative", [x, f], [x.dtype], attrs=pfor_input.op.node_def.attr
        ).outputs[0]
        return _pfor.wrap(_channels_to_vectors(out, k, tf.shape(out)[3] // k), True)

    return convert


def _depthwise_backprop_input(original):
    def convert(pfor_input):
        if not _depthwise_ready(pfor_input, sizes_index=0):
            return original(pfor_input)
        k = pfor_input.pfor.loop_len_vector[0]
        sizes = pfor_input.unstacked_input(0)
        pfor_input.stack_inputs([1, 2])
        f = _depthwise_filter_to_channels(pfor_input.stacked_input(1), k)
        grads = _to_channels(pfor_input.stacked_input(2), k)
        input_sizes = sizes * tf.stack([1, 1, 1, tf.cast(k, sizes.dtype)])
        out = _pfor._create_op(
            "DepthwiseConv2dNativeBackpropInput",
            [input_sizes, f, grads],
            [grads.dtype],
            attrs=pfor_input.op.node_def.attr,
        ).outputs[0]
        return _pfor.wrap(_channels_to_vectors(out, k, sizes[3]), True)

    return convert


def _depthwise_backprop_filter(original):
    def convert(pfor_input):
        if not _depthwise_ready(pfor_input, sizes_index=1):
            return original(pfor_input)
        k = pfor_input.pfor.loop_len_vector[0]
        pfor_input.stack_inputs([0, 2])
        x = _to_channels(pfor_input.stacked_input(0), k)
        sizes = pfor_input.unstacked_input(1)  # [kh, kw, cin, mult]
        grads = _to_channels(pfor_input.stacked_input(2), k)
        filter_sizes = sizes * tf.stack([1, 1, tf.cast(k, sizes.dtype), 1])
        out = _pfor._create_op(
            "DepthwiseConv2dNativeBackpropFilter",
            [x, filter_sizes, grads],
            [grads.dtype],
            attrs=pfor_input.op.node_def.attr,
        ).outputs[0]
        out = tf.reshape(
            out, tf.stack([sizes[0], sizes[1], tf.cast(k, sizes.dtype), sizes[2], sizes[3]])
        )
        return _pfor.wrap(tf.transpose(out, [2, 0, 1, 3, 4]), True)

    return convert


_PATCHES = {
    "DepthwiseConv2dNative": _depthwise,
    "DepthwiseConv2dNativeBackpropInput": _depthwise_backprop_input,
    "DepthwiseConv2dNativeBackpropFilter": _depthwise_backprop_filter,
    "MaxPoolGrad": _max_pool_grad,
    "Conv2D": _conv2d,
    "Conv2DBackpropInput": _conv2d_backprop_input,
    "Conv2DBackpropFilter": _conv2d_backprop_filter,
}


def install() -> bool:
    """Installs the converters once; returns whether pfor now has them."""
    registry = getattr(_pfor, "_pfor_converter_registry", None)
    if registry is None:
        return False
    for name, make in _PATCHES.items():
        if not getattr(registry.get(name), _MARK, False):
            convert = make(registry.get(name, functools.partial(_no_converter, name)))
            setattr(convert, _MARK, True)
            registry[name] = convert
    return True


def _no_converter(name, pfor_input):
    del pfor_input
    raise ValueError(f"No pfor converter for op type {name} in this case.")
