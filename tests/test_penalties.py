"""Gradient penalties on critics whose input gradients are known (linear, quadratic, Dense); mode seeking."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_lab.penalties import (
    MODE_SEEKING_EPSILON,
    gradient_penalty,
    mode_seeking_penalty,
    r1_penalty,
)

SHAPE = (6, 8, 8, 1)
SEED = tf.constant([3, 5], tf.int64)
rng = np.random.default_rng(0)
W = (0.3 * rng.normal(size=SHAPE[1:])).astype("float32")  # ||w|| ~ 2.4, far from 1
REAL = rng.uniform(-1, 1, SHAPE).astype("float32")
FAKE = rng.uniform(-1, 1, SHAPE).astype("float32")


def linear_critic(keepdims: bool):
    """critic(x) = sum(w * x) per sample, as (N, 1) or (N,): its input gradient is w."""

    def critic(x):
        logits = tf.reduce_sum(tf.cast(W, x.dtype) * x, axis=[1, 2, 3])
        return logits[:, None] if keepdims else logits

    return critic


def quadratic_critic(x):
    """critic(x) = 0.5 * sum(x^2) per sample: its input gradient is x."""
    return 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])


def norms(images) -> np.ndarray:
    return np.sqrt((np.asarray(images, "float64") ** 2).sum(axis=(1, 2, 3)))


@pytest.mark.parametrize("keepdims", [False, True])
def test_linear_critic_gives_the_norm_of_w(keepdims):
    critic, w_norm = linear_critic(keepdims), np.linalg.norm(W)
    for seed in ([3, 5], [4, 9]):
        penalty = gradient_penalty(critic, REAL, FAKE, tf.constant(seed, tf.int64))
        assert penalty.dtype == tf.float32 and penalty.shape == ()
        assert float(penalty) == pytest.approx((w_norm - 1) ** 2, rel=1e-5)
    assert float(r1_penalty(critic, REAL)) == pytest.approx(w_norm**2, rel=1e-5)


def test_quadratic_critic_gives_the_norms_of_the_inputs():
    assert float(r1_penalty(quadratic_critic, REAL)) == pytest.approx(np.mean(norms(REAL) ** 2), rel=1e-5)
    expected = np.mean((norms(REAL) - 1) ** 2)
    assert float(gradient_penalty(quadratic_critic, REAL, REAL, SEED)) == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_taken_at_per_sample_interpolates():
    seen = []

    def critic(x):
        seen.append(x.numpy())
        return quadratic_critic(x)

    penalty = float(gradient_penalty(critic, REAL, FAKE, SEED))
    (interpolates,) = seen
    alphas = (interpolates - REAL) / (FAKE - REAL)  # one alpha per sample, in [0, 1], not all equal
    np.testing.assert_allclose(alphas, alphas[:, :1, :1, :1] * np.ones_like(alphas), atol=1e-4)
    assert (0 <= alphas).all() and (alphas <= 1).all() and np.ptp(alphas[:, 0, 0, 0]) > 0.1
    assert penalty == pytest.approx(np.mean((norms(interpolates) - 1) ** 2), rel=1e-5)
    assert float(gradient_penalty(quadratic_critic, REAL, FAKE, tf.constant([4, 9], tf.int64))) != penalty


def test_penalties_are_differentiable_wrt_the_critic_in_graph_mode():
    """A Dense critic has input gradient k (its kernel): GP = (||k|| - 1)^2 and R1 = ||k||^2, with known d/dk."""
    dense = keras.layers.Dense(1)
    dense.build((None, 64))
    critic = lambda x: dense(tf.reshape(x, [-1, 64]))  # noqa: E731

    @tf.function
    def penalties_and_gradients(real, fake, seed):
        with tf.GradientTape(persistent=True) as tape:
            gp, r1 = gradient_penalty(critic, real, fake, seed), r1_penalty(critic, real)
        return gp, r1, tape.gradient(gp, dense.kernel), tape.gradient(r1, dense.kernel)

    gp, r1, gp_gradient, r1_gradient = penalties_and_gradients(REAL, FAKE, SEED)
    kernel = dense.kernel.numpy()
    k_norm = np.linalg.norm(kernel)
    assert float(gp) == pytest.approx((k_norm - 1) ** 2, rel=1e-5)
    assert float(r1) == pytest.approx(k_norm**2, rel=1e-5)
    np.testing.assert_allclose(gp_gradient.numpy(), 2 * (k_norm - 1) * kernel / k_norm, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r1_gradient.numpy(), 2 * kernel, rtol=1e-5)


def test_bfloat16_inputs_give_float32_scalars():
    critic = linear_critic(keepdims=False)
    w_norm = np.linalg.norm(W.astype(tf.bfloat16.as_numpy_dtype).astype("float32"))  # w as the critic rounds it
    real, fake = tf.constant(REAL, tf.bfloat16), tf.constant(FAKE, tf.bfloat16)
    gp, r1 = gradient_penalty(critic, real, fake, SEED), r1_penalty(critic, real)
    assert gp.dtype == r1.dtype == tf.float32
    assert float(gp) == pytest.approx((w_norm - 1) ** 2, rel=1e-2)
    assert float(r1) == pytest.approx(w_norm**2, rel=1e-2)


def test_mixed_precision_dense_critic_on_float32_real_and_bfloat16_fake():
    dense = keras.layers.Dense(1, dtype="mixed_bfloat16")
    critic = lambda x: dense(tf.reshape(x, [-1, 64]))  # noqa: E731
    with tf.GradientTape() as tape:
        gp = gradient_penalty(critic, REAL, tf.constant(FAKE, tf.bfloat16), SEED)
        r1 = r1_penalty(critic, tf.constant(REAL, tf.bfloat16))
        total = gp + r1
    gradient = tape.gradient(total, dense.kernel)
    assert gp.dtype == r1.dtype == tf.float32 and gradient.dtype == tf.float32
    assert np.isfinite(gradient.numpy()).all() and (gradient.numpy() != 0).any()


def test_mode_seeking_is_the_inverse_distance_ratio_of_the_two_halves():
    noise = np.zeros((5, 4), "float32")
    noise[2:4] = 0.5  # pairs (0, 2), (1, 3): |z1 - z2| = 0.5; sample 4 is left out
    fakes = np.zeros((5, 3, 3, 1), "float32")
    fakes[2:4] = 0.25  # |G(z1) - G(z2)| = 0.25
    fakes[4] = 9.0
    images = tf.constant(fakes, tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(images)
        penalty = mode_seeking_penalty(images, tf.constant(noise, tf.bfloat16))
    assert penalty.dtype == tf.float32
    assert float(penalty) == pytest.approx(1 / (0.25 / 0.5 + MODE_SEEKING_EPSILON), rel=1e-6)
    gradient = tape.gradient(penalty, images).numpy().astype("float32")
    assert (gradient[:2] > 0).all() and (gradient[2:4] < 0).all() and (gradient[4] == 0).all()  # pushes pairs apart
