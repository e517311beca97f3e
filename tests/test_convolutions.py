"""The convolution rewrites against TensorFlow's and Keras' stock ops: forward and every gradient, float32 at
tight tolerance, bfloat16 at bfloat16's; where the layers take them; the switch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_lab.convolutions import (FEW_CHANNELS, FastConv2D, FastConv2DTranspose, conv2d, conv2d_transpose,
                                  conv2d_transpose_to_few_channels, convolves_to_few_channels, few_channels,
                                  filter_gradient, filter_gradient_as_matmul, filter_gradient_by_matmul, rewrites)

# (input side, kernel, channels in, channels out, stride): dcgan's layers, even kernels, sizes the stride leaves over
SHAPES = [(7, 5, 128, 256, 1), (14, 5, 64, 128, 2), (28, 5, 1, 64, 2), (9, 4, 3, 5, 2), (8, 3, 2, 6, 1), (11, 5, 4, 3, 3)]


def relative_error(a, b) -> float:
    a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
    return float(np.abs(a - b).max() / np.abs(a).max())


def random(shape, dtype=tf.float32, seed=0):
    return tf.cast(tf.random.stateless_normal(shape, [seed, len(shape)]), dtype)


@pytest.mark.parametrize("side, kernel, channels, filters, stride", SHAPES)
def test_filter_gradient_is_tensorflows(side, kernel, channels, filters, stride):
    x = random((3, side, side, channels))
    dy = random((3, -(-side // stride), -(-side // stride), filters), seed=1)
    native = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[kernel, kernel, channels, filters], out_backprop=dy,
                                             strides=[1, stride, stride, 1], padding="SAME")
    assert relative_error(native, filter_gradient(x, dy, (kernel, kernel), stride)) < 1e-5


def gradients(function, inputs, seed=2):
    """(output, d output-weighted sum / d each input) of ``function(*inputs)``."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = function(*inputs)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * random(y.shape, seed=seed))
    return [y, *tape.gradient(loss, inputs)]


@pytest.mark.parametrize("rewrite_filter_gradient", [True, False])
@pytest.mark.parametrize("dtype, tolerance", [(tf.float32, 1e-5), (tf.bfloat16, 2e-2)])
@pytest.mark.parametrize("side, kernel, channels, filters, stride", SHAPES)
def test_conv2d_and_its_gradients_are_tensorflows(side, kernel, channels, filters, stride, dtype, tolerance,
                                                  rewrite_filter_gradient):
    """Its input gradient to 1-3 channels is ``to_few_channels``'s, to more TensorFlow's."""
    inputs = [random((3, side, side, channels), dtype), random((kernel, kernel, channels, filters), dtype, seed=1)]
    native = gradients(lambda x, w: tf.nn.conv2d(x, w, stride, "SAME"), inputs)
    kernel_gradient = filter_gradient if rewrite_filter_gradient else None
    rewritten = gradients(lambda x, w: conv2d(x, w, stride, kernel_gradient, channels <= FEW_CHANNELS), inputs)
    for name, a, b in zip(("forward", "input gradient", "filter gradient"), native, rewritten):
        assert relative_error(a, b) < tolerance, name


@pytest.mark.parametrize("dtype, tolerance", [(tf.float32, 1e-5), (tf.bfloat16, 2e-2)])
@pytest.mark.parametrize("side, kernel, channels, filters, stride", [s for s in SHAPES if s[0] % s[4] == 0])
def test_conv2d_transpose_and_its_gradients_are_tensorflows(side, kernel, channels, filters, stride, dtype, tolerance):
    small = side // stride  # the transposed convolution maps (small, filters) up to (side, channels)
    inputs = [random((3, small, small, filters), dtype), random((kernel, kernel, channels, filters), dtype, seed=1)]
    shape = [3, side, side, channels]
    native = gradients(lambda x, w: tf.nn.conv2d_transpose(x, w, shape, stride, "SAME"), inputs)
    rewritten = gradients(lambda x, w: conv2d_transpose(x, w, stride, shape), inputs)
    for name, a, b in zip(("forward", "input gradient", "filter gradient"), native, rewritten):
        assert relative_error(a, b) < tolerance, name


# (output side, kernel, output channels, input channels, stride): G's last layer (dcgan's G3), and others
TO_IMAGE_SHAPES = [(28, 5, 1, 64, 2), (18, 4, 3, 5, 2), (33, 5, 2, 4, 3), (12, 6, 2, 3, 2), (12, 5, 1, 3, 4),
                   (10, 3, 1, 8, 1)]


