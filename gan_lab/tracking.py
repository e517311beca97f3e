"""MLflow: where runs go, what a run records, and finding a run again."""

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
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


# The runs-table columns a new user sees, as a saved view of the experiment (MLflow UI "shared view").
VIEW = "gan_lab"
TRAINING_COLUMNS = ("metrics.score", "metrics.fid", "metrics.precision", "metrics.recall", "metrics.val_precision",
                    "metrics.val_recall", "metrics.train_seconds",
                    "params.model.name", "params.loss.name", "params.optimizer.generator.lr")
JUDGE_COLUMNS = ("metrics.holdout_accuracy", "metrics.real_score", "metrics.real_fid", "params.n_fit", "params.data.split")


def _experiment_tags(columns: tuple[str, ...]) -> dict[str, str]:
    """A model-training experiment (``mlflow.experimentKind``, which MLflow 3.17's UI does not read
    yet; see ``ui_address``) with a saved view that shows ``columns`` in the runs table."""
    now = int(time.time() * 1000)
    selected = [f"{kind}.`{key}`" for kind, key in (column.split(".", 1) for column in columns)]
    view = {"name": "gan_lab", "createdAt": now, "updatedAt": now, "state": json.dumps({"selectedColumns": selected})}
    return {"mlflow.experimentKind": "custom_model_development", f"mlflow.sharedViewState.{VIEW}": json.dumps(view)}


def use_experiment(uri: str, name: str, columns: tuple[str, ...] = TRAINING_COLUMNS) -> str:
    """Point MLflow at ``uri`` and return the id of experiment ``name``, creating it if needed with
    gan_lab's view of its runs (``columns``; added to an experiment that lacks it).

    New experiments of an sqlite store keep their artifacts in ``mlartifacts/`` beside the
    database file, wherever the run was launched from.
    """
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(name)
    tags = _experiment_tags(columns)
    if experiment is not None:
        if f"mlflow.sharedViewState.{VIEW}" not in experiment.tags:
            for key, value in tags.items():
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        artifact_location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location, tags=tags)
    except mlflow.exceptions.MlflowException as err:  # a parallel job created it first
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(name).experiment_id


def ui_address(base: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment with gan_lab's columns. MLflow 3.17 opens experiments
    on its GenAI overview unless the address asks for the model-training view (``workflowType``)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW}&workflowType=machine_learning"


@contextlib.contextmanager
def training_run(cfg: DictConfig, tags: dict[str, str], run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """A new MLflow run named ``<model>-<loss>`` with the flattened config as params, or, with
    ``run_id``, that run continued (status back to RUNNING).

    Runs of the experiment whose process died unannounced are reaped first. The run ends
    FINISHED on success, KILLED on KeyboardInterrupt (re-raised with the resume command), and
    FAILED if the body raises anything else.
    """
    experiment_id = use_experiment(tracking_uri(cfg.mlflow.tracking_uri), cfg.mlflow.experiment)
    for reaped in reap_dead_runs([experiment_id]):
        print(f"Marked run {reaped} KILLED: its process is gone")
    owner = _owner_tags()
    if run_id is None:
        started = mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{cfg.model.name}-{cfg.loss.name}",
            tags={RUN_KIND_TAG: "train", **owner, **tags},
        )
    else:
        started = mlflow.start_run(run_id=run_id)
        mlflow.set_tags({**owner, **tags})
    with started as run:
        if run_id is None:
            mlflow.log_params(flatten(cfg))
            mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        try:
            yield run
        except KeyboardInterrupt as interrupt:
            mlflow.end_run("KILLED")
            raise KeyboardInterrupt(
                f"{interrupt or 'interrupted'}: run {run.info.run_id} marked KILLED; "
                f"continue it with: python -m gan_lab resume={run.info.run_id}"
            ) from None


