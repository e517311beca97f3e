"""Known answers for truncated noise and discriminator rejection sampling, on 1-D toy distributions."""

import numpy as np
import pytest
from scipy.stats import norm

from gan_lab.config import Noise
from gan_lab.models import sample_noise
from gan_lab.sampling import rejection_sample, truncated_noise

# The toy GAN: the generator draws N(0, 1), the data is N(DATA_MEAN, DATA_VAR), and the optimal discriminator's
# logit is the exact log density ratio. DATA_VAR < 1 bounds the ratio, with its maximum at x = 1, inside the bulk.
DATA_MEAN, DATA_VAR = 0.5, 0.5
RATIO_ARGMAX = DATA_MEAN / (1 - DATA_VAR)


def log_ratio(x: np.ndarray) -> np.ndarray:
    return norm.logpdf(x, DATA_MEAN, np.sqrt(DATA_VAR)) - norm.logpdf(x)


def normal_generator(seed: int):
    rng = np.random.default_rng(seed)
    return lambda k: rng.standard_normal(k)


def exact_percentile() -> float:
    """The percentile at which γ = 0: the share of p_g with exp(D̃ - D̃*) < 1/2."""
    half_width = np.sqrt(2 * np.log(2) / (1 / DATA_VAR - 1))  # log_ratio is quadratic around RATIO_ARGMAX
    return 100 * (1 - (norm.cdf(RATIO_ARGMAX + half_width) - norm.cdf(RATIO_ARGMAX - half_width)))


def expected_acceptance(max_logit: float, gamma: float) -> tuple[float, float]:
    """Acceptance rate and mean of the accepted samples by quadrature over p_g, with
    sigmoid(F - γ) written as 1 / (1 + exp(γ) (exp(D̃* - D̃) - 1))."""
    x, dx = np.linspace(-9, 9, 36001, retstep=True)
    shifted = np.minimum(log_ratio(x) - max_logit, 0.0)
    density = norm.pdf(x) / (1 + np.exp(gamma) * np.expm1(-shifted))
    rate = density.sum() * dx
    return rate, (x * density).sum() * dx / rate


def test_truncation_off_is_sample_noise():
    for noise, threshold in [(Noise.normal, None), (Noise.normal, np.inf), (Noise.uniform, None),
                             (Noise.uniform, 1.0), (Noise.uniform, 3.0)]:
        z = truncated_noise(np.random.default_rng(7), 50, 16, noise, threshold)
        assert z.dtype == np.float32
        np.testing.assert_array_equal(z, sample_noise(np.random.default_rng(7), 50, 16, noise))


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_truncated_normal_redraws_only_outliers(threshold):
    z = truncated_noise(np.random.default_rng(0), 256, 64, Noise.normal, threshold)
    untruncated = sample_noise(np.random.default_rng(0), 256, 64, Noise.normal)
    assert z.shape == (256, 64) and z.dtype == np.float32
    assert np.abs(z).max() <= threshold
    inside = np.abs(untruncated) <= threshold
    np.testing.assert_array_equal(z[inside], untruncated[inside])
    assert (~inside).mean() == pytest.approx(2 * norm.sf(threshold), abs=0.015)
    truncated_var = 1 - 2 * threshold * norm.pdf(threshold) / (2 * norm.cdf(threshold) - 1)
    assert z.var() == pytest.approx(truncated_var, abs=0.02)


def test_truncated_uniform_is_scaled_uniform():
    z = truncated_noise(np.random.default_rng(1), 256, 64, Noise.uniform, 0.5)
    untruncated = sample_noise(np.random.default_rng(1), 256, 64, Noise.uniform)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, 0.5 * untruncated, rtol=1e-6)
    assert 0.49 < np.abs(z).max() <= 0.5
    assert z.var() == pytest.approx(0.5**2 / 3, rel=0.05)


@pytest.mark.parametrize("threshold", [0.0, -1.0, np.nan])
def test_truncation_threshold_must_be_positive(threshold):
    with pytest.raises(ValueError, match=r"threshold=.*must be > 0"):
        truncated_noise(np.random.default_rng(0), 4, 2, Noise.normal, threshold)


def test_drs_at_gamma_zero_samples_the_data_distribution():
    percentile = exact_percentile()
    samples, stats = rejection_sample(normal_generator(0), log_ratio, 20000, np.random.default_rng(1), percentile)
    assert stats["max_logit"] == pytest.approx(log_ratio(RATIO_ARGMAX), abs=1e-3)
    assert stats["gamma"] == pytest.approx(0.0, abs=0.05)
    assert stats["acceptance_rate"] == pytest.approx(np.exp(-log_ratio(RATIO_ARGMAX)), abs=0.015)  # 1 / max ratio
    assert samples.mean() == pytest.approx(DATA_MEAN, abs=0.02)
    assert samples.var() == pytest.approx(DATA_VAR, abs=0.02)


