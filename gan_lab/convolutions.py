"""Convolutions whose filter gradient runs as a forward convolution: the same maths as TensorFlow's
``Conv2DBackpropFilter``, which oneDNN runs far below the matmul rate on CPUs (AMX and AVX512-BF16),
while its forward convolutions run at or above it.

The filter gradient of a convolution of ``x`` (N, H, W, C) giving ``dy`` (N, h, w, F) at stride s is

    dW[i, j, c, f] = sum over n, y, x of  x_padded[n, s*y + i, s*x + j, c] * dy[n, y, x, f],

which is a VALID forward convolution of ``x_padded`` with its batch and channel axes swapped (C images
of N channels) by the kernel ``dy`` (h x w taps, N in, F out) dilated by s.

Measured per op (``experiments/benchmarks.md``, batch 256, ``python -m gan_lab.bench train train-no-amx``)
it wins in bfloat16 with many channels on both sides: dcgan's G1 (stride 1, 7x7x256 -> 7x7x128) 1.3-1.46x
with AMX, 1.07x with AVX512-BF16 alone; its stride-2 layers (G2, D2) even with AMX (0.9-1.1x), 1.16-1.28x
without. It is slower for a one-channel side (G3, D1) and in float32. So ``FastConv2D`` and
``FastConv2DTranspose``, Keras' layers (same weights, same forward op), take it exactly there
(``rewrites``) and TensorFlow's op elsewhere; used while training on CPUs (``train.fast_convolutions``),
never exported.
"""

import keras
import tensorflow as tf
from keras import layers


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one axis under ``padding="SAME"``, as TensorFlow pads it."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def filter_gradient(x: tf.Tensor, dy: tf.Tensor, kernel_size: tuple[int, int], stride: int) -> tf.Tensor:
    """The gradient of a SAME convolution's kernel (k_h, k_w, C, F) from its input ``x`` and output gradient
    ``dy``: ``tf.raw_ops.Conv2DBackpropFilter``'s result, computed as a forward convolution (module docstring)."""
    (top, bottom), (left, right) = (same_padding(x.shape[axis], kernel_size[axis - 1], stride) for axis in (1, 2))
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    images = tf.transpose(padded, [3, 1, 2, 0])  # C images of N channels
    taps = tf.transpose(dy, [1, 2, 0, 3])  # an h x w kernel from N channels to F
    gradient = tf.nn.conv2d(images, taps, strides=1, padding="VALID", dilations=stride)
    return tf.transpose(gradient[:, : kernel_size[0], : kernel_size[1], :], [1, 2, 0, 3])


def conv2d(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """``tf.nn.conv2d(x, kernel, stride, "SAME")`` whose kernel gradient is ``filter_gradient``."""
    strides = [1, stride, stride, 1]

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradients(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy,
                                                strides=strides, padding="SAME")
            return dx, filter_gradient(x, dy, kernel.shape[:2], stride)

        return tf.nn.conv2d(x, kernel, strides, "SAME"), gradients

    return convolve(x, tf.cast(kernel, x.dtype))  # a tensor: a variable read inside would escape the gradient


def conv2d_transpose(x: tf.Tensor, kernel: tf.Tensor, stride: int, output_shape) -> tf.Tensor:
    """``tf.nn.conv2d_transpose(x, kernel, output_shape, stride, "SAME")`` (kernel: k_h, k_w, out, in) whose
    kernel gradient is ``filter_gradient`` (that of the convolution it transposes, from output to input)."""
    strides = [1, stride, stride, 1]

    @tf.custom_gradient
    def convolve(x, kernel):
        y = tf.raw_ops.Conv2DBackpropInput(input_sizes=output_shape, filter=kernel, out_backprop=x, strides=strides,
                                           padding="SAME")

        def gradients(dy):
            return tf.nn.conv2d(dy, kernel, strides, "SAME"), filter_gradient(dy, x, kernel.shape[:2], stride)

        return y, gradients

    return convolve(x, tf.cast(kernel, x.dtype))  # a tensor: a variable read inside would escape the gradient


MIN_CHANNELS = 16  # on each side of the convolution: fewer, and TensorFlow's own filter gradient is faster


def rewrites(layer, channels_in: int) -> bool:
    """Whether ``layer`` (a Conv2D or Conv2DTranspose) takes ``filter_gradient``: where it was measured faster
    (module docstring): bfloat16, equal strides, SAME padding, no dilation, channels last, ``MIN_CHANNELS`` or
    more on each side."""
    return (layer.compute_dtype == "bfloat16" and layer.strides[0] == layer.strides[1] and layer.padding == "same"
            and tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last"
            and min(channels_in, layer.filters) >= MIN_CHANNELS)


@keras.saving.register_keras_serializable(package="gan_lab")
class FastConv2D(layers.Conv2D):
    """Keras' Conv2D (same weights, same forward op) whose kernel gradient is ``filter_gradient``."""

    def convolution_op(self, inputs, kernel):
        if not rewrites(self, inputs.shape[-1]):
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, kernel, self.strides[0])


@keras.saving.register_keras_serializable(package="gan_lab")
class FastConv2DTranspose(layers.Conv2DTranspose):
    """Keras' Conv2DTranspose (same weights, same forward op) whose kernel gradient is ``filter_gradient``."""

    def call(self, inputs):
        if not rewrites(self, inputs.shape[-1]) or self.output_padding is not None:
            return super().call(inputs)
        shape, stride = tf.shape(inputs), self.strides[0]
        output_shape = tf.stack([shape[0], shape[1] * stride, shape[2] * stride, self.filters])
        outputs = conv2d_transpose(inputs, self.kernel, stride, output_shape)
        if self.use_bias:  # as Keras adds it
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs
