"""Sample-quality metrics from judge outputs: plain NumPy, batched, no per-image Python loops.

``probs`` are the judge's class probabilities (N, K); ``features`` its penultimate activations.
"""

import numpy as np

# The scalar figures ``sample_metrics`` returns (cond_acc only for conditional samples).
SCALARS = ("score", "fid", "precision", "recall", "confidence", "min_share", "max_share", "kl_uniform", "cond_acc",
           "min_class_recall")


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


def sample_metrics(probs: np.ndarray, features: np.ndarray, reference: np.ndarray, requested=None, k: int = 3,
                   reference_labels: np.ndarray | None = None) -> dict:
    """All metrics of one sample set against the real reference features.

    ``requested``: the labels a conditional generator was asked for (adds ``cond_acc``,
    ``per_class_acc`` and ``confusion``: rows requested, columns judged); with the reference's
    ``reference_labels`` also ``per_class_recall`` (each digit's real images covered by the samples
    asked for that digit: the variety within a class) and its minimum, ``min_class_recall``.
    """
    num_classes = probs.shape[1]
    predicted = probs.argmax(axis=1)
    precision, recall = precision_recall(reference, features, k)
    result = {
        "score": classifier_score(probs),
        "fid": frechet_distance(features, reference),
        "precision": precision,
        "recall": recall,
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
            result["per_class_recall"] = [
                coverage(reference[reference_labels == c], features[requested == c],
                         knn_radii(features[requested == c], k)) if (requested == c).sum() > k else 0.0
                for c in range(num_classes)]
            result["min_class_recall"] = float(min(result["per_class_recall"]))
    return result