@pytest.mark.parametrize("dtype, tolerance", [(tf.float32, 1e-5), (tf.bfloat16, 2e-2)])
@pytest.mark.parametrize("side, kernel, channels, filters, stride", TO_IMAGE_SHAPES)
def test_conv2d_transpose_to_few_channels_and_its_gradients_are_tensorflows(side, kernel, channels, filters, stride,
                                                                            dtype, tolerance):
    small = side // stride
    inputs = [random((3, small, small, filters), dtype), random((kernel, kernel, channels, filters), dtype, seed=1)]
    shape = [3, side, side, channels]
    native = gradients(lambda x, w: tf.nn.conv2d_transpose(x, w, shape, stride, "SAME"), inputs)
    rewritten = gradients(lambda x, w: conv2d_transpose_to_few_channels(x, w, stride), inputs)
    assert rewritten[0].shape == native[0].shape
    for name, a, b in zip(("forward", "input gradient", "filter gradient"), native, rewritten):
        assert relative_error(a, b) < tolerance, name


# (input side, kernel, channels in, channels out, stride): tfgan's G's last layer, and others
FROM_MANY_TO_IMAGE_SHAPES = [(28, 4, 32, 1, 1), (9, 4, 5, 3, 2), (11, 5, 6, 2, 3), (12, 3, 8, 1, 1), (10, 6, 4, 2, 2)]


@pytest.mark.parametrize("matmul_filter_gradient", [True, False])
@pytest.mark.parametrize("dtype, tolerance", [(tf.float32, 1e-5), (tf.bfloat16, 2e-2)])
@pytest.mark.parametrize("side, kernel, channels, filters, stride", FROM_MANY_TO_IMAGE_SHAPES)
def test_conv2d_to_an_image_and_its_gradients_are_tensorflows(side, kernel, channels, filters, stride, dtype,
                                                              tolerance, matmul_filter_gradient):
    inputs = [random((3, side, side, channels), dtype), random((kernel, kernel, channels, filters), dtype, seed=1)]
    native = gradients(lambda x, w: tf.nn.conv2d(x, w, stride, "SAME"), inputs)
    kernel_gradient = filter_gradient_by_matmul if matmul_filter_gradient else None
    rewritten = gradients(lambda x, w: conv2d(x, w, stride, kernel_gradient, forward_to_image=True), inputs)
    assert rewritten[0].shape == native[0].shape
    for name, a, b in zip(("forward", "input gradient", "filter gradient"), native, rewritten):
        assert relative_error(a, b) < tolerance, name


# kind: input shape and dtype, dtype policy, stock and fast layer, filters, kernel, stride, activation
IMAGE_LAYERS = {
    "G3": ((4, 14, 14, 64), tf.float32, "float32", keras.layers.Conv2DTranspose, FastConv2DTranspose, 1, 5, 2, "tanh"),
    "D1": ((4, 28, 28, 1), tf.bfloat16, "mixed_bfloat16", keras.layers.Conv2D, FastConv2D, 64, 5, 2, None),
    "tfgan G4": ((4, 28, 28, 32), tf.float32, "float32", keras.layers.Conv2D, FastConv2D, 1, 4, 1, "tanh"),
}


def image_layers(kind: str, use_bias: bool):
    """(input, Keras' layer, the fast one with its weights) of ``IMAGE_LAYERS``: dcgan's G3 (to one channel) and D1
    (from one), tfgan's last layer (a convolution to one channel), weights and bias nonzero."""
    shape, input_dtype, dtype, stock, fast, filters, kernel, stride, activation = IMAGE_LAYERS[kind]
    x = random(shape, input_dtype)
    stock_layer, fast_layer = (layer(filters, kernel, strides=stride, padding="same", use_bias=use_bias,
                                     activation=activation, dtype=dtype) for layer in (stock, fast))
    for layer in (stock_layer, fast_layer):
        layer.build(x.shape)
    fast_layer.set_weights([w + 0.1 for w in stock_layer.get_weights()])
    stock_layer.set_weights(fast_layer.get_weights())
    return x, stock_layer, fast_layer


@pytest.mark.parametrize("kind, tolerances", [("G3", (1e-5, 1e-5, 2e-4, 2e-4)), ("D1", (2e-2,) * 4),
                                              ("tfgan G4", (1e-5, 1e-5, 2e-4, 2e-4))])
@pytest.mark.parametrize("use_bias", [False, True])
def test_the_image_layers_are_kerass_with_the_same_outputs_and_gradients(kind, tolerances, use_bias):
    x, stock_layer, fast_layer = image_layers(kind, use_bias)
    assert few_channels(fast_layer, (None, 28, 28, 1))
    results = []
    for layer in (stock_layer, fast_layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * random(y.shape, seed=3))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    # the weights' gradients sum every output pixel's, in another order than Keras' (and, over threads, not the same
    # order each run): float32 rounding reaches ~3e-5 of the largest there
    for name, a, b, tolerance in zip(("output", "input gradient", "kernel gradient", "bias gradient"), *results,
                                     tolerances):
        assert relative_error(a, b) < tolerance, name


