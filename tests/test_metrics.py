"""Known answers for the judge metrics."""

import numpy as np
import pytest

from gan_lab import metrics


def one_hot(labels, num_classes=10, confidence=1.0):
    probs = np.full((len(labels), num_classes), (1 - confidence) / (num_classes - 1))
    probs[np.arange(len(labels)), labels] = confidence
    return probs


def test_frechet_distance_of_identical_sets_is_zero():
    features = np.random.default_rng(0).normal(size=(2000, 32))
    assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 4))
    b = rng.normal(size=(20000, 4)) + np.array([3.0, 0, 0, 0])
    assert metrics.frechet_distance(a, b) == pytest.approx(9.0, rel=0.03)  # |mu diff|^2, equal covariances
    c = rng.normal(size=(20000, 4)) * 2.0  # sigma 2I vs I: tr(I + 4I - 2*2I) = 4
    assert metrics.frechet_distance(a, c) == pytest.approx(4.0, rel=0.05)


def test_trace_sqrt_product_matches_eigenvalues_of_non_commuting_matrices():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    a, b = x @ x.T, y @ y.T
    expected = np.sqrt(np.linalg.eigvals(a @ b).real.clip(0)).sum()
    assert metrics.trace_sqrt_product(a, b) == pytest.approx(expected, rel=1e-8)


def test_score_one_class_is_one_and_histogram_concentrated():
    probs = one_hot(np.full(500, 3))
    assert metrics.classifier_score(probs) == pytest.approx(1.0)
    hist = metrics.label_histogram(probs.argmax(1))
    assert hist["counts"] == [0, 0, 0, 500, 0, 0, 0, 0, 0, 0]
    assert (hist["min_share"], hist["max_share"]) == (0.0, 1.0)
    assert hist["kl_uniform"] == pytest.approx(np.log(10))


def test_score_uniform_confident_is_ten():
    probs = one_hot(np.arange(1000) % 10)
    assert metrics.classifier_score(probs) == pytest.approx(10.0, rel=1e-6)
    hist = metrics.label_histogram(probs.argmax(1))
    assert hist["min_share"] == hist["max_share"] == 0.1 and hist["kl_uniform"] == pytest.approx(0.0)


def test_unsure_uniform_predictions_score_lower():
    assert metrics.classifier_score(one_hot(np.arange(1000) % 10, confidence=0.5)) < 5


def test_precision_recall_against_itself_is_one():
    features = np.random.default_rng(3).normal(size=(3000, 16))
    assert metrics.precision_recall(features, features, k=3) == (1.0, 1.0)


def test_precision_recall_of_collapsed_and_disjoint_sets():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(2000, 2))
    collapsed = rng.normal(size=(2000, 2)) * 0.05  # all near the mode: precise, no recall
    precision, recall = metrics.precision_recall(real, collapsed)
    assert precision > 0.95 and recall < 0.2
    far = rng.normal(size=(2000, 2)) + 100.0
    assert metrics.precision_recall(real, far) == (0.0, 0.0)


def test_conditional_metrics():
    requested = np.arange(100) % 10
    judged = requested.copy()
    judged[:10] = 7  # the first ten requests (one per digit) all judged as 7
    result = metrics.sample_metrics(one_hot(judged), np.eye(100, 8), np.eye(100, 8), requested=requested)
    assert result["cond_acc"] == pytest.approx(0.91)
    assert result["per_class_acc"][7] == 1.0 and result["per_class_acc"][0] == pytest.approx(0.9)
    assert result["confusion"][0][7] == 1 and sum(map(sum, result["confusion"])) == 100


def brute_force_mmd2(a, b):
    """The unbiased MMD^2 estimator written out pair by pair."""
    def k(x, y):
        return (x @ y / len(x) + 1) ** 3

    m, n = len(a), len(b)
    within_a = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_b = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(x, y) for x in a for y in b) / (m * n)
    return within_a + within_b - 2 * across


def test_mmd2_matches_the_pairwise_estimator():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(9, 4)) + 0.3
    assert metrics.mmd2_unbiased(a, b) == pytest.approx(brute_force_mmd2(a, b), abs=1e-9)


def test_kid_of_one_distribution_is_near_zero():
    sample = np.random.default_rng(6).normal(size=(2000, 16)).astype(np.float32)
    kid, kid_std = metrics.kernel_distance(sample[:1000], sample[1000:], subsets=20, subset_size=500)
    assert abs(kid) < 0.01 and 0 < kid_std < 0.01
    assert metrics.kernel_distance(sample[:1000], sample[1000:], subsets=20, subset_size=500) == (kid, kid_std)


def test_kid_grows_with_the_shift():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(1000, 16)).astype(np.float32)
    fake = rng.normal(size=(1000, 16)).astype(np.float32)
    kids = [metrics.kernel_distance(real, fake + shift, 10, 500)[0] for shift in (0.0, 0.25, 0.5, 1.0)]
    assert kids[1] > 0.01 and kids == sorted(kids) and kids[3] > 10 * kids[1]


def test_kid_subsets_are_capped_by_the_smaller_set():
    rng = np.random.default_rng(8)
    kid, kid_std = metrics.kernel_distance(rng.normal(size=(40, 4)), rng.normal(size=(25, 4)) + 2, subsets=5)
    assert kid > 0 and np.isfinite(kid_std)


def random_judgement(n, seed=9):
    """Metrics of n samples of a Gaussian overlapping the reference's, with random class probabilities."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(10), n)
    reference = rng.normal(size=(1000, 8))
    return metrics.sample_metrics(probs, rng.normal(size=(n, 8)) + 0.5, reference, kid_subsets=10)


def test_standard_errors_are_positive_and_shrink_with_bigger_subsets():
    small, large = random_judgement(400), random_judgement(4000)
    for name in ("score", "fid", "precision", "recall"):
        assert np.isfinite(small[f"{name}_std"]) and small[f"{name}_std"] > 0, name
        assert large[f"{name}_std"] < 0.6 * small[f"{name}_std"], name  # ~1/sqrt(10) in theory
    assert np.isfinite(small["kid_std"]) and small["kid_std"] > 0
    assert np.isnan(random_judgement(7)["fid_std"])  # under two subsets of more than k=3 samples: no spread


def test_intra_class_fid_of_matching_and_swapped_classes():
    rng = np.random.default_rng(10)
    centers = 4 * np.eye(10)  # class c: a unit Gaussian around 4 e_c

    def draw(labels):
        return centers[labels] + rng.normal(size=(len(labels), 10))

    reference_labels = np.arange(3000) % 10
    requested = np.arange(2000) % 10
    features = draw(requested)
    probs = one_hot(requested)
    reference = draw(reference_labels)
    matched = metrics.sample_metrics(probs, features, reference, requested, reference_labels=reference_labels,
                                     kid_subsets=5)
    swapped = metrics.sample_metrics(probs, features, reference, (requested + 1) % 10,
                                     reference_labels=reference_labels, kid_subsets=5)
    assert len(matched["per_class_fid"]) == 10 and matched["intra_fid"] < 1.0
    # a class's samples against the next class's images: means |4 e_c - 4 e_c+1|^2 = 32 apart, same covariance
    assert swapped["intra_fid"] == pytest.approx(32, rel=0.1)
    assert swapped["intra_fid"] == pytest.approx(np.mean(swapped["per_class_fid"]))
    assert swapped["fid"] == pytest.approx(matched["fid"])  # the same samples, only their labels swapped
