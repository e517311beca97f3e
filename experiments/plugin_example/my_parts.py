"""A gan_lab plugin: a loss and a model of one's own, trained with

    python -m gan_lab plugins=[my_parts] model=residual loss=ralsgan data=folder data.path=digits

from the folder that holds this file (README: Extending gan_lab). Nothing in gan_lab is edited: the loss and
the model register through gan_lab's public registries, and ``model=residual`` composes from ``ResidualConfig``.
"""

from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import layers

import gan_lab


# --- Relativistic average losses (Jolicoeur-Martineau 2018, "The relativistic discriminator") ---------------
# D judges whether a real image is more realistic than the average fake (and a fake less than the average real);
# G is trained on both terms, so it also learns from the real images' logits.

def _relative(real_logits, fake_logits):
    real, fake = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
    return real - tf.reduce_mean(fake), fake - tf.reduce_mean(real)


def _bce(logits, target: float):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target), logits=logits))


def ragan_discriminator_loss(real_logits, fake_logits):
    """RaSGAN: -log sigmoid(C(x) - E C(G(z))) - log(1 - sigmoid(C(G(z)) - E C(x)))."""
    real, fake = _relative(real_logits, fake_logits)
    return _bce(real, 1.0) + _bce(fake, 0.0)


def ragan_generator_loss(real_logits, fake_logits):
    """RaSGAN's G: the same with the targets swapped."""
    real, fake = _relative(real_logits, fake_logits)
    return _bce(real, 0.0) + _bce(fake, 1.0)


def ralsgan_discriminator_loss(real_logits, fake_logits):
    """RaLSGAN: E[(C(x) - E C(G(z)) - 1)^2] + E[(C(G(z)) - E C(x) + 1)^2]."""
    real, fake = _relative(real_logits, fake_logits)
    return tf.reduce_mean(tf.square(real - 1.0)) + tf.reduce_mean(tf.square(fake + 1.0))


def ralsgan_generator_loss(real_logits, fake_logits):
    """RaLSGAN's G: E[(C(G(z)) - E C(x) - 1)^2] + E[(C(x) - E C(G(z)) + 1)^2]."""
    real, fake = _relative(real_logits, fake_logits)
    return tf.reduce_mean(tf.square(fake - 1.0)) + tf.reduce_mean(tf.square(real + 1.0))


# loss=ragan / loss=ralsgan compose gan_lab.LossConfig (loss.r1_gamma, loss.mode_seeking, ... all apply).
gan_lab.LOSSES.register("ragan")(gan_lab.GANLoss(ragan_generator_loss, ragan_discriminator_loss, real_threshold=0.0))
gan_lab.LOSSES.register("ralsgan")(gan_lab.GANLoss(ralsgan_generator_loss, ralsgan_discriminator_loss,
                                                   real_threshold=0.0))


# --- A small residual GAN ---------------------------------------------------------------------------------------

@dataclass
class ResidualConfig(gan_lab.ModelConfig):
    """model=residual: its defaults; each field is a command-line key (model.width=32)."""

    latent_dim: int = 64
    width: int = 32  # channels of every residual block (G: 7x7 -> 14x14 -> 28x28; D: 28 -> 14 -> 7)
    leaky_slope: float = 0.2  # D's LeakyReLU


def _up_block(x, width: int, batch_norm):
    """BN -> ReLU -> upsample -> conv 3x3 -> BN -> ReLU -> conv 3x3, plus the upsampled input (1x1 conv)."""
    h = layers.ReLU()(batch_norm()(x))
    h = layers.Conv2D(width, 3, padding="same")(layers.UpSampling2D()(h))
    h = layers.Conv2D(width, 3, padding="same")(layers.ReLU()(batch_norm()(h)))
    return layers.Add()([h, layers.Conv2D(width, 1)(layers.UpSampling2D()(x))])


def _down_block(x, width: int, slope: float, leaky_relu):
    """LReLU -> conv 3x3 -> LReLU -> conv 3x3 -> average pool, plus the pooled input (1x1 conv)."""
    h = layers.Conv2D(width, 3, padding="same")(leaky_relu(negative_slope=slope)(x))
    h = layers.Conv2D(width, 3, padding="same")(leaky_relu(negative_slope=slope)(h))
    return layers.Add()([layers.AveragePooling2D(2)(h), layers.Conv2D(width, 1)(layers.AveragePooling2D(2)(x))])


@gan_lab.MODELS.register("residual", config=ResidualConfig)
def build_residual(cfg, batch_norm=layers.BatchNormalization, leaky_relu=layers.LeakyReLU):
    """(generator, discriminator): noise -> 28x28x1 image in [-1, 1]; image -> one logit. gan_lab passes its
    faster training layers as ``batch_norm``/``leaky_relu`` and exports the generator with Keras' own."""
    if cfg.num_classes:
        raise ValueError("model=residual is unconditional: set model.num_classes=0")
    noise = keras.Input((cfg.latent_dim,), name="noise")
    h = layers.Reshape((7, 7, cfg.width))(layers.Dense(7 * 7 * cfg.width)(noise))
    for _ in range(2):
        h = _up_block(h, cfg.width, batch_norm)
    h = layers.ReLU()(batch_norm()(h))
    image = layers.Conv2D(1, 3, padding="same", activation="tanh", dtype="float32")(h)
    generator = keras.Model(noise, image, name="generator")

    x = keras.Input(gan_lab.IMAGE_SHAPE, name="image")
    h = _down_block(x, cfg.width, cfg.leaky_slope, leaky_relu)
    h = _down_block(h, cfg.width, cfg.leaky_slope, leaky_relu)
    h = layers.GlobalAveragePooling2D()(leaky_relu(negative_slope=cfg.leaky_slope)(h))
    logit = layers.Dense(1, dtype="float32", name="logit")(h)
    return generator, keras.Model(x, logit, name="discriminator")
