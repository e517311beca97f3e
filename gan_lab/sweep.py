"""Sweeps as one unit: a multirun (``-m``) is one MLflow parent run, each job a child run of it,
and when the jobs end the parent holds their summary (tables, figures, the best job).

``SweepTracker`` is the Hydra callback (``hydra.callbacks.sweep`` in ``conf/config.yaml``). Before
the jobs start it sets up what they share (the MLflow store, the experiment, the judge) and creates
the parent run, whose id it writes to ``<sweep dir>/sweep.json``: jobs in other processes (joblib) or
on other hosts (submitit) find their parent there. Light to import: Hydra loads it for every run.
"""

import json
import logging
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
REPEAT_TAG = "sweep_repeat"  # a job's run number when sweep.repeats > 1 (0, 1, ...; seed = seed + it)
SWEPT_TAG = "gan_lab.swept"  # on the parent: what the sweep sweeps, "; "-separated
JOB_STDOUT_TAG, JOB_STDERR_TAG = "gan_lab.job_stdout", "gan_lab.job_stderr"
SUMMARY_METRICS = ("score", "fid", "kid", "precision", "recall", "min_share", "max_share", "cond_acc", "min_class_recall",
                   "intra_fid", "cas", "val_score", "val_fid", "val_precision", "val_recall", "val_min_class_recall",
                   "ink_ks", "stroke_ks", "pixel_coverage")  # the judge's, the validation judge's, the pixels


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
    """Train one job of a multirun, ``sweep.repeats`` runs of it with seeds ``seed``, ``seed + 1``, ..., and
    return the mean of their final ``sweep.objective`` (what optuna minimises or maximises). A run that fails
    does not stop the sweep: it ends FAILED with the reason as tag ``gan_lab.failure``; a job none of whose
    runs finished returns None (optuna marks the trial failed)."""
    hydra_cfg = HydraConfig.get()
    # Every run of a job (and every job of a basic sweep) builds a new trainer in this process, whose compiled
    # steps TensorFlow counts as retraces of one function and warns about after a few; they are not retraces.
    logging.getLogger("tensorflow").addFilter(_not_a_retrace_notice)
    objectives = []
    for repeat in range(cfg.sweep.repeats):
        run_cfg, output_dir, tags = cfg, Path(hydra_cfg.runtime.output_dir), job_tags(hydra_cfg)
        if cfg.sweep.repeats > 1:
            run_cfg = cfg.copy()
            run_cfg.seed = cfg.seed + repeat
            output_dir, tags[REPEAT_TAG] = output_dir / f"seed_{run_cfg.seed}", str(repeat)
        value = _train_job_run(run_cfg, output_dir, tags, hydra_cfg)
        if value is not None:
            objectives.append(value)
    return sum(objectives) / len(objectives) if objectives else None


def _not_a_retrace_notice(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def _train_job_run(cfg: DictConfig, output_dir: Path, tags: dict[str, str], hydra_cfg) -> float | None:
    """One run of a job: its final ``sweep.objective``, or None if it failed (recorded, see ``run_job``)."""
    from gan_lab.config import ConfigError
    from gan_lab.trainer import train

    try:
        if cfg.resume:
            raise ConfigError(f"resume={cfg.resume}: resume one run at a time, without -m")
        run_id = train(cfg, output_dir=output_dir, tags=tags)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001  (any failure of one job; the sweep goes on)
        from gan_lab.callbacks import TrainingDiverged
        from gan_lab.checkpoints import CheckpointError
        from gan_lab.data import DataError

        if not isinstance(err, (ConfigError, DataError, CheckpointError, TrainingDiverged)):
            traceback.print_exc()
        seed = f", seed {cfg.seed}" if REPEAT_TAG in tags else ""
        print(f"error: sweep job {hydra_cfg.job.num}{seed} ({' '.join(hydra_cfg.overrides.task)}): {err}",
              file=sys.stderr)
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
    query = f"tags.sweep = '{tags['sweep']}' and tags.sweep_job = '{tags['sweep_job']}'"
    if REPEAT_TAG in tags:
        query += f" and tags.{REPEAT_TAG} = '{tags[REPEAT_TAG]}'"
    found = client.search_runs([experiment_id], query)
    if found:
        if "gan_lab.failure" not in found[0].data.tags:
            client.set_tag(found[0].info.run_id, "gan_lab.failure", reason[:5000])
        return
    run = client.create_run(experiment_id, run_name=f"{cfg.model.name}-{cfg.loss.name}", tags={
        tracking.RUN_KIND_TAG: "train", **tags, "gan_lab.failure": reason[:5000]})
    client.set_terminated(run.info.run_id, "FAILED")


def summarise(config: DictConfig, parent_id: str, uri: str, sweep_dir: Path) -> list[str]:
    """Write the sweep's summary into its folder and its parent run: each configuration's mean, standard
    deviation and n over its runs (runs differing only in ``seed``: ``sweep.repeats`` or a swept seed), every
    run, figures, the best configuration by mean ``sweep.objective`` and the best single run (registered if
    ``sweep.register`` is set); then end the parent. Returns a line per failed run."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from gan_lab import figures, tracking

    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    keys = swept_keys(swept_overrides(config))
    config_keys = [key for key in keys if key != "seed"]
    replicated = config.sweep.repeats > 1 or "seed" in keys
    children = sweep_children(client, parent)
    shown = tuple(dict.fromkeys((*SUMMARY_METRICS, config.sweep.objective)))  # any objective, not only the usual
    rows = [_summary_row(run, keys, shown) for run in children]
    metrics = [m for m in shown if any(_finite(row[m]) for row in rows)]
    errors = [f"{m}_std" for m in metrics if any(_finite(row.get(f"{m}_std")) for row in rows)]
    configurations = _configurations(rows, config_keys, metrics)

    objective, maximise = config.sweep.objective, config.sweep.direction.name == "maximize"
    pick = max if maximise else min
    finished = [row for row in rows if row["status"] == "FINISHED" and _finite(row[objective])]
    best = pick(finished, key=lambda row: row[objective]) if finished else None
    scored = [c for c in configurations if _finite(c[f"{objective}_mean"])]
    best_config = pick(scored, key=lambda c: c[f"{objective}_mean"]) if scored else None

    summary_dir = sweep_dir / "summary"
    summary_dir.mkdir(parents=True, exist_ok=True)
    stats = [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    _write_csv(summary_dir / "summary.csv", configurations, [*config_keys, "runs", "n", *stats])
    run_columns = ["job", "seed", "run_id", "status", *config_keys, "train_seconds", *metrics, *errors, "failure"]
    _write_csv(summary_dir / "runs.csv", rows, run_columns)
    (summary_dir / "summary.md").write_text(_markdown(
        configurations, rows, config_keys, metrics, best, best_config, objective, maximise, parent.info.run_name))

    images = {}
    for key in config_keys:
        values = [_number(row[key]) for row in rows]
        if all(v is not None for v in values):
            others = [_job_label(row, [k for k in config_keys if k != key], empty="") for row in rows]
            images[f"metrics_vs_{key}.png"] = figures.metrics_vs_parameter(
                key, values, others, {m: [row[m] for row in rows] for m in metrics}, log_x=_log_scale(key, values))
    if not any(name.startswith("metrics_vs_") for name in images):
        images["metrics_by_config.png"] = figures.metrics_by_config(
            [_job_label(row, config_keys, empty="all runs") for row in rows], {m: [row[m] for row in rows] for m in metrics})
    if parent.data.tags.get("gan_lab.sweeper") == "optuna":
        images["objective_by_trial.png"] = figures.objective_by_trial(
            [row["job"] for row in rows], [row[objective] for row in rows], objective, maximise)
    labels = [f"{_run_label(row, keys, replicated)}\n{row['status']}" for row in rows]
    judgements = [_final_judgement(client, run) for run in children]
    images["label_histograms.png"] = figures.histograms_side_by_side(
        labels, [judged and judged["counts"] for judged in judgements],
        [judged and judged["classes"] for judged in judgements])
    images["sample_grids.png"] = figures.pictures_side_by_side(labels, [_final_grid(client, run) for run in children])
    for name, picture in images.items():
        figures.save_png(picture, summary_dir / name)
    client.log_artifacts(parent_id, str(summary_dir), "summary")

    failed = [f"job {row['job']} ({_run_label(row, keys, replicated)}): {row['failure'] or row['status']}"
              for row in rows if row["status"] != "FINISHED"]
    client.log_metric(parent_id, "failed_jobs", len(failed))
    client.log_metric(parent_id, "jobs", len(rows))
    if best_config is not None and len(configurations) > 1:
        client.set_tag(parent_id, "best_config", _job_label(best_config, config_keys, short=False))
        now = int(time.time() * 1000)
        client.log_batch(parent_id, metrics=[Metric(f"best_config/{name}", best_config[name], now, 0)
                                             for name in ("n", *stats) if _finite(best_config[name])])
        print(f"Best configuration ({_job_label(best_config, config_keys)}): {objective} "
              f"{_mean_and_spread(best_config, objective)} over {best_config['n']} run(s)")
    if best is not None:  # the parent shows the best run's config and figures, so parents compare like runs
        client.set_tag(parent_id, "best_run_id", best["run_id"])
        client.set_tag(parent_id, "best_job", str(best["job"]))
        best_run = client.get_run(best["run_id"])
        client.log_batch(parent_id, metrics=[Metric(name, value, int(time.time() * 1000), 0)
                                             for name, value in best_run.data.metrics.items()])
        params = [Param(name, value) for name, value in best_run.data.params.items()]
        for start in range(0, len(params), 100):  # MLflow takes up to 100 params per batch
            client.log_batch(parent_id, params=params[start : start + 100])
        print(f"Best run: job {best['job']} ({_run_label(best, keys, replicated)}): {objective} {best[objective]:.4g}, "
              f"run {best['run_id']}")
        if config.sweep.register:
            version = tracking.register_generator(best["run_id"], config.sweep.register, config.sweep.alias, uri)
            client.set_tag(parent_id, "registered_model", f"models:/{config.sweep.register}@{config.sweep.alias}")
            print(f"Registered {config.sweep.register} version {version} as @{config.sweep.alias}")
    client.set_terminated(parent_id, "FAILED" if failed else "FINISHED")
    print(f"Sweep summary: {summary_dir / 'summary.md'} (parent run {parent_id})")
    return failed


def sweep_children(client, parent) -> list:
    """The runs of a sweep's jobs (children of ``parent``), in job and repeat order."""
    return sorted(client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"),
                  key=lambda r: (int(r.data.tags.get("sweep_job", 0)), int(r.data.tags.get(REPEAT_TAG, 0))))


def _summary_row(run, keys: list[str], shown: tuple[str, ...]) -> dict:
    overrides = dict(o.lstrip("+~").split("=", 1) for o in json.loads(run.data.tags.get(JOB_OVERRIDES_TAG, "[]")) if "=" in o)
    metrics = run.data.metrics
    return {
        "job": int(run.data.tags.get("sweep_job", -1)), "run_id": run.info.run_id, "status": run.info.status,
        "seed": run.data.params.get("seed", overrides.get("seed", "")),
        **{key: overrides.get(key, "") for key in keys},
        "train_seconds": metrics.get("train_seconds", float("nan")),
        **{name: metrics.get(name, float("nan")) for name in shown},
        **{f"{name}_std": metrics.get(f"{name}_std", float("nan")) for name in shown},
        "failure": run.data.tags.get("gan_lab.failure", ""),
    }


def _configurations(rows: list[dict], keys: list[str], metrics: list[str]) -> list[dict]:
    """One row per configuration (the ``keys``' values; runs that differ only in seed share one), in order of
    appearance: ``runs``, ``n`` (finished) and each metric's mean and standard deviation (n - 1) over the
    finished runs."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    configurations = []
    for values, members in groups.items():
        done = [row for row in members if row["status"] == "FINISHED"]
        configuration = {**dict(zip(keys, values)), "runs": len(members), "n": len(done)}
        for metric in metrics:
            finite = np.asarray([row[metric] for row in done if _finite(row[metric])], dtype=float)
            configuration[f"{metric}_mean"] = float(finite.mean()) if len(finite) else float("nan")
            configuration[f"{metric}_std"] = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
        configurations.append(configuration)
    return configurations


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and value == value and abs(value) != float("inf")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _log_scale(key: str, values: list[float]) -> bool:
    """Learning rates, and positive values spanning a factor of 10 or more, get a log x-axis."""
    positive = all(v > 0 for v in values)
    return positive and (key.endswith("lr") or max(values) >= 10 * min(values))


def _job_label(row: dict, keys: list[str], short: bool = True, empty: str | None = None) -> str:
    """``lr=0.000373`` for a job or configuration: its swept values, numbers to 3 significant digits
    (``short=False``: the overrides, full keys and values); without swept values ``empty`` or the job number."""
    if not short:
        return " ".join(f"{key}={row[key]}" for key in keys)
    values = {key: row[key] if _number(row[key]) is None else f"{_number(row[key]):.3g}" for key in keys}
    label = " ".join(f"{key.split('.')[-1]}={value}" for key, value in values.items())
    return label or (empty if empty is not None else f"job {row['job']}")


def _run_label(row: dict, keys: list[str], replicated: bool) -> str:
    """A run's label: its job's, with its seed when the sweep has several per configuration."""
    if not replicated or row["seed"] == "":
        return _job_label(row, keys)
    return " ".join(part for part in (_job_label(row, [k for k in keys if k != "seed"], empty=""), f"seed={row['seed']}")
                    if part)


def _format(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def _mean_and_spread(configuration: dict, metric: str) -> str:
    """``12.3 ± 0.4`` (mean ± std over runs), or the mean alone from a single run."""
    mean, std = configuration[f"{metric}_mean"], configuration[f"{metric}_std"]
    return _format(mean) + (f" ± {_format(std)}" if _finite(std) else "")


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    import csv

    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: _format(row[c]) for c in columns} for row in rows)


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in lines)]


def _markdown(configurations: list[dict], rows: list[dict], keys: list[str], metrics: list[str], best: dict | None,
              best_config: dict | None, objective: str, maximise: bool, name: str) -> str:
    """The summary page: configurations (mean ± std over n finished runs), then every run (each judge figure
    ± its standard error over sample subsets, where logged)."""
    direction = "highest" if maximise else "lowest"
    lines = [f"# Sweep {name}", "", "## Configurations: mean ± standard deviation over n finished runs (seeds)", ""]
    lines += _table([*keys, "n", *metrics], [[*(str(c[k]) for k in keys), f"{c['n']}/{c['runs']}",
                                             *(_mean_and_spread(c, m) for m in metrics)] for c in configurations])
    lines += ["", f"Best configuration by {direction} mean {objective}: " + (
        f"{_job_label(best_config, keys, short=False) or 'the only one'} ({objective} "
        f"{_mean_and_spread(best_config, objective)}, n={best_config['n']})" if best_config else "none finished")]

    def judged(row: dict, metric: str) -> str:
        error = row.get(f"{metric}_std", float("nan"))
        return _format(row[metric]) + (f" ± {_format(error)}" if _finite(error) and _finite(row[metric]) else "")

    lines += ["", "## Runs (± the judge's standard error of each figure)", ""]
    header = ["job", "seed", "run_id", "status", *keys, "train_seconds", *metrics, "failure"]
    lines += _table(header, [[str(row["job"]), str(row["seed"]), row["run_id"], row["status"], *(row[k] for k in keys),
                              _format(row["train_seconds"]), *(judged(row, m) for m in metrics), row["failure"]]
                             for row in rows])
    lines += ["", f"Best run by {direction} {objective}: " + (
        f"job {best['job']} (run {best['run_id']}, {objective} {best[objective]:.4g})" if best else "none finished")]
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