class _KerasFlavor:
    """``mlflow.keras`` whose ``save_model`` creates the model folder first: given an input example,
    MLflow's Keras flavor writes it before creating the folder (mlflow/mlflow#16183, open in 3.17)."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, **kwargs) -> None:
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)


def log_keras_model(model, name: str, example, keep_example: bool = True) -> None:
    """Log a Keras model into the active run with the signature ``example`` gives, and ``example`` as
    its input example (``keep_example=False`` for models MLflow cannot serve, e.g. several outputs)."""
    import keras
    import tensorflow as tf

    from gan_lab.models import predict

    interactive = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()  # MLflow checks the example with a verbose Keras predict
    try:
        mlflow.models.Model.log(
            artifact_path=None, name=name, flavor=_KerasFlavor, model=model, input_example=example if keep_example else None,
            signature=mlflow.models.infer_signature(example, predict(model, example)),
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        )
    finally:
        if interactive:
            keras.utils.enable_interactive_logging()


def start_sweep_run(uri: str, experiment_id: str, sweep_dir: Path, tags: dict[str, str]) -> str:
    """The RUNNING parent run of a multirun, named after its folder; its jobs' runs become its children."""
    client = MlflowClient(uri)
    run = client.create_run(experiment_id, run_name="sweep-" + "/".join(Path(sweep_dir).parts[-2:]), tags={
        RUN_KIND_TAG: "sweep", "sweep": str(sweep_dir), **_owner_tags(), **tags})
    return run.info.run_id


OWNER_HOST_TAG, OWNER_PID_TAG, OWNER_START_TAG = "gan_lab.host", "gan_lab.pid", "gan_lab.pid_start"


def _owner_tags() -> dict[str, str]:
    """Which process runs this: host, pid and the pid's start time (pids get reused)."""
    pid = os.getpid()
    return {OWNER_HOST_TAG: socket.gethostname(), OWNER_PID_TAG: str(pid), OWNER_START_TAG: _process_start(pid)}


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where /proc is missing or the pid is not alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the parenthesised command name


