"""Training: the GAN as a ``keras.Model`` with its own ``train_step``, and ``train(cfg)``."""

import contextlib
import math
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from gan_lab import figures, tracking
from gan_lab.checkpoints import CHECKPOINT_DIR, Checkpoints, write_run_files
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
        # The first step whose losses or gradients were not finite, and which (DIVERGENCE_PARTS bits); -1: none.
        self.divergence = keras.Variable([-1, 0], dtype="int64", trainable=False, name="divergence")

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
        self._record_divergence(d_loss, g_loss, g_grads + d_grads)
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_weights))
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_weights))
        if self.ema:  # warmed up like tf.train.ExponentialMovingAverage(num_updates=step)
            step = tf.cast(self.g_optimizer.iterations, tf.float32)
            rate = 1.0 - tf.minimum(self.ema, (1.0 + step) / (10.0 + step))
            for average, weight in zip(self.ema_generator.weights, self.generator.weights):
                # average -= rate * (average - weight), updated in place by one kernel
                tf.raw_ops.ResourceApplyGradientDescent(var=average.handle, alpha=rate, delta=average - weight)

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

    def _record_divergence(self, d_loss, g_loss, grads) -> None:
        """Note the first non-finite step on the device; read by ``Checkpointer`` once per fused call."""
        gradient_sum = tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])  # NaN/Inf propagate
        bits = [tf.cast(~tf.math.is_finite(tf.cast(x, tf.float32)), tf.int64) * 2**i
                for i, x in enumerate((d_loss, g_loss, gradient_sum))]
        parts = tf.add_n(bits)
        step = tf.cast(self.g_optimizer.iterations, tf.int64) + 1  # iterations counts the steps before this one
        first = (self.divergence[0] < 0) & (parts > 0)
        self.divergence.assign(tf.where(first, tf.stack([step, parts]), self.divergence))

    def training_state(self) -> list:
        """Every variable training changes, in a fixed order: weights and batch-norm statistics of G,
        D and the EMA generator, the RNG states (noise, dropout), both optimizers (slots, step
        counts) and the epoch's running metrics."""
        for optimizer, network in ((self.g_optimizer, self.generator), (self.d_optimizer, self.discriminator)):
            if not optimizer.built:  # slots must exist before a restore
                optimizer.build(network.trainable_weights)
        return [*self.variables, *self.g_optimizer.variables, *self.d_optimizer.variables, *self.tracker_variables]

    @property
    def tracker_variables(self) -> list:
        """The running sums and counts behind the epoch metrics."""
        return [v for tracker in self.trackers for v in tracker.variables]


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
    """Per completed epoch: metrics to MLflow (step = epoch) and history; sample grids at
    ``grid_at`` epochs; the judge's metrics at ``judge_at`` epochs and at the last one (also when
    the step cap ends it early). Stops training at ``total_steps``.

    A resumed run passes the run's ``logged`` history: epochs already in MLflow are not logged again.
    """

    def __init__(self, cfg: DictConfig, out_dir: Path, fixed_inputs, epochs: int, total_steps: int,
                 steps_per_epoch: int, judge: Judge | None, logged: dict[str, list[tuple[int, float]]] | None = None):
        super().__init__()
        self.cfg = cfg
        self.out_dir = out_dir
        self.fixed_inputs = fixed_inputs
        self.grid_at = grid_epochs(epochs, cfg.train.save_interval)
        self.judge_at = judge_epochs(epochs, cfg.judge.every)
        self.last_epoch = epochs
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.judge = judge
        logged = logged or {}
        self.history = {name: [value for _, value in logged.get(name, [])] for name in METRICS}
        self.logged_through = max((step for step, _ in logged.get("d_loss", [])), default=0)
        self.judged_through = max((step for step, _ in logged.get("score", [])), default=0)
        # training time so far, without evaluation and logging; checkpointed with the training state
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.model.train_steps >= self.total_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        epoch += 1
        self.train_seconds.assign_add(time.perf_counter() - self.epoch_start)
        steps = self.model.train_steps
        if steps < min(epoch * self.steps_per_epoch, self.total_steps):
            return  # stopped inside the epoch (a stop signal): the resumed run logs it
        if epoch > self.logged_through:
            values = {name: float(logs[name]) for name in METRICS}
            for name in METRICS:
                self.history[name].append(values[name])
            last = epoch == self.last_epoch or steps >= self.total_steps
            if epoch in self.grid_at or last:
                self.save_grid(epoch)
            if self.judge is not None and (epoch in self.judge_at or last) and epoch > self.judged_through:
                self.run_judge(epoch)
            # last, so an epoch with d_loss logged is complete in MLflow
            mlflow.log_metrics(values | {"train_seconds": float(self.train_seconds.numpy())}, step=epoch)

    def run_judge(self, epoch: int) -> None:
        result = judge_generator(self.judge, self.model.ema_generator, self.cfg.model, self.cfg.judge.samples, self.cfg.seed)
        log_judgement(mlflow.active_run().info.run_id, self.judge, result, step=epoch)
        real = self.judge.info["real"]
        shown = [name for name in ("score", "fid", "precision", "recall", "cond_acc") if name in result]
        print(f"judge @ epoch {epoch}: " + ", ".join(f"{n} {result[n]:.3g} (real {real[n]:.3g})" for n in shown))

    def save_grid(self, epoch: int) -> None:
        noise, labels = self.fixed_inputs
        images = generate_images(self.model.ema_generator, noise, labels)
        grid = figures.sample_grid(images, labels)
        figures.save_png(grid, self.out_dir / "grids" / f"epoch_{epoch:04d}.png")
        mlflow.log_image(grid, key="samples", step=epoch)


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or Inf; the run is FAILED and its last good checkpoint kept."""


DIVERGENCE_PARTS = ("d_loss", "g_loss", "gradients")


class Checkpointer(keras.callbacks.Callback):
    """After each fused call: stop on a non-finite loss or gradient; save a checkpoint every
    ``every`` steps, and when a stop was requested (Ctrl-C, SIGTERM), then stop.

    ``carried_metrics``: running-metric values of a resumed, partly done epoch, put back after
    Keras resets the metrics at the epoch's start.
    """

    def __init__(self, checkpoints: Checkpoints, every: int, saved_step: int, carried_metrics=None):
        super().__init__()
        self.checkpoints = checkpoints
        self.every = every
        self.saved_step = saved_step
        self.carried_metrics = carried_metrics
        self.stop_signal: int | None = None
        self.fitting = False

    def on_train_begin(self, logs=None):
        self.fitting = True

    def on_train_end(self, logs=None):
        self.fitting = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.carried_metrics is not None:
            for variable, value in zip(self.model.tracker_variables, self.carried_metrics):
                variable.assign(value)
            self.carried_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self.check_finite()
        step = self.model.train_steps
        if self.stop_signal is not None or step - self.saved_step >= self.every:
            self.save(step)
        if self.stop_signal is not None:
            self.model.stop_training = True

    def check_finite(self) -> None:
        step, bits = (int(x) for x in self.model.divergence.numpy())
        if step < 0:
            return
        parts = " and ".join(name for i, name in enumerate(DIVERGENCE_PARTS) if bits >> i & 1)
        reason = f"non-finite {parts} at step {step}"
        mlflow.set_tags({"gan_lab.failure": reason, "gan_lab.failure_step": str(step)})
        kept = f"the last good checkpoint is step {self.saved_step} in {self.checkpoints.folder}" if self.saved_step \
            else "no checkpoint was written before it"
        raise TrainingDiverged(f"training diverged: {reason}; {kept}. Try a lower optimizer.lr or another loss.")

    def save(self, step: int) -> None:
        if step != self.saved_step:
            self.checkpoints.save(step)
            self.saved_step = step


@contextlib.contextmanager
def stop_on_signals(checkpointer: Checkpointer) -> Iterator[None]:
    """Ctrl-C and SIGTERM during ``fit`` ask ``checkpointer`` to save and stop after the current
    fused call; outside ``fit``, or a second time, they interrupt at once (KeyboardInterrupt)."""

    def request_stop(signum, frame):
        name = signal.Signals(signum).name
        if not checkpointer.fitting or checkpointer.stop_signal is not None:
            raise KeyboardInterrupt(name)
        checkpointer.stop_signal = signum
        print(f"\n{name}: saving a checkpoint after the current steps, then stopping (again to stop at once)")

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, start_step: int = 0) -> tf.data.Dataset:
    """Endless in-memory batches of (image, label) from training step ``start_step`` on.

    Each epoch is a permutation drawn from ``(seed, epoch)`` alone, its partial last batch
    dropped, so a resumed run sees the same batches as an uninterrupted one. Use with ``fit(...,
    steps_per_epoch=len(images) // batch_size)``; one iterator serves every epoch.
    """
    steps_per_epoch = len(images) // batch_size
    first_epoch, skip = divmod(start_step, steps_per_epoch)
    images, labels = tf.constant(images), tf.constant(labels)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(images)), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order[: steps_per_epoch * batch_size], [steps_per_epoch, batch_size]))

    return (
        tf.data.Dataset.range(first_epoch, 2**62)
        .flat_map(epoch_batches)
        .skip(skip)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
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
    return cpu_bf16() is not None


def cpu_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's bfloat16 instructions: ``AMX-BF16`` (matmuls ~3x float32), ``AVX512-BF16`` or None."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return None
    return "AMX-BF16" if " amx_bf16" in flags else "AVX512-BF16" if " avx512_bf16" in flags else None


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


def train(cfg: DictConfig, output_dir: str | Path | None = None, tags: dict[str, str] | None = None,
          run_id: str | None = None) -> str:
    """Train the GAN described by ``cfg``, record it in MLflow, and return the MLflow run id.

    Files (grids, loss curve, final samples, models, checkpoints) go to ``output_dir`` (Hydra's
    run folder when launched from the command line; else ``outputs/<time>_<model>-<loss>``).
    With ``run_id``, continue that run from the newest checkpoint in ``output_dir`` (its folder).
    """
    out_dir = Path(output_dir or f"outputs/{time.strftime('%Y-%m-%d/%H-%M-%S')}_{cfg.model.name}-{cfg.loss.name}")
    validate(cfg)
    train_cfg = cfg.train
    checkpoint_dir = out_dir / CHECKPOINT_DIR
    if run_id is None and (checkpoint_dir / "checkpoint").exists():
        raise ConfigError(f"{out_dir} holds the checkpoints of an earlier run: continue it with resume={out_dir}, "
                          "or give this run another folder")
    if train_cfg.deterministic:
        tf.config.experimental.enable_op_determinism()

    judge = get_judge(cfg) if cfg.judge.enabled else None
    keras.utils.set_random_seed(cfg.seed)
    images, labels = load_mnist(cfg.data.path, cfg.data.split, cfg.data.verify)
    steps_per_epoch = len(images) // train_cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={train_cfg.batch_size}: more than the {len(images)} images of the data")
    total_steps = min(train_cfg.epochs * steps_per_epoch, train_cfg.max_steps or math.inf)
    epochs = math.ceil(total_steps / steps_per_epoch)

    # Fused calls must end exactly at epoch ends, at the step cap and at a resumed step.
    gan = build_gan(cfg, math.gcd(train_cfg.steps_per_execution, steps_per_epoch, total_steps % steps_per_epoch))
    fixed_inputs = grid_inputs(cfg.model, cfg.seed)
    uri = tracking.tracking_uri(cfg.mlflow.tracking_uri)
    logged = _logged_history(run_id, uri) if run_id else None
    recorder = RunRecorder(cfg, out_dir, fixed_inputs, epochs, total_steps, steps_per_epoch, judge, logged)
    checkpoints = Checkpoints(checkpoint_dir, [*gan.training_state(), recorder.train_seconds], cfg.checkpoint.keep)
    start_step = 0
    if run_id:
        path = checkpoints.restore_latest()
        start_step = gan.train_steps
        print(f"Resuming from {path} (step {start_step} of {total_steps})")
        if start_step % steps_per_epoch:
            gan.steps_per_execution = math.gcd(gan.steps_per_execution, start_step % steps_per_epoch)
    carried = [v.numpy() for v in gan.tracker_variables] if start_step % steps_per_epoch else None
    checkpointer = Checkpointer(checkpoints, cfg.checkpoint.every, start_step, carried)

    run_tags = {"output_dir": str(out_dir.resolve()), **(tags or {})}
    if judge is not None:
        run_tags |= {"judge_key": judge.info["key"], "judge_run_id": judge.info["mlflow_run_id"]}
    with tracking.training_run(cfg, run_tags, run_id) as run, stop_on_signals(checkpointer):
        run_id = run.info.run_id
        if start_step == 0:
            write_run_files(out_dir, cfg, run_id, uri)
        print(f"MLflow run {run_id} ({run.info.run_name}) in {uri}; files in {out_dir}")
        precision = resolve_precision(cfg.train.precision)
        mlflow.set_tag("precision", precision)
        print(f"Precision: {precision} (train.precision={cfg.train.precision.value})")
        def fit(first_step: int, epoch: int, end_epoch: int, steps: int) -> None:
            """Epochs ``epoch + 1 .. end_epoch`` of ``steps`` steps each, from training step ``first_step``."""
            dataset = make_dataset(images, labels, train_cfg.batch_size, cfg.seed, first_step)
            gan.fit(dataset, initial_epoch=epoch, epochs=end_epoch, steps_per_epoch=steps,
                    callbacks=[checkpointer, recorder], shuffle=False, verbose=1 if sys.stdout.isatty() else 2)

        epoch, offset = divmod(start_step, steps_per_epoch)
        if offset:  # finish the interrupted epoch first
            fit(start_step, epoch, epoch + 1, min(steps_per_epoch, total_steps - epoch * steps_per_epoch) - offset)
            epoch += 1
        if epoch < epochs and gan.train_steps < total_steps and checkpointer.stop_signal is None:
            # one epoch left: its length, so the progress bar ends at the step cap
            fit(epoch * steps_per_epoch, epoch, epochs,
                steps_per_epoch if epochs - epoch > 1 else total_steps - epoch * steps_per_epoch)
        checkpointer.save(gan.train_steps)
        if checkpointer.stop_signal is not None:
            raise KeyboardInterrupt(f"{signal.Signals(checkpointer.stop_signal).name} at step {gan.train_steps}")
        mlflow.log_metric("train_steps", gan.train_steps, step=gan.train_steps)  # a resumed run extended adds a point
        _save_results(gan, stock_generator(cfg.model, gan.ema_generator), recorder, fixed_inputs, out_dir)
        print(f"Done: {gan.train_steps} steps. Generate samples with: python -m gan_lab.generate run_id={run_id}")
        return run_id


def _logged_history(run_id: str, uri: str) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(epoch, value), ...]}`` of what run ``run_id`` has logged so far."""
    client = MlflowClient(uri)
    return {name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
            for name in (*METRICS, "score")}


def _save_results(gan: GAN, generator: keras.Model, recorder: RunRecorder, fixed_inputs, out_dir: Path) -> None:
    """Loss curve, the final sample grid and samples (one PNG each), the (stock-layer, float32)
    generator model with its signature and an input example, and the discriminator weights."""
    figures.save_loss_curve(recorder.history, out_dir / "loss_curve.png")
    mlflow.log_artifact(str(out_dir / "loss_curve.png"))

    noise, labels = fixed_inputs
    images = generate_images(generator, noise, labels)
    figures.save_png(figures.sample_grid(images, labels), out_dir / "grid.png")
    mlflow.log_artifact(str(out_dir / "grid.png"))
    final_dir = out_dir / "samples"
    for i, image in enumerate(images):
        suffix = "" if labels is None else f"_digit{labels[i]}"
        figures.save_png(image, final_dir / f"{i:03d}{suffix}.png")
    mlflow.log_artifacts(str(final_dir), "samples")

    generator.save(out_dir / "generator.keras")
    gan.discriminator.save_weights(out_dir / "discriminator.weights.h5")
    mlflow.log_artifact(str(out_dir / "discriminator.weights.h5"))
    tracking.log_keras_model(generator, "generator", noise[:2] if labels is None else {"noise": noise[:2], "label": labels[:2]})
