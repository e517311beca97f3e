"""Checkpoints of the full training state, and finding the run a ``resume=`` continues.

A run folder holds ``run.json`` (MLflow run id and store), ``config.yaml`` (the resolved
config) and ``checkpoints/`` (``tf.train.CheckpointManager``: each checkpoint is complete on
disk before the index names it, so a kill during a save leaves the previous one loadable).
"""

import json
import logging
import math
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from gan_lab.config import ConfigError, typed_config

logging.getLogger("absl").setLevel(logging.WARNING)  # TF logs every checkpoint save at INFO

CHECKPOINT_DIR = "checkpoints"
BEST_DIR, BEST_FILE = "best", "best.json"  # under CHECKPOINT_DIR: the best judge evaluation's checkpoint
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
# What a resumed run may change: how long it trains, how it is judged, logged and checkpointed, and over
# which devices or workers (the checkpoints are the same).
RESUMABLE = ("train.epochs", "train.max_steps", "train.save_interval", "judge.", "checkpoint.", "mlflow.tracking_uri",
             "distribute")


class CheckpointError(RuntimeError):
    """No checkpoint could be restored; the message names the files."""


class Checkpoints:
    """The newest ``keep`` checkpoints of ``state`` (a fixed-order list of variables) in ``folder``.

    ``keeps=False`` (a multi-worker run's other workers): restore from ``folder``, but write each save to a
    temporary folder deleted at once; saving reads distributed variables, which takes every worker.
    """

    def __init__(self, folder: Path, state: list[tf.Variable], keep: int, keeps: bool = True):
        self.folder = folder
        self.keeps = keeps
        self.checkpoint = tf.train.Checkpoint(state=state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(folder), max_to_keep=keep)

    @property
    def paths(self) -> list[str]:
        """Checkpoint prefixes, oldest first."""
        return list(self.manager.checkpoints)

    def save(self, step: int) -> str | None:
        if self.keeps:
            return self.manager.save(checkpoint_number=step)
        scratch = tempfile.mkdtemp(prefix="gan_lab-worker-checkpoint-")
        try:
            self.checkpoint.write(f"{scratch}/ckpt-{step}")
        finally:
            shutil.rmtree(scratch)
        return None

    def restore_latest(self) -> str:
        """Restore the newest readable checkpoint and return its path; an unreadable one (truncated,
        corrupted, missing) is reported and the one before it tried."""
        if not self.paths:
            raise CheckpointError(
                f"no checkpoint in {self.folder}: the run stopped before its first one; start a new run instead"
            )
        errors = []
        for path in reversed(self.paths):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, AssertionError, ValueError) as err:
                reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(err).strip().splitlines()[0])
                errors.append(f"{path}: {reason}")
                print(f"warning: checkpoint {path} is unreadable ({reason}); trying the previous one")
        raise CheckpointError("no readable checkpoint:\n  " + "\n  ".join(errors))


class BestCheckpoint:
    """The checkpoint of the best judge evaluation so far by ``objective``, kept apart from the newest ones
    (``<checkpoints>/best``, one checkpoint), with ``best.json`` recording its step, epoch and value."""

    def __init__(self, folder: Path, state: list[tf.Variable], objective: str, maximise: bool):
        self.folder = folder
        self.objective, self.maximise = objective, maximise
        self.checkpoints = Checkpoints(folder, state, keep=1)
        self.record_file = folder / BEST_FILE
        self.record = json.loads(self.record_file.read_text()) if self.record_file.is_file() else None

    def offer(self, step: int, epoch: int, result: dict) -> bool:
        """Save the state as the best if ``result`` (a judgement) beats the best so far; returns whether it did."""
        value = result.get(self.objective)
        if value is None or not math.isfinite(value):
            return False
        if self.record is not None and not (value > self.record["value"] if self.maximise else value < self.record["value"]):
            return False
        path = self.checkpoints.save(step)
        self.record = {"step": step, "epoch": epoch, "objective": self.objective, "value": value, "path": path}
        self.record_file.write_text(json.dumps(self.record, indent=2) + "\n")
        return True


def kept_checkpoints(folder: Path) -> dict[int, str]:
    """``{training step: checkpoint prefix}`` of a run's checkpoint folder: the newest ones and the best."""
    kept = {}
    for directory in (folder, folder / BEST_DIR):
        state = tf.train.get_checkpoint_state(str(directory))
        for path in state.all_model_checkpoint_paths if state else []:
            kept[int(path.rsplit("-", 1)[1])] = path if Path(path).is_absolute() else str(directory / path)
    return dict(sorted(kept.items()))


def write_run_files(out_dir: Path, cfg: DictConfig, run_id: str, uri: str) -> None:
    """``run.json`` and ``config.yaml`` in the run folder, so ``resume=<folder>`` finds the run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RUN_FILE).write_text(json.dumps({"run_id": run_id, "tracking_uri": uri}, indent=2) + "\n")
    (out_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))


def locate_run(target: str, uri: str | None) -> tuple[str, str, Path]:
    """``(run id, tracking URI, run folder)`` for ``resume=<run id | run folder>``; the run must be a
    training run whose process is gone."""
    from gan_lab import tracking

    folder = Path(target).expanduser()
    if folder.is_dir():
        if not (folder / RUN_FILE).is_file():
            raise ConfigError(
                f"resume={target}: {folder} is not a gan_lab run folder (no {RUN_FILE}); "
                "pass the folder a run printed at its start, or its MLflow run id"
            )
        info = json.loads((folder / RUN_FILE).read_text())
        target, uri = info["run_id"], info["tracking_uri"]
    uri = tracking.tracking_uri(uri)
    try:
        run = tracking.find_training_run(target, uri)
    except LookupError as err:
        raise ConfigError(f"resume={target}: {err}") from None
    if run.info.status == "RUNNING" and tracking.owner_alive(run) is not False:
        where = run.data.tags.get(tracking.OWNER_HOST_TAG, "?")
        raise ConfigError(f"resume={target}: run {run.info.run_id} is still running (pid "
                          f"{run.data.tags.get(tracking.OWNER_PID_TAG, '?')} on {where}); stop it first")
    return run.info.run_id, uri, Path(run.data.tags["output_dir"])


def resume_config(folder: Path, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The saved config of the run in ``folder``, with those of ``overrides`` that a resumed run may
    change (``RESUMABLE``) taken from ``cfg``; any other override is an error."""
    resumed = typed_config(OmegaConf.load(folder / CONFIG_FILE))
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume":
            continue
        if not key.startswith(RESUMABLE):
            raise ConfigError(
                f"{override}: a resumed run keeps its config; only {', '.join(k + ('*' if k.endswith('.') else '') for k in RESUMABLE)} "
                "may change (start a new run to change the rest)"
            )
        OmegaConf.update(resumed, key, OmegaConf.select(cfg, key), merge=False)
    resumed.resume = None
    return resumed
