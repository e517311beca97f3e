"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020), for image batches in [-1, 1].

Every policy maps ``(images, seed) -> images`` of the same shape and dtype, draws its randomness per image from
TensorFlow stateless random ops keyed by ``seed`` (a shape-[2] int tensor, e.g. ``SeedGenerator.next()``) and is
built from gather / where / arithmetic only, so gradients reach G through ``D(augment(G(z)))`` and it runs in
graph mode and under XLA. Pixels that a policy empties get the background value -1. Values are not clipped:
``color`` may leave [-1, 1], as in the original.
"""

from collections.abc import Callable

import tensorflow as tf

from gan_lab.config import augment_policies
from gan_lab.registry import Registry

Augmentation = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")

BACKGROUND = -1.0  # the value of an empty pixel
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def augment(images: tf.Tensor, policy: str, seed: tf.Tensor) -> tf.Tensor:
    """Applies the comma-separated ``policy`` in order ("" or "none": identity), each step with its own split seed;
    ValueError for an unknown name (``train.augment`` is checked against ``config.AUGMENT_POLICIES`` first)."""
    names = augment_policies(policy)
    images = tf.convert_to_tensor(images)
    if not names:
        return images
    seeds = tf.random.experimental.stateless_split(seed, num=len(names))
    for index, name in enumerate(names):
        images = AUGMENTATIONS.get(name)(images, seeds[index])
    return images


@AUGMENTATIONS.register("translation")
def translation(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Shifts each image by (dy, dx) whole pixels, each uniform in [-r, r], r = round(H / 8) resp. round(W / 8).

    The pixel at (i, j) moves to (i + dy, j + dx); pixels entering from outside are background (-1).
    """
    row_seed, column_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    for axis, axis_seed in ((1, row_seed), (2, column_seed)):
        radius = _scaled(TRANSLATION_RATIO, images.shape[axis])
        shifts = _random_ints(images, axis_seed, -radius, radius)
        images = _shift(images, shifts, axis)
    return images


@AUGMENTATIONS.register("cutout")
def cutout(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Sets one round(H / 2) x round(W / 2) rectangle per image to background (-1), clipped at the border.

    As in DiffAugment, its centre is uniform over [0, H] (even side) or [0, H - 1] (odd side), and likewise across.
    """
    row_seed, column_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    rows = _random_span(images, row_seed, axis=1)
    columns = _random_span(images, column_seed, axis=2)
    hole = rows[:, :, None, None] & columns[:, None, :, None]
    return tf.where(hole, tf.constant(BACKGROUND, images.dtype), images)


@AUGMENTATIONS.register("color")
def color(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Per image: adds a brightness b ~ U(-0.5, 0.5), then scales (x - mean) by a contrast c ~ U(0.5, 1.5).

    DiffAugment's saturation step is left out: it is the identity on one channel. Computed in float32.
    """
    batch = tf.shape(images)[:1]
    draws = tf.random.stateless_uniform(tf.concat([batch, [2], tf.ones([images.shape.rank - 1], tf.int32)], 0), seed)
    brightness, contrast = draws[:, 0] - 0.5, draws[:, 1] + 0.5
    shifted = tf.cast(images, tf.float32) + brightness
    mean = tf.reduce_mean(shifted, axis=list(range(1, images.shape.rank)), keepdims=True)
    return tf.cast((shifted - mean) * contrast + mean, images.dtype)


def _scaled(ratio: float, size: int) -> int:
    """``ratio * size`` rounded half up, as DiffAugment does."""
    return int(ratio * size + 0.5)


def _random_ints(images: tf.Tensor, seed: tf.Tensor, low: int, high: int) -> tf.Tensor:
    """One integer per image, uniform in [low, high] (inclusive)."""
    return tf.random.stateless_uniform(tf.shape(images)[:1], seed, minval=low, maxval=high + 1, dtype=tf.int32)


def _shift(images: tf.Tensor, shifts: tf.Tensor, axis: int) -> tf.Tensor:
    """Moves image n by ``shifts[n]`` pixels along ``axis`` (1: down, 2: right), filling with background."""
    size = images.shape[axis]
    source = tf.range(size)[None, :] - shifts[:, None]
    inside = (source >= 0) & (source < size)
    moved = tf.gather(images, tf.clip_by_value(source, 0, size - 1), axis=axis, batch_dims=1)
    inside_shape = [-1] + [size if dim == axis else 1 for dim in range(1, images.shape.rank)]
    return tf.where(tf.reshape(inside, inside_shape), moved, tf.constant(BACKGROUND, images.dtype))


def _random_span(images: tf.Tensor, seed: tf.Tensor, axis: int) -> tf.Tensor:
    """(N, size) booleans: per image, a run of round(size / 2) positions around a random centre, clipped."""
    size = images.shape[axis]
    side = _scaled(CUTOUT_RATIO, size)
    start = _random_ints(images, seed, 0, size - side % 2) - side // 2
    positions = tf.range(size)[None, :]
    return (positions >= start[:, None]) & (positions < start[:, None] + side)