def test_drs_acceptance_and_shift_match_quadrature_and_order_by_percentile():
    rates, means = [], []
    for percentile in [0.0, 20.0, exact_percentile(), 80.0]:
        samples, stats = rejection_sample(normal_generator(2), log_ratio, 10000, np.random.default_rng(3), percentile)
        rate, mean = expected_acceptance(stats["max_logit"], stats["gamma"])
        assert stats["acceptance_rate"] == pytest.approx(rate, abs=0.01)
        assert samples.mean() == pytest.approx(mean, abs=0.03)
        rates.append(stats["acceptance_rate"])
        means.append(samples.mean())
    assert rates[0] > 0.99 and abs(means[0]) < 0.03  # γ far below 0: (almost) everything accepted
    assert rates == sorted(rates, reverse=True) and means == sorted(means)
    assert means[-1] > DATA_MEAN  # γ > 0 over-corrects towards the ratio's argmax


def test_constant_logits_accept_half_uniformly():
    samples, stats = rejection_sample(normal_generator(4), lambda x: np.full(len(x), 2.5), 10000,
                                      np.random.default_rng(5))
    assert stats["max_logit"] == 2.5
    assert stats["gamma"] == pytest.approx(-np.log(-np.expm1(-1e-6)))  # F at D̃ = D̃*: sigmoid(F - γ) = 1/2
    assert stats["acceptance_rate"] == pytest.approx(0.5, abs=0.01)
    assert samples.mean() == pytest.approx(0.0, abs=0.03) and samples.var() == pytest.approx(1.0, abs=0.04)


def test_returns_exactly_the_first_n_accepted_in_order_and_never_burn_in():
    calls = []

    def counter(k):
        start = sum(calls)
        calls.append(k)
        return np.arange(start, start + k)

    # Even values have D̃ = D̃*, odd ones D̃* - 50: γ is the median F (~ -18), so evens are accepted, odds rejected.
    samples, stats = rejection_sample(counter, lambda x: np.where(x % 2 == 0, 0.0, -50.0), 7,
                                      np.random.default_rng(0), percentile=50.0, burn_in=10, batch_size=4)
    assert calls == [4, 4, 2, 4, 4, 4, 4]
    np.testing.assert_array_equal(samples, [10, 12, 14, 16, 18, 20, 22])
    assert stats == {"acceptance_rate": 0.5, "proposed": 16, "accepted": 7, "max_logit": 0.0,
                     "gamma": pytest.approx(-25 - np.log(-np.expm1(-1e-6)) / 2)}


def test_same_seed_same_output_and_column_logits():
    def run(seed, column=False):
        logits = (lambda x: log_ratio(x)[:, None]) if column else log_ratio
        return rejection_sample(normal_generator(seed), logits, 500, np.random.default_rng(seed), burn_in=1000)

    (first, stats), (again, stats_again), (column, stats_column) = run(0), run(0), run(0, column=True)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, column)
    assert stats == stats_again == stats_column
    assert not np.array_equal(first, run(1)[0])


def test_conditional_samples_keep_their_labels():
    rng = np.random.default_rng(0)

    def generate(k):
        labels = rng.integers(0, 2, k).astype(np.int32)
        return labels * 10.0 + rng.standard_normal(k), labels  # an "image" tells its label: > 5 for label 1

    def logits(samples):
        _, labels = samples
        return np.where(labels == 1, np.log(3.0), 0.0)[:, None]

    # F is -log 2 for label 0 (exp(D̃ - D̃*) = 1/3) and ~13.8 for label 1; the 25th percentile is γ = -log 2,
    # so label 0 is accepted with probability 1/2 and label 1 with ~1.
    (images, labels), stats = rejection_sample(generate, logits, 6000, np.random.default_rng(1), percentile=25.0)
    assert images.shape == labels.shape == (6000,) and labels.dtype == np.int32
    np.testing.assert_array_equal(images > 5, labels == 1)
    assert stats["gamma"] == pytest.approx(-np.log(2.0), abs=1e-5)
    assert stats["acceptance_rate"] == pytest.approx(0.75, abs=0.015)
    assert labels.mean() == pytest.approx(2 / 3, abs=0.02)


def test_exhausted_batches_raise():
    with pytest.raises(RuntimeError, match=r"accepted \d+ of n=50 .* max_batches=3"):
        rejection_sample(normal_generator(0), lambda x: x, 50, np.random.default_rng(0), percentile=100.0,
                         burn_in=1000, batch_size=100, max_batches=3)


@pytest.mark.parametrize("argument, value", [("n", 0), ("percentile", -1.0), ("percentile", 100.5),
                                             ("percentile", np.nan), ("epsilon", 0.0), ("burn_in", 0),
                                             ("batch_size", 0), ("max_batches", 0)])
def test_bad_arguments_raise_naming_them(argument, value):
    arguments = {"n": 10, "rng": np.random.default_rng(0)} | {argument: value}
    with pytest.raises(ValueError, match=rf"^{argument}="):
        rejection_sample(normal_generator(0), log_ratio, **arguments)


@pytest.mark.parametrize("logits, message", [(lambda x: np.zeros((len(x), 2)), r"shape \(4, 2\)"),
                                             (lambda x: np.full(len(x), np.nan), "non-finite")])
def test_bad_logits_raise(logits, message):
    with pytest.raises(ValueError, match=message):
        rejection_sample(normal_generator(0), logits, 1, np.random.default_rng(0), burn_in=4, batch_size=4)
