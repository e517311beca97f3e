"""GAN losses as paired functions on discriminator logits (TF-GAN style).

Every loss has one signature: ``generator_loss(fake_logits)`` and
``discriminator_loss(real_logits, fake_logits)``, each returning a float32 scalar.
Adding a loss is one ``GANLoss`` registration here and one ``conf/loss/<name>.yaml``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from gan_lab.registry import Registry


@dataclass(frozen=True)
class GANLoss:
    generator_loss: Callable[[tf.Tensor], tf.Tensor]
    discriminator_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    real_threshold: float  # D output above this counts as "judged real" (for D accuracy)


LOSSES: Registry[GANLoss] = Registry("loss")


def _bce(logits: tf.Tensor, target: float) -> tf.Tensor:
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), target)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def bce_generator_loss(fake_logits):
    """Non-saturating: -log D(G(z))."""
    return _bce(fake_logits, 1.0)


def bce_discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), each term averaged over its batch."""
    return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)


def lsgan_generator_loss(fake_logits):
    """0.5 E[(D(G(z)) - 1)^2]."""
    return 0.5 * tf.reduce_mean(tf.square(tf.cast(fake_logits, tf.float32) - 1.0))


def lsgan_discriminator_loss(real_logits, fake_logits):
    """0.5 E[(D(x) - 1)^2] + 0.5 E[D(G(z))^2]."""
    real = tf.cast(real_logits, tf.float32)
    fake = tf.cast(fake_logits, tf.float32)
    return 0.5 * tf.reduce_mean(tf.square(real - 1.0)) + 0.5 * tf.reduce_mean(tf.square(fake))


LOSSES.register("bce")(GANLoss(bce_generator_loss, bce_discriminator_loss, real_threshold=0.0))
LOSSES.register("lsgan")(GANLoss(lsgan_generator_loss, lsgan_discriminator_loss, real_threshold=0.5))
