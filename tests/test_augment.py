"""DiffAugment policies on known images: exact shifts, holes and colour changes, seeds, gradients, graph mode."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_lab.augment import AUGMENTATIONS, augment
from gan_lab.config import AUGMENT_POLICIES

SEED = tf.constant([7, 11], tf.int64)
POLICIES = ["translation", "cutout", "color", "translation,cutout,color"]


def random_images(shape=(8, 28, 28, 1), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def single_pixels(batch: int, row: int = 14, column: int = 14) -> np.ndarray:
    """Background images with one bright pixel at (row, column)."""
    images = np.full((batch, 28, 28, 1), -1.0, "float32")
    images[:, row, column] = 1.0
    return images


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved down by dy and right by dx, background entering."""
    height, width = image.shape[:2]
    out = np.full_like(image, -1.0)
    out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = (
        image[max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)])
    return out


def bright_pixel_shifts(batch: int, seed=SEED) -> list[tuple[int, int]]:
    """The (dy, dx) that translation draws for each of ``batch`` images, read off a moved centre pixel."""
    out = augment(single_pixels(batch), "translation", seed).numpy()
    assert ((out == 1).sum(axis=(1, 2, 3)) == 1).all() and ((out == 1) | (out == -1)).all()
    return [(rows[0] - 14, columns[0] - 14) for rows, columns, _ in (np.nonzero(image == 1) for image in out)]


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("shape", [(4, 28, 28, 1), (2, 12, 20, 3)])
def test_policies_keep_shape_and_dtype(dtype, shape):
    images = tf.constant(random_images(shape), dtype)
    for policy in POLICIES:
        out = augment(images, policy, SEED)
        assert out.shape == shape and out.dtype == dtype, policy


def test_empty_and_none_policies_are_the_identity():
    images = tf.constant(random_images())
    for policy in ["", "none", " none "]:
        np.testing.assert_array_equal(augment(images, policy, SEED).numpy(), images.numpy())


def test_translation_moves_every_image_by_its_drawn_shift_and_fills_with_background():
    images = random_images()
    shifts = bright_pixel_shifts(len(images))
    out = augment(images, "translation", SEED).numpy()
    for image, moved, (dy, dx) in zip(images, out, shifts, strict=True):
        np.testing.assert_array_equal(moved, shifted(image, dy, dx))
    assert len(set(shifts)) > 1


def test_translation_shifts_cover_exactly_minus_r_to_r():
    dys, dxs = zip(*bright_pixel_shifts(256))
    assert set(dys) == set(dxs) == set(range(-4, 5))  # r = round(28 / 8) = 4


def test_translation_out_of_the_image_leaves_only_background():
    corner = single_pixels(64, row=0, column=0)
    out = augment(corner, "translation", SEED).numpy()
    kept = (out == 1).sum(axis=(1, 2, 3))
    assert set(kept) == {0, 1} and ((out == 1) | (out == -1)).all()


def test_cutout_sets_one_clipped_14_by_14_square_to_background():
    images = np.full((64, 28, 28, 1), 0.5, "float32")
    out = augment(images, "cutout", SEED).numpy()[..., 0]
    assert ((out == -1) | (out == 0.5)).all()
    sizes = set()
    for hole in out == -1:
        rows, columns = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
        assert np.array_equal(columns, np.arange(columns[0], columns[-1] + 1))
        assert hole.sum() == len(rows) * len(columns)
        for span in (rows, columns):
            assert len(span) == 14 or (len(span) < 14 and (span[0] == 0 or span[-1] == 27))
        sizes.add(int(hole.sum()))
    assert 14 * 14 in sizes and min(sizes) < 14 * 14


