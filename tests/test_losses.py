"""Loss values on known logits."""

import math

import numpy as np
import pytest

from gan_lab.losses import LOSSES


def softplus(x):
    return math.log1p(math.exp(x))


def test_bce_on_zero_logits_is_log2():
    bce = LOSSES.get("bce")
    zeros = np.zeros((4, 1), "float32")
    assert float(bce.discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(bce.generator_loss(zeros, zeros)) == pytest.approx(math.log(2), rel=1e-6)


def test_bce_known_values():
    bce = LOSSES.get("bce")
    real = np.array([[2.0], [0.5]], "float32")
    fake = np.array([[-1.0], [3.0]], "float32")
    # D: -log sigmoid(real) - log(1 - sigmoid(fake)) = softplus(-real) + softplus(fake), batch means
    expected_d = (softplus(-2.0) + softplus(-0.5)) / 2 + (softplus(-1.0) + softplus(3.0)) / 2
    # G (non-saturating): -log sigmoid(fake) = softplus(-fake)
    expected_g = (softplus(1.0) + softplus(-3.0)) / 2
    assert float(bce.discriminator_loss(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    assert float(bce.generator_loss(real, fake)) == pytest.approx(expected_g, rel=1e-6)


def test_lsgan_known_values():
    lsgan = LOSSES.get("lsgan")
    real = np.array([[1.0], [0.0]], "float32")
    fake = np.array([[0.0], [1.0]], "float32")
    assert float(lsgan.discriminator_loss(real, fake)) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert float(lsgan.generator_loss(real, fake)) == pytest.approx(0.5 * 0.5)
    perfect = np.ones((3, 1), "float32")
    assert float(lsgan.discriminator_loss(perfect, np.zeros((3, 1), "float32"))) == 0.0
    assert float(lsgan.generator_loss(perfect, np.array([[3.0]], "float32"))) == pytest.approx(0.5 * 4.0)


def test_hinge_known_values():
    hinge = LOSSES.get("hinge")
    real = np.array([[2.0], [0.5]], "float32")  # margins: max(0, 1 - 2) = 0, max(0, 1 - 0.5) = 0.5
    fake = np.array([[-3.0], [0.25]], "float32")  # max(0, 1 - 3) = 0, max(0, 1 + 0.25) = 1.25
    assert float(hinge.discriminator_loss(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0 + 1.25) / 2)
    assert float(hinge.generator_loss(real, fake)) == pytest.approx(-(-3.0 + 0.25) / 2)


def test_wasserstein_known_values():
    for name in ("wgan", "wgan_gp"):  # the same pair; wgan_gp adds loss.gradient_penalty in training
        wgan = LOSSES.get(name)
        real = np.array([[2.0], [4.0]], "float32")
        fake = np.array([[-1.0], [0.0]], "float32")
        assert float(wgan.discriminator_loss(real, fake)) == pytest.approx(-0.5 - 3.0)
        assert float(wgan.generator_loss(real, fake)) == pytest.approx(0.5)


def test_losses_accept_bfloat16_logits_and_return_float32():
    import tensorflow as tf

    for name in LOSSES.names():
        loss = LOSSES.get(name)
        logits = tf.constant([[0.5], [-0.5]], tf.bfloat16)
        assert loss.generator_loss(logits, logits).dtype == tf.float32
        assert loss.discriminator_loss(logits, logits).dtype == tf.float32


def test_unknown_loss_lists_registered():
    with pytest.raises(ValueError, match="unknown loss 'ralsgan'; registered: bce, hinge, lsgan, wgan, wgan_gp"):
        LOSSES.get("ralsgan")
