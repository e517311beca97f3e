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

Transposed convolutions to an image. A convolution's input gradient to an image's few channels (D's first
layer) and a transposed convolution to one (G's last layer) run in oneDNN at 1-5% of the matmul rate (AMX Xeon).
The same maths as a matmul of the many-channel side by the kernel, giving each pixel's taps, and the taps' sum
into the image in one XLA-compiled float32 pass (``col2im``) measured 2-6x faster per op on an AVX512-BF16 CPU,
float32 and bfloat16 (``to_few_channels``, ``few_channels``).

Convolutions to an image. A stride-1 convolution to an image's few channels (tfgan's G's last layer) is the
same in reverse: a matmul of each input pixel by the kernel, giving its taps, and each output pixel's sum of its
taps in one XLA-compiled float32 pass (``sum_taps``); in float32 its filter gradient is a matmul of the input by
the output gradient spread to the taps (``spread_taps``). Measured on an AVX512-BF16 CPU (batch 256, 28x28x32 to 1,
4x4): forward 16.0 -> 4.5 ms in float32, 9.2 -> 4.8 in bfloat16; filter gradient 15.6 -> 9.9 ms in float32, slower
in bfloat16 (10.4 -> 14.7, so TensorFlow's there); at stride 2 to three channels both were slower
(``convolves_to_few_channels``, ``filter_gradient_as_matmul``).

All are Keras' layers with Keras' weights, used while training on CPUs (``train.fast_convolutions``), never
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


def conv2d(x: tf.Tensor, kernel: tf.Tensor, stride: int, kernel_gradient=None, input_gradient_to_image: bool = False,
           forward_to_image: bool = False) -> tf.Tensor:
    """``tf.nn.conv2d(x, kernel, stride, "SAME")`` whose kernel gradient is ``kernel_gradient(x, dy, kernel_size,
    stride)`` (``filter_gradient`` or ``filter_gradient_by_matmul``; TensorFlow's if None), whose input gradient is
    ``to_few_channels`` (with ``input_gradient_to_image``) and whose forward is ``convolve_to_few_channels`` (with
    ``forward_to_image``)."""
    strides = [1, stride, stride, 1]

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradients(dy):
            if input_gradient_to_image:
                dx = to_few_channels(dy, kernel, stride, x.shape[1:3])
            else:
                dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy,
                                                    strides=strides, padding="SAME")
            if kernel_gradient is not None:
                return dx, kernel_gradient(x, dy, kernel.shape[:2], stride)
            return dx, tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=kernel.shape, out_backprop=dy,
                                                       strides=strides, padding="SAME")

        if forward_to_image:
            return convolve_to_few_channels(x, kernel, stride), gradients
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


