"""Sweeps as one unit: a multirun (``-m``) is one MLflow parent run, each job a child run of it,
and when the jobs end the parent holds their summary (tables, figures, the best job).

``SweepTracker`` is the Hydra callback (``hydra.callbacks.sweep`` in ``conf/config.yaml``). Before
the jobs start it sets up what they share (the MLflow store, the experiment, the judge) and creates
the parent run, whose id it writes to ``<sweep dir>/sweep.json``: jobs in other processes (joblib) or
on other hosts (submitit) find their parent there. Light to import: Hydra loads it for every run.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

SWEEP_FILE = "sweep.json"
PARENT_TAG = "mlflow.parentRunId"
JOB_OVERRIDES_TAG = "gan_lab.job_overrides"
SWEPT_TAG = "gan_lab.swept"  # on the parent: what the sweep sweeps, "; "-separated
JOB_STDOUT_TAG, JOB_STDERR_TAG = "gan_lab.job_stdout", "gan_lab.job_stderr"
SUMMARY_METRICS = ("score", "fid", "precision", "recall", "min_share", "max_share", "cond_acc", "min_class_recall")


class SweepTracker(Callback):
    """The parent run of a multirun, its jobs' shared set-up, and its summary; see the module docstring."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from gan_lab import start_tensorflow, tracking
        from gan_lab.config import ConfigError, validate
        from gan_lab.data import DataError

        start_tensorflow()
        uri = tracking.tracking_uri(config.mlflow.tracking_uri)
        experiment_id = tracking.use_experiment(uri, config.mlflow.experiment)
        if config.judge.enabled:  # once, not in every (parallel) job
            from gan_lab.judge import get_judge

            task = config.copy()
            with open_dict(task):
                del task["hydra"]
            try:
                validate(task)
                get_judge(task)
            except (ConfigError, DataError):
                pass  # each job reports it
        sweep_dir = Path(config.hydra.sweep.dir)
        parent = tracking.start_sweep_run(uri, experiment_id, sweep_dir, {
            SWEPT_TAG: "; ".join(swept_overrides(config)),
            "gan_lab.launcher": config.hydra.runtime.choices.get("hydra/launcher", "basic"),
            "gan_lab.sweeper": config.hydra.runtime.choices.get("hydra/sweeper", "basic"),
        })
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(json.dumps({"parent_run_id": parent, "tracking_uri": uri}, indent=2) + "\n")
        print(f"Sweep: MLflow parent run {parent} in {uri}; jobs in {sweep_dir}")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        info = json.loads((sweep_dir / SWEEP_FILE).read_text())
        failed = summarise(config, info["parent_run_id"], info["tracking_uri"], sweep_dir)
        if failed:
            sys.exit(f"error: {len(failed)} sweep job(s) failed: " + "; ".join(failed)
                     + f". Summary in {sweep_dir / 'summary'} and parent run {info['parent_run_id']}")


def swept_overrides(config: DictConfig) -> list[str]:
    """What a multirun sweeps: its command-line sweeps (``a=1,2``) and its sweeper's ``params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    params = config.hydra.sweeper.get("params") or {}
    return [o.input_line for o in task if o.is_sweep_override()] + [f"{key}={value}" for key, value in params.items()]


def swept_keys(overrides: list[str]) -> list[str]:
    return list(dict.fromkeys(o.split("=", 1)[0].lstrip("+~") for o in overrides))


def job_tags(hydra_cfg) -> dict[str, str]:
    """Tags of a multirun job's run: the sweep, its job number, its overrides and its parent run; under
    submitit (``hydra/launcher=submitit_*``) also the job's log files, which hold its console output."""
    tags = {"sweep": hydra_cfg.sweep.dir, "sweep_job": str(hydra_cfg.job.num),
            JOB_OVERRIDES_TAG: json.dumps(list(hydra_cfg.overrides.task))}
    sweep_file = Path(hydra_cfg.sweep.dir) / SWEEP_FILE
    if sweep_file.is_file():
        tags[PARENT_TAG] = json.loads(sweep_file.read_text())["parent_run_id"]
    if "SUBMITIT_FOLDER" in os.environ:  # set by submitit in the job's process
        import submitit

        paths = submitit.JobEnvironment().paths
        tags |= {JOB_STDOUT_TAG: str(paths.stdout.resolve()), JOB_STDERR_TAG: str(paths.stderr.resolve())}
    return tags


