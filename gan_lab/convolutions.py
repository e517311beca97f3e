"""Convolutions in the forms oneDNN runs fastest on CPUs (AMX and AVX512-BF16), same maths as TensorFlow's ops.

Filter gradients as forward convolutions. The filter gradient of a convolution of ``x`` (N, H, W, C) giving
``dy`` (N, h, w, F) at stride s is

    dW[i, j, c, f] = sum over n, y, x of  x_padded[n, s*y + i, s*x + j, c] * dy[n, y, x, f],

which is a VALID forward convolution of ``x_padded`` with its batch and channel axes swapped (C images
of N channels) by the kernel ``dy`` (h x w taps, N in, F out) dilated by s. oneDNN runs
``Conv2DBackpropFilter`` far below its forward convolutions; measured per op (``experiments/benchmarks.md``,
batch 256) the forward form wins in bfloat16 with many channels on both sides: dcgan's G1 (stride 1) 1.3-1.46x
with AMX, 1.07x with AVX512-BF16 alone; its stride-2 layers (G2, D2) even with AMX, 1.16-1.28x without. It is
slower for a one-channel side and in float32, so ``FastConv2D`` and ``FastConv2DTranspose`` take it exactly
there (``rewrites``).

Sub-pixel transposed convolutions. A transposed convolution at stride s to few channels (G's last layer, to the
one-channel image) is a stride-1 convolution to s^2 times as many channels, unfolded by ``depth_to_space``;
oneDNN runs the float32 one-channel op at ~3% of the matmul rate, the sub-pixel form twice as fast
(``subpixel``).

Both are Keras' layers with Keras' weights, used while training on CPUs (``train.fast_convolutions``), never
exported.
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
    images = tf.transpose(x, [3, 1, 2, 0])  # C images of N channels
    taps = tf.transpose(dy, [1, 2, 0, 3])  # an h x w kernel from N channels to F
    padding = [[0, 0], [top, bottom], [left, right], [0, 0]]  # in the convolution: no padded copy
    gradient = tf.nn.conv2d(images, taps, strides=1, padding=padding, dilations=stride)
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


def space_to_depth_kernel(kernel: tf.Tensor, size: int, stride: int) -> tuple[tf.Tensor, int]:
    """(kernel', taps before): a SAME convolution of an axis of ``size`` at ``stride`` by ``kernel`` (k, k, C, F)
    as a VALID stride-1 convolution by kernel' (t, t, stride^2 C, F) of the input padded by ``stride`` x taps-before
    pixels and folded by ``tf.nn.space_to_depth(., stride)``: each output pixel meets t x t blocks of stride x
    stride input pixels, the kernel's taps zero-padded to whole blocks."""
    k, _, channels, filters = kernel.shape
    pad_before = same_padding(size, k, stride)[0]
    before = -(-pad_before // stride)  # whole blocks left of the first output pixel's window
    front = stride * before - pad_before  # zero taps in front of the kernel, to the blocks' edge
    taps = -(-(front + k) // stride)
    padded = tf.pad(kernel, [[front, stride * taps - k - front]] * 2 + [[0, 0], [0, 0]])
    blocks = tf.transpose(tf.reshape(padded, [taps, stride, taps, stride, channels, filters]), [0, 2, 1, 3, 4, 5])
    return tf.reshape(blocks, [taps, taps, stride * stride * channels, filters]), before


def subpixel_conv2d_transpose(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """``tf.nn.conv2d_transpose(x, kernel, (n, h s, w s, C), stride, "SAME")`` (kernel: k, k, C out, F in) with few
    output channels C: its forward as a stride-1 convolution to stride^2 C channels, unfolded by
    ``tf.nn.depth_to_space`` (a sub-pixel layer); its gradients TensorFlow's."""
    strides = [1, stride, stride, 1]
    _, h, w, _ = x.shape

    @tf.custom_gradient
    def convolve(x, kernel):
        blocks, before = space_to_depth_kernel(kernel, h * stride, stride)
        taps = blocks.shape[0]
        flipped = tf.transpose(blocks[::-1, ::-1], [0, 1, 3, 2])  # its transposed stride-1 convolution's kernel
        full = [[0, 0], [taps - 1, taps - 1], [taps - 1, taps - 1], [0, 0]]
        folded = tf.nn.depth_to_space(tf.nn.conv2d(x, flipped, 1, full), stride)
        y = folded[:, stride * before: stride * (before + h), stride * before: stride * (before + w), :]

        def gradients(dy):
            dw = tf.raw_ops.Conv2DBackpropFilter(input=dy, filter_sizes=kernel.shape, out_backprop=x, strides=strides,
                                                 padding="SAME")
            return tf.nn.conv2d(dy, kernel, strides, "SAME"), dw

        return y, gradients

    return convolve(x, tf.cast(kernel, x.dtype))


MIN_CHANNELS = 16  # on each side of the convolution: fewer, and TensorFlow's own filter gradient is faster


def rewrites(layer, channels_in: int) -> bool:
    """Whether ``layer`` (a Conv2D or Conv2DTranspose) takes ``filter_gradient``: where it was measured faster
    (module docstring): bfloat16, equal strides, SAME padding, no dilation, channels last, ``MIN_CHANNELS`` or
    more on each side."""
    return (layer.compute_dtype == "bfloat16" and layer.strides[0] == layer.strides[1] and layer.padding == "same"
            and tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last"
            and min(channels_in, layer.filters) >= MIN_CHANNELS)


def subpixel(layer) -> bool:
    """Whether ``layer`` (a Conv2DTranspose) runs as ``subpixel_conv2d_transpose``: fewer than ``MIN_CHANNELS`` output
    channels (G's last layer), a square kernel, equal strides of 2 or more, SAME padding, no output padding or
    dilation, channels last. (D's first layer's input gradient is the same op, from 64 channels to one; in the sub-pixel
    form the dcgan step was no faster, with AMX or without: measured, not taken.)"""
    return (layer.filters < MIN_CHANNELS and layer.kernel_size[0] == layer.kernel_size[1]
            and layer.strides[0] == layer.strides[1] >= 2 and layer.padding == "same" and layer.output_padding is None
            and tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last")


@keras.saving.register_keras_serializable(package="gan_lab")
class FastConv2D(layers.Conv2D):
    """Keras' Conv2D (same weights, same forward op) whose kernel gradient is ``filter_gradient``."""

    def convolution_op(self, inputs, kernel):
        if not rewrites(self, inputs.shape[-1]):
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, kernel, self.strides[0])


@keras.saving.register_keras_serializable(package="gan_lab")
class FastConv2DTranspose(layers.Conv2DTranspose):
    """Keras' Conv2DTranspose (same weights) whose kernel gradient is ``filter_gradient`` (``rewrites``), or which
    runs as a sub-pixel layer (``subpixel``)."""

    def call(self, inputs):
        stride = self.strides[0]
        if subpixel(self):
            outputs = subpixel_conv2d_transpose(inputs, self.kernel, stride)
        elif rewrites(self, inputs.shape[-1]) and self.output_padding is None:
            shape = tf.shape(inputs)
            output_shape = tf.stack([shape[0], shape[1] * stride, shape[2] * stride, self.filters])
            outputs = conv2d_transpose(inputs, self.kernel, stride, output_shape)
        else:
            return super().call(inputs)
        if self.use_bias:  # as Keras adds it
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs
