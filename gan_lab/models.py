"""Generator and discriminator builders, looked up by ``model.name``.

Each builder takes the model config and returns ``(generator, discriminator)`` as Keras
functional models. Generators map noise (and, when conditional, an int label) to 28x28x1
images in [-1, 1]; discriminators map images (and label) to one unbounded logit.
"""

import inspect
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from omegaconf import DictConfig

from gan_lab.config import ConvModelConfig, MLPModelConfig, ModelConfig, Noise, TFGANModelConfig
from gan_lab.convolutions import FastConv2D, FastConv2DTranspose
from gan_lab.distribute import replica_seed
from gan_lab.figures import to_uint8
from gan_lab.registry import Registry

IMAGE_SHAPE = (28, 28, 1)
IMAGE_PIXELS = 28 * 28

ModelBuilder = Callable[..., tuple[keras.Model, keras.Model]]
MODELS: Registry[ModelBuilder] = Registry("model", base=ModelConfig)


@keras.saving.register_keras_serializable(package="gan_lab")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization (same weights, same maths) computed with TensorFlow's fused kernel.

    Keras 3 dropped the fused path; on CPU (oneDNN) the fused op is ~4x faster in training.
    Used while training; exported generators use the stock layer (see ``stock_copy``).
    """

    def call(self, inputs, training=None, mask=None):
        if self.axis not in (-1, len(inputs.shape) - 1):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
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


SPLITMIX64 = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # increment and the two multipliers


def splitmix64(state: tf.Tensor) -> tf.Tensor:
    """SplitMix64's output for each uint64 ``state`` (Steele, Lea and Flood 2014, as in Java's SplittableRandom and
    the seeding of Vigna's xoshiro): after its increment, two multiply-xorshift rounds. Element-wise, so under XLA
    it vectorises, where TensorFlow's Philox kernel draws one number at a time."""
    increment, first, second = (tf.constant(value, tf.uint64) for value in SPLITMIX64)

    def xorshift(z, bits):
        return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(bits, tf.uint64)))

    z = xorshift(state + increment, 30) * first
    z = xorshift(z, 27) * second
    return xorshift(z, 31)


@tf.function(jit_compile=True)
def dropped(x, key, threshold, scale):
    """``x`` scaled where an element's 16 random bits are >= ``threshold``, else 0: inverted dropout in one
    XLA-compiled pass. Element i's bits are the top 16 of the (i + 1)-th output of SplitMix64 seeded with the uint64
    ``key``, computed in the pass (no mask in memory), so the same key gives the same mask each way."""
    index = tf.bitcast(tf.range(tf.size(x, out_type=tf.int64), dtype=tf.int64), tf.uint64)
    state = key + index * tf.constant(SPLITMIX64[0], tf.uint64)
    bits = tf.reshape(tf.cast(tf.bitwise.right_shift(splitmix64(state), tf.constant(48, tf.uint64)), tf.uint16),
                      tf.shape(x))
    return tf.where(bits >= threshold, x * scale, tf.zeros_like(x))


