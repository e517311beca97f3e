"""What train_step minimises beyond the loss pair: penalties, mode seeking, InfoGAN's code, critic steps,
augmentation, weight decay; and the wall-clock budget train.max_time."""

import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from gan_lab.gan import Objective
from gan_lab.losses import LOSSES
from gan_lab.penalties import gradient_penalty, r1_penalty
from gan_lab.trainer import build_gan, train


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (8, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 8).astype("int32")


def losses_with(gan, objective: Objective, images, labels):
    """``_gan_losses`` under ``objective`` from the GAN's current random state, which is then restored."""
    state = gan.seed_generator.state.numpy()
    gan.objective = objective
    g_inputs, noise, fake_labels, codes = gan._generator_inputs(tf.shape(images)[0])
    fakes = gan.generator(g_inputs, training=True)
    result = gan._gan_losses(images, labels, fakes, fake_labels, noise, codes)
    after = gan.seed_generator.state.numpy()
    gan.seed_generator.state.assign(state)
    return result, fakes, after


@pytest.mark.parametrize("penalty", ["gradient_penalty", "r1_gamma"])
def test_penalties_add_their_weighted_term_to_d_loss_only(compose_cfg, batch, penalty):
    images, labels = batch
    gan = build_gan(compose_cfg("model=dcgan", "model.dropout=0", "train.precision=float32"), steps_per_execution=1)
    bce = LOSSES.get("bce")
    (d_plain, g_plain, *_), fakes, _ = losses_with(gan, Objective(bce), images, labels)
    (d_penalised, g_penalised, *_), _, _ = losses_with(gan, Objective(bce, **{penalty: 4.0}), images, labels)
    critic = gan.discriminator
    if penalty == "gradient_penalty":  # its interpolation seed is the draw after the noise
        gan._generator_inputs(8)
        term = 4.0 * gradient_penalty(critic, images, fakes, gan.seed_generator.next())
    else:
        term = 4.0 / 2 * r1_penalty(critic, images)
    assert float(term) > 0
    assert float(d_penalised - d_plain) == pytest.approx(float(term), rel=1e-4)
    assert float(g_penalised) == pytest.approx(float(g_plain), rel=1e-6)


def test_mode_seeking_pairs_share_labels_and_penalise_alike_samples(compose_cfg, batch):
    images, labels = batch
    gan = build_gan(compose_cfg("model=cgan", "model.dropout=0", "loss.mode_seeking=0.5", "train.precision=float32"),
                    steps_per_execution=1)
    g_inputs, noise, fake_labels, codes = gan._generator_inputs(8)
    np.testing.assert_array_equal(fake_labels[:4], fake_labels[4:])  # pair i with i + 4: same digit, other noise
    fakes = gan.generator(g_inputs, training=True)
    _, g_loss, real_logits, fake_logits = gan._gan_losses(images, labels, fakes, fake_labels, noise, codes)
    ratio = np.abs(fakes[:4] - fakes[4:]).mean() / np.abs(noise[:4] - noise[4:]).mean()
    bce = LOSSES.get("bce")
    assert float(g_loss) == pytest.approx(float(bce.generator_loss(real_logits, fake_logits)) + 0.5 / (ratio + 1e-5), rel=1e-5)


def test_mode_seeking_pairs_share_infogan_codes(compose_cfg):
    gan = build_gan(compose_cfg("model=infogan", "loss.mode_seeking=0.5"), steps_per_execution=1)
    g_inputs, noise, _, codes = gan._generator_inputs(8)
    np.testing.assert_array_equal(codes[:4], codes[4:])  # the term then asks for variety within a code
    assert not np.allclose(noise[:4], noise[4:])
    np.testing.assert_array_equal(tf.argmax(g_inputs[:, 100:], 1), codes)


