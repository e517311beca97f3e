"""Sampling-time options of ``generate`` and ``evaluate``: truncated noise and discriminator rejection sampling.

Plain NumPy, no TensorFlow import: the generator and discriminator enter as callables on NumPy arrays.
"""

from collections.abc import Callable

import numpy as np
from scipy.special import expit

from gan_lab.config import Noise

# A batch of samples: one array, or a tuple of arrays with the same leading dimension, e.g. (images, labels).
Samples = np.ndarray | tuple[np.ndarray, ...]


def truncated_noise(rng: np.random.Generator, n: int, latent_dim: int, noise: Noise,
                    threshold: float | None) -> np.ndarray:
    """``sample_noise`` restricted to |z| <= threshold: the truncation trick (Brock et al. 2019), float32.

    ``threshold=None`` (or inf) is no truncation: exactly ``sample_noise(rng, n, latent_dim, noise)``.
    Normal noise: the components with |z| > threshold are redrawn until none is left (the others keep their
    values), i.e. N(0, 1) truncated to [-threshold, threshold]. Uniform noise: U(-1, 1) scaled to
    U(-threshold, threshold) when threshold < 1, unchanged otherwise.
    """
    from gan_lab.models import (
        sample_noise,  # imports TensorFlow: only when noise is drawn
    )

    if threshold is not None and not threshold > 0:
        raise ValueError(f"threshold={threshold}: must be > 0 (or None for no truncation)")
    z = sample_noise(rng, n, latent_dim, noise)
    if threshold is None:
        return z
    if noise == Noise.uniform:
        return z * np.float32(min(threshold, 1.0))
    flat = z.reshape(-1)
    outside = np.flatnonzero(np.abs(flat) > threshold)
    while outside.size:
        flat[outside] = rng.standard_normal(outside.size, dtype=np.float32)
        outside = outside[np.abs(flat[outside]) > threshold]
    return z


def _take(samples: Samples, index: np.ndarray | slice) -> Samples:
    return tuple(part[index] for part in samples) if isinstance(samples, tuple) else samples[index]


def _concatenate(batches: list[Samples]) -> Samples:
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


def _log1mexp(a: np.ndarray) -> np.ndarray:
    """log(1 - exp(a)) for a < 0, accurate both near 0 and for very negative a (Mächler 2012)."""
    return np.where(a > -np.log(2.0), np.log(-np.expm1(a)), np.log1p(-np.exp(a)))


def _drs_scores(logits: np.ndarray, max_logit: float, epsilon: float) -> np.ndarray:
    """F(x) = D̃(x) - D̃* - log(1 - exp(D̃(x) - D̃* - ε)), so that sigmoid(F) ≈ exp(D̃(x) - D̃*)."""
    shifted = logits - max_logit
    return shifted - _log1mexp(shifted - epsilon)


