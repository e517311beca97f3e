"""Pixel-space diagnostics of generated images: plain NumPy, vectorised, no neural network to fool.

Images are uint8 (N, 28, 28) in [0, 255] or the generator's float (N, 28, 28[, 1]) in [-1, 1]; ``intensities``
maps both to [0, 1]. Each sample set is compared with real images, whose side ``reference`` computes once:

- ``ink_ks``, ``stroke_ks``: two-sample Kolmogorov-Smirnov statistic between the samples' and the real images'
  ink mass (summed intensity, ``ink_mass``) and mean stroke width (``stroke_width``): 0 for the same
  distribution, 1 for disjoint ones, ~0.5 or more for a single image repeated; two random disjoint sets of 2,000
  MNIST test digits give 0.02-0.05;
- ``pixel_coverage``: share of the real images whose nearest sample, in the real images' top principal axes, is
  no farther than the median distance of a real image to its nearest other real image. Its ceiling is ~0.5: an
  independent real set of the same size is as near as the real images are to one another, and half of those lie
  within the median (random halves of 2,000 MNIST test digits: 0.49-0.53). A collapsed generator gives ~0, fewer
  samples than real images less (more are subsampled), copies of the real images themselves 1: compare against
  real images the generator was not trained on;
- ``ink_mass_mean``, ``ink_mass_std``, ``stroke_width_mean``, ``stroke_width_std``: of the samples, to read
  beside the real images' (which way a KS statistic moved);
- conditional samples with real labels: ``per_class_ink_ks``, ``per_class_stroke_ks`` (the samples asked for a
  class against its real images) and their means ``class_ink_ks``, ``class_stroke_ks``: drawing the wrong class,
  or one class's ink for all, shows there; on ~200 images a class, real digits give 0.07-0.1.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp

# The scalar figures ``diagnostics`` returns (class_ink_ks, class_stroke_ks with requested and real labels):
# lower KS is closer; pixel_coverage higher is better, ~0.5 for real images.
SCALARS = ("ink_ks", "stroke_ks", "pixel_coverage", "class_ink_ks", "class_stroke_ks")

# Boundary length per differing neighbour pair, axial (left-right, up-down) and diagonal: a straight edge at 0 or
# 45 degrees gets its Euclidean length, at other angles up to 8 % more.
AXIAL_WEIGHT, DIAGONAL_WEIGHT = math.sqrt(2) - 1, 1 - 1 / math.sqrt(2)


def intensities(images: np.ndarray) -> np.ndarray:
    """float32 (N, H, W) in [0, 1] (1 is ink) of uint8 images in [0, 255] or float (N, H, W[, 1]) in [-1, 1]."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 1), got shape {images.shape}")
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / 255
    return np.clip((images.astype(np.float32) + 1) / 2, 0, 1)


def ink_mass(images: np.ndarray) -> np.ndarray:
    """Sum of pixel intensities in [0, 1] per image: 0 for a blank 28x28 image, 784 for a white one."""
    return intensities(images).sum(axis=(1, 2), dtype=np.float64)


