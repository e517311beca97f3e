"""The rewritten filter gradient (``gan_lab.convolutions.filter_gradient``) against TensorFlow's
``Conv2DBackpropFilter``, op by op, in bfloat16 and float32 (batch 256, best of 5 blocks of 10 calls).

    python experiments/filter_gradient_dtypes.py
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python experiments/filter_gradient_dtypes.py   # AMX off
"""

import time

import tensorflow as tf

from gan_lab.convolutions import filter_gradient

BATCH = 256
# (name, input side, kernel, channels in, channels out, stride): the convolution whose filter gradient is taken
CASES = [("dcgan G1 (7x7x128 -> 7x7x256, stride 1)", 7, 5, 128, 256, 1),
         ("tfgan G3 (28x28x64 -> 28x28x1, stride 1, one channel)", 28, 4, 64, 1, 1),
         ("dcgan D2 (14x14x64 -> 7x7x128, stride 2)", 14, 5, 64, 128, 2)]


def best_milliseconds(function, calls: int = 10, blocks: int = 5) -> float:
    function()
    best = float("inf")
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            result = function()
        float(tf.reduce_sum(tf.cast(result, tf.float32)))
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main() -> None:
    for dtype in (tf.bfloat16, tf.float32):
        for name, side, kernel, channels, filters, stride in CASES:
            x = tf.cast(tf.random.normal((BATCH, side, side, channels)), dtype)
            dy = tf.cast(tf.random.normal((BATCH, -(-side // stride), -(-side // stride), filters)), dtype)
            native = tf.function(lambda x=x, dy=dy, k=kernel, s=stride, c=channels, f=filters: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=[k, k, c, f], out_backprop=dy, strides=[1, s, s, 1], padding="SAME"))
            rewrite = tf.function(lambda x=x, dy=dy, k=kernel, s=stride: filter_gradient(x, dy, (k, k), s))
            times = {label: best_milliseconds(f) for label, f in (("tensorflow", native), ("rewrite", rewrite))}
            print(f"{name} {dtype.name}: " + ", ".join(f"{label} {ms:.1f} ms" for label, ms in times.items())
                  + f" ({times['tensorflow'] / times['rewrite']:.2f}x)")


if __name__ == "__main__":
    main()
