"""Training: the GAN as a ``keras.Model`` with its own ``train_step``, and ``train(cfg)``."""

import math
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from gan_lab import figures, tracking
from gan_lab.config import ConfigError, Noise, Precision, validate
from gan_lab.data import load_mnist
from gan_lab.judge import Judge, get_judge, judge_generator, log_judgement
from gan_lab.losses import LOSSES, GANLoss
from gan_lab.models import build_models, generate_images, is_conditional, sample_noise, stock_generator
from gan_lab.optimizers import build_optimizer

METRICS = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")
GRID_SIZE = 100  # fixed inputs for sample grids: 10x10 (cgan: one row per digit)


class GAN(keras.Model):
    """Generator and discriminator trained together, one simultaneous update per batch.

    ``fit`` on batches of ``(images, labels)`` reports the epoch means of the D and G losses
    and of D's accuracy on real and on generated images.
    """

    def __init__(
        self, generator, discriminator, latent_dim: int, noise: Noise, num_classes: int, seed: int, ema: float = 0.0
    ):
        super().__init__(name="gan")
        self.generator = generator
        self.ema = ema
        # Exponential moving average of the generator's weights (0: off); samples come from it.
        self.ema_generator = keras.models.clone_model(generator) if ema else generator
        if ema:
            self.ema_generator.set_weights(generator.get_weights())
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.noise = noise
        self.num_classes = num_classes
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]

    def compile(self, g_optimizer, d_optimizer, loss: GANLoss, steps_per_execution: int = 1, jit_compile: bool = False):
        super().compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.gan_loss = loss

    @property
    def metrics(self):
        return self.trackers

    @property
    def train_steps(self) -> int:
        """Training steps taken so far."""
        return int(self.g_optimizer.iterations.numpy())

    def _noise(self, batch_size):
        shape = (batch_size, self.latent_dim)
        if self.noise == Noise.uniform:
            return keras.random.uniform(shape, -1.0, 1.0, seed=self.seed_generator)
        return keras.random.normal(shape, seed=self.seed_generator)

    def train_step(self, data):
        images, labels = data
        batch_size = tf.shape(images)[0]
        noise = self._noise(batch_size)
        if self.num_classes:
            fake_labels = keras.random.randint((batch_size,), 0, self.num_classes, seed=self.seed_generator)
            g_inputs, real_inputs = [noise, fake_labels], lambda x: [x, labels]
            fake_inputs = lambda x: [x, fake_labels]  # noqa: E731
        else:
            g_inputs, real_inputs, fake_inputs = noise, (lambda x: x), (lambda x: x)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fakes = self.generator(g_inputs, training=True)
            real_logits = self.discriminator(real_inputs(images), training=True)
            fake_logits = self.discriminator(fake_inputs(fakes), training=True)
            g_loss = self.gan_loss.generator_loss(fake_logits)
            d_loss = self.gan_loss.discriminator_loss(real_logits, fake_logits)
        g_grads = g_tape.gradient(g_loss, self.generator.trainable_weights)
        d_grads = d_tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_weights))
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_weights))
        if self.ema:  # warmed up like tf.train.ExponentialMovingAverage(num_updates=step)
            step = tf.cast(self.g_optimizer.iterations, tf.float32)
            decay = tf.minimum(self.ema, (1.0 + step) / (10.0 + step))
            for average, weight in zip(self.ema_generator.weights, self.generator.weights):
                average.assign(decay * average + (1.0 - decay) * weight)

        threshold = self.gan_loss.real_threshold
        values = (
            d_loss,
            g_loss,
            tf.reduce_mean(tf.cast(real_logits > threshold, tf.float32)),
            tf.reduce_mean(tf.cast(fake_logits <= threshold, tf.float32)),
        )
        for tracker, value in zip(self.trackers, values):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}


def grid_epochs(epochs: int, save_interval: int) -> set[int]:
    """Epochs (1-based) that get a sample grid: 1-5, every ``save_interval``-th, and the last."""
    return {e for e in range(1, epochs + 1) if e <= 5 or e % save_interval == 0 or e == epochs}


def judge_epochs(epochs: int, every: int) -> set[int]:
    """Epochs (1-based) after which the judge scores the generator: every ``every``-th and the last."""
    return {e for e in range(1, epochs + 1) if e % every == 0 or e == epochs}