def test_the_image_direction_is_taken_for_few_channels_of_known_size():
    def layer(strides=2, **kwargs):
        return FastConv2DTranspose(1, 5, strides=strides, padding="same", **kwargs)

    image = (None, 28, 28, 1)
    assert few_channels(layer(), image)  # G's last layer
    assert few_channels(layer(dtype="mixed_bfloat16"), image)
    assert few_channels(layer(strides=1), image)
    assert few_channels(FastConv2DTranspose(1, (5, 3), strides=2, padding="same"), image)
    assert few_channels(FastConv2D(64, 5, strides=2, padding="same"), image)  # D's first layer
    assert few_channels(FastConv2D(64, 5, strides=2, padding="same"), (None, 28, 28, 3))  # RGB
    assert convolves_to_few_channels(FastConv2D(1, 4, padding="same", dtype="float32"), image)  # tfgan's last layer
    assert not convolves_to_few_channels(FastConv2D(3, 5, strides=2, padding="same"), (None, 14, 14, 3))  # slower
    assert filter_gradient_as_matmul(FastConv2D(1, 4, padding="same", dtype="float32"))
    assert not filter_gradient_as_matmul(FastConv2D(1, 4, padding="same", dtype="mixed_bfloat16"))  # slower in bf16
    assert not few_channels(FastConv2D(64, 5, strides=2, padding="same"), (None, 14, 14, 64))  # oneDNN's is fast
    assert not few_channels(layer(), (None, None, None, 1))  # the size unknown
    assert not few_channels(layer(strides=(2, 1)), image)
    assert not few_channels(FastConv2DTranspose(1, 5, strides=2, padding="valid"), image)
    assert not few_channels(layer(output_padding=1), image)


@pytest.mark.parametrize("stock, fast", [(keras.layers.Conv2D, FastConv2D),
                                         (keras.layers.Conv2DTranspose, FastConv2DTranspose)])
@pytest.mark.parametrize("strides", [1, 2])
def test_the_fast_layers_are_keras_layers_with_the_same_weights_and_gradients(stock, fast, strides):
    x = random((4, 8, 8, 32), tf.bfloat16)
    stock_layer, fast_layer = (kind(24, 5, strides=strides, padding="same", dtype="mixed_bfloat16")
                               for kind in (stock, fast))
    stock_layer.build(x.shape)
    fast_layer.build(x.shape)
    fast_layer.set_weights(stock_layer.get_weights())
    assert rewrites(fast_layer, 32)
    results = []
    for layer in (stock_layer, fast_layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * random(y.shape, seed=3))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for name, a, b in zip(("output", "input gradient", "kernel gradient", "bias gradient"), *results):
        assert relative_error(a, b) < 2e-2, name


def test_the_rewrite_is_taken_only_where_it_was_measured_faster():
    def layer(filters=64, strides=1, dtype="mixed_bfloat16"):
        return FastConv2DTranspose(filters, 5, strides=strides, padding="same", dtype=dtype)

    assert rewrites(layer(), 128)  # dcgan's G1
    assert rewrites(layer(strides=2), 128)  # G2
    assert not rewrites(FastConv2DTranspose(64, 5, strides=(2, 1), padding="same", dtype="mixed_bfloat16"), 128)
    assert not rewrites(layer(filters=1), 64)  # a one-channel side: slower
    assert not rewrites(layer(), 8)
    assert not rewrites(layer(dtype="float32"), 128)  # float32: slower


@pytest.mark.parametrize("model", ["dcgan", "cgan", "selfcond", "infogan", "tfgan"])
def test_fast_convolutions_is_a_switch_every_convolutional_model_takes(compose_cfg, model):
    from gan_lab.trainer import build_gan

    def convolutions(*overrides):
        gan = build_gan(compose_cfg(f"model={model}", *overrides))
        inner = [getattr(layer, "layer", layer) for network in (gan.generator, gan.discriminator)
                 for layer in network.layers]  # spectral normalisation wraps its convolution
        return [type(layer) for layer in inner if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose)]

    fast, stock = convolutions(), convolutions("train.fast_convolutions=false")
    assert len(fast) == len(stock) >= 4
    assert set(fast) == {FastConv2D, FastConv2DTranspose}
    assert set(stock) == {keras.layers.Conv2D, keras.layers.Conv2DTranspose}
