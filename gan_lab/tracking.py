"""MLflow: where runs go, what a run records, and finding a run again."""

import contextlib
import signal
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import mlflow
from mlflow.entities import Run
from omegaconf import DictConfig, OmegaConf

DEFAULT_DB = "mlflow.db"
RUN_KIND_TAG = "gan_lab.kind"


def tracking_uri(configured: str | None) -> str:
    """The configured URI, or an sqlite file in the current (launch) directory, as an absolute path."""
    return configured or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def flatten(cfg: DictConfig) -> dict[str, str]:
    """Resolved config as ``{"optimizer.generator.lr": "0.0002", ...}`` for MLflow params."""
    flat: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node.name if isinstance(node, Enum) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def use_experiment(uri: str, name: str) -> str:
    """Point MLflow at ``uri`` and return the id of experiment ``name``, creating it if needed.

    New experiments of an sqlite store keep their artifacts in ``mlartifacts/`` beside the
    database file, wherever the run was launched from.
    """
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        artifact_location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


@contextlib.contextmanager
def training_run(cfg: DictConfig, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run named ``<model>-<loss>`` with the flattened config as params.

    The run ends FINISHED on success, KILLED on Ctrl-C or SIGTERM, and FAILED if the body raises.
    """
    experiment_id = use_experiment(tracking_uri(cfg.mlflow.tracking_uri), cfg.mlflow.experiment)
    run_tags = {RUN_KIND_TAG: "train", **tags}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{cfg.model.name}-{cfg.loss.name}", tags=run_tags
    ) as run:
        mlflow.log_params(flatten(cfg))
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            yield run
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def find_training_run(run_id: str, uri: str | None = None) -> Run:
    """The training run ``run_id``; a clear error if it does not exist or is of another kind."""
    mlflow.set_tracking_uri(tracking_uri(uri))
    try:
        run = mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise LookupError(
            f"no MLflow run {run_id!r} in {mlflow.get_tracking_uri()}; list runs with `make ui` "
            "or pass tracking_uri=<uri> for another store"
        ) from None
    if run.data.tags.get(RUN_KIND_TAG) != "train":
        raise LookupError(f"MLflow run {run_id!r} is not a gan_lab training run (no generator to load)")
    return run
