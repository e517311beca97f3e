"""Generator and discriminator builders, looked up by ``model.name``.

Each builder takes the model config and returns ``(generator, discriminator)`` as Keras
functional models. Generators map noise (and, when conditional, an int label) to 28x28x1
images in [-1, 1]; discriminators map images (and label) to one unbounded logit.
"""

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from omegaconf import DictConfig

from gan_lab.config import Noise
from gan_lab.figures import to_uint8
from gan_lab.registry import Registry

IMAGE_SHAPE = (28, 28, 1)
IMAGE_PIXELS = 28 * 28

ModelBuilder = Callable[..., tuple[keras.Model, keras.Model]]
MODELS: Registry[ModelBuilder] = Registry("model")


@keras.saving.register_keras_serializable(package="gan_lab")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization (same weights, same maths) computed with TensorFlow's fused kernel.

    Keras 3 dropped the fused path; on CPU (oneDNN) the fused op is ~4x faster in training.
    Used while training; exported generators use the stock layer (see ``stock_generator``).
    """

    def call(self, inputs, training=None, mask=None):
        if self.axis not in (-1, len(inputs.shape) - 1) or not (self.center and self.scale):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon)[:3]
            count = tf.cast(tf.size(x) // x.shape[-1], tf.float32)
            variance = variance * (count - 1.0) / count  # the fused op's is unbiased; Keras averages the biased one
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(moving * self.momentum + batch * (1.0 - self.momentum))
        else:
            mean, variance = tf.cast(self.moving_mean, tf.float32), tf.cast(self.moving_variance, tf.float32)
            y = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean, variance, self.epsilon, is_training=False)[0]
        return y if len(inputs.shape) == 4 else tf.reshape(y, tf.shape(inputs))


@keras.saving.register_keras_serializable(package="gan_lab")
class FastDropout(layers.Dropout):
    """Keras' Dropout with a cheaper mask: 16 random bits per element, two elements per 32-bit draw.

    Same inverted-dropout maths (rate resolved to 1/65536); about half the cost of Keras' float
    mask on CPU, where the discriminator's dropout was ~35% of its training time.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        size = tf.size(inputs)
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        bits = tf.random.stateless_uniform([(size + 1) // 2], seed, dtype=tf.uint32, minval=None, maxval=None)
        bits = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]
        keep = tf.reshape(bits >= tf.cast(round(self.rate * 65536), tf.uint16), tf.shape(inputs))
        return tf.where(keep, inputs * tf.cast(1.0 / (1.0 - self.rate), inputs.dtype), tf.zeros_like(inputs))


@keras.saving.register_keras_serializable(package="gan_lab")
class InnerProduct(layers.Layer):
    """Row-wise inner product of two (batch, n) tensors -> (batch, 1).

    What ``layers.Dot(axes=1)`` computes; Keras runs that as a batched (1 x n) @ (n x 1) matmul,
    which took ~10% of the cgan step on CPU. A multiply and a sum are nearly free.
    """

    def call(self, inputs):
        a, b = inputs
        return tf.reduce_sum(a * b, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 1)


def build_models(cfg: DictConfig, fast: bool = False) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for the model config ``cfg`` (the ``model`` group).

    ``fast``: use the training-speed layers (``FusedBatchNormalization``, ``FastDropout``)
    instead of Keras' stock ones; weights and maths are the same.
    """
    if cfg.latent_dim < 1:
        raise ValueError(f"model.latent_dim must be >= 1, got {cfg.latent_dim}")
    if fast:
        return MODELS.get(cfg.name)(cfg, batch_norm=FusedBatchNormalization, dropout=FastDropout)
    return MODELS.get(cfg.name)(cfg)


def stock_generator(cfg: DictConfig, generator: keras.Model) -> keras.Model:
    """A copy of ``generator`` made of stock Keras layers only (float32), for export."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        stock, _ = build_models(cfg)
    finally:
        keras.config.set_dtype_policy(previous)
    stock.set_weights(generator.get_weights())
    return stock


def is_conditional(cfg: DictConfig) -> bool:
    return cfg.get("num_classes", 0) > 0


def sample_noise(rng: np.random.Generator, n: int, latent_dim: int, noise: Noise) -> np.ndarray:
    """Generator input noise as float32: N(0, 1) or U(-1, 1)."""
    if noise == Noise.uniform:
        return rng.uniform(-1.0, 1.0, size=(n, latent_dim)).astype(np.float32)
    return rng.standard_normal((n, latent_dim), dtype=np.float32)


@MODELS.register("mlp")
def build_mlp(cfg: DictConfig, **_) -> tuple[keras.Model, keras.Model]:
    """Fully connected G (ReLU, tanh output) and D (LeakyReLU) of the CS231n GAN notebook."""
    noise = keras.Input((cfg.latent_dim,), name="noise")
    h = noise
    for units in cfg.generator_units:
        h = layers.Dense(units, activation="relu")(h)
    h = layers.Dense(IMAGE_PIXELS, activation="tanh", dtype="float32")(h)
    generator = keras.Model(noise, layers.Reshape(IMAGE_SHAPE)(h), name="generator")

    image = keras.Input(IMAGE_SHAPE, name="image")
    h = layers.Flatten()(image)
    for units in cfg.discriminator_units:
        h = layers.Dense(units)(h)
        h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
    logit = layers.Dense(1, dtype="float32", name="logit")(h)
    discriminator = keras.Model(image, logit, name="discriminator")
    return generator, discriminator


def _conv_generator(cfg: DictConfig, batch_norm) -> keras.Model:
    """Dense 7x7xF0 -> BN -> LReLU -> ConvT F1 s1 -> BN -> LReLU -> ConvT F2 s2 -> BN -> LReLU -> ConvT 1 s2 tanh."""
    if len(cfg.generator_filters) != 3:
        raise ValueError(
            "model.generator_filters must list 3 widths (dense 7x7xF0, then transposed "
            f"convolutions F1 and F2 up to 28x28), got {list(cfg.generator_filters)}"
        )
    dense_filters, *conv_filters = cfg.generator_filters
    noise = keras.Input((cfg.latent_dim,), name="noise")
    inputs, h = [noise], noise
    if is_conditional(cfg):
        label = keras.Input((), dtype="int32", name="label")
        embedded = layers.Embedding(cfg.num_classes, cfg.label_embedding_dim)(label)
        inputs, h = [noise, label], layers.Concatenate()([noise, embedded])
    h = layers.Dense(7 * 7 * dense_filters, use_bias=False)(h)
    h = batch_norm()(h)
    h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
    h = layers.Reshape((7, 7, dense_filters))(h)
    for filters, stride in zip(conv_filters, (1, 2)):
        h = layers.Conv2DTranspose(filters, cfg.kernel_size, strides=stride, padding="same", use_bias=False)(h)
        h = batch_norm()(h)
        h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
    image = layers.Conv2DTranspose(
        1, cfg.kernel_size, strides=2, padding="same", use_bias=False, activation="tanh", dtype="float32"
    )(h)
    return keras.Model(inputs if len(inputs) > 1 else noise, image, name="generator")


def _conv_discriminator(cfg: DictConfig, dropout) -> keras.Model:
    """[Conv s2 -> LReLU -> Dropout] per width -> Flatten -> Dense 1; conditional: + projection."""
    image = keras.Input(IMAGE_SHAPE, name="image")
    h = image
    for filters in cfg.discriminator_filters:
        h = layers.Conv2D(filters, cfg.kernel_size, strides=2, padding="same")(h)
        h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
        h = dropout(cfg.dropout)(h)
    features = layers.Flatten()(h)
    logit = layers.Dense(1, dtype="float32", name="logit")(features)
    if not is_conditional(cfg):
        return keras.Model(image, logit, name="discriminator")
    # Projection discriminator (Miyato & Koyama 2018): logit += <embed(y), features>.
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(cfg.num_classes, features.shape[-1])(label)
    projection = InnerProduct(dtype="float32")([embedded, features])
    return keras.Model([image, label], layers.Add(dtype="float32")([logit, projection]), name="discriminator")


@MODELS.register("dcgan")
def build_dcgan(
    cfg: DictConfig, batch_norm=layers.BatchNormalization, dropout=layers.Dropout
) -> tuple[keras.Model, keras.Model]:
    """The TensorFlow DCGAN tutorial's generator and discriminator."""
    return _conv_generator(cfg, batch_norm), _conv_discriminator(cfg, dropout)


@MODELS.register("cgan")
def build_cgan(
    cfg: DictConfig, batch_norm=layers.BatchNormalization, dropout=layers.Dropout
) -> tuple[keras.Model, keras.Model]:
    """DCGAN conditioned on the digit: label embedding joined to the noise, projection in D."""
    if not is_conditional(cfg):
        raise ValueError(f"model.num_classes must be >= 1 for cgan, got {cfg.get('num_classes')}")
    return _conv_generator(cfg, batch_norm), _conv_discriminator(cfg, dropout)


def predict(model: keras.Model, inputs, batch_size: int = 1000):
    """``model``'s outputs on ``inputs`` (an array, or a list or dict of arrays) as NumPy, in batches:
    a plain call per batch. Keras' ``predict`` compiles a step per model, which TensorFlow counts as
    retraces of one function and warns about after a few models."""
    n = len(keras.tree.flatten(inputs)[0])
    batches = [model(keras.tree.map_structure(lambda a: a[i : i + batch_size], inputs), training=False)
               for i in range(0, n, batch_size)]
    return keras.tree.map_structure(lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *batches)


def generate_images(generator: keras.Model, noise: np.ndarray, labels: np.ndarray | None, batch_size: int = 1000):
    """uint8 (N, 28, 28) images from the generator, in fixed-size batches."""
    return to_uint8(predict(generator, noise if labels is None else [noise, labels], batch_size))
