"""Sample-quality metrics from judge outputs: plain NumPy, batched, no per-image Python loops.

``probs`` are the judge's class probabilities (N, K); ``features`` its penultimate activations. Each sample
set is compared with the judge's real *reference* features:

- ``score``: exp E KL(p(y|x) || p(y)), the Inception Score on the judge (1 to K; higher: confident and varied);
- ``fid``: Fréchet distance of Gaussians fitted to sample and reference features (lower is closer);
- ``kid`` (``kid_std``): unbiased MMD^2 with a cubic polynomial kernel, mean (spread) over random subsets;
  unbiased, so comparable across sample counts, unlike FID (lower is closer, ~0 for the same distribution);
- ``precision``, ``recall``: share of samples inside the reference's k-NN manifold, and of the reference
  inside the samples' (quality and coverage);
- ``<metric>_std`` for score, fid, precision, recall: standard error over disjoint subsets of the samples;
- ``confidence``, ``min_share``, ``max_share``, ``kl_uniform``: how confident and how balanced the judged classes are;
- conditional samples: ``cond_acc`` (judged as the class asked for), with reference labels ``min_class_recall``
  and ``intra_fid``, the mean over classes of the FID between the samples asked for a class and its reference
  images; ``cas`` (``accuracy``): accuracy on real images of a classifier trained on the labelled samples.
"""

import math

import numpy as np

from gan_lab import pixels

# The scalar figures ``sample_metrics`` returns (cond_acc on conditional samples, min_class_recall and intra_fid
# with reference labels too), and ``cas``, which the judge adds when asked to.
CLASSIFIER_SCALARS = ("score", "fid", "precision", "recall", "confidence", "min_share", "max_share", "kl_uniform",
                      "cond_acc", "min_class_recall", "kid", "intra_fid", "cas", "score_std", "fid_std", "kid_std",
                      "precision_std", "recall_std")
