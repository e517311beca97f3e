"""Generator and discriminator builders, looked up by ``model.name``.

Each builder takes the model config and returns ``(generator, discriminator)`` as Keras
functional models. Generators map noise (and, when conditional, an int label) to 28x28x1
images in [-1, 1]; discriminators map images (and label) to one unbounded logit.
"""

from collections.abc import Callable

import keras
import numpy as np
from keras import layers
from omegaconf import DictConfig

from gan_lab.config import Noise
from gan_lab.figures import to_uint8
from gan_lab.registry import Registry

IMAGE_SHAPE = (28, 28, 1)
IMAGE_PIXELS = 28 * 28

ModelBuilder = Callable[[DictConfig], tuple[keras.Model, keras.Model]]
MODELS: Registry[ModelBuilder] = Registry("model")


def build_models(cfg: DictConfig) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for the model config ``cfg`` (the ``model`` group)."""
    if cfg.latent_dim < 1:
        raise ValueError(f"model.latent_dim must be >= 1, got {cfg.latent_dim}")
    return MODELS.get(cfg.name)(cfg)


def is_conditional(cfg: DictConfig) -> bool:
    return cfg.get("num_classes", 0) > 0


def sample_noise(rng: np.random.Generator, n: int, latent_dim: int, noise: Noise) -> np.ndarray:
    """Generator input noise as float32: N(0, 1) or U(-1, 1)."""
    if noise == Noise.uniform:
        return rng.uniform(-1.0, 1.0, size=(n, latent_dim)).astype(np.float32)
    return rng.standard_normal((n, latent_dim), dtype=np.float32)


@MODELS.register("mlp")
def build_mlp(cfg: DictConfig) -> tuple[keras.Model, keras.Model]:
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


def _conv_generator(cfg: DictConfig) -> keras.Model:
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
    h = layers.BatchNormalization()(h)
    h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
    h = layers.Reshape((7, 7, dense_filters))(h)
    for filters, stride in zip(conv_filters, (1, 2)):
        h = layers.Conv2DTranspose(filters, cfg.kernel_size, strides=stride, padding="same", use_bias=False)(h)
        h = layers.BatchNormalization()(h)
        h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
    image = layers.Conv2DTranspose(
        1, cfg.kernel_size, strides=2, padding="same", use_bias=False, activation="tanh", dtype="float32"
    )(h)
    return keras.Model(inputs if len(inputs) > 1 else noise, image, name="generator")


def _conv_discriminator(cfg: DictConfig) -> keras.Model:
    """[Conv s2 -> LReLU -> Dropout] per width -> Flatten -> Dense 1; conditional: + projection."""
    image = keras.Input(IMAGE_SHAPE, name="image")
    h = image
    for filters in cfg.discriminator_filters:
        h = layers.Conv2D(filters, cfg.kernel_size, strides=2, padding="same")(h)
        h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(h)
        h = layers.Dropout(cfg.dropout)(h)
    features = layers.Flatten()(h)
    logit = layers.Dense(1, dtype="float32", name="logit")(features)
    if not is_conditional(cfg):
        return keras.Model(image, logit, name="discriminator")
    # Projection discriminator (Miyato & Koyama 2018): logit += <embed(y), features>.
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(cfg.num_classes, features.shape[-1])(label)
    projection = layers.Dot(axes=1, dtype="float32")([embedded, features])
    return keras.Model([image, label], layers.Add(dtype="float32")([logit, projection]), name="discriminator")


@MODELS.register("dcgan")
def build_dcgan(cfg: DictConfig) -> tuple[keras.Model, keras.Model]:
    """The TensorFlow DCGAN tutorial's generator and discriminator."""
    return _conv_generator(cfg), _conv_discriminator(cfg)


@MODELS.register("cgan")
def build_cgan(cfg: DictConfig) -> tuple[keras.Model, keras.Model]:
    """DCGAN conditioned on the digit: label embedding joined to the noise, projection in D."""
    if not is_conditional(cfg):
        raise ValueError(f"model.num_classes must be >= 1 for cgan, got {cfg.get('num_classes')}")
    return _conv_generator(cfg), _conv_discriminator(cfg)


def generate_images(generator: keras.Model, noise: np.ndarray, labels: np.ndarray | None, batch_size: int = 1000):
    """uint8 (N, 28, 28) images from the generator, in fixed-size batches."""
    inputs = noise if labels is None else [noise, labels]
    return to_uint8(generator.predict(inputs, batch_size=batch_size, verbose=0))
