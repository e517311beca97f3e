"""Training: build the GAN a config describes, and ``train(cfg)``: fit it, record it, export it."""

import contextlib
import json
import math
import signal
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from gan_lab import figures, tracking
from gan_lab.callbacks import Checkpointer, RunRecorder, stop_on_signals
from gan_lab.checkpoints import BEST_DIR, CHECKPOINT_DIR, BestCheckpoint, Checkpoints, write_run_files
from gan_lab.config import ConfigError, Direction, Strategy, augment_policies, validate
from gan_lab.data import Data, load, make_dataset
from gan_lab.distribute import fused_steps, is_chief, make_strategy
from gan_lab.gan import GAN, METRICS, Objective
from gan_lab.judge import get_judge, unjudgeable
from gan_lab.losses import LOSSES
from gan_lab.models import (
    build_models,
    generate_images,
    is_conditional,
    sample_noise,
    stock_copy,
    with_code,
)
from gan_lab.optimizers import build_optimizer
from gan_lab.plugins import PLUGINS_TAG, import_plugins, plugin_roots
from gan_lab.precision import resolve_precision


def grid_inputs(model_cfg: DictConfig, seed: int, side: int = 10):
    """Fixed generator inputs for the sample grids (``side`` x ``side``), and their labels: one row per class
    (cgan) or per code value (InfoGAN), ``side`` of each."""
    size = side * side
    noise = sample_noise(np.random.default_rng(seed), size, model_cfg.latent_dim, model_cfg.noise)
    rows = model_cfg.get("num_classes", 0) or model_cfg.get("code_dim", 0)
    if not rows:
        return noise, None
    per_row = np.repeat(np.arange(rows), size // rows)
    if not is_conditional(model_cfg):
        return with_code(noise[: len(per_row)], per_row, model_cfg.code_dim), None
    return noise[: len(per_row)], per_row.astype(np.int32)


def check_labels(model_cfg: DictConfig, data: Data) -> None:
    """ConfigError unless a conditional model gets labelled data of as many classes as it has labels."""
    if not is_conditional(model_cfg):
        return
    if data.labels is None:
        raise ConfigError(
            f"model={model_cfg.name} is conditional (model.num_classes={model_cfg.num_classes}) but {data.title} is "
            "unlabelled: give the images labels (one subfolder per class, or a 'labels' array in the .npz), or train "
            "an unconditional model (model=dcgan)"
        )
    if model_cfg.num_classes != len(data.classes):
        raise ConfigError(f"model.num_classes={model_cfg.num_classes}: {data.title} has {len(data.classes)} classes "
                          f"({', '.join(data.classes)}); set model.num_classes={len(data.classes)}")


def build_gan(cfg: DictConfig, steps_per_execution: int | None = None, strategy: tf.distribute.Strategy | None = None
              ) -> GAN:
    """The compiled GAN for ``cfg``, its layers built under the ``train.precision`` policy, all its variables
    (optimizers' too) under ``strategy``'s scope (default: the current strategy's)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(resolve_precision(cfg.train.precision))
        try:
            on_cpu = not tf.config.list_physical_devices("GPU")  # GPUs keep TensorFlow's (cuDNN's) convolutions
            generator, discriminator = build_models(cfg.model, fast=True,
                                                    fast_convolutions=cfg.train.fast_convolutions and on_cpu)
        finally:
            keras.config.set_dtype_policy(previous)
        gan = GAN(
            generator, discriminator, cfg.model.latent_dim, cfg.model.noise, cfg.model.get("num_classes", 0), cfg.seed,
            ema=cfg.train.ema, code_dim=cfg.model.get("code_dim", 0),
            self_conditioned=cfg.model.get("self_conditioned", False),
        )
        objective = Objective(
            LOSSES.get(cfg.loss.name), gradient_penalty=cfg.loss.gradient_penalty, r1_gamma=cfg.loss.r1_gamma,
            mode_seeking=cfg.loss.mode_seeking, mutual_information=cfg.loss.mutual_information,
            generator_mutual_information=cfg.loss.generator_mutual_information,
            augment=",".join(augment_policies(cfg.train.augment)), d_steps=cfg.train.d_steps,
        )
        gan.compile(
            g_optimizer=build_optimizer(cfg.optimizer.name, cfg.optimizer.generator),
            d_optimizer=build_optimizer(cfg.optimizer.name, cfg.optimizer.discriminator),
            objective=objective,
            steps_per_execution=fused_steps(strategy, steps_per_execution or cfg.train.steps_per_execution),
            jit_compile=cfg.train.xla,
        )
    return gan


def train(cfg: DictConfig, output_dir: str | Path | None = None, tags: dict[str, str] | None = None,
          run_id: str | None = None) -> str | None:
    """Train the GAN described by ``cfg``, record it in MLflow, and return the MLflow run id.

    Files (grids, loss curve, final samples, models, checkpoints) go to ``output_dir`` (Hydra's
    run folder when launched from the command line; else ``outputs/<time>_<model>-<loss>``).
    With ``run_id``, continue that run from the newest checkpoint in ``output_dir`` (its folder).
    A multi-worker run's other workers train alongside the chief and record nothing (they return None).
    """
    out_dir = Path(output_dir or f"outputs/{time.strftime('%Y-%m-%d/%H-%M-%S')}_{cfg.model.name}-{cfg.loss.name}")
    import_plugins(cfg.plugins)  # imported already where the command line was checked; not in a sweep's workers
    validate(cfg)
    train_cfg = cfg.train
    chief = is_chief(cfg.distribute)
    strategy = make_strategy(cfg.distribute, train_cfg.batch_size)  # first: multi-worker set-up precedes any op
    checkpoint_dir = out_dir / CHECKPOINT_DIR
    if run_id is None and (checkpoint_dir / "checkpoint").exists():
        raise ConfigError(f"{out_dir} holds the checkpoints of an earlier run: continue it with resume={out_dir}, "
                          "or give this run another folder")
    if train_cfg.deterministic:
        tf.config.experimental.enable_op_determinism()

    data = load(cfg.data)  # data and judge before the MLflow run: bad data is an error with nothing logged
    check_labels(cfg.model, data)
    steps_per_epoch = len(data.images) // train_cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={train_cfg.batch_size}: more than the {len(data.images)} images of the data")
    judge = None
    if cfg.judge.enabled and chief:
        reason = unjudgeable(data)
        if reason:
            print(f"Judge skipped: {reason}; the run trains and logs without judge metrics")
        else:
            judge = get_judge(cfg, data)
    keras.utils.set_random_seed(cfg.seed)
    total_steps = min(train_cfg.epochs * steps_per_epoch, train_cfg.max_steps or math.inf)
    epochs = math.ceil(total_steps / steps_per_epoch)

    # Fused calls must end exactly at epoch ends, at the step cap and at a resumed step.
    gan = build_gan(cfg, math.gcd(train_cfg.steps_per_execution, steps_per_epoch, total_steps % steps_per_epoch),
                    strategy)
    fixed_inputs = grid_inputs(cfg.model, cfg.seed, cfg.train.grid_size)
    uri = tracking.tracking_uri(cfg.mlflow.tracking_uri)
    logged = _logged_history(run_id, uri) if run_id and chief else None
    recorder = RunRecorder(cfg, out_dir, fixed_inputs, epochs, total_steps, steps_per_epoch, judge, logged, chief)
    state = [*gan.training_state(), recorder.train_seconds]
    checkpoints = Checkpoints(checkpoint_dir, state, cfg.checkpoint.keep, keeps=chief)
    if judge is not None and cfg.checkpoint.keep_best:
        if cfg.distribute.strategy == Strategy.multi_worker:  # the chief alone judges; a save takes every worker
            print("checkpoint.keep_best: off with distribute=multi_worker; the newest checkpoints are kept")
        else:
            recorder.best = BestCheckpoint(checkpoint_dir / BEST_DIR, state, cfg.sweep.objective,
                                           cfg.sweep.direction == Direction.maximize)
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
    if cfg.plugins:
        run_tags[PLUGINS_TAG] = json.dumps(plugin_roots(cfg.plugins))  # where generate finds them again
    if judge is not None:
        run_tags |= {"judge_key": judge.info["key"], "judge_run_id": judge.info["mlflow_run_id"]}
        if judge.validation is not None:
            run_tags |= {"val_judge_key": judge.validation.info["key"],
                         "val_judge_run_id": judge.validation.info["mlflow_run_id"]}
    mlflow_run = tracking.training_run(cfg, run_tags, run_id) if chief else contextlib.nullcontext()
    with mlflow_run as run, stop_on_signals(checkpointer):
        precision = resolve_precision(cfg.train.precision)
        if chief:
            run_id = run.info.run_id
            if start_step == 0:
                write_run_files(out_dir, cfg, run_id, uri)
            print(f"MLflow run {run_id} ({run.info.run_name}) in {uri}; files in {out_dir}")
            mlflow.set_tag("precision", precision)
        else:
            print(f"Worker of a multi-worker run: the chief records it; {strategy.num_replicas_in_sync} replicas")
        print(f"Precision: {precision} (train.precision={cfg.train.precision.value})")
        def fit(first_step: int, epoch: int, end_epoch: int, steps: int) -> None:
            """Epochs ``epoch + 1 .. end_epoch`` of ``steps`` steps each, from training step ``first_step``."""
            dataset = make_dataset(data.images, data.labels, train_cfg.batch_size, cfg.seed, first_step)
            gan.fit(dataset, initial_epoch=epoch, epochs=end_epoch, steps_per_epoch=steps,
                    callbacks=[checkpointer, recorder], shuffle=False, verbose=1 if sys.stdout.isatty() else 2)

        epoch, offset = divmod(start_step, steps_per_epoch)
        if offset:  # finish the interrupted epoch first
            fit(start_step, epoch, epoch + 1, min(steps_per_epoch, total_steps - epoch * steps_per_epoch) - offset)
            epoch += 1
        if epoch < epochs and gan.train_steps < total_steps and checkpointer.stop_signal is None \
                and not recorder.out_of_time:
            # one epoch left: its length, so the progress bar ends at the step cap
            fit(epoch * steps_per_epoch, epoch, epochs,
                steps_per_epoch if epochs - epoch > 1 else total_steps - epoch * steps_per_epoch)
        checkpointer.save(gan.train_steps)
        if checkpointer.stop_signal is not None:
            raise KeyboardInterrupt(f"{signal.Signals(checkpointer.stop_signal).name} at step {gan.train_steps}")
        if not chief:
            print(f"Done: {gan.train_steps} steps as a worker; the chief has recorded the run")
            return None
        mlflow.log_metric("train_steps", gan.train_steps, step=gan.train_steps)  # a resumed run extended adds a point
        _save_results(cfg, gan, stock_copy(cfg.model, gan.ema_generator, "generator"), recorder, fixed_inputs, out_dir)
        if recorder.best is not None and recorder.best.record is not None:  # last: it restores the best state
            _export_best(cfg, gan, recorder.best, fixed_inputs)
        print(f"Done: {gan.train_steps} steps. Generate samples with: python -m gan_lab.generate run_id={run_id}")
        return run_id


def checkpoint_generator(cfg: DictConfig, path: str) -> keras.Model:
    """The (EMA, stock-layer, float32) generator of the training checkpoint ``path`` of a run of ``cfg``."""
    gan = build_gan(cfg)
    train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)  # as RunRecorder checkpoints it
    tf.train.Checkpoint(state=[*gan.training_state(), train_seconds]).restore(path).assert_existing_objects_matched(
    ).expect_partial()  # the manager's save counter is not needed
    return stock_copy(cfg.model, gan.ema_generator, "generator")


def _export_best(cfg: DictConfig, gan: GAN, best: BestCheckpoint, fixed_inputs) -> None:
    """Restore the best evaluation's state into ``gan`` and log its generator as ``generator_best``."""
    best.checkpoints.checkpoint.restore(best.record["path"]).assert_existing_objects_matched()
    generator = stock_copy(cfg.model, gan.ema_generator, "generator")
    tracking.log_keras_model(generator, "generator_best", _input_example(fixed_inputs))
    print(f"Best judge evaluation: step {best.record['step']} (epoch {best.record['epoch']}), {best.objective} "
          f"{best.record['value']:.4g}: exported as generator_best (checkpoint=best)")


def _logged_history(run_id: str, uri: str) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(epoch, value), ...]}`` of what run ``run_id`` has logged so far."""
    client = MlflowClient(uri)
    return {name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
            for name in (*METRICS, "score")}


def _save_results(cfg: DictConfig, gan: GAN, generator: keras.Model, recorder: RunRecorder, fixed_inputs,
                  out_dir: Path) -> None:
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
        suffix = "" if labels is None else f"_label{labels[i]}"
        figures.save_png(image, final_dir / f"{i:03d}{suffix}.png")
    mlflow.log_artifacts(str(final_dir), "samples")

    generator.save(out_dir / "generator.keras")
    stock_copy(cfg.model, gan.discriminator, "discriminator").save_weights(out_dir / "discriminator.weights.h5")
    mlflow.log_artifact(str(out_dir / "discriminator.weights.h5"))
    tracking.log_keras_model(generator, "generator", _input_example(fixed_inputs))


def _input_example(fixed_inputs):
    """The exported generators' input example: two of the grid's inputs."""
    noise, labels = fixed_inputs
    return noise[:2] if labels is None else {"noise": noise[:2], "label": labels[:2]}