def test_color_shifts_brightness_and_scales_contrast_within_range():
    ranks = np.random.default_rng(1).permuted(np.tile(np.arange(784), (256, 1)), axis=1)
    images = (ranks / 783 * 2 - 1).astype("float32").reshape(256, 28, 28, 1)  # distinct values, well apart
    out = augment(images, "color", SEED).numpy()
    mean_in, mean_out = images.mean(axis=(1, 2, 3)), out.mean(axis=(1, 2, 3))
    brightness = mean_out - mean_in
    centred_in, centred_out = images - mean_in[:, None, None, None], out - mean_out[:, None, None, None]
    contrast = (centred_in * centred_out).sum(axis=(1, 2, 3)) / (centred_in**2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(centred_out, contrast[:, None, None, None] * centred_in, atol=1e-5)
    assert -0.5 <= brightness.min() and brightness.max() <= 0.5 and np.ptp(brightness) > 0.9
    assert 0.5 <= contrast.min() and contrast.max() <= 1.5 and np.ptp(contrast) > 0.9
    flat_in, flat_out = images.reshape(256, -1), out.reshape(256, -1)
    np.testing.assert_array_equal(np.argsort(flat_in, axis=1), np.argsort(flat_out, axis=1))


@pytest.mark.parametrize("policy", POLICIES)
def test_same_seed_reproduces_and_another_seed_differs(policy):
    images = tf.constant(random_images())
    first = augment(images, policy, SEED).numpy()
    np.testing.assert_array_equal(first, augment(images, policy, tf.constant([7, 11], tf.int64)).numpy())
    assert not np.array_equal(first, augment(images, policy, tf.constant([7, 12], tf.int64)).numpy())


@pytest.mark.parametrize("policy", POLICIES)
def test_gradients_reach_the_images(policy):
    images = tf.constant(random_images())
    with tf.GradientTape() as tape:
        tape.watch(images)
        out = augment(images, policy, SEED)
        total = tf.reduce_sum(out)
    gradient = tape.gradient(total, images).numpy()
    assert np.isfinite(gradient).all() and (gradient != 0).any()
    if policy == "color":  # sum(out) = pixels * (mean(x) + b): d/dx = 1
        np.testing.assert_allclose(gradient, 1.0, rtol=1e-5)
    if policy == "cutout":  # kept pixels pass through, the hole blocks
        np.testing.assert_array_equal(gradient, (out.numpy() != -1).astype("float32"))


def test_runs_in_a_tf_function_with_seeds_from_a_seed_generator():
    images = tf.constant(random_images(), tf.bfloat16)
    seed_generator = keras.random.SeedGenerator(3)
    policy = "translation,cutout,color"

    @tf.function(input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.bfloat16)])
    def step(batch):
        seed = seed_generator.next()
        return seed, augment(batch, policy, seed)

    seed, first = step(images)
    assert seed.shape == (2,) and seed.dtype == tf.int64
    np.testing.assert_array_equal(first.numpy(), augment(images, policy, seed).numpy())
    assert not np.array_equal(first.numpy(), step(images)[1].numpy())


def test_runs_under_xla_reproducibly():
    """XLA draws other random values than the TF kernels for the same seed, but as deterministically."""
    images = tf.constant(random_images())
    compiled = tf.function(lambda batch, seed: augment(batch, "color,translation,cutout", seed), jit_compile=True)
    first = compiled(images, SEED).numpy()
    np.testing.assert_array_equal(first, compiled(images, tf.constant([7, 11], tf.int64)).numpy())
    assert not np.array_equal(first, compiled(images, tf.constant([7, 12], tf.int64)).numpy())
    assert ((first == -1).sum(axis=(1, 2, 3)) >= 14 * 7).all()  # every image has a (clipped) hole


def test_unknown_policy_lists_registered():
    assert AUGMENTATIONS.names() == sorted(AUGMENT_POLICIES)  # what train.augment is validated against
    with pytest.raises(ValueError, match="unknown augmentation 'flip'; registered: color, cutout, translation"):
        augment(tf.zeros((1, 28, 28, 1)), "translation,flip", SEED)
