"""A convolution to an image's few channels, TensorFlow's ops against ``gan_lab.convolutions``' forms, per op at
batch 256 (best of 5 blocks of 20 calls): the forward (matmul + ``sum_taps``), the filter gradient (``spread_taps`` +
matmul), and TensorFlow's input gradient beside them.

    python experiments/few_channel_convolutions.py
"""

import time

import tensorflow as tf

from gan_lab.convolutions import convolve_to_few_channels, filter_gradient_by_matmul

# (batch, input side, channels in, channels out, kernel, stride): tfgan's last layer first
SHAPES = [(256, 28, 32, 1, 4, 1), (256, 28, 64, 3, 5, 1), (256, 28, 64, 1, 4, 2), (256, 28, 64, 3, 5, 2)]


def best_ms(call, calls: int = 20, blocks: int = 5) -> float:
    function = tf.function(lambda: tf.reduce_sum(tf.cast(call(), tf.float32)), autograph=False)
    float(function())
    best = float("inf")
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            float(function())
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main() -> None:
    for batch, side, channels, filters, kernel, stride in SHAPES:
        for dtype in (tf.float32, tf.bfloat16):
            x = tf.cast(tf.random.normal((batch, side, side, channels)), dtype)
            w = tf.cast(tf.random.normal((kernel, kernel, channels, filters)), dtype)
            dy = tf.cast(tf.random.normal((batch, -(-side // stride), -(-side // stride), filters)), dtype)
            same = dict(strides=[1, stride, stride, 1], padding="SAME")
            ms = [best_ms(lambda: tf.nn.conv2d(x, w, **same)),
                  best_ms(lambda: convolve_to_few_channels(x, w, stride)),
                  best_ms(lambda: tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=w.shape, out_backprop=dy, **same)),
                  best_ms(lambda: filter_gradient_by_matmul(x, dy, (kernel, kernel), stride)),
                  best_ms(lambda: tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=dy,
                                                                 **same))]
            print(f"{dtype.name:8} {side}x{side}x{channels}->{filters} k{kernel} s{stride}: forward TF {ms[0]:.1f} / "
                  f"matmul + sum_taps {ms[1]:.1f} ms; filter grad TF {ms[2]:.1f} / spread + matmul {ms[3]:.1f} ms; "
                  f"input grad TF {ms[4]:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