def grid_inputs(model_cfg: DictConfig, seed: int):
    """Fixed generator inputs for the sample grids (cgan: labels 0..9, ten of each)."""
    noise = sample_noise(np.random.default_rng(seed), GRID_SIZE, model_cfg.latent_dim, model_cfg.noise)
    if not is_conditional(model_cfg):
        return noise, None
    labels = np.repeat(np.arange(model_cfg.num_classes), GRID_SIZE // model_cfg.num_classes)
    return noise[: len(labels)], labels.astype(np.int32)


class RunRecorder(keras.callbacks.Callback):
    """Per epoch: metrics to MLflow (step = epoch) and history; sample grids at ``grid_at`` epochs;
    the judge's metrics at ``judge_at`` epochs (and at the last epoch, also when a step cap ends early)."""

    def __init__(self, cfg: DictConfig, out_dir: Path, fixed_inputs, epochs: int, total_steps: int,
                 judge: Judge | None):
        super().__init__()
        self.cfg = cfg
        self.out_dir = out_dir
        self.fixed_inputs = fixed_inputs
        self.grid_at = grid_epochs(epochs, cfg.train.save_interval)
        self.judge_at = judge_epochs(epochs, cfg.judge.every)
        self.last_epoch = epochs
        self.total_steps = total_steps
        self.judge = judge
        self.history: dict[str, list[float]] = {name: [] for name in METRICS}
        self.train_seconds = 0.0  # training time so far, without evaluation and logging

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.model.train_steps >= self.total_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        epoch += 1
        self.train_seconds += time.perf_counter() - self.epoch_start
        values = {name: float(logs[name]) for name in METRICS} | {"train_seconds": self.train_seconds}
        for name in METRICS:
            self.history[name].append(values[name])
        mlflow.log_metrics(values, step=epoch)
        last = epoch == self.last_epoch or self.model.stop_training
        if epoch in self.grid_at or last:
            self.save_grid(epoch)
        if self.judge is not None and (epoch in self.judge_at or last):
            self.run_judge(epoch)

    def run_judge(self, epoch: int) -> None:
        result = judge_generator(self.judge, self.model.ema_generator, self.cfg.model, self.cfg.judge.samples, self.cfg.seed)
        log_judgement(mlflow.active_run().info.run_id, self.judge, result, step=epoch)
        real = self.judge.info["real"]
        shown = [name for name in ("score", "fid", "precision", "recall", "cond_acc") if name in result]
        print(f"judge @ epoch {epoch}: " + ", ".join(f"{n} {result[n]:.3g} (real {real[n]:.3g})" for n in shown))

    def save_grid(self, epoch: int) -> None:
        noise, labels = self.fixed_inputs
        images = generate_images(self.model.ema_generator, noise, labels)
        grid = figures.image_grid(images) if labels is None else figures.label_grid(images, labels)
        figures.save_png(grid, self.out_dir / "grids" / f"epoch_{epoch:04d}.png")
        mlflow.log_image(grid, key="samples", step=epoch)


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """In-memory batches of (image, label), reshuffled every epoch, the partial last batch dropped."""
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
    )


def resolve_precision(precision: Precision) -> str:
    """The Keras dtype policy for ``train.precision``; ``auto``: bfloat16 where the hardware has it."""
    if precision != Precision.auto:
        return precision.value
    return "mixed_bfloat16" if bf16_supported() else "float32"


def bf16_supported() -> bool:
    """A GPU of compute capability >= 8.0, or a CPU with AMX-BF16 / AVX512-BF16."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return capability >= (8, 0)
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def build_gan(cfg: DictConfig, steps_per_execution: int | None = None) -> GAN:
    """The compiled GAN for ``cfg``, its layers built under the ``train.precision`` policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(cfg.train.precision))
    try:
        generator, discriminator = build_models(cfg.model, fast=True)
    finally:
        keras.config.set_dtype_policy(previous)
    gan = GAN(
        generator, discriminator, cfg.model.latent_dim, cfg.model.noise, cfg.model.get("num_classes", 0), cfg.seed,
        ema=cfg.train.ema,
    )
    gan.compile(
        g_optimizer=build_optimizer(cfg.optimizer.name, cfg.optimizer.generator),
        d_optimizer=build_optimizer(cfg.optimizer.name, cfg.optimizer.discriminator),
        loss=LOSSES.get(cfg.loss.name),
        steps_per_execution=steps_per_execution or cfg.train.steps_per_execution,
        jit_compile=cfg.train.xla,
    )
    return gan