def owner_alive(run: Run) -> bool | None:
    """Whether the process that ran ``run`` still lives; None when it ran on another host."""
    tags = run.data.tags
    if tags.get(OWNER_HOST_TAG) != socket.gethostname() or OWNER_PID_TAG not in tags:
        return None
    pid = int(tags[OWNER_PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    started = tags.get(OWNER_START_TAG, "")
    return not started or _process_start(pid) in ("", started)


def reap_dead_runs(experiment_ids: list[str]) -> list[str]:
    """Mark KILLED the RUNNING training and sweep runs of these experiments whose process on this host is gone
    (killed with SIGKILL, or the machine lost power); returns their ids. Runs of other hosts are left alone."""
    client = MlflowClient()
    reaped = []
    for run in client.search_runs(experiment_ids, "attributes.status = 'RUNNING'"):
        if run.data.tags.get(RUN_KIND_TAG) in ("train", "sweep") and owner_alive(run) is False:
            client.set_tag(run.info.run_id, "gan_lab.reaped", f"process {run.data.tags[OWNER_PID_TAG]} was gone")
            client.set_terminated(run.info.run_id, "KILLED")
            reaped.append(run.info.run_id)
    return reaped


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


def run_config(run: Run) -> DictConfig:
    """The config a training run trained with (its ``config.yaml``), typed by the schemas, its plugins imported."""
    from gan_lab.config import typed_config
    from gan_lab.plugins import run_plugins

    saved = OmegaConf.create(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/config.yaml"))
    context = f"run {run.info.run_id} was trained with plugins={list(saved.get('plugins', []))}"
    return typed_config(saved, run_plugins(run.data.tags), context)


def load_discriminator(run: Run, model_cfg: DictConfig):
    """The discriminator a training run saved (``discriminator.weights.h5``), rebuilt from its model config."""
    import tempfile

    from gan_lab.models import build_models

    with tempfile.TemporaryDirectory() as folder:
        weights = MlflowClient().download_artifacts(run.info.run_id, "discriminator.weights.h5", folder)
        _, discriminator = build_models(model_cfg)
        discriminator.load_weights(weights)
    return discriminator


def generator_source(run_id: str | None, model_uri: str | None, uri: str | None = None) -> tuple[Run, str]:
    """(training run, generator model URI) for ``run_id=<id>`` or ``model_uri=models:/<name>@<alias>``
    (also ``models:/<name>/<version>``, ``models:/<model id>``, ``runs:/<run id>/generator``)."""
    if (run_id is None) == (model_uri is None):
        raise LookupError("give one of run_id=<MLflow run id> or model_uri=models:/<name>@<alias> (or runs:/<id>/generator)")
    if run_id is not None:
        return find_training_run(run_id, uri), f"runs:/{run_id}/generator"
    mlflow.set_tracking_uri(tracking_uri(uri))
    try:
        source_run = mlflow.models.get_model_info(model_uri).run_id
    except (mlflow.exceptions.MlflowException, OSError) as err:
        raise LookupError(f"model_uri={model_uri}: not found in {mlflow.get_tracking_uri()} "
                          f"({str(err).splitlines()[0]}); register one with python -m gan_lab.register") from None
    return find_training_run(source_run, uri), model_uri


def load_generator(run: Run, model_uri: str, checkpoint: str | None = None):
    """(generator, where it came from) of ``generator_source``'s ``(run, model_uri)`` and ``checkpoint=``: a run's
    ``last`` generator (the default), its ``best`` (the best judge evaluation's, ``generator_best``) or the one of
    its kept checkpoint of training step ``<step>``."""
    if checkpoint is None or checkpoint == "last":
        return mlflow.keras.load_model(model_uri), model_uri
    if model_uri != f"runs:/{run.info.run_id}/generator":
        raise LookupError(f"checkpoint={checkpoint} picks one of a training run's generators: give run_id=, not model_uri=")
    if checkpoint == "best":
        model_uri = f"runs:/{run.info.run_id}/{logged_generator(run, 'generator_best').name}"
        return mlflow.keras.load_model(model_uri), model_uri
    path = checkpoint_path(run, checkpoint)
    from gan_lab.trainer import checkpoint_generator

    return checkpoint_generator(run_config(run), path), path


def run_checkpoints(run: Run):
    """(the run's checkpoint folder, ``{training step: checkpoint}`` it keeps, empty if the folder is not here)."""
    from pathlib import Path

    from gan_lab.checkpoints import CHECKPOINT_DIR, kept_checkpoints

    folder = Path(run.data.tags.get("output_dir", "")) / CHECKPOINT_DIR
    return folder, kept_checkpoints(folder) if folder.is_dir() else {}


def checkpoint_path(run: Run, checkpoint: str) -> str:
    """The kept checkpoint of training step ``checkpoint`` in the run's folder; LookupError naming the kept ones."""
    if not str(checkpoint).isdigit():
        raise LookupError(f"checkpoint={checkpoint}: give best, last or a training step (a number)")
    folder, kept = run_checkpoints(run)
    if not folder.is_dir():
        raise LookupError(f"checkpoint={checkpoint}: run {run.info.run_id}'s checkpoints are not on this machine "
                          f"({folder}); checkpoint=best and checkpoint=last load from MLflow")
    if int(checkpoint) not in kept:
        raise LookupError(f"checkpoint={checkpoint}: run {run.info.run_id} keeps the checkpoints of steps "
                          f"{', '.join(map(str, kept)) or 'none'} in {folder}")
    return kept[int(checkpoint)]


def logged_generator(run: Run, name: str = "generator"):
    """The newest logged model ``name`` of a training run; LookupError if it logged none."""
    logged = mlflow.search_logged_models(  # MLflow 3 keeps the generator as a logged model, not run artifacts
        experiment_ids=[run.info.experiment_id], output_format="list", max_results=1,
        filter_string=f"source_run_id='{run.info.run_id}' AND name='{name}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}])
    if logged:
        return logged[0]
    if name == "generator_best":
        raise LookupError(f"run {run.info.run_id} has no best checkpoint's generator: it trained without the judge or "
                          f"with checkpoint.keep_best=false; score its kept checkpoints with python -m gan_lab.evaluate "
                          f"run_id={run.info.run_id} checkpoints=all, then pick one with checkpoint=<step>")
    raise LookupError(f"run {run.info.run_id} logged no {name} (it may have ended before its export); "
                      "use a run that finished")


def register_generator(run_id: str, name: str, alias: str | None, uri: str | None = None,
                       checkpoint: str | None = None) -> str:
    """Register run ``run_id``'s generator (``checkpoint=``: its ``last``, ``best`` or a kept checkpoint's step,
    which is first logged into the run as ``generator_step_<step>``) as a new version of model ``name`` (and
    point ``alias`` at it); returns the version."""
    run = find_training_run(run_id, uri)
    if checkpoint not in (None, "last", "best"):
        path = checkpoint_path(run, checkpoint)
        from gan_lab.trainer import checkpoint_generator

        import numpy as np

        from gan_lab.models import generator_inputs, sample_noise

        cfg = run_config(run)
        noise, labels = generator_inputs(cfg.model, sample_noise(np.random.default_rng(0), 2, cfg.model.latent_dim,
                                                                 cfg.model.noise))
        with mlflow.start_run(run_id=run_id):
            log_keras_model(checkpoint_generator(cfg, path), f"generator_step_{checkpoint}",
                            noise if labels is None else {"noise": noise, "label": labels})
    logged = logged_generator(run, {None: "generator", "last": "generator", "best": "generator_best"}.get(
        checkpoint, f"generator_step_{checkpoint}"))
    version = mlflow.register_model(logged.model_uri, name).version
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version)
    return str(version)
