"""Keras callbacks of a training run: what it records (metrics, grids, judgements), its checkpoints,
and stopping cleanly on a signal or a divergence."""

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import tensorflow as tf
from omegaconf import DictConfig

from gan_lab import figures
from gan_lab.checkpoints import BestCheckpoint, Checkpoints
from gan_lab.gan import DIVERGENCE_PARTS, METRICS
from gan_lab.judge import Judge, judge_generator, log_judgement
from gan_lab.models import generate_images


def grid_epochs(epochs: int, save_interval: int) -> set[int]:
    """Epochs (1-based) that get a sample grid: 1-5, every ``save_interval``-th, and the last."""
    return {e for e in range(1, epochs + 1) if e <= 5 or e % save_interval == 0 or e == epochs}


def judge_epochs(epochs: int, every: int) -> set[int]:
    """Epochs (1-based) after which the judge scores the generator: every ``every``-th and the last."""
    return {e for e in range(1, epochs + 1) if e % every == 0 or e == epochs}


class RunRecorder(keras.callbacks.Callback):
    """Per completed epoch: metrics to MLflow (step = epoch) and history; sample grids at
    ``grid_at`` epochs; the judge's metrics at ``judge_at`` epochs and at the last one (also when
    the step cap or the time budget ends it early). Stops training at ``total_steps``, and after the
    fused call that exhausts ``train.max_time`` seconds of training; that epoch then counts as the last.

    A resumed run passes the run's ``logged`` history: epochs already in MLflow are not logged again.
    ``records=False`` (a multi-worker run's other workers): only stop training where the chief does.
    """

    def __init__(self, cfg: DictConfig, out_dir: Path, fixed_inputs, epochs: int, total_steps: int,
                 steps_per_epoch: int, judge: Judge | None, logged: dict[str, list[tuple[int, float]]] | None = None,
                 records: bool = True, best: BestCheckpoint | None = None):
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
        self.max_time = cfg.train.max_time
        self.out_of_time = False
        self.records = records
        self.best = best

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.model.train_steps >= self.total_steps:
            self.model.stop_training = True
        if self.max_time and float(self.train_seconds.numpy()) + time.perf_counter() - self.epoch_start >= self.max_time:
            self.out_of_time = self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        epoch += 1
        self.train_seconds.assign_add(time.perf_counter() - self.epoch_start)
        steps = self.model.train_steps
        if steps < min(epoch * self.steps_per_epoch, self.total_steps) and not self.out_of_time:
            return  # stopped inside the epoch (a stop signal): the resumed run logs it
        if self.records and epoch > self.logged_through:
            values = {name: float(logs[name]) for name in METRICS}
            for name in METRICS:
                self.history[name].append(values[name])
            last = epoch == self.last_epoch or steps >= self.total_steps or self.out_of_time
            if epoch in self.grid_at or last:
                self.save_grid(epoch)
            if self.judge is not None and (epoch in self.judge_at or last) and epoch > self.judged_through:
                self.run_judge(epoch, last)
            # last, so an epoch with d_loss logged is complete in MLflow
            mlflow.log_metrics(values | {"train_seconds": float(self.train_seconds.numpy())}, step=epoch)

    def run_judge(self, epoch: int, last: bool) -> None:
        result = judge_generator(self.judge, self.model.ema_generator, self.cfg.model, self.cfg.judge.samples, self.cfg.seed,
                                 cas=last)  # CAS, costly: on the last evaluation only
        log_judgement(mlflow.active_run().info.run_id, self.judge, result, step=epoch)
        real = self.judge.ceilings
        shown = [name for name in ("score", "fid", "kid", "precision", "recall", "cond_acc", "cas", "val_fid",
                                   "val_precision", "val_recall", "pixel_coverage") if name in result]
        best = self.best is not None and self.best.offer(self.model.train_steps, epoch, result)
        if best:
            mlflow.set_tags({"best_step": str(self.model.train_steps), "best_epoch": str(epoch)})
            mlflow.log_metric(f"best_{self.best.objective}", result[self.best.objective], step=epoch)
        print(f"judge @ epoch {epoch}: " + ", ".join(f"{n} {result[n]:.3g} (real {real[f'real_{n}']:.3g})" for n in shown)
              + (f"; best {self.best.objective} so far, checkpoint kept" if best else ""))

    def save_grid(self, epoch: int) -> None:
        noise, labels = self.fixed_inputs
        images = generate_images(self.model.ema_generator, noise, labels)
        grid = figures.sample_grid(images, labels)
        figures.save_png(grid, self.out_dir / "grids" / f"epoch_{epoch:04d}.png")
        mlflow.log_image(grid, key="samples", step=epoch)


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or Inf; the run is FAILED and its last good checkpoint kept."""


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
        if mlflow.active_run() is not None:  # the chief of a multi-worker run records it
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
