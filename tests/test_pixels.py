"""Known answers for the pixel diagnostics, on synthetic images and the real MNIST test split."""

import math

import numpy as np
import pytest
from scipy import ndimage

from gan_lab import pixels
from gan_lab.config import Split
from gan_lab.data import load_data, scale_images

WIDTHS = np.arange(2, 7)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    """(images, labels) of the test split, shuffled (its first 5,000 digits are the cleaner ones)."""
    images, labels = load_data(str(mnist_dir), Split.test)
    order = np.random.default_rng(0).permutation(len(images))
    return images[order], labels[order]


@pytest.fixture(scope="module")
def halves(mnist):
    """Two disjoint sets of 2,000 real digits with their labels: (real, real_labels, other, other_labels)."""
    images, labels = mnist
    return images[:2000], labels[:2000], images[2000:4000], labels[2000:4000]


@pytest.fixture(scope="module")
def real_vs_real(halves):
    real, real_labels, other, other_labels = halves
    return pixels.diagnostics(other, pixels.reference(real, real_labels), other_labels)


def horizontal_bars(length: int = 18) -> np.ndarray:
    """uint8 images of one horizontal bar each, of width 2..6."""
    bars = np.zeros((len(WIDTHS), 28, 28), np.uint8)
    for bar, width in zip(bars, WIDTHS):
        bar[12 : 12 + width, 5 : 5 + length] = 255
    return bars


def slanted_bars(degrees: float, length: int = 18) -> np.ndarray:
    """uint8 images of one bar each, of width 2..6, at ``degrees`` from the horizontal through (14, 14)."""
    rows, columns = np.mgrid[:28, :28] - 14.0
    angle = np.deg2rad(degrees)
    along = columns * np.cos(angle) + rows * np.sin(angle)
    across = rows * np.cos(angle) - columns * np.sin(angle)
    inside = (np.abs(across) < WIDTHS[:, None, None] / 2) & (np.abs(along) < length / 2)
    return np.where(inside, 255, 0).astype(np.uint8)


def test_ink_mass_of_black_and_white_images_in_both_encodings():
    images = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    assert pixels.ink_mass(images).tolist() == [0.0, 784.0]
    assert pixels.ink_mass(scale_images(images)) == pytest.approx([0.0, 784.0])


def test_uint8_and_generator_floats_give_the_same_intensities(mnist):
    digits = np.round((mnist[0][:100, ..., 0] + 1) * 127.5).astype(np.uint8)
    floats = scale_images(digits)  # (N, 28, 28, 1) in [-1, 1]
    assert pixels.intensities(floats).shape == (100, 28, 28)
    np.testing.assert_allclose(pixels.intensities(floats), pixels.intensities(digits), atol=1e-6)
    np.testing.assert_allclose(pixels.ink_mass(floats[..., 0]), pixels.ink_mass(digits), rtol=1e-5)
    np.testing.assert_array_equal(pixels.stroke_width(floats), pixels.stroke_width(digits))


@pytest.mark.parametrize("bars", [horizontal_bars(), horizontal_bars().transpose(0, 2, 1), slanted_bars(30)],
                         ids=["horizontal", "vertical", "slanted"])
def test_stroke_width_of_bars_is_their_width(bars):
    width = pixels.stroke_width(bars)
    np.testing.assert_allclose(width, WIDTHS, rtol=0.15)
    assert (np.diff(width) > 0).all()


def test_stroke_width_of_an_empty_image_is_zero():
    assert pixels.stroke_width(np.full((1, 28, 28, 1), -1.0, np.float32)).tolist() == [0.0]


def test_ks_statistic_of_a_set_with_itself_and_of_disjoint_ranges():
    values = np.random.default_rng(0).normal(size=1000)
    assert pixels.ks_statistic(values, values) == 0.0
    assert pixels.ks_statistic(values, values + 100) == 1.0


def test_real_digits_score_near_the_ceilings(real_vs_real):
    assert real_vs_real["ink_ks"] < 0.07 and real_vs_real["stroke_ks"] < 0.07  # ~0.03 over random halves
    assert 0.45 < real_vs_real["pixel_coverage"] < 0.57  # 0.49-0.53 over random halves
    assert 1.5 < real_vs_real["stroke_width_mean"] < 4 and real_vs_real["ink_mass_std"] > 0


def test_a_collapsed_generator_is_caught(halves):
    real, _, other, _ = halves
    collapsed = pixels.diagnostics(np.repeat(other[:1], 2000, axis=0), pixels.reference(real))
    # One value against a spread: the KS statistic is at least the share of real values on one side of it.
    assert collapsed["ink_ks"] > 0.5 and collapsed["stroke_ks"] > 0.5
    assert collapsed["pixel_coverage"] < 0.05
    assert collapsed["ink_mass_std"] == pytest.approx(0, abs=1e-9)
    assert collapsed["stroke_width_std"] == pytest.approx(0, abs=1e-9)


def test_thickened_digits_move_the_stroke_width(halves, real_vs_real):
    real, _, other, _ = halves
    thick = pixels.diagnostics(ndimage.grey_dilation(other[..., 0], size=(1, 2, 2)), pixels.reference(real))
    assert thick["stroke_ks"] > 0.4 and thick["stroke_ks"] > 5 * real_vs_real["stroke_ks"]
    assert thick["stroke_width_mean"] > real_vs_real["stroke_width_mean"] + 1


def test_per_class_figures_catch_the_wrong_class(halves, real_vs_real):
    real, real_labels, other, other_labels = halves
    for name in ("per_class_ink_ks", "per_class_stroke_ks"):
        assert len(real_vs_real[name]) == 10 and all(math.isfinite(value) for value in real_vs_real[name])
    assert real_vs_real["class_ink_ks"] < 0.12 and real_vs_real["class_stroke_ks"] < 0.12  # ~0.08, 200 a class
    wrong = pixels.diagnostics(other, pixels.reference(real, real_labels), (other_labels + 1) % 10)  # each asked for the next class
    assert wrong["class_ink_ks"] > 0.25 and wrong["class_ink_ks"] > 2 * real_vs_real["class_ink_ks"]
    assert wrong["ink_ks"] == real_vs_real["ink_ks"]  # the unconditional figures cannot see it


def test_a_class_too_rare_on_either_side_is_nan_and_left_out_of_the_mean(halves):
    real, real_labels, other, other_labels = halves
    requested = np.where(other_labels == 9, 0, other_labels)  # no sample asked for a 9
    result = pixels.diagnostics(other, pixels.reference(real[real_labels != 8], real_labels[real_labels != 8]), requested)
    assert len(result["per_class_ink_ks"]) == 10
    assert [c for c, value in enumerate(result["per_class_ink_ks"]) if math.isnan(value)] == [8, 9]
    assert result["class_ink_ks"] == pytest.approx(np.mean(result["per_class_ink_ks"][:8]))


def test_more_samples_than_real_images_do_not_inflate_the_coverage(mnist, real_vs_real):
    real, others = mnist[0][:2000], mnist[0][2000:]  # 8,000 samples against 2,000 real digits
    assert abs(pixels.pixel_coverage(pixels.reference(real), others) - real_vs_real["pixel_coverage"]) < 0.05