def test_infogan_adds_the_codes_cross_entropy_to_both_losses_with_their_weights(compose_cfg, batch):
    images, labels = batch
    gan = build_gan(compose_cfg("model=infogan", "model.dropout=0", "train.precision=float32"), steps_per_execution=1)
    bce = LOSSES.get("bce")
    state = gan.seed_generator.state.numpy()
    g_inputs, noise, _, codes = gan._generator_inputs(8)
    np.testing.assert_array_equal(tf.argmax(g_inputs[:, 100:], 1), codes)  # the one-hot code rides on the noise
    fakes = gan.generator(g_inputs, training=True)
    fake_logits, code_logits = gan.discriminator(fakes, training=True)
    real_logits, _ = gan.discriminator(images, training=True)
    information = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=codes, logits=code_logits))
    gan.seed_generator.state.assign(state)
    objective = Objective(bce, mutual_information=0.5, generator_mutual_information=0.25)
    (d_loss, g_loss, *_), _, _ = losses_with(gan, objective, images, labels)
    assert float(g_loss) == pytest.approx(float(bce.generator_loss(real_logits, fake_logits) + 0.25 * information), rel=1e-5)
    assert float(d_loss) == pytest.approx(float(bce.discriminator_loss(real_logits, fake_logits) + 0.5 * information),
                                          rel=1e-5)


def test_weight_decay_reaches_the_losses(compose_cfg, batch):
    images, labels = batch
    gan = build_gan(compose_cfg("experiment=tfgan_mnist", "train.precision=float32"), steps_per_execution=1)
    wgan = LOSSES.get("wgan")
    (d_loss, g_loss, real, fake), _, _ = losses_with(gan, Objective(wgan), images, labels)
    decay = [float(tf.add_n(network.losses)) for network in (gan.generator, gan.discriminator)]
    assert all(value > 0 for value in decay)
    assert float(g_loss) == pytest.approx(float(wgan.generator_loss(real, fake)) + decay[0], rel=1e-5)
    assert float(d_loss) == pytest.approx(float(wgan.discriminator_loss(real, fake)) + decay[1], rel=1e-5)


def test_augmentation_changes_what_d_sees_not_the_data(compose_cfg, batch):
    images, labels = batch
    gan = build_gan(compose_cfg("model=dcgan", "model.dropout=0", "train.precision=float32"), steps_per_execution=1)
    bce = LOSSES.get("bce")
    (_, _, plain_real, _), _, plain_state = losses_with(gan, Objective(bce), images, labels)
    (_, _, augmented_real, _), _, state = losses_with(gan, Objective(bce, augment="translation"), images, labels)
    assert not np.allclose(plain_real, augmented_real)
    assert not np.array_equal(state, plain_state)  # its shifts come from the GAN's checkpointed random state


def test_critic_steps_update_d_more_often(compose_cfg, batch):
    gan = build_gan(compose_cfg("loss=wgan_gp", "train.d_steps=3", "model=mlp"), steps_per_execution=1)
    gan.train_step(batch)
    gan.train_step(batch)
    assert (int(gan.g_optimizer.iterations), int(gan.d_optimizer.iterations)) == (2, 6)


@pytest.mark.parametrize("recipe", [
    [], ["model=infogan"], ["experiment=tfgan_mnist"], ["model=cgan", "model.conditional_bn=true", "loss.mode_seeking=1"],
    ["loss=hinge", "model.spectral_norm=true", "model.minibatch_std=true", "train.augment='translation,cutout'"],
])
def test_recipes_train_and_record(tiny_train_cfg, mlflow_uri, tmp_path, recipe):
    run = MlflowClient(mlflow_uri).get_run(train(tiny_train_cfg(*recipe), output_dir=tmp_path))
    assert run.info.status == "FINISHED"
    assert all(np.isfinite(run.data.metrics[name]) for name in ("d_loss", "g_loss", "score", "fid"))


def test_max_time_ends_the_run_as_its_last_step_would(tiny_train_cfg, mlflow_uri, tmp_path):
    cfg = tiny_train_cfg("model=mlp", "train.epochs=1000", "train.max_steps=null", "train.max_time=4",
                         "train.steps_per_execution=4", "mlflow.experiment=budget")
    client = MlflowClient(mlflow_uri)
    run = client.get_run(train(cfg, output_dir=tmp_path))
    assert run.info.status == "FINISHED"
    assert 4 <= run.data.metrics["train_seconds"] < 4 + 3  # stopped at the first fused call past the budget
    assert run.data.metrics["train_steps"] < 1000 * 312
    last_epoch = max(m.step for m in client.get_metric_history(run.info.run_id, "d_loss"))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == [last_epoch]  # judged at the end
    assert {"grid.png", "loss_curve.png", "discriminator.weights.h5"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