VALIDATION_PREFIX = "val_"  # the validation judge's figures: val_fid, val_recall, ...
# Every scalar a judgement logs (and ``sweep.objective`` may name): the judge's, the pixel diagnostics', the
# validation judge's; the real-data ceiling of each is ``real_<name>``.
SCALARS = (*CLASSIFIER_SCALARS, *pixels.SCALARS, *(VALIDATION_PREFIX + name for name in CLASSIFIER_SCALARS))


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))): 1 for a single class, K for confident uniform predictions."""
    probs = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    marginal = probs.mean(axis=0)
    kl = (probs * (np.log(probs) - np.log(marginal))).sum(axis=1)
    return float(np.exp(kl.mean()))


def label_histogram(predicted: np.ndarray, num_classes: int = 10) -> dict:
    """Counts per predicted class, min/max class share, and KL(share || uniform)."""
    counts = np.bincount(predicted, minlength=num_classes)
    share = counts / counts.sum()
    nonzero = share[share > 0]
    return {
        "counts": counts.tolist(),
        "min_share": float(share.min()),
        "max_share": float(share.max()),
        "kl_uniform": float((nonzero * np.log(nonzero * num_classes)).sum()),
    }


def trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """Tr(sqrtm(A B)) for symmetric PSD A, B, via the symmetric A^1/2 B A^1/2 (stable eigh)."""
    w, v = np.linalg.eigh(sigma_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_a @ sigma_b @ sqrt_a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on judge features)."""
    a, b = features_a.astype(np.float64), features_b.astype(np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_sqrt_product(sigma_a, sigma_b)
    return float(max(value, 0.0))


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Squared distance of each point to its k-th nearest other point in the same set."""
    features = features.astype(np.float32)
    radii = np.empty(len(features), np.float32)
    for start in range(0, len(features), chunk):
        d = _squared_distances(features[start : start + chunk], features)
        radii[start : start + chunk] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def inside(queries: np.ndarray, centers: np.ndarray, radii: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Per query: whether it lies inside at least one ball (center, squared radius)."""
    queries, centers = queries.astype(np.float32), centers.astype(np.float32)
    found = np.empty(len(queries), bool)
    for start in range(0, len(queries), chunk):
        found[start : start + chunk] = (_squared_distances(queries[start : start + chunk], centers) <= radii).any(1)
    return found


def coverage(queries: np.ndarray, centers: np.ndarray, radii: np.ndarray, chunk: int = 2048) -> float:
    """Share of ``queries`` inside at least one ball (center, squared radius)."""
    return float(inside(queries, centers, radii, chunk).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds."""
    precision = coverage(fake, real, knn_radii(real, k))
    recall = coverage(real, fake, knn_radii(fake, k))
    return precision, recall


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose most probable class is their label (CAS: a classifier's, on real images)."""
    return float((probs.argmax(axis=1) == labels).mean())


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel (x.y / d + 1)^3 between the rows of ``x`` and ``y`` (d features), in their dtype."""
    gram = x @ y.T / x.shape[1] + 1
    return gram * gram * gram


def mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 under ``polynomial_kernel`` (Gretton et al. 2012): the mean kernel over pairs
    of distinct rows of ``a``, plus that of ``b``, minus twice the mean over all (a, b) pairs. Sums in float64."""
    m, n = len(a), len(b)
    k_aa, k_bb = polynomial_kernel(a, a), polynomial_kernel(b, b)
    within_a = (k_aa.sum(dtype=np.float64) - np.trace(k_aa, dtype=np.float64)) / (m * (m - 1))
    within_b = (k_bb.sum(dtype=np.float64) - np.trace(k_bb, dtype=np.float64)) / (n * (n - 1))
    return float(within_a + within_b - 2 * polynomial_kernel(a, b).sum(dtype=np.float64) / (m * n))


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018) as torch-fidelity computes it: (mean, std) of ``mmd2_unbiased`` over
    ``subsets`` pairs of random subsets of ``subset_size`` rows (capped by the smaller set), each drawn without
    replacement, the subsets overlapping one another; ``seed`` fixes them. The std is the spread of the subset
    values (ddof=0), not a standard error. Computed in the features' dtype (float32 for the judge's)."""
    size = min(subset_size, len(features_a), len(features_b))
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(features_a[rng.choice(len(features_a), size, replace=False)],
                            features_b[rng.choice(len(features_b), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def subset_errors(probs: np.ndarray, features: np.ndarray, reference: np.ndarray, in_reference: np.ndarray,
                  k: int = 3, subsets: int = 10, seed: int = 0) -> dict[str, float]:
    """``score_std``, ``fid_std``, ``precision_std``, ``recall_std``: the standard error of the mean of the metric
    over S disjoint random subsets of the samples, each against the full reference: std(values, ddof=1) / sqrt(S).
    S is ``subsets``, fewer if each subset would keep ``k`` samples or fewer (NaN below two). It measures how much
    a figure moves with the draw of the samples. FID of a subset is biased upward (fewer samples), so ``fid_std``
    is that spread, not a confidence interval of the full-set FID. ``in_reference``: per sample, whether it lies
    inside the reference's k-NN manifold (precision's flags, which do not depend on the other samples)."""
    count = min(subsets, len(features) // (k + 1))
    if count < 2:
        return {f"{name}_std": math.nan for name in ("score", "fid", "precision", "recall")}
    parts = np.array_split(np.random.default_rng(seed).permutation(len(features)), count)
    values = {
        "score": [classifier_score(probs[part]) for part in parts],
        "fid": [frechet_distance(features[part], reference) for part in parts],
        "precision": [in_reference[part].mean() for part in parts],
        "recall": [coverage(reference, features[part], knn_radii(features[part], k)) for part in parts],
    }
    return {f"{name}_std": float(np.std(value, ddof=1) / np.sqrt(count)) for name, value in values.items()}


def sample_metrics(probs: np.ndarray, features: np.ndarray, reference: np.ndarray, requested=None, k: int = 3,
                   reference_labels: np.ndarray | None = None, subsets: int = 10, kid_subsets: int = 100,
                   kid_subset_size: int = 1000) -> dict:
    """All metrics of one sample set against the real reference features (the module's list but ``cas``).

    ``requested``: the labels a conditional generator was asked for (adds ``cond_acc``,
    ``per_class_acc`` and ``confusion``: rows requested, columns judged); with the reference's
    ``reference_labels`` also ``per_class_recall`` (each class's real images covered by the samples
    asked for that class: the variety within a class) and its minimum, ``min_class_recall``, and
    ``per_class_fid`` (samples asked for a class against its reference images) and their mean over the
    classes asked for more than ``k`` times, ``intra_fid`` (on a class's fewer images, biased higher than
    ``fid``: compare it at one sample count). ``subsets``: of ``subset_errors``;
    ``kid_subsets``, ``kid_subset_size``: of ``kernel_distance``.
    """
    num_classes = probs.shape[1]
    predicted = probs.argmax(axis=1)
    in_reference = inside(features, reference, knn_radii(reference, k))
    kid, kid_std = kernel_distance(features, reference, kid_subsets, kid_subset_size)
    result = {
        "score": classifier_score(probs),
        "fid": frechet_distance(features, reference),
        "kid": kid,
        "precision": float(in_reference.mean()),
        "recall": coverage(reference, features, knn_radii(features, k)),
        "kid_std": kid_std,
        **subset_errors(probs, features, reference, in_reference, k, subsets),
        "confidence": float(probs.max(axis=1).mean()),
        **label_histogram(predicted, num_classes),
    }
    if requested is not None:
        confusion = np.zeros((num_classes, num_classes), np.int64)
        np.add.at(confusion, (requested, predicted), 1)
        asked = confusion.sum(axis=1)
        result["cond_acc"] = float(np.trace(confusion) / confusion.sum())
        result["per_class_acc"] = (np.diag(confusion) / np.maximum(asked, 1)).tolist()
        result["confusion"] = confusion.tolist()
        if reference_labels is not None:
            measured = [c for c in range(num_classes) if asked[c] > k]
            result["per_class_recall"] = [
                coverage(reference[reference_labels == c], features[requested == c],
                         knn_radii(features[requested == c], k)) if c in measured else 0.0
                for c in range(num_classes)]
            result["min_class_recall"] = float(min(result["per_class_recall"]))
            result["per_class_fid"] = [
                frechet_distance(features[requested == c], reference[reference_labels == c]) if c in measured
                else math.nan for c in range(num_classes)]
            result["intra_fid"] = float(np.mean([result["per_class_fid"][c] for c in measured])) if measured \
                else math.nan
    return result
