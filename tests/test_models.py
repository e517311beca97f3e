"""Parameter counts and shapes of every generator and discriminator, derived by hand."""

import numpy as np
import pytest

from gan_lab.models import MODELS, build_models


def dense(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def conv(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def batchnorm(channels):
    return 4 * channels  # gamma, beta (trainable) + moving mean, variance


# mlp: G 96 -> 1024 -> 1024 -> 784; D 784 -> 256 -> 256 -> 1 (CS231n: 1,952,528 / 267,009 at noise 96)
MLP_G = dense(96, 1024) + dense(1024, 1024) + dense(1024, 784)
MLP_D = dense(784, 256) + dense(256, 256) + dense(256, 1)
# dcgan (TensorFlow tutorial, no biases in G): 2,330,944 / 212,865
DCGAN_G_TRUNK = (
    batchnorm(7 * 7 * 256)
    + conv(5, 256, 128, bias=False) + batchnorm(128)
    + conv(5, 128, 64, bias=False) + batchnorm(64)
    + conv(5, 64, 1, bias=False)
)
DCGAN_G = dense(100, 7 * 7 * 256, bias=False) + DCGAN_G_TRUNK
DCGAN_D = conv(5, 1, 64) + conv(5, 64, 128) + dense(7 * 7 * 128, 1)
# cgan: label embedding 10x50 joined to the noise; projection embedding 10 x (7*7*128) in D
CGAN_G = 10 * 50 + dense(100 + 50, 7 * 7 * 256, bias=False) + DCGAN_G_TRUNK
CGAN_D = DCGAN_D + 10 * 7 * 7 * 128


@pytest.mark.parametrize(
    "model, g_params, d_params",
    [("mlp", MLP_G, MLP_D), ("dcgan", DCGAN_G, DCGAN_D), ("cgan", CGAN_G, CGAN_D)],
)
def test_parameter_counts(compose_cfg, model, g_params, d_params):
    generator, discriminator = build_models(compose_cfg(f"model={model}").model)
    assert generator.count_params() == g_params
    assert discriminator.count_params() == d_params


def test_known_totals():
    assert (MLP_G, MLP_D, DCGAN_G, DCGAN_D) == (1_952_528, 267_009, 2_330_944, 212_865)


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_unconditional_shapes(compose_cfg, model):
    cfg = compose_cfg(f"model={model}").model
    generator, discriminator = build_models(cfg)
    images = generator(np.random.default_rng(0).normal(size=(5, cfg.latent_dim)).astype("float32")).numpy()
    assert images.shape == (5, 28, 28, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0  # tanh
    assert discriminator(images).shape == (5, 1)


def test_cgan_shapes_and_label_dependence(compose_cfg):
    cfg = compose_cfg("model=cgan").model
    generator, discriminator = build_models(cfg)
    noise = np.zeros((10, cfg.latent_dim), "float32")
    labels = np.arange(10, dtype="int32")
    images = generator([noise, labels]).numpy()
    assert images.shape == (10, 28, 28, 1)
    assert not np.allclose(images[0], images[1])  # same noise, different digit -> different image
    logits = discriminator([images, labels]).numpy()
    assert logits.shape == (10, 1)


def test_widths_and_noise_size_come_from_config(compose_cfg):
    cfg = compose_cfg("model=mlp", "model.latent_dim=8", "model.generator_units=[16]", "model.discriminator_units=[4]").model
    generator, discriminator = build_models(cfg)
    assert generator.count_params() == dense(8, 16) + dense(16, 784)
    assert discriminator.count_params() == dense(784, 4) + dense(4, 1)


def test_bad_model_settings_name_the_key(compose_cfg):
    with pytest.raises(ValueError, match="model.latent_dim must be >= 1"):
        build_models(compose_cfg("model.latent_dim=0").model)
    with pytest.raises(ValueError, match="model.generator_filters must list 3 widths"):
        build_models(compose_cfg("model.generator_filters=[64,32]").model)


def test_unknown_model_name_lists_registered(compose_cfg):
    with pytest.raises(ValueError, match=r"unknown model 'vae'; registered: cgan, dcgan, mlp"):
        build_models(compose_cfg("model.name=vae").model)
    assert MODELS.names() == ["cgan", "dcgan", "mlp"]


def test_fast_layers_match_stock_keras(compose_cfg):
    """Training uses FusedBatchNormalization and FastDropout: same weights and maths as Keras' layers."""
    import keras
    import tensorflow as tf

    from gan_lab.models import FastDropout, FusedBatchNormalization, stock_generator

    x = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 7, 7, 16)).astype("float32")
    for shape in [(64, 7, 7, 16), (64, 784)]:
        inputs = x.reshape(shape)
        stock, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
        stock.build(shape), fused.build(shape)
        for training in (True, False):
            np.testing.assert_allclose(fused(inputs, training=training), stock(inputs, training=training), atol=2e-4)
        for a, b in zip(fused.weights, stock.weights):  # moving mean/variance updated alike
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)

    ones = tf.ones((1000, 100))
    dropped = FastDropout(0.3, seed=1)(ones, training=True).numpy()
    np.testing.assert_allclose(np.unique(dropped), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((dropped == 0).mean() - 0.3) < 0.01
    np.testing.assert_array_equal(FastDropout(0.3)(ones, training=False), ones)

    cfg = compose_cfg("model=dcgan").model
    fast_generator, _ = build_models(cfg, fast=True)
    noise = np.random.default_rng(1).normal(size=(8, cfg.latent_dim)).astype("float32")
    exported = stock_generator(cfg, fast_generator)
    assert all(type(layer).__module__.startswith("keras") for layer in exported.layers)
    np.testing.assert_allclose(exported(noise, training=False), fast_generator(noise, training=False), atol=1e-5)


def test_inner_product_matches_keras_dot():
    from keras import layers

    from gan_lab.models import InnerProduct

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 40)).astype("float32"), rng.normal(size=(6, 40)).astype("float32")
    expected = layers.Dot(axes=1)([a, b]).numpy()
    np.testing.assert_allclose(InnerProduct()([a, b]).numpy(), expected, rtol=1e-5)
    assert InnerProduct()([a, b]).shape == (6, 1)