@tf.function(jit_compile=True)
def col2im(taps: tf.Tensor, stride: int, size: tuple[int, int]) -> tf.Tensor:
    """(N, *size, F) from ``taps`` (N, h, w, k_h, k_w, F): tap (i, j) of pixel (a, b) added at (stride a + i - top,
    stride b + j - left), the padding before a SAME convolution of ``size`` by a k_h x k_w kernel at ``stride``.

    The adjoint of im2col, in float32, one XLA-compiled pass: each of the stride^2 output phases is a sum of
    shifted (N, h, w, F) maps, interleaved by ``depth_to_space``."""
    _, h, w, kernel_h, kernel_w, _ = taps.shape
    (top, _), (left, _) = same_padding(size[0], kernel_h, stride), same_padding(size[1], kernel_w, stride)
    rows = max(h + -(-kernel_h // stride) - 1, -(-(top + size[0]) // stride))  # blocks of stride x stride pixels
    columns = max(w + -(-kernel_w // stride) - 1, -(-(left + size[1]) // stride))
    phases = []
    for r in range(stride):
        for q in range(stride):
            phases.append(tf.add_n([
                tf.pad(tf.cast(taps[:, :, :, stride * u + r, stride * v + q], tf.float32),
                       [[0, 0], [u, rows - h - u], [v, columns - w - v], [0, 0]])
                for u in range(-(-(kernel_h - r) // stride)) for v in range(-(-(kernel_w - q) // stride))]))
    image = tf.nn.depth_to_space(tf.concat(phases, -1), stride) if stride > 1 else phases[0]
    return tf.cast(image[:, top : top + size[0], left : left + size[1]], taps.dtype)


def to_few_channels(x: tf.Tensor, kernel: tf.Tensor, stride: int, size: tuple[int, int]) -> tf.Tensor:
    """``Conv2DBackpropInput`` of a SAME convolution at ``stride`` by ``kernel`` (k_h, k_w, F, C): ``x`` (N, h, w, C)
    to (N, *size, F) for few channels F, as ``x`` (N h w, C) x ``kernel`` (C, k_h k_w F), a matmul at its rate,
    whose per-pixel taps ``col2im`` adds into place."""
    kernel_h, kernel_w, filters, channels = kernel.shape
    taps = tf.matmul(tf.reshape(x, [-1, channels]), tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [channels, -1]))
    return col2im(tf.reshape(taps, [-1, *x.shape[1:3], kernel_h, kernel_w, filters]), stride, tuple(size))


def conv2d_transpose_to_few_channels(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """``tf.nn.conv2d_transpose(x, kernel, (n, h s, w s, F), stride, "SAME")`` (kernel: k_h, k_w, F out, C in) to few
    channels F, its forward ``to_few_channels``, its gradients TensorFlow's."""
    strides = [1, stride, stride, 1]
    size = (x.shape[1] * stride, x.shape[2] * stride)

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradients(dy):
            dw = tf.raw_ops.Conv2DBackpropFilter(input=dy, filter_sizes=kernel.shape, out_backprop=x, strides=strides,
                                                 padding="SAME")
            return tf.nn.conv2d(dy, kernel, strides, "SAME"), dw

        return to_few_channels(x, kernel, stride, size), gradients

    return convolve(x, tf.cast(kernel, x.dtype))


@tf.function(jit_compile=True)
def sum_taps(taps: tf.Tensor, stride: int) -> tf.Tensor:
    """(N, ceil(H / stride), ceil(W / stride), F) from ``taps`` (N, H, W, k_h, k_w, F) on a SAME convolution's input
    grid: output pixel (p, q) sums tap (i, j) of input pixel (stride p + i - top, stride q + j - left), zero outside.

    The convolution after its matmul, in float32, one XLA-compiled pass: a sum of strided slices of the padded taps."""
    _, height, width, kernel_h, kernel_w, _ = taps.shape
    (top, bottom), (left, right) = same_padding(height, kernel_h, stride), same_padding(width, kernel_w, stride)
    padded = tf.pad(tf.cast(taps, tf.float32), [[0, 0], [top, bottom], [left, right], [0, 0], [0, 0], [0, 0]])
    rows, columns = -(-height // stride), -(-width // stride)
    image = tf.add_n([padded[:, i : i + stride * (rows - 1) + 1 : stride, j : j + stride * (columns - 1) + 1 : stride, i, j]
                      for i in range(kernel_h) for j in range(kernel_w)])
    return tf.cast(image, taps.dtype)


@tf.function(jit_compile=True)
def spread_taps(dy: tf.Tensor, kernel_size: tuple[int, int], stride: int, size: tuple[int, int]) -> tf.Tensor:
    """(N, *size, k_h, k_w, F), the adjoint of ``sum_taps``: tap (i, j) of input pixel (a, b) is ``dy`` (N, h, w, F)
    at the output pixel (p, q) with a = stride p + i - top, b = stride q + j - left, zero where there is none."""
    _, rows, columns, filters = dy.shape
    kernel_h, kernel_w = kernel_size
    (top, _), (left, _) = same_padding(size[0], kernel_h, stride), same_padding(size[1], kernel_w, stride)
    spread = tf.cast(dy, tf.float32)
    if stride > 1:  # dy on the input grid: output pixel (p, q) at (stride p, stride q)
        spread = tf.pad(spread[:, :, None, :, None], [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1], [0, 0]])
        spread = tf.reshape(spread, [-1, rows * stride, columns * stride, filters])
    spread = tf.pad(spread, [[0, 0], [kernel_h, kernel_h + size[0]], [kernel_w, kernel_w + size[1]], [0, 0]])
    taps = [spread[:, kernel_h + top - i : kernel_h + top - i + size[0], kernel_w + left - j : kernel_w + left - j + size[1]]
            for i in range(kernel_h) for j in range(kernel_w)]
    return tf.cast(tf.reshape(tf.stack(taps, -2), [-1, *size, kernel_h, kernel_w, filters]), dy.dtype)


def convolve_to_few_channels(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """``tf.nn.conv2d(x, kernel, stride, "SAME")`` (kernel: k_h, k_w, C, F) to few channels F: ``x`` (N H W, C) x
    ``kernel`` (C, k_h k_w F), a matmul at its rate, whose taps ``sum_taps`` adds into each output pixel."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    taps = tf.matmul(tf.reshape(x, [-1, channels]), tf.reshape(tf.transpose(kernel, [2, 0, 1, 3]), [channels, -1]))
    return sum_taps(tf.reshape(taps, [-1, *x.shape[1:3], kernel_h, kernel_w, filters]), stride)


def filter_gradient_by_matmul(x: tf.Tensor, dy: tf.Tensor, kernel_size: tuple[int, int], stride: int) -> tf.Tensor:
    """``Conv2DBackpropFilter`` of a SAME convolution of ``x`` (N, H, W, C) giving ``dy`` (N, h, w, F): ``x``'s
    transpose (C, N H W) x ``dy`` spread to each input pixel's taps (N H W, k_h k_w F, ``spread_taps``)."""
    channels, (kernel_h, kernel_w), filters = x.shape[-1], kernel_size, dy.shape[-1]
    spread = spread_taps(dy, kernel_size, stride, tuple(x.shape[1:3]))
    gradient = tf.matmul(tf.reshape(x, [-1, channels]), tf.reshape(spread, [-1, kernel_h * kernel_w * filters]),
                         transpose_a=True)
    return tf.transpose(tf.reshape(gradient, [channels, kernel_h, kernel_w, filters]), [1, 2, 0, 3])


MIN_CHANNELS = 16  # on each side of the convolution: fewer, and TensorFlow's own filter gradient is faster
FEW_CHANNELS = 3  # an image's: to as few channels, ``to_few_channels`` (measured faster at 1 and 3)


def rewrites(layer, channels_in: int) -> bool:
    """Whether ``layer`` (a Conv2D or Conv2DTranspose) takes ``filter_gradient``: where it was measured faster
    (module docstring): bfloat16, equal strides, SAME padding, no dilation, channels last, ``MIN_CHANNELS`` or
    more on each side."""
    return (layer.compute_dtype == "bfloat16" and plain(layer) and min(channels_in, layer.filters) >= MIN_CHANNELS)


def few_channels(layer, image_shape) -> bool:
    """Whether ``layer`` runs its direction to ``image_shape`` (N, H, W, C) as a matmul and a sum of taps: a Conv2D
    from it its input gradient (``to_few_channels``), a Conv2DTranspose to it its forward (the same), a Conv2D to
    it its forward (``convolve_to_few_channels``). ``FEW_CHANNELS`` or fewer channels C, H and W known, equal
    strides, SAME padding, no dilation or output padding, channels last."""
    return (image_shape[-1] <= FEW_CHANNELS and None not in tuple(image_shape[1:3]) and plain(layer)
            and getattr(layer, "output_padding", None) is None)


def convolves_to_few_channels(layer, image_shape) -> bool:
    """Whether ``layer``, a Conv2D to ``image_shape``, runs ``convolve_to_few_channels``: ``few_channels`` at stride 1
    (at stride 2 measured slower to three channels, module docstring)."""
    return layer.strides[0] == 1 and few_channels(layer, image_shape)


def filter_gradient_as_matmul(layer) -> bool:
    """Whether ``layer``, a Conv2D to an image (``convolves_to_few_channels``), takes ``filter_gradient_by_matmul``:
    in float32, where it was measured faster (module docstring)."""
    return layer.compute_dtype == "float32"


def plain(layer) -> bool:
    """Equal strides, SAME padding, no dilation, channels last: the convolutions this module computes."""
    return (layer.strides[0] == layer.strides[1] and layer.padding == "same" and tuple(layer.dilation_rate) == (1, 1)
            and layer.data_format == "channels_last")


@keras.saving.register_keras_serializable(package="gan_lab")
class FastConv2D(layers.Conv2D):
    """Keras' Conv2D (same weights) whose kernel gradient is ``filter_gradient`` (``rewrites``) and whose input
    gradient to an image is ``to_few_channels``, or whose forward to an image is ``convolve_to_few_channels``
    (``convolves_to_few_channels``)."""

    def convolution_op(self, inputs, kernel):
        stride = self.strides[0]
        image = (None, *(None if side is None else -(-side // stride) for side in inputs.shape[1:3]), self.filters)
        if convolves_to_few_channels(self, image):
            return conv2d(inputs, kernel, stride, filter_gradient_by_matmul if filter_gradient_as_matmul(self) else None,
                          forward_to_image=True)
        rewrite, to_image = rewrites(self, inputs.shape[-1]), few_channels(self, inputs.shape)
        if not (rewrite or to_image):
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, kernel, stride, filter_gradient if rewrite else None, input_gradient_to_image=to_image)


@keras.saving.register_keras_serializable(package="gan_lab")
class FastConv2DTranspose(layers.Conv2DTranspose):
    """Keras' Conv2DTranspose (same weights) whose kernel gradient is ``filter_gradient`` (``rewrites``), or whose
    forward to an image is ``to_few_channels`` (``few_channels``)."""

    def call(self, inputs):
        stride = self.strides[0]
        image = (None, *(None if side is None else side * stride for side in inputs.shape[1:3]), self.filters)
        if few_channels(self, image):
            outputs = conv2d_transpose_to_few_channels(inputs, self.kernel, stride)
        elif rewrites(self, inputs.shape[-1]) and self.output_padding is None:
            shape = tf.shape(inputs)
            output_shape = tf.stack([shape[0], shape[1] * stride, shape[2] * stride, self.filters])
            outputs = conv2d_transpose(inputs, self.kernel, stride, output_shape)
        else:
            return super().call(inputs)
        if self.use_bias:  # as Keras adds it
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs
