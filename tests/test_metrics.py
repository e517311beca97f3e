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