@keras.saving.register_keras_serializable(package="gan_lab")
class FastDropout(layers.Dropout):
    """Keras' Dropout with a cheaper mask: 16 random bits per element from SplitMix64, made inside the XLA pass that
    applies it (``dropped``), each way.

    Same inverted-dropout maths (rate resolved to 1/65536), another random stream than Keras'. TensorFlow's Philox
    kernel took 4% of a dcgan step on CPU for its bits (experiments/benchmarks.md); the discriminator's
    dropout, Keras' float mask, was ~35% of its training time before this layer.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        seed = tf.bitcast(tf.cast(replica_seed(self.seed_generator.next()), tf.uint32), tf.uint64)  # 2 x 32 bits
        key = splitmix64(seed)  # each replica's and each step's own stream; consecutive seeds far apart
        threshold = tf.constant(round(self.rate * 65536), tf.uint16)
        scale = tf.constant(1.0 / (1.0 - self.rate), inputs.dtype)

        @tf.custom_gradient
        def drop(x):  # the same mask each way
            return dropped(x, key, threshold, scale), lambda dy: dropped(dy, key, threshold, scale)

        return drop(inputs)


@tf.function(jit_compile=True)
def leaky_relu_gradient(dy, y, slope):
    """``LeakyReluGrad`` from the layer's output ``y``, compiled by XLA: one vectorised pass, where TensorFlow's
    bfloat16 kernel converts element by element (5% of the dcgan step on an AMX Xeon, benchmarks.md)."""
    return tf.where(y > 0, dy, dy * slope)


@keras.saving.register_keras_serializable(package="gan_lab")
class FastLeakyReLU(layers.LeakyReLU):
    """Keras' LeakyReLU whose gradient reads the layer's output instead of its input (the same values:
    the slope is >= 0, so y > 0 exactly when x > 0). With the input read, oneDNN's graph rewriter fails on
    D's Conv2D + bias + LeakyReLU ("remapper failed: ... LeakyReluGrad exist for missing node ... BiasAdd",
    one error per compiled step); with the output read it fuses the three."""

    def call(self, inputs):
        slope = self.negative_slope

        @tf.custom_gradient
        def leaky_relu(x):
            y = tf.nn.leaky_relu(x, alpha=slope)
            return y, lambda dy: leaky_relu_gradient(dy, y, tf.constant(slope, dy.dtype))

        return leaky_relu(inputs)


@keras.saving.register_keras_serializable(package="gan_lab")
class FastEmbedding(layers.Embedding):
    """Keras' Embedding (the same table) looked up as one-hot x table: its gradient is one small matmul, where
    a gather's is a float cast and a segment sum over the batch (UnsortedSegmentSum) of every looked-up row."""

    def call(self, inputs):
        one_hot = tf.one_hot(tf.cast(inputs, tf.int32), self.input_dim, dtype=self.compute_dtype)
        return tf.tensordot(one_hot, tf.cast(self.embeddings, self.compute_dtype), axes=1)


@tf.function(jit_compile=True)
def multiply_gradients(dy, x, scale):
    """Gradients of ``x * scale`` for a ``scale`` of shape (batch, 1, ..., channels), broadcast over x's middle axes,
    in one XLA-compiled pass (the sum accumulated in float32)."""
    axes = list(range(1, len(x.shape) - 1))
    d_scale = tf.reduce_sum(tf.cast(dy, tf.float32) * tf.cast(x, tf.float32), axes, keepdims=True)
    return dy * scale, tf.cast(d_scale, dy.dtype)


@keras.saving.register_keras_serializable(package="gan_lab")
class FastMultiply(layers.Multiply):
    """Keras' Multiply of ``[x, scale]`` (conditional batch norm's per-sample scale): its two gradients in one
    pass, where TensorFlow's take two multiplies, a broadcast sum and a (batch, ..., channels) temporary."""

    def call(self, inputs):
        x, scale = inputs[0], inputs[-1]
        if len(inputs) != 2 or len(x.shape) != len(scale.shape) or any(n != 1 for n in scale.shape[1:-1]):
            return super().call(inputs)  # not a per-sample, per-channel scale

        @tf.custom_gradient
        def multiply(x, scale):
            return x * scale, lambda dy: multiply_gradients(dy, x, scale)

        return multiply(x, scale)


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


@keras.saving.register_keras_serializable(package="gan_lab")
class MinibatchStdDev(layers.Layer):
    """Appends one feature map: the standard deviation of each feature over groups of up to 4 samples,
    averaged (Karras et al. 2018, ProGAN). A collapsed generator's batches show a low value D can see."""

    def call(self, x):
        n = tf.shape(x)[0]
        group = tf.where(n % 4 == 0, 4, tf.where(n % 2 == 0, 2, 1))
        y = tf.reshape(tf.cast(x, tf.float32), tf.concat([[group, -1], tf.shape(x)[1:]], 0))
        y = tf.sqrt(tf.reduce_mean(tf.square(y - tf.reduce_mean(y, 0)), 0) + 1e-8)
        y = tf.reduce_mean(y, axis=list(range(1, len(x.shape))), keepdims=True)  # one value per sample of a group
        y = tf.tile(y, tf.concat([[group], tf.shape(x)[1:-1], [1]], 0))
        return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


@keras.saving.register_keras_serializable(package="gan_lab")
class CodeAssignment(layers.Layer):
    """Self-conditioned D's code per image, ``[given codes, code logits] -> codes``: the given code, or where it
    is -1 (real images) the one D's head guesses. In training the guesses are balanced over the batch
    (Sinkhorn-Knopp equipartition, as in SwAV, Caron et al. 2020): real images then fall into equal clusters,
    as G draws its codes uniformly, and no code can take two digits' share. Out of training: the plain argmax."""

    def __init__(self, iterations: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.iterations = iterations

    def call(self, inputs, training=None):
        given, logits = inputs
        logits = tf.cast(logits, tf.float32)
        scores = balanced_assignment(logits, self.iterations) if training else logits
        return tf.where(given < 0, tf.argmax(scores, axis=-1, output_type=tf.int32), tf.cast(given, tf.int32))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "iterations": self.iterations}


