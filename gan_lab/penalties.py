"""Penalty terms of the GAN objective: gradient penalties on the discriminator (critic), as plain functions of a
callable ``critic(images) -> logits``, and MSGAN's mode-seeking term on the generator.

Each returns an unweighted float32 scalar (values are cast to float32 before any reduction), so it works under
mixed precision; the caller multiplies by its weight. Call the critic's penalties inside the outer tape of D's
update: they are then differentiable w.r.t. D's variables (a second-order gradient). The critic must treat samples
independently (no batch normalisation in training mode): per-sample gradients come from the summed logits' one.
"""

from collections.abc import Callable

import tensorflow as tf

Critic = Callable[[tf.Tensor], tf.Tensor]

NORM_EPSILON = 1e-12  # keeps the gradient of the norm finite where the critic's gradient vanishes
MODE_SEEKING_EPSILON = 1e-5  # as in MSGAN's code: bounds the term when G maps both codes to one image


def gradient_penalty(critic: Critic, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad critic(x_hat)||_2 - 1)^2], x_hat = real + alpha (fake - real).

    alpha ~ U(0, 1) per sample, drawn statelessly from ``seed`` (shape [2]); the interpolation is computed in
    float32 and given to the critic in ``real``'s dtype. The caller multiplies by the weight (10 in the paper).
    """
    real32, fake32 = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
    alpha_shape = tf.concat([tf.shape(real32)[:1], tf.ones([real32.shape.rank - 1], tf.int32)], 0)
    alpha = tf.random.stateless_uniform(alpha_shape, seed)
    interpolates = tf.cast(real32 + alpha * (fake32 - real32), real.dtype)
    norms = tf.sqrt(tf.reduce_sum(tf.square(_input_gradients(critic, interpolates)), axis=1) + NORM_EPSILON)
    return tf.reduce_mean(tf.square(norms - 1.0))


def r1_penalty(critic: Critic, real: tf.Tensor) -> tf.Tensor:
    """R1 (Mescheder et al. 2018): E[||grad critic(x)||_2^2] on real data; the caller multiplies by gamma / 2."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(_input_gradients(critic, real)), axis=1))


def mode_seeking_penalty(fakes: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """MSGAN (Mao et al. 2019): 1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps), for G to minimise.

    The pairs are samples i and i + N // 2 (an odd batch's last sample is left out); means over all their values.
    """
    pairs = tf.shape(fakes)[0] // 2
    fakes32, noise32 = tf.cast(fakes, tf.float32), tf.cast(noise, tf.float32)
    image_distance = tf.reduce_mean(tf.abs(fakes32[:pairs] - fakes32[pairs:2 * pairs]))
    noise_distance = tf.reduce_mean(tf.abs(noise32[:pairs] - noise32[pairs:2 * pairs]))
    return 1.0 / (image_distance / noise_distance + MODE_SEEKING_EPSILON)


def _input_gradients(critic: Critic, images: tf.Tensor) -> tf.Tensor:
    """(N, pixels) float32: the gradient of each sample's logit w.r.t. that sample."""
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = critic(images)
    gradients = tape.gradient(logits, images)
    return tf.reshape(tf.cast(gradients, tf.float32), [tf.shape(images)[0], -1])