def train(cfg: DictConfig, output_dir: str | Path | None = None, tags: dict[str, str] | None = None) -> str:
    """Train the GAN described by ``cfg``, record it in MLflow, and return the MLflow run id.

    Files (grids, loss curve, final samples, models) go to ``output_dir`` (Hydra's run folder
    when launched from the command line; else ``outputs/<time>_<model>-<loss>``).
    """
    out_dir = Path(output_dir or f"outputs/{time.strftime('%Y-%m-%d/%H-%M-%S')}_{cfg.model.name}-{cfg.loss.name}")
    validate(cfg)
    train_cfg = cfg.train

    judge = get_judge(cfg) if cfg.judge.enabled else None
    keras.utils.set_random_seed(cfg.seed)
    images, labels = load_mnist(cfg.data.path, cfg.data.split, cfg.data.verify)
    steps_per_epoch = len(images) // train_cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={train_cfg.batch_size}: more than the {len(images)} images of the data")
    total_steps = min(train_cfg.epochs * steps_per_epoch, train_cfg.max_steps or math.inf)
    epochs = math.ceil(total_steps / steps_per_epoch)
    dataset = make_dataset(images, labels, train_cfg.batch_size, cfg.seed)
    steps_per_execution = train_cfg.steps_per_execution
    if epochs == 1:
        dataset = dataset.take(total_steps)
    elif total_steps % steps_per_epoch:  # fused steps must end exactly at a cap inside a later epoch
        steps_per_execution = math.gcd(steps_per_execution, total_steps % steps_per_epoch)

    gan = build_gan(cfg, steps_per_execution)
    fixed_inputs = grid_inputs(cfg.model, cfg.seed)
    recorder = RunRecorder(cfg, out_dir, fixed_inputs, epochs, total_steps, judge)

    run_tags = {"output_dir": str(out_dir.resolve()), **(tags or {})}
    if judge is not None:
        run_tags |= {"judge_key": judge.info["key"], "judge_run_id": judge.info["mlflow_run_id"]}
    with tracking.training_run(cfg, run_tags) as run:
        print(f"MLflow run {run.info.run_id} ({run.info.run_name}) in {mlflow.get_tracking_uri()}; files in {out_dir}")
        precision = resolve_precision(cfg.train.precision)
        mlflow.set_tag("precision", precision)
        print(f"Precision: {precision} (train.precision={cfg.train.precision.value})")
        gan.fit(dataset, epochs=epochs, callbacks=[recorder], shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
        mlflow.log_metric("train_steps", gan.train_steps)
        _save_results(gan, stock_generator(cfg.model, gan.ema_generator), recorder, fixed_inputs, out_dir)
        print(f"Done: {gan.train_steps} steps. Generate samples with: python -m gan_lab.generate run_id={run.info.run_id}")
        return run.info.run_id


def _save_results(gan: GAN, generator: keras.Model, recorder: RunRecorder, fixed_inputs, out_dir: Path) -> None:
    """Loss curve, the final samples one PNG each, the (stock-layer, float32) generator model and
    the discriminator weights."""
    figures.save_loss_curve(recorder.history, out_dir / "loss_curve.png")
    mlflow.log_artifact(str(out_dir / "loss_curve.png"))

    noise, labels = fixed_inputs
    final_dir = out_dir / "samples"
    for i, image in enumerate(generate_images(generator, noise, labels)):
        suffix = "" if labels is None else f"_digit{labels[i]}"
        figures.save_png(image, final_dir / f"{i:03d}{suffix}.png")
    mlflow.log_artifacts(str(final_dir), "samples")

    generator.save(out_dir / "generator.keras")
    gan.discriminator.save_weights(out_dir / "discriminator.weights.h5")
    mlflow.log_artifact(str(out_dir / "discriminator.weights.h5"))
    example = noise[:2] if labels is None else {"noise": noise[:2], "label": labels[:2]}
    mlflow.keras.log_model(
        generator,
        name="generator",
        signature=mlflow.models.infer_signature(example, generator.predict(example, verbose=0)),
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
    )