def balanced_assignment(logits: tf.Tensor, iterations: int = 3) -> tf.Tensor:
    """Soft assignments of a batch (N, K) to K codes whose code totals are equal and each row a distribution:
    softmax(logits) scaled alternately by column and row (Sinkhorn-Knopp), ``iterations`` times."""
    q = tf.exp(logits - tf.reduce_max(logits))
    n, k = tf.cast(tf.shape(q)[0], q.dtype), tf.cast(tf.shape(q)[1], q.dtype)
    for _ in range(iterations):
        q = q / (tf.reduce_sum(q, axis=0, keepdims=True) * k)
        q = q / (tf.reduce_sum(q, axis=1, keepdims=True) * n)
    return q * n


def build_models(cfg: DictConfig, fast: bool = False, fast_convolutions: bool = False
                 ) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for the model config ``cfg`` (the ``model`` group).

    ``fast``: the training-speed layers (``FusedBatchNormalization``, ``FastDropout``, ``FastLeakyReLU``,
    ``FastEmbedding``, ``FastMultiply``, and with ``fast_convolutions`` ``convolutions.FastConv2D``/
    ``FastConv2DTranspose``) instead of Keras' stock ones, same weights and maths, passed as ``batch_norm=``,
    ``dropout=``, ``leaky_relu=``, ``embedding=``, ``multiply=``, ``conv=``, ``conv_transpose=`` to a builder
    that takes them; exports rebuild with the stock ones (``stock_copy``).
    """
    if cfg.latent_dim < 1:
        raise ValueError(f"model.latent_dim must be >= 1, got {cfg.latent_dim}")
    build = MODELS.get(cfg.name)
    if not fast:
        return build(cfg)
    layers_taken = inspect.signature(build).parameters
    fast_layers = {"batch_norm": FusedBatchNormalization, "dropout": FastDropout, "leaky_relu": FastLeakyReLU,
                   "embedding": FastEmbedding, "multiply": FastMultiply}
    if fast_convolutions:
        fast_layers |= {"conv": FastConv2D, "conv_transpose": FastConv2DTranspose}
    return build(cfg, **{key: layer for key, layer in fast_layers.items() if key in layers_taken})


def stock_copy(cfg: DictConfig, model: keras.Model, network: str) -> keras.Model:
    """A copy of ``model``, the ``network`` ("generator" or "discriminator") ``build_models`` built for ``cfg``, made
    of stock Keras layers only (float32), for export: its layers and weight files load without gan_lab."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        generator, discriminator = build_models(cfg)
    finally:
        keras.config.set_dtype_policy(previous)
    stock = {"generator": generator, "discriminator": discriminator}[network]
    stock.set_weights(model.get_weights())
    return stock


def is_conditional(cfg: DictConfig) -> bool:
    return cfg.get("num_classes", 0) > 0


def sample_noise(rng: np.random.Generator, n: int, latent_dim: int, noise: Noise) -> np.ndarray:
    """Generator input noise as float32: N(0, 1) or U(-1, 1)."""
    if noise == Noise.uniform:
        return rng.uniform(-1.0, 1.0, size=(n, latent_dim)).astype(np.float32)
    return rng.standard_normal((n, latent_dim), dtype=np.float32)


def with_code(noise: np.ndarray, codes: np.ndarray | None, code_dim: int) -> np.ndarray:
    """InfoGAN's generator input: the noise with its categorical code appended one-hot (no code: the noise)."""
    if not code_dim:
        return noise
    return np.concatenate([noise, np.eye(code_dim, dtype=np.float32)[codes]], axis=1)


