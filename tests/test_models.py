"""Parameter counts and shapes of every generator and discriminator, derived by hand."""

import keras
import numpy as np
import pytest

from gan_lab.models import (
    MODELS,
    MinibatchStdDev,
    balanced_assignment,
    build_models,
    conditional_batch_norm,
    generator_inputs,
    sample_noise,
)


def dense(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def conv(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def batchnorm(channels):
    return 4 * channels  # gamma, beta (trainable) + moving mean, variance


# mlp: G 96 -> 1024 -> 1024 -> 784; D 784 -> 256 -> 256 -> 1 (CS231n: 1,952,528 / 267,009 at noise 96)
MLP_G = dense(96, 1024) + dense(1024, 1024) + dense(1024, 784)
MLP_D = dense(784, 256) + dense(256, 256) + dense(256, 1)
# its conditional twin (gan_cgan_pair): the one-hot label joins G's noise and D's flattened image
CMLP_G = dense(96 + 10, 1024) + dense(1024, 1024) + dense(1024, 784)
CMLP_D = dense(784 + 10, 256) + dense(256, 256) + dense(256, 1)
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
CLASSIC_CGAN_G = 10 * 50 + dense(100 + 50, 7 * 7 * 256, bias=False) + DCGAN_G_TRUNK
CGAN_D = DCGAN_D + 10 * 7 * 7 * 128


def cbn(channels, classes=10):
    return 2 * channels + 2 * classes * channels  # moving mean, variance + a scale and a shift per class


# cgan by default: conditional batch norm in place of G's three batch norms
CGAN_G = (10 * 50 + dense(100 + 50, 7 * 7 * 256, bias=False) + cbn(7 * 7 * 256)
          + conv(5, 256, 128, bias=False) + cbn(128) + conv(5, 128, 64, bias=False) + cbn(64) + conv(5, 64, 1, bias=False))


# infogan: a 10-value code appended to G's noise; D's code head Dense 128 -> LReLU -> Dense 10
INFOGAN_G = dense(100 + 10, 7 * 7 * 256, bias=False) + DCGAN_G_TRUNK
INFOGAN_D = DCGAN_D + dense(7 * 7 * 128, 128) + dense(128, 10)
# selfcond (the default): infogan with 30 codes, and D's projection embedding 30 x (7*7*128) of the code
SELFCOND_G = dense(100 + 30, 7 * 7 * 256, bias=False) + DCGAN_G_TRUNK
SELFCOND_D = DCGAN_D + dense(7 * 7 * 128, 128) + dense(128, 30) + 30 * 7 * 7 * 128
# tfgan (TF-GAN MNIST example), trainable weights: G Dense 64 -> 1024 -> 7x7x128 (no biases), ConvT 64, 32 and a
# conv to 1 channel, all 4x4, BN after all but the last; D convs 64, 128, Dense 1024 (no bias) -> BN -> Dense 1
TFGAN_G = (dense(64, 1024, bias=False) + 2 * 1024 + dense(1024, 7 * 7 * 128, bias=False) + 2 * 7 * 7 * 128
           + conv(4, 128, 64) + 2 * 64 + conv(4, 64, 32) + 2 * 32 + conv(4, 32, 1))
TFGAN_D = conv(4, 1, 64) + conv(4, 64, 128) + dense(7 * 7 * 128, 1024, bias=False) + 2 * 1024 + dense(1024, 1)


def trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "overrides, g_params, d_params",
    [(["model=mlp"], MLP_G, MLP_D), (["model=mlp", "model.num_classes=10"], CMLP_G, CMLP_D),
     (["model=dcgan"], DCGAN_G, DCGAN_D), (["model=cgan"], CGAN_G, CGAN_D),
     (["model=cgan", "model.conditional_bn=false"], CLASSIC_CGAN_G, CGAN_D), (["model=infogan"], INFOGAN_G, INFOGAN_D),
     ([], SELFCOND_G, SELFCOND_D)],
)
def test_parameter_counts(compose_cfg, overrides, g_params, d_params):
    generator, discriminator = build_models(compose_cfg(*overrides).model)
    assert generator.count_params() == g_params
    assert discriminator.count_params() == d_params


def test_known_totals():
    assert (MLP_G, MLP_D, DCGAN_G, DCGAN_D) == (1_952_528, 267_009, 2_330_944, 212_865)
    assert (TFGAN_G, TFGAN_D) == (6_667_297, 6_557_889)


def test_tfgan_networks_as_published(compose_cfg):
    """Trainable weights as counted above; every kernel carries L2 weight decay 2.5e-5; D's layers but the
    logit are spectrally normalised; BN momentum 0.999, epsilon 0.001."""
    generator, discriminator = build_models(compose_cfg("experiment=tfgan_mnist").model)
    assert (trainable(generator), trainable(discriminator)) == (TFGAN_G, TFGAN_D)
    assert generator.input_shape == (None, 64) and generator.output_shape == (None, 28, 28, 1)
    assert len(generator.losses) == 5 and len(discriminator.losses) == 4  # one L2 term per kernel
    wrapped = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert [type(layer.layer).__name__ for layer in wrapped] == ["Conv2D", "Conv2D", "Dense"]
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 4 and all((n.momentum, n.epsilon) == (0.999, 0.001) for n in norms)


def test_infogan_noise_carries_the_code_and_d_recovers_it(compose_cfg):
    cfg = compose_cfg("model=infogan").model
    generator, discriminator = build_models(cfg)
    noise = sample_noise(np.random.default_rng(0), 20, cfg.latent_dim, cfg.noise)
    inputs, labels = generator_inputs(cfg, noise)
    assert labels is None and inputs.shape == (20, 110)
    np.testing.assert_array_equal(inputs[:, :100], noise)
    np.testing.assert_array_equal(inputs[:, 100:].argmax(1), np.arange(20) % 10)  # each code value equally often
    logits, code_logits = discriminator(generator(inputs))
    assert logits.shape == (20, 1) and code_logits.shape == (20, 10)


def test_conditional_batch_norm_takes_scale_and_shift_from_the_label():
    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 4, 4, 3)).astype("float32")
    labels = np.array([0, 1] * 4, "int32")
    features, label = keras.Input((4, 4, 3)), keras.Input((), dtype="int32")
    layer = keras.Model([features, label], conditional_batch_norm(features, label, 2))
    plain = layer([x, labels], training=True).numpy()  # scale 1, shift 0 at start: plain batch norm
    np.testing.assert_allclose(plain, (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-3), atol=1e-4)
    scale, shift = [lay for lay in layer.layers if isinstance(lay, keras.layers.Embedding)]
    scale.embeddings.assign([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    shift.embeddings.assign([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    scaled = layer([x, labels], training=True).numpy()
    np.testing.assert_allclose(scaled[0::2], plain[0::2], atol=1e-5)
    np.testing.assert_allclose(scaled[1::2], 2 * plain[1::2] + 5, atol=1e-4)


def test_minibatch_std_appends_the_batch_spread_as_a_feature_map():
    x = np.zeros((8, 2, 2, 3), "float32")
    x[::2] = 1.0  # groups of 4 are samples i, i+2, i+4, i+6: constant within a group, spread 0
    out = MinibatchStdDev()(x).numpy()
    assert out.shape == (8, 2, 2, 4)
    np.testing.assert_array_equal(out[..., :3], x)
    np.testing.assert_allclose(out[..., 3], 1e-4, rtol=1e-3)  # sqrt(0 + 1e-8)
    y = np.arange(8, dtype="float32").reshape(8, 1, 1, 1) * np.ones((1, 2, 2, 1), "float32")
    spread = MinibatchStdDev()(y).numpy()[..., 1]  # group {0, 2, 4, 6} and {1, 3, 5, 7}: std of 4 values 2 apart
    np.testing.assert_allclose(spread, np.sqrt(5.0), rtol=1e-5)


@pytest.mark.parametrize("option", ["model.spectral_norm=true", "model.minibatch_std=true"])
def test_discriminator_options_keep_shapes(compose_cfg, option):
    cfg = compose_cfg("model=dcgan", option).model
    generator, discriminator = build_models(cfg)
    images = generator(np.zeros((8, cfg.latent_dim), "float32"))
    assert discriminator(images).shape == (8, 1)
    if "spectral" in option:
        assert sum(isinstance(layer, keras.layers.SpectralNormalization) for layer in discriminator.layers) == 2
    else:
        assert any(isinstance(layer, MinibatchStdDev) for layer in discriminator.layers)


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
        build_models(compose_cfg("model=dcgan", "model.latent_dim=0").model)
    with pytest.raises(ValueError, match="model.generator_filters must list 3 widths"):
        build_models(compose_cfg("model=dcgan", "model.generator_filters=[64,32]").model)
    with pytest.raises(ValueError, match=r"model.conditional_bn needs labels .*: a conditional model \(cgan\)"):
        build_models(compose_cfg("model=dcgan", "model.conditional_bn=true").model)


def test_unknown_model_name_lists_registered(compose_cfg):
    with pytest.raises(ValueError, match=r"unknown model 'vae'; registered: cgan, dcgan, infogan, mlp, selfcond, tfgan"):
        build_models(compose_cfg("model.name=vae").model)
    assert MODELS.names() == ["cgan", "dcgan", "infogan", "mlp", "selfcond", "tfgan"]


def test_fast_layers_match_stock_keras(compose_cfg):
    """Training uses FusedBatchNormalization, FastDropout and FastLeakyReLU: same weights and maths as Keras' layers."""
    import keras
    import tensorflow as tf

    from gan_lab.models import (
        FastDropout,
        FastLeakyReLU,
        FusedBatchNormalization,
        stock_copy,
    )

    for dtype in ("float32", "bfloat16"):  # FastLeakyReLU's gradient is XLA-compiled: bit for bit Keras' still
        features = tf.cast(np.random.default_rng(2).normal(size=(4, 5, 5, 3)), dtype)
        values, grads = [], []
        for layer in (keras.layers.LeakyReLU(negative_slope=0.3, dtype=dtype),
                      FastLeakyReLU(negative_slope=0.3, dtype=dtype)):
            with tf.GradientTape() as tape:
                tape.watch(features)
                y = layer(features)
                loss = tf.reduce_sum(y * y)
            values.append(tf.cast(y, "float32").numpy())
            grads.append(tf.cast(tape.gradient(loss, features), "float32").numpy())
        np.testing.assert_array_equal(values[0], values[1])
        np.testing.assert_array_equal(grads[0], grads[1])

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
    weights = tf.constant(np.random.default_rng(3).normal(size=(1000, 100)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(ones)
        dropped = FastDropout(0.3, seed=1)(ones, training=True)
        loss = tf.reduce_sum(dropped * weights)
    np.testing.assert_allclose(np.unique(dropped), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((dropped.numpy() == 0).mean() - 0.3) < 0.01
    np.testing.assert_array_equal(tape.gradient(loss, ones), dropped * weights)  # the kept ones', scaled alike
    np.testing.assert_array_equal(FastDropout(0.3)(ones, training=False), ones)

    rng = np.random.default_rng(1)
    for model in ("dcgan", "cgan"):  # cgan: conditional batch norm, also of stock layers
        cfg = compose_cfg(f"model={model}").model
        fast_generator, fast_discriminator = build_models(cfg, fast=True)
        # weights drawn at random, so that a table copied into the wrong layer (scale for shift) shows
        for network in (fast_generator, fast_discriminator):
            network.set_weights([w * rng.uniform(0.5, 1.5, w.shape) + rng.normal(0, 0.02, w.shape)
                                 for w in network.get_weights()])
        noise = rng.normal(size=(8, cfg.latent_dim)).astype("float32")
        labels = np.arange(8, dtype="int32")
        inputs = noise if model == "dcgan" else [noise, labels]
        exported = stock_copy(cfg, fast_generator, "generator")
        assert all(type(layer).__module__.startswith("keras") for layer in exported.layers)
        images = exported(inputs, training=False)
        np.testing.assert_allclose(images, fast_generator(inputs, training=False), atol=1e-5)
        if model == "cgan":  # the projection's embedding
            stock_discriminator = stock_copy(cfg, fast_discriminator, "discriminator")
            images = images.numpy()
            np.testing.assert_allclose(stock_discriminator([images, labels], training=False),
                                       fast_discriminator([images, labels], training=False), rtol=1e-5, atol=1e-5)


def splitmix64_reference(seed: int, n: int) -> np.ndarray:
    """The first ``n`` outputs of SplitMix64 seeded with ``seed``, in Python integers (Vigna's C code)."""
    mask, state, outputs = 2**64 - 1, seed, []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        outputs.append(z ^ (z >> 31))
    return np.array(outputs, dtype=np.uint64)


def test_fast_dropout_mask_is_splitmix64s_and_independent():
    """FastDropout keeps element i where the top 16 bits of SplitMix64's (i + 1)-th output are >= rate * 65536:
    the published values, the same mask each way for one key, and masks that look independent."""
    import tensorflow as tf

    from gan_lab.models import FastDropout, dropped, splitmix64

    outputs = splitmix64(tf.constant([0, 0x9E3779B97F4A7C15, 0x3C6EF372FE94F82A], tf.uint64)).numpy()
    assert [hex(v) for v in outputs.tolist()] == ["0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4", "0x6c45d188009454f"]

    key, threshold = 0x0123456789ABCDEF, round(0.3 * 65536)
    kept = dropped(tf.ones((6, 5, 7)), tf.constant(key, tf.uint64), tf.constant(threshold, tf.uint16),
                   tf.constant(2.0)).numpy()
    np.testing.assert_array_equal(kept, 2.0 * ((splitmix64_reference(key, 210) >> 48) >= threshold).reshape(6, 5, 7))

    layer, ones = FastDropout(0.3, seed=7), tf.ones((400, 1000))
    first, second = ((layer(ones, training=True).numpy() == 0) for _ in range(2))  # two steps
    for mask in (first, second):
        assert abs(mask.mean() - 0.3) < 0.003  # 400,000 draws: sd 0.0007
    assert abs((first & second).mean() - 0.09) < 0.003  # consecutive steps' masks independent
    assert abs((first[:, 1:] & first[:, :-1]).mean() - 0.09) < 0.003  # and neighbouring elements'
    assert abs((first[1:] & first[:-1]).mean() - 0.09) < 0.003


def test_fast_embedding_and_multiply_match_stock_keras():
    """FastEmbedding (one-hot x table) and FastMultiply (its gradients in one XLA pass): the stock layers' values and
    every gradient, float32 at tight tolerance, bfloat16 at bfloat16's."""
    import keras
    import tensorflow as tf

    from gan_lab.models import FastEmbedding, FastMultiply

    rng = np.random.default_rng(0)
    labels = tf.constant(rng.integers(0, 10, 64), tf.int32)
    table = rng.normal(size=(10, 96)).astype("float32")
    weights = tf.constant(rng.normal(size=(64, 96)), tf.float32)
    for dtype, atol in (("float32", 1e-5), ("bfloat16", 2e-2)):
        results = []
        for layer in (keras.layers.Embedding(10, 96, dtype=dtype), FastEmbedding(10, 96, dtype=dtype)):
            layer.build((64,))
            layer.embeddings.assign(table)
            with tf.GradientTape() as tape:
                rows = layer(labels)
                loss = tf.reduce_sum(tf.cast(rows, tf.float32) * weights)
            gradient = tf.convert_to_tensor(tape.gradient(loss, layer.embeddings))  # a gather's: IndexedSlices
            results.append((tf.cast(rows, tf.float32).numpy(), gradient.numpy()))
        assert results[1][0].dtype == results[0][0].dtype and results[1][0].shape == (64, 96)
        np.testing.assert_array_equal(results[1][0], results[0][0])  # a one-hot row picks the value exactly
        np.testing.assert_allclose(results[1][1], results[0][1], atol=atol * 8, rtol=atol)

        for shape in ((16, 7, 7, 32), (16, 7 * 7 * 32)):  # after a convolution, and after G's first Dense
            per_channel = (16,) + (1,) * (len(shape) - 2) + (shape[-1],)
            inputs = [tf.cast(rng.normal(size=size), dtype) for size in (shape, per_channel)]
            upstream = tf.constant(rng.normal(size=shape), tf.float32)
            results = []
            for layer in (keras.layers.Multiply(dtype=dtype), FastMultiply(dtype=dtype)):
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    y = layer(inputs)
                    loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
                results.append([tf.cast(t, tf.float32).numpy() for t in (y, *tape.gradient(loss, inputs))])
            for fast, stock in zip(results[1], results[0]):  # value, then d/dx, d/dscale
                assert fast.shape == stock.shape
                np.testing.assert_allclose(fast, stock, atol=atol * np.abs(stock).max(), rtol=atol)


def test_inner_product_matches_keras_dot():
    from keras import layers

    from gan_lab.models import InnerProduct

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 40)).astype("float32"), rng.normal(size=(6, 40)).astype("float32")
    expected = layers.Dot(axes=1)([a, b]).numpy()
    np.testing.assert_allclose(InnerProduct()([a, b]).numpy(), expected, rtol=1e-5)
    assert InnerProduct()([a, b]).shape == (6, 1)


def test_training_step_flops_counted_from_the_layer_shapes(compose_cfg):
    """What `make bench` divides this CPU's matmul peak by: 3 F_G + 7 F_D per image (dcgan, by hand)."""
    from gan_lab.bench import forward_flops, step_flops

    cfg = compose_cfg("model=dcgan").model
    generator, discriminator = build_models(cfg)
    g = 2 * (100 * 7 * 7 * 256 + 25 * 256 * 128 * 7 * 7 + 25 * 128 * 64 * 7 * 7 + 25 * 64 * 1 * 14 * 14)
    d = 2 * (25 * 1 * 64 * 14 * 14 + 25 * 64 * 128 * 7 * 7 + 7 * 7 * 128)
    assert (forward_flops(generator), forward_flops(discriminator)) == (g, d)
    assert step_flops(cfg) == 3 * g + 7 * d


def test_bench_times_every_convolution_of_the_step_as_the_step_uses_it(compose_cfg):
    """The convolution bound `make bench` prints: each op runs at its layer's shapes, and the ops'
    FLOPs x uses are the step's convolution FLOPs (D's first layer needs no input gradient on real images)."""
    from gan_lab.bench import convolution_ops, step_flops

    cfg = compose_cfg("model=dcgan").model
    ops = convolution_ops(cfg, batch_size=4)
    for _, _, _, run in ops:
        run(1)  # the shapes, strides and padding of each layer fit its op
    assert len(ops) == 4 * 5 + 2  # forward, input and filter gradient, the filter gradient rewritten; G3, D1 col2im
    uses = {name: count for name, count, _, _ in ops}
    # the direction to the one-channel image (convolutions.few_channels) as matmul + col2im: G's last layer's
    # forward, D's first layer's input gradient; their filter gradients TensorFlow's (the rewrite is slower there)
    assert (uses["G3 14x14x64->28x28x1 forward"], uses["G3 14x14x64->28x28x1 forward col2im"]) == (0, 1)
    assert (uses["D1 28x28x1->14x14x64 input_grad"], uses["D1 28x28x1->14x14x64 input_grad col2im"]) == (0, 1)
    assert (uses["G3 14x14x64->28x28x1 filter_grad"], uses["G3 14x14x64->28x28x1 filter_grad rewrite"]) == (1, 0)
    assert uses["D2 14x14x64->7x7x128 input_grad"] == 3
    assert uses["G1 7x7x256->7x7x128 forward"] == 1
    # the filter gradient the trainer takes (convolutions.rewrites): the rewrite but for one-channel layers
    assert (uses["G1 7x7x256->7x7x128 filter_grad"], uses["G1 7x7x256->7x7x128 filter_grad rewrite"]) == (0, 1)
    assert (uses["D1 28x28x1->14x14x64 filter_grad"], uses["D1 28x28x1->14x14x64 filter_grad rewrite"]) == (2, 0)
    convolutions = sum(count * flops for _, count, flops, _ in ops) / 4  # each op counted in one form
    d_first, dense = 2 * 25 * 64 * 14 * 14, 2 * (100 * 7 * 7 * 256 * 3 + 7 * 7 * 128 * 7)
    assert convolutions == step_flops(cfg) - dense - 2 * d_first


def test_bench_times_tfgans_convolution_to_the_image_in_the_form_the_trainer_takes(compose_cfg):
    """tfgan's last layer, a float32 convolution to one channel (convolutions.few_channels): its forward as matmul +
    sum_taps, its filter gradient as a matmul (convolutions.filter_gradient_as_matmul), its input gradient TF's."""
    from gan_lab.bench import convolution_ops

    ops = convolution_ops(compose_cfg("model=tfgan").model, batch_size=2)
    last = "G3 28x28x32->28x28x1"
    for name, _, _, run in ops:
        if name.startswith(last):
            run(1)
    uses = {name: count for name, count, _, _ in ops}
    assert (uses[f"{last} forward"], uses[f"{last} forward sum_taps"]) == (0, 1)
    assert (uses[f"{last} filter_grad"], uses[f"{last} filter_grad matmul"], uses[f"{last} filter_grad rewrite"]) == (0, 1, 0)
    assert uses[f"{last} input_grad"] == 1


def test_self_conditioned_d_projects_the_code_it_guesses_on_real_images(compose_cfg):
    cfg = compose_cfg("model=infogan", "model.self_conditioned=true").model
    _, discriminator = build_models(cfg)
    images = np.random.default_rng(0).uniform(-1, 1, (6, 28, 28, 1)).astype("float32")
    guess_logit, code_logits = discriminator([images, np.full(6, -1, "int32")])
    guessed = np.asarray(code_logits).argmax(1).astype("int32")
    given_logit, _ = discriminator([images, guessed])
    np.testing.assert_allclose(guess_logit, given_logit, rtol=1e-6)
    other_logit, _ = discriminator([images, (guessed + 1) % 10])
    assert not np.allclose(other_logit, given_logit)  # the code changes the logit: it is projected


def test_balanced_assignment_spreads_a_batch_over_the_codes():
    # Logits that put nearly every image on code 0 by argmax.
    logits = np.random.default_rng(0).normal(size=(200, 10)) + np.array([3.0] + [0.0] * 9)
    assert np.bincount(logits.argmax(1), minlength=10)[0] > 150
    q = np.asarray(balanced_assignment(keras.ops.convert_to_tensor(logits, "float32")))
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-5)  # each image: a distribution over the codes
    np.testing.assert_allclose(q.sum(axis=0), 20.0, rtol=0.05)  # each code: a tenth of the batch
    counts = np.bincount(q.argmax(1), minlength=10)
    assert counts.min() >= 10 and counts.max() <= 30
    # Only rescaled per image and per code (Sinkhorn): log q - logits = an image's term + a code's term.
    offset = np.log(q) - logits
    np.testing.assert_allclose(offset - offset[:, :1], np.broadcast_to(offset[0] - offset[0, 0], offset.shape),
                               atol=1e-4)


def test_self_conditioned_d_balances_its_guesses_in_training_only(compose_cfg):
    cfg = compose_cfg("model=infogan", "model.self_conditioned=true", "model.dropout=0").model
    _, discriminator = build_models(cfg)
    images = np.random.default_rng(0).uniform(-1, 1, (40, 28, 28, 1)).astype("float32")
    unknown = np.full(40, -1, "int32")
    logit, code_logits = discriminator([images, unknown], training=True)
    balanced = np.asarray(balanced_assignment(code_logits)).argmax(1).astype("int32")
    np.testing.assert_allclose(logit, discriminator([images, balanced], training=True)[0], rtol=1e-5)
    plain = np.asarray(code_logits).argmax(1).astype("int32")
    np.testing.assert_allclose(discriminator([images, unknown])[0], discriminator([images, plain])[0], rtol=1e-5)