def run_job(cfg: DictConfig) -> float | None:
    """Train one job of a multirun and return its final ``sweep.objective`` (what optuna minimises or
    maximises). A job that fails does not stop the sweep: its run ends FAILED with the reason as tag
    ``gan_lab.failure``, and it returns None (optuna marks the trial failed)."""
    from gan_lab.config import ConfigError
    from gan_lab.trainer import train

    hydra_cfg = HydraConfig.get()
    tags = job_tags(hydra_cfg)
    try:
        if cfg.resume:
            raise ConfigError(f"resume={cfg.resume}: resume one run at a time, without -m")
        run_id = train(cfg, output_dir=hydra_cfg.runtime.output_dir, tags=tags)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001  (any failure of one job; the sweep goes on)
        from gan_lab.callbacks import TrainingDiverged
        from gan_lab.checkpoints import CheckpointError
        from gan_lab.data import DataError

        if not isinstance(err, (ConfigError, DataError, CheckpointError, TrainingDiverged)):
            traceback.print_exc()
        print(f"error: sweep job {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)}): {err}", file=sys.stderr)
        _record_failed_job(cfg, tags, f"{type(err).__name__}: {err}")
        return None
    from mlflow.tracking import MlflowClient

    from gan_lab import tracking

    return MlflowClient(tracking.tracking_uri(cfg.mlflow.tracking_uri)).get_run(run_id).data.metrics.get(
        cfg.sweep.objective)


def _record_failed_job(cfg: DictConfig, tags: dict[str, str], reason: str) -> None:
    """Tag the job's run with why it failed; a job that failed before its run started gets a FAILED run."""
    from mlflow.tracking import MlflowClient

    from gan_lab import tracking

    uri = tracking.tracking_uri(cfg.mlflow.tracking_uri)
    client = MlflowClient(uri)
    experiment_id = tracking.use_experiment(uri, cfg.mlflow.experiment)
    found = client.search_runs([experiment_id], f"tags.sweep = '{tags['sweep']}' and tags.sweep_job = '{tags['sweep_job']}'")
    if found:
        if "gan_lab.failure" not in found[0].data.tags:
            client.set_tag(found[0].info.run_id, "gan_lab.failure", reason[:5000])
        return
    run = client.create_run(experiment_id, run_name=f"{cfg.model.name}-{cfg.loss.name}", tags={
        tracking.RUN_KIND_TAG: "train", **tags, "gan_lab.failure": reason[:5000]})
    client.set_terminated(run.info.run_id, "FAILED")


def summarise(config: DictConfig, parent_id: str, uri: str, sweep_dir: Path) -> list[str]:
    """Write the sweep's summary into its folder and its parent run, mark the best job, register it if
    ``sweep.register`` is set, and end the parent. Returns a line per failed job."""
    import numpy as np
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from gan_lab import figures, tracking

    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    keys = swept_keys(swept_overrides(config))
    children = sweep_children(client, parent)
    rows = [_summary_row(run, keys) for run in children]
    metrics = [m for m in SUMMARY_METRICS if any(np.isfinite(row[m]) for row in rows)]

    objective, maximise = config.sweep.objective, config.sweep.direction.name == "maximize"
    finished = [row for row in rows if row["status"] == "FINISHED" and np.isfinite(row[objective])]
    best = (max if maximise else min)(finished, key=lambda row: row[objective]) if finished else None

    summary_dir = sweep_dir / "summary"
    summary_dir.mkdir(parents=True, exist_ok=True)
    columns = ["job", "run_id", "status", *keys, "train_seconds", *metrics, "failure"]
    _write_csv(summary_dir / "summary.csv", rows, columns)
    (summary_dir / "summary.md").write_text(_markdown(rows, columns, best, objective, maximise, parent.info.run_name))

    images = {}
    for key in keys:
        values = [_number(row[key]) for row in rows]
        if all(v is not None for v in values):
            images[f"metrics_vs_{key}.png"] = figures.metrics_vs_parameter(
                key, values, {m: [row[m] for row in rows] for m in metrics}, log_x=_log_scale(key, values))
    if not any(name.startswith("metrics_vs_") for name in images):
        images["metrics_by_job.png"] = figures.metrics_by_job(
            [_job_label(row, keys) for row in rows], {m: [row[m] for row in rows] for m in metrics})
    if parent.data.tags.get("gan_lab.sweeper") == "optuna":
        images["objective_by_trial.png"] = figures.objective_by_trial(
            [row["job"] for row in rows], [row[objective] for row in rows], objective, maximise)
    labels = [f"{_job_label(row, keys)}\n{row['status']}" for row in rows]
    judgements = [_final_judgement(client, run) for run in children]
    images["label_histograms.png"] = figures.histograms_side_by_side(
        labels, [judged and judged["counts"] for judged in judgements],
        [judged and judged["classes"] for judged in judgements])
    images["sample_grids.png"] = figures.pictures_side_by_side(labels, [_final_grid(client, run) for run in children])
    for name, picture in images.items():
        figures.save_png(picture, summary_dir / name)
    client.log_artifacts(parent_id, str(summary_dir), "summary")

    failed = [f"job {row['job']} ({_job_label(row, keys)}): {row['failure'] or row['status']}"
              for row in rows if row["status"] != "FINISHED"]
    client.log_metric(parent_id, "failed_jobs", len(failed))
    client.log_metric(parent_id, "jobs", len(rows))
    if best is not None:  # the parent shows the best job's config and figures, so parents compare like runs
        client.set_tag(parent_id, "best_run_id", best["run_id"])
        client.set_tag(parent_id, "best_job", str(best["job"]))
        best_run = client.get_run(best["run_id"])
        client.log_batch(parent_id, metrics=[Metric(name, value, int(time.time() * 1000), 0)
                                             for name, value in best_run.data.metrics.items()])
        params = [Param(name, value) for name, value in best_run.data.params.items()]
        for start in range(0, len(params), 100):  # MLflow takes up to 100 params per batch
            client.log_batch(parent_id, params=params[start : start + 100])
        print(f"Best job {best['job']} ({_job_label(best, keys)}): {objective} {best[objective]:.4g}, run {best['run_id']}")
        if config.sweep.register:
            version = tracking.register_generator(best["run_id"], config.sweep.register, config.sweep.alias, uri)
            client.set_tag(parent_id, "registered_model", f"models:/{config.sweep.register}@{config.sweep.alias}")
            print(f"Registered {config.sweep.register} version {version} as @{config.sweep.alias}")
    client.set_terminated(parent_id, "FAILED" if failed else "FINISHED")
    print(f"Sweep summary: {summary_dir / 'summary.md'} (parent run {parent_id})")
    return failed