def stroke_width(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Mean stroke width in pixels of each binarised image (intensity > ``threshold``); 0 for an empty one.

    The ink is taken for a w x l rectangle of the same area A and perimeter P (2(w + l) = P, wl = A), so
    w = (P/2 - sqrt(P^2/4 - 4A)) / 2, or P/4 when the shape is rounder than a square. P counts the ink/background
    neighbour pairs left-right and up-down (weight sqrt 2 - 1) and diagonally (1 - 1/sqrt 2), so slanted strokes
    are not read as thinner (left-right and up-down pairs alone read a 45-degree stroke 30 % thin). Holes add their
    boundary, so a ring of width w also reads w. Bars of width 2-6 and length 18 read within 6 % axis-aligned,
    within 15 % of their ink area / length slanted.
    """
    ink = np.pad(intensities(images) > threshold, ((0, 0), (1, 1), (1, 1)))
    area = ink.sum(axis=(1, 2), dtype=np.float64)
    axial = (ink[:, :, 1:] != ink[:, :, :-1]).sum(axis=(1, 2)) + (ink[:, 1:] != ink[:, :-1]).sum(axis=(1, 2))
    diagonal = ((ink[:, 1:, 1:] != ink[:, :-1, :-1]).sum(axis=(1, 2))
                + (ink[:, 1:, :-1] != ink[:, :-1, 1:]).sum(axis=(1, 2)))
    half_perimeter = (AXIAL_WEIGHT * axial + DIAGONAL_WEIGHT * diagonal) / 2
    return (half_perimeter - np.sqrt(np.maximum(half_perimeter**2 - 4 * area, 0))) / 2


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (0 to 1)."""
    return float(ks_2samp(a, b, method="asymp").statistic)


def principal_axes(flat: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, (D, k) basis) of the top ``components`` principal axes of the rows of ``flat``: the eigenvectors of
    their D x D scatter matrix, which are the centred rows' right singular vectors, at a fraction of their SVD."""
    mean = flat.mean(axis=0)
    centered = flat - mean
    _, vectors = np.linalg.eigh((centered.T @ centered).astype(np.float64))
    return mean, vectors[:, ::-1][:, :min(components, *flat.shape)].astype(np.float32)


def nearest_distances(queries: np.ndarray, points: np.ndarray, same: bool = False, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance of each query row to its nearest row of ``points`` (with ``same``, ``queries`` being
    ``points``: to its nearest other row), ``chunk`` queries at a time."""
    squared = (points * points).sum(axis=1)
    nearest = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        d = (block * block).sum(axis=1)[:, None] + squared[None, :] - 2 * (block @ points.T)
        if same:
            d[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        nearest[start : start + chunk] = d.min(axis=1)
    return np.sqrt(np.maximum(nearest, 0))


@dataclass(frozen=True)
class Reference:
    """The real images' side of every figure, computed once (``reference``) and compared with many sample sets."""

    ink: np.ndarray  # ink mass per image
    width: np.ndarray  # stroke width per image
    labels: np.ndarray | None  # their classes, for the per-class figures
    mean: np.ndarray  # the principal axes of the real images (pixel_coverage's space): mean and (D, k) basis
    basis: np.ndarray
    projected: np.ndarray  # the real images in that space
    radius: float  # median distance there of a real image to its nearest other real image


def reference(real_images: np.ndarray, labels: np.ndarray | None = None, components: int = 50) -> Reference:
    """The ``Reference`` of ``real_images`` (with ``labels``), in their top ``components`` principal axes."""
    flat = intensities(real_images).reshape(len(real_images), -1)
    mean, basis = principal_axes(flat, components)
    projected = (flat - mean) @ basis
    return Reference(ink_mass(real_images), stroke_width(real_images), None if labels is None else np.asarray(labels),
                     mean, basis, projected, float(np.median(nearest_distances(projected, projected, same=True))))


def pixel_coverage(real: Reference, fake: np.ndarray, seed: int = 0) -> float:
    """Share of the real images whose nearest ``fake`` image is no farther than ``real.radius``, the median
    distance of a real image to its nearest other real image, in the space of the real images' principal axes.

    With more fakes than real images, as many as there are real ones, drawn at random (``seed``), are used, so the
    figure does not rise with the sample count. An independent real set of the same size gives ~0.5 (its
    ceiling), a single image repeated ~0.
    """
    fake = intensities(fake).reshape(len(fake), -1)
    if len(fake) > len(real.projected):
        fake = fake[np.random.default_rng(seed).choice(len(fake), len(real.projected), replace=False)]
    return float((nearest_distances(real.projected, (fake - real.mean) @ real.basis) <= real.radius).mean())


def class_ks(samples: np.ndarray, reference: np.ndarray, requested: np.ndarray, labels: np.ndarray,
             num_classes: int) -> list[float]:
    """Per class: KS statistic of the samples asked for it against its reference values; NaN below 2 on a side."""
    return [ks_statistic(samples[requested == c], reference[labels == c])
            if min((requested == c).sum(), (labels == c).sum()) >= 2 else math.nan for c in range(num_classes)]


def _finite_mean(values: list[float]) -> float:
    """Mean of the finite values; NaN if there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def diagnostics(images: np.ndarray, real: Reference, requested: np.ndarray | None = None, seed: int = 0) -> dict:
    """All pixel-space figures of the samples ``images`` against the ``real`` images (see the module docstring).

    ``requested`` (the labels a conditional generator was asked for) with the reference's labels adds the
    per-class KS lists, over classes 0 to the largest label of either, and their means over finite values.
    """
    ink, width = ink_mass(images), stroke_width(images)
    result = {
        "ink_ks": ks_statistic(ink, real.ink),
        "stroke_ks": ks_statistic(width, real.width),
        "pixel_coverage": pixel_coverage(real, images, seed=seed),
        "ink_mass_mean": float(ink.mean()),
        "ink_mass_std": float(ink.std()),
        "stroke_width_mean": float(width.mean()),
        "stroke_width_std": float(width.std()),
    }
    if requested is not None and real.labels is not None:
        requested = np.asarray(requested)
        num_classes = int(max(requested.max(), real.labels.max())) + 1
        result["per_class_ink_ks"] = class_ks(ink, real.ink, requested, real.labels, num_classes)
        result["per_class_stroke_ks"] = class_ks(width, real.width, requested, real.labels, num_classes)
        result["class_ink_ks"] = _finite_mean(result["per_class_ink_ks"])
        result["class_stroke_ks"] = _finite_mean(result["per_class_stroke_ks"])
    return result