def rejection_sample(generate: Callable[[int], Samples], logits: Callable[[Samples], np.ndarray], n: int,
                     rng: np.random.Generator, percentile: float = 80.0, epsilon: float = 1e-6, burn_in: int = 10000,
                     batch_size: int = 1000, max_batches: int = 1000) -> tuple[Samples, dict]:
    """Discriminator rejection sampling (Azadi et al. 2019, Algorithm 1): ``n`` generator samples, each accepted
    with probability sigmoid(F(x) - γ), drawn from ``rng``.

    ``generate(k)`` returns k fresh samples: an array, or a tuple of arrays such as (images, labels) for a
    conditional generator; ``logits(samples)`` takes that same structure and returns the discriminator's logits
    D̃, shape (k,) or (k, 1). D̃* is the largest logit seen: over ``burn_in`` samples first, then updated batch by
    batch. γ is the ``percentile``-th percentile of F over the burn-in samples. γ = 0 is exact rejection sampling
    of p_g(x)·exp(D̃(x) - D̃*), which is p_data for an optimal discriminator; lower percentiles (γ < 0) accept more
    and correct less, higher ones accept less. Burn-in samples only serve these estimates and are never returned.

    Returns the first ``n`` accepted samples, in proposal order and with ``generate``'s structure, and the dict
    {acceptance_rate: accepted / proposed after burn-in (counting the last batch in full), proposed, accepted (n),
    max_logit: the final D̃*, gamma}.
    """
    for name, value in {"n": n, "burn_in": burn_in, "batch_size": batch_size, "max_batches": max_batches}.items():
        if value < 1:
            raise ValueError(f"{name}={value}: must be >= 1")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile={percentile}: must lie in [0, 100]")
    if not epsilon > 0:
        raise ValueError(f"epsilon={epsilon}: must be > 0")

    def propose(k: int) -> tuple[Samples, np.ndarray]:
        samples = generate(k)
        values = np.asarray(logits(samples), dtype=np.float64)
        if values.shape not in ((k,), (k, 1)):
            raise ValueError(f"logits returned shape {values.shape} for {k} samples: expected ({k},) or ({k}, 1)")
        if not np.isfinite(values).all():
            raise ValueError("logits returned non-finite values")
        return samples, values.reshape(k)

    burn_in_logits = np.concatenate([propose(min(batch_size, burn_in - start))[1]
                                     for start in range(0, burn_in, batch_size)])
    max_logit = float(burn_in_logits.max())
    gamma = float(np.percentile(_drs_scores(burn_in_logits, max_logit, epsilon), percentile))
    batches, accepted = [], 0
    for batch in range(1, max_batches + 1):
        samples, values = propose(batch_size)
        max_logit = max(max_logit, float(values.max()))
        probability = expit(_drs_scores(values, max_logit, epsilon) - gamma)
        keep = np.flatnonzero(rng.random(batch_size) < probability)
        batches.append(_take(samples, keep))
        accepted += keep.size
        if accepted >= n:
            proposed = batch * batch_size
            stats = {"acceptance_rate": accepted / proposed, "proposed": proposed, "accepted": n,
                     "max_logit": max_logit, "gamma": gamma}
            return _take(_concatenate(batches), slice(n)), stats
    raise RuntimeError(f"rejection sampling accepted {accepted} of n={n} samples in max_batches={max_batches} "
                       f"batches of {batch_size}: lower percentile={percentile} or raise max_batches")


def draw(generator, model_cfg, n: int, seed: int, truncation: float | None = None, discriminator=None,
         percentile: float | None = None, digits: list[int] | None = None):
    """(uint8 images N x 28 x 28, labels or None, DRS statistics or {}): ``n`` samples of a trained generator,
    from noise truncated at ``truncation`` (None: plain), accepted by ``discriminator`` at ``percentile`` (None:
    every one). Conditional generators cycle through ``digits`` (default all). The same arguments give the
    same samples; with neither option they are those the training run's judge saw."""
    from gan_lab.figures import to_uint8
    from gan_lab.models import generator_inputs, predict

    noise_rng = np.random.default_rng(seed)

    def propose(k: int) -> Samples:
        noise = truncated_noise(noise_rng, k, model_cfg.latent_dim, model_cfg.noise, truncation)
        inputs, labels = generator_inputs(model_cfg, noise)
        if labels is None:
            return predict(generator, inputs)
        if digits is not None:
            labels = np.resize(np.asarray(digits, np.int32), k)
        return predict(generator, [inputs, labels]), labels

    def logits(samples: Samples) -> np.ndarray:
        if not isinstance(samples, tuple) and len(discriminator.inputs) == 2:  # self-conditioned: D guesses the code
            samples = (samples, np.full(len(samples), -1, np.int32))
        outputs = predict(discriminator, list(samples) if isinstance(samples, tuple) else samples)
        return outputs[0] if isinstance(outputs, list) else outputs  # InfoGAN's D also returns code logits

    if percentile is None:
        samples, stats = propose(n), {}
    else:
        samples, stats = rejection_sample(propose, logits, n, np.random.default_rng(seed + 1), percentile)
    images, labels = samples if isinstance(samples, tuple) else (samples, None)
    return to_uint8(images), labels, stats
