"""GAN losses as paired functions on discriminator logits (TF-GAN style).

Every loss has one signature: ``generator_loss(real_logits, fake_logits)`` and
``discriminator_loss(real_logits, fake_logits)``, each returning a float32 scalar; G's gradient flows through
the fake logits only, and most generator losses ignore the real ones (relativistic losses use them).
Adding a loss is one ``LOSSES.register(name)(GANLoss(...))``, here or in a plugin; ``loss=<name>`` then
composes ``LossConfig`` (its penalties included) unless a ``conf/loss/<name>.yaml`` preset sets more. Penalties
on D's gradients (WGAN-GP, R1), which need D itself, are in ``gan_lab/penalties.py``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from gan_lab.config import LossConfig
from gan_lab.registry import Registry


@dataclass(frozen=True)
class GANLoss:
    """A loss as its pair of functions on D's logits, and the logit above which D judges an image real."""

    generator_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    discriminator_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    real_threshold: float  # D output above this counts as "judged real" (for D accuracy)


LOSSES: Registry[GANLoss] = Registry("loss", base=LossConfig, default_config=LossConfig)


def _bce(logits: tf.Tensor, target: float) -> tf.Tensor:
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), target)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def bce_generator_loss(real_logits, fake_logits):
    """Non-saturating: -log D(G(z))."""
    return _bce(fake_logits, 1.0)


def bce_discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), each term averaged over its batch."""
    return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)


def lsgan_generator_loss(real_logits, fake_logits):
    """0.5 E[(D(G(z)) - 1)^2]."""
    return 0.5 * tf.reduce_mean(tf.square(tf.cast(fake_logits, tf.float32) - 1.0))


def lsgan_discriminator_loss(real_logits, fake_logits):
    """0.5 E[(D(x) - 1)^2] + 0.5 E[D(G(z))^2]."""
    real = tf.cast(real_logits, tf.float32)
    fake = tf.cast(fake_logits, tf.float32)
    return 0.5 * tf.reduce_mean(tf.square(real - 1.0)) + 0.5 * tf.reduce_mean(tf.square(fake))


def hinge_generator_loss(real_logits, fake_logits):
    """-E[D(G(z))] (Lim & Ye 2017; the SAGAN/BigGAN form)."""
    return -tf.reduce_mean(tf.cast(fake_logits, tf.float32))


def hinge_discriminator_loss(real_logits, fake_logits):
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    real = tf.cast(real_logits, tf.float32)
    fake = tf.cast(fake_logits, tf.float32)
    return tf.reduce_mean(tf.nn.relu(1.0 - real)) + tf.reduce_mean(tf.nn.relu(1.0 + fake))


def wasserstein_generator_loss(real_logits, fake_logits):
    """-E[D(G(z))] (Arjovsky et al. 2017)."""
    return -tf.reduce_mean(tf.cast(fake_logits, tf.float32))


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """E[D(G(z))] - E[D(x)]: the critic's estimate of the Wasserstein distance, negated."""
    return tf.reduce_mean(tf.cast(fake_logits, tf.float32)) - tf.reduce_mean(tf.cast(real_logits, tf.float32))


LOSSES.register("bce")(GANLoss(bce_generator_loss, bce_discriminator_loss, real_threshold=0.0))
LOSSES.register("lsgan")(GANLoss(lsgan_generator_loss, lsgan_discriminator_loss, real_threshold=0.5))
LOSSES.register("hinge")(GANLoss(hinge_generator_loss, hinge_discriminator_loss, real_threshold=0.0))
WASSERSTEIN = GANLoss(wasserstein_generator_loss, wasserstein_discriminator_loss, real_threshold=0.0)
LOSSES.register("wgan")(WASSERSTEIN)
LOSSES.register("wgan_gp")(WASSERSTEIN)  # with loss.gradient_penalty (10 in conf/loss/wgan_gp.yaml)