def sweep_children(client, parent) -> list:
    """The runs of a sweep's jobs (children of ``parent``), in job order."""
    return sorted(client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"),
                  key=lambda r: int(r.data.tags.get("sweep_job", 0)))


def _summary_row(run, keys: list[str]) -> dict:
    overrides = dict(o.lstrip("+~").split("=", 1) for o in json.loads(run.data.tags.get(JOB_OVERRIDES_TAG, "[]")) if "=" in o)
    metrics = run.data.metrics
    return {
        "job": int(run.data.tags.get("sweep_job", -1)), "run_id": run.info.run_id, "status": run.info.status,
        **{key: overrides.get(key, "") for key in keys},
        "train_seconds": metrics.get("train_seconds", float("nan")),
        **{name: metrics.get(name, float("nan")) for name in SUMMARY_METRICS},
        "failure": run.data.tags.get("gan_lab.failure", ""),
    }


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _log_scale(key: str, values: list[float]) -> bool:
    """Learning rates, and positive values spanning a factor of 10 or more, get a log x-axis."""
    positive = all(v > 0 for v in values)
    return positive and (key.endswith("lr") or max(values) >= 10 * min(values))


def _job_label(row: dict, keys: list[str]) -> str:
    """``lr=0.000373`` for a job: its swept values, numbers to 3 significant digits."""
    values = {key: row[key] if _number(row[key]) is None else f"{_number(row[key]):.3g}" for key in keys}
    return " ".join(f"{key.split('.')[-1]}={value}" for key, value in values.items()) or f"job {row['job']}"


def _format(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    import csv

    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: _format(row[c]) for c in columns} for row in rows)


def _markdown(rows: list[dict], columns: list[str], best: dict | None, objective: str, maximise: bool, name: str) -> str:
    lines = [f"# Sweep {name}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[c]).replace("|", "/") for c in columns) + " |" for row in rows]
    direction = "highest" if maximise else "lowest"
    lines += ["", f"Best job by {direction} {objective}: " + (
        f"{best['job']} (run {best['run_id']}, {objective} {best[objective]:.4g})" if best else "none finished")]
    return "\n".join(lines) + "\n"


def _final_judgement(client, run) -> dict | None:
    """The run's last judgement (``judge/step_XXXX.json``: label counts, class names, ...), None without one."""
    import mlflow

    judged = sorted(a.path for a in client.list_artifacts(run.info.run_id, "judge") if a.path.endswith(".json"))
    if not judged:
        return None
    return mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{judged[-1]}")


def _final_grid(client, run):
    """The run's last sample grid (artifact ``grid.png``), None without one."""
    import tempfile

    import numpy as np
    from PIL import Image

    if not any(a.path == "grid.png" for a in client.list_artifacts(run.info.run_id)):
        return None
    with tempfile.TemporaryDirectory() as folder:
        return np.asarray(Image.open(client.download_artifacts(run.info.run_id, "grid.png", folder)))