def generator_inputs(cfg: DictConfig, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(generator input, labels or None) for ``noise``: InfoGAN codes and conditional labels cycle through
    their values, so each is drawn equally often."""
    n = len(noise)
    codes = np.resize(np.arange(cfg.get("code_dim", 0)), n) if cfg.get("code_dim", 0) else None
    labels = np.resize(np.arange(cfg.num_classes, dtype=np.int32), n) if is_conditional(cfg) else None
    return with_code(noise, codes, cfg.get("code_dim", 0)), labels


@MODELS.register("mlp", config=MLPModelConfig)
def build_mlp(cfg: DictConfig) -> tuple[keras.Model, keras.Model]:
    """Fully connected G (ReLU, tanh output) and D (LeakyReLU) of the CS231n GAN notebook. With
    ``num_classes``, its conditional twin (Mirza & Osindero 2014): the label, one-hot, joins the
    noise at G's input and the flattened image at D's."""
    noise = keras.Input((cfg.latent_dim,), name="noise")
    image = keras.Input(IMAGE_SHAPE, name="image")
    g_inputs, d_inputs, h, x = noise, image, noise, layers.Flatten()(image)
    if is_conditional(cfg):
        label = keras.Input((), dtype="int32", name="label")
        one_hot = layers.CategoryEncoding(cfg.num_classes, output_mode="one_hot")
        h = layers.Concatenate()([noise, one_hot(label)])
        x = layers.Concatenate()([x, one_hot(label)])
        g_inputs, d_inputs = [noise, label], [image, label]
    for units in cfg.generator_units:
        h = layers.Dense(units, activation="relu")(h)
    h = layers.Dense(IMAGE_PIXELS, activation="tanh", dtype="float32")(h)
    generator = keras.Model(g_inputs, layers.Reshape(IMAGE_SHAPE)(h), name="generator")

    for units in cfg.discriminator_units:
        x = layers.Dense(units)(x)
        x = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(x)
    logit = layers.Dense(1, dtype="float32", name="logit")(x)
    discriminator = keras.Model(d_inputs, logit, name="discriminator")
    return generator, discriminator


def conditional_batch_norm(x, label, num_classes: int, batch_norm=layers.BatchNormalization,
                           embedding=layers.Embedding, multiply=layers.Multiply):
    """Batch norm whose scale and shift are looked up by the class label (de Vries et al. 2017, as in the
    projection cGAN of Miyato & Koyama 2018), composed of stock Keras layers by default so that exported
    generators load with plain ``keras``/``mlflow.keras.load_model``, with or without gan_lab."""
    channels = x.shape[-1]
    per_channel = (1,) * (len(x.shape) - 2) + (channels,)
    scale = layers.Reshape(per_channel)(embedding(num_classes, channels, embeddings_initializer="ones")(label))
    shift = layers.Reshape(per_channel)(embedding(num_classes, channels, embeddings_initializer="zeros")(label))
    return layers.Add()([multiply()([batch_norm(center=False, scale=False)(x), scale]), shift])


def _conv_generator(cfg: DictConfig, batch_norm, leaky_relu, conv_transpose, embedding, multiply) -> keras.Model:
    """Dense 7x7xF0 -> BN -> LReLU -> ConvT F1 s1 -> BN -> LReLU -> ConvT F2 s2 -> BN -> LReLU -> ConvT 1 s2 tanh.

    Conditional: the label's embedding joins the noise, and with ``conditional_bn`` every BN takes its
    scale and shift from the label. InfoGAN: the noise carries the one-hot code (``code_dim`` more inputs)."""
    if len(cfg.generator_filters) != 3:
        raise ValueError(
            "model.generator_filters must list 3 widths (dense 7x7xF0, then transposed "
            f"convolutions F1 and F2 up to 28x28), got {list(cfg.generator_filters)}"
        )
    dense_filters, *conv_filters = cfg.generator_filters
    noise = keras.Input((cfg.latent_dim + cfg.get("code_dim", 0),), name="noise")
    inputs, h = [noise], noise
    if is_conditional(cfg):
        label = keras.Input((), dtype="int32", name="label")
        embedded = embedding(cfg.num_classes, cfg.label_embedding_dim)(label)
        inputs, h = [noise, label], layers.Concatenate()([noise, embedded])

    if cfg.get("conditional_bn") and not is_conditional(cfg):
        raise ValueError("model.conditional_bn needs labels to take scale and shift from: a conditional model (cgan)")

    def normalize(x):
        if cfg.get("conditional_bn"):
            return conditional_batch_norm(x, inputs[1], cfg.num_classes, batch_norm, embedding, multiply)
        return batch_norm()(x)

    h = layers.Dense(7 * 7 * dense_filters, use_bias=False)(h)
    h = leaky_relu(negative_slope=cfg.leaky_slope)(normalize(h))
    h = layers.Reshape((7, 7, dense_filters))(h)
    for filters, stride in zip(conv_filters, (1, 2)):
        h = conv_transpose(filters, cfg.kernel_size, strides=stride, padding="same", use_bias=False)(h)
        h = leaky_relu(negative_slope=cfg.leaky_slope)(normalize(h))
    image = conv_transpose(
        1, cfg.kernel_size, strides=2, padding="same", use_bias=False, activation="tanh", dtype="float32"
    )(h)
    return keras.Model(inputs if len(inputs) > 1 else noise, image, name="generator")


def _normalized(layer: layers.Layer, spectral_norm: bool) -> layers.Layer:
    return layers.SpectralNormalization(layer) if spectral_norm else layer


def _conv_discriminator(cfg: DictConfig, dropout, leaky_relu, conv, embedding) -> keras.Model:
    """[Conv s2 -> LReLU -> Dropout] per width -> [minibatch std] -> Flatten -> Dense 1 (spectral norm on the
    convolutions with ``spectral_norm``). Conditional: + projection of the label. InfoGAN: also the code's
    logits, from a head on the same features (Dense 128 -> LReLU -> Dense code_dim)."""
    image = keras.Input(IMAGE_SHAPE, name="image")
    h = image
    for filters in cfg.discriminator_filters:
        h = _normalized(conv(filters, cfg.kernel_size, strides=2, padding="same"), cfg.spectral_norm)(h)
        h = leaky_relu(negative_slope=cfg.leaky_slope)(h)
        h = dropout(cfg.dropout)(h)
    if cfg.minibatch_std:
        h = MinibatchStdDev()(h)
    features = layers.Flatten()(h)
    logit = layers.Dense(1, dtype="float32", name="logit")(features)
    if cfg.code_dim:
        q = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(layers.Dense(128)(features))
        code_logits = layers.Dense(cfg.code_dim, dtype="float32", name="code_logits")(q)
        if not cfg.self_conditioned:
            return keras.Model(image, [logit, code_logits], name="discriminator")
        # Self-conditioned (after Liu et al. 2020): a projection discriminator on the code G was given, and on
        # real images (code -1) on the code D's head guesses for them, balanced in training (CodeAssignment):
        # the code works as an unsupervised label.
        code_in = keras.Input((), dtype="int32", name="code")
        code = CodeAssignment()([code_in, code_logits])
        embedded = embedding(cfg.code_dim, features.shape[-1])(code)
        logit = layers.Add(dtype="float32")([logit, InnerProduct(dtype="float32")([embedded, features])])
        return keras.Model([image, code_in], [logit, code_logits], name="discriminator")
    if not is_conditional(cfg):
        return keras.Model(image, logit, name="discriminator")
    # Projection discriminator (Miyato & Koyama 2018): logit += <embed(y), features>.
    label = keras.Input((), dtype="int32", name="label")
    embedded = embedding(cfg.num_classes, features.shape[-1])(label)
    projection = InnerProduct(dtype="float32")([embedded, features])
    return keras.Model([image, label], layers.Add(dtype="float32")([logit, projection]), name="discriminator")


@MODELS.register("dcgan", config=ConvModelConfig)
def build_dcgan(
    cfg: DictConfig, batch_norm=layers.BatchNormalization, dropout=layers.Dropout, leaky_relu=layers.LeakyReLU,
    conv=layers.Conv2D, conv_transpose=layers.Conv2DTranspose, embedding=layers.Embedding, multiply=layers.Multiply,
) -> tuple[keras.Model, keras.Model]:
    """The TensorFlow DCGAN tutorial's generator and discriminator."""
    return (_conv_generator(cfg, batch_norm, leaky_relu, conv_transpose, embedding, multiply),
            _conv_discriminator(cfg, dropout, leaky_relu, conv, embedding))


@MODELS.register("cgan", config=ConvModelConfig)
def build_cgan(
    cfg: DictConfig, batch_norm=layers.BatchNormalization, dropout=layers.Dropout, leaky_relu=layers.LeakyReLU,
    conv=layers.Conv2D, conv_transpose=layers.Conv2DTranspose, embedding=layers.Embedding, multiply=layers.Multiply,
) -> tuple[keras.Model, keras.Model]:
    """DCGAN conditioned on the digit: label embedding joined to the noise, projection in D."""
    if not is_conditional(cfg):
        raise ValueError(f"model.num_classes must be >= 1 for cgan, got {cfg.get('num_classes')}")
    return (_conv_generator(cfg, batch_norm, leaky_relu, conv_transpose, embedding, multiply),
            _conv_discriminator(cfg, dropout, leaky_relu, conv, embedding))


@MODELS.register("selfcond", config=ConvModelConfig)
@MODELS.register("infogan", config=ConvModelConfig)
def build_infogan(
    cfg: DictConfig, batch_norm=layers.BatchNormalization, dropout=layers.Dropout, leaky_relu=layers.LeakyReLU,
    conv=layers.Conv2D, conv_transpose=layers.Conv2DTranspose, embedding=layers.Embedding, multiply=layers.Multiply,
) -> tuple[keras.Model, keras.Model]:
    """DCGAN with InfoGAN's categorical latent code (Chen et al. 2016): G draws from noise and a code of
    ``code_dim`` values; D's second head recovers the code. Unsupervised: no labels are used. ``selfcond``: the
    same with ``self_conditioned``, D a projection discriminator on the code (see ``_conv_discriminator``)."""
    if cfg.code_dim < 2 or is_conditional(cfg):
        raise ValueError(f"infogan needs model.code_dim >= 2 and no labels (num_classes 0), got {cfg.code_dim}, "
                         f"{cfg.num_classes}")
    return (_conv_generator(cfg, batch_norm, leaky_relu, conv_transpose, embedding, multiply),
            _conv_discriminator(cfg, dropout, leaky_relu, conv, embedding))


@MODELS.register("tfgan", config=TFGANModelConfig)
def build_tfgan(cfg: DictConfig, batch_norm=layers.BatchNormalization, leaky_relu=layers.LeakyReLU,
                conv=layers.Conv2D, conv_transpose=layers.Conv2DTranspose) -> tuple[keras.Model, keras.Model]:
    """The TF-GAN MNIST example's unconditional networks: G Dense 1024 -> BN -> ReLU -> Dense 7x7xF0 -> BN ->
    ReLU -> ConvT F1 4x4 s2 -> BN -> ReLU -> ConvT F2 s2 -> BN -> ReLU -> Conv 1 4x4 -> tanh; D (spectrally
    normalised but its logit) Conv 64 4x4 s2 -> LReLU 0.01 -> Conv 128 s2 -> LReLU -> Dense 1024 -> BN ->
    LReLU -> Dense 1; L2 weight decay on every kernel; BN momentum 0.999, epsilon 0.001."""
    l2 = keras.regularizers.L2(cfg.weight_decay)
    dense_filters, *conv_filters = cfg.generator_filters

    def norm():
        return batch_norm(momentum=0.999, epsilon=0.001)

    noise = keras.Input((cfg.latent_dim,), name="noise")
    h = layers.ReLU()(norm()(layers.Dense(cfg.dense_units, use_bias=False, kernel_regularizer=l2)(noise)))
    h = layers.ReLU()(norm()(layers.Dense(7 * 7 * dense_filters, use_bias=False, kernel_regularizer=l2)(h)))
    h = layers.Reshape((7, 7, dense_filters))(h)
    for filters in conv_filters:
        h = conv_transpose(filters, cfg.kernel_size, strides=2, padding="same", kernel_regularizer=l2)(h)
        h = layers.ReLU()(norm()(h))
    image = conv(1, cfg.kernel_size, padding="same", kernel_regularizer=l2, activation="tanh", dtype="float32")(h)
    generator = keras.Model(noise, image, name="generator")

    x = keras.Input(IMAGE_SHAPE, name="image")
    h = x
    for filters in cfg.discriminator_filters:
        convolution = conv(filters, cfg.kernel_size, strides=2, padding="same", kernel_regularizer=l2)
        h = leaky_relu(negative_slope=cfg.leaky_slope)(_normalized(convolution, cfg.spectral_norm)(h))
    h = layers.Flatten()(h)
    dense = layers.Dense(cfg.dense_units, use_bias=False, kernel_regularizer=l2)
    h = layers.LeakyReLU(negative_slope=cfg.leaky_slope)(norm()(_normalized(dense, cfg.spectral_norm)(h)))
    logit = layers.Dense(1, kernel_regularizer=l2, dtype="float32", name="logit")(h)
    return generator, keras.Model(x, logit, name="discriminator")


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
