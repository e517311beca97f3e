"""Sweeps as one unit: one MLflow parent per multirun, its jobs as children, a summary in the parent,
failed jobs marked without stopping the others; an optuna search; registering and sampling by name."""

import csv
import io
import json
import logging

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from gan_lab import generate as generate_cli
from gan_lab import register as register_cli

from .conftest import run_cli

TINY = ["model=mlp", "data.split=test", "train.epochs=1", "train.max_steps=6", "train.batch_size=32"]
SUMMARY_FIGURES = {"summary/label_histograms.png", "summary/sample_grids.png"}


def sweep_runs(store: str):
    """(parent, children by job number) of the only sweep in the store's gan_lab experiment."""
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("gan_lab").experiment_id])
    parents = [r for r in runs if r.data.tags.get("gan_lab.kind") == "sweep"]
    assert len(parents) == 1
    children = {run_key(r): r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert len(children) == len(runs) - 1  # every other run is a child of the sweep
    return client, parents[0], children


def run_key(run) -> int | tuple[int, int]:
    """A child's job number, or (job, repeat) in a replicated sweep."""
    job = int(run.data.tags["sweep_job"])
    return (job, int(run.data.tags["sweep_repeat"])) if "sweep_repeat" in run.data.tags else job


def artifact_paths(client: MlflowClient, run_id: str, path: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


@pytest.fixture(scope="module")
def failing_sweep(mnist_dir, judge_overrides, tmp_path_factory):
    """Three jobs in parallel (joblib) on a new sqlite store; the second has a bad learning rate."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer.lr=1e-4,-1,4e-4", *TINY,
                      f"hydra.sweep.dir={folder / 'sweep'}", *judge_overrides], folder, mnist_dir)
    return result, folder, f"sqlite:///{folder / 'mlflow.db'}"


def test_a_sweep_is_one_parent_run_with_a_child_per_job(failing_sweep):
    result, folder, store = failing_sweep
    client, parent, children = sweep_runs(store)
    assert parent.info.run_name == f"sweep-{folder.name}/sweep"
    assert parent.data.tags["gan_lab.swept"] == "optimizer.lr=1e-4,-1,4e-4"
    assert parent.data.tags["gan_lab.launcher"] == "joblib" and parent.data.tags["gan_lab.sweeper"] == "basic"
    assert json.loads((folder / "sweep" / "sweep.json").read_text())["parent_run_id"] == parent.info.run_id
    assert sorted(children) == [0, 1, 2]
    assert [children[j].data.params.get("optimizer.generator.lr") for j in (0, 2)] == ["0.0001", "0.0004"]
    assert json.loads(children[2].data.tags["gan_lab.job_overrides"])[0] == "optimizer.lr=0.0004"
    assert "locked" not in result.stderr
    for noise in ("I0000", "E0000", "remapper failed", "cuInit", "without specifying model signature",
                  "triggered tf.function retracing"):  # the console shows gan_lab's lines, not TensorFlow's notices
        assert noise not in result.stdout + result.stderr, noise
    judges = client.search_runs([client.get_experiment_by_name("gan_lab-judges").experiment_id])
    # the judge and the validation judge, each trained and logged once, before the parallel jobs
    assert sorted(run.data.params["role"] for run in judges) == ["judge", "validation"]


def test_a_failed_job_does_not_stop_the_sweep(failing_sweep):
    result, folder, store = failing_sweep
    client, parent, children = sweep_runs(store)
    assert [children[j].info.status for j in (0, 1, 2)] == ["FINISHED", "FAILED", "FINISHED"]
    assert children[1].data.tags["gan_lab.failure"] == (
        "ConfigError: optimizer.generator.lr=-1.0: must be > 0 (optimizer.lr sets both networks)")
    assert result.returncode != 0
    assert "error: 1 sweep job(s) failed: job 1 (lr=-1): ConfigError: optimizer.generator.lr=-1.0" in result.stderr
    assert parent.info.status == "FAILED" and parent.data.metrics["failed_jobs"] == 1


def test_the_parent_holds_the_summary_and_the_best_job(failing_sweep):
    result, folder, store = failing_sweep
    client, parent, children = sweep_runs(store)
    finished = [children[0], children[2]]
    best = min(finished, key=lambda r: r.data.metrics["fid"])
    assert parent.data.tags["best_run_id"] == best.info.run_id  # default: lowest fid
    for name in ("score", "fid", "precision", "recall", "min_share", "max_share", "train_seconds"):
        assert parent.data.metrics[name] == best.data.metrics[name], name
    assert parent.data.params == best.data.params  # the best job's config, for comparing sweeps

    assert artifact_paths(client, parent.info.run_id, "summary") >= SUMMARY_FIGURES | {
        "summary/summary.csv", "summary/runs.csv", "summary/summary.md", "summary/metrics_vs_optimizer.lr.png"}
    table = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/summary/runs.csv"))))
    assert [(row["job"], row["optimizer.lr"], row["status"]) for row in table] == [
        ("0", "0.0001", "FINISHED"), ("1", "-1", "FAILED"), ("2", "0.0004", "FINISHED")]
    assert float(table[2]["fid"]) == pytest.approx(children[2].data.metrics["fid"], rel=1e-3)
    assert float(table[0]["train_seconds"]) > 0 and table[1]["fid"] == "" and "must be > 0" in table[1]["failure"]
    markdown = (folder / "sweep" / "summary" / "summary.md").read_text()
    assert f"Best run by lowest fid: job {best.data.tags['sweep_job']} (run {best.info.run_id}" in markdown
    assert parent.data.tags["best_config"] == f"optimizer.lr={best.data.params['optimizer.generator.lr']}"
    for child in finished:
        assert "grid.png" in {a.path for a in client.list_artifacts(child.info.run_id)}


@pytest.fixture(scope="module")
def search(mnist_dir, judge_overrides, tmp_path_factory):
    """A three-trial optuna search over the learning rate, two seeds per trial, whose best run is registered as
    `tiny@champion`."""
    folder = tmp_path_factory.mktemp("search")
    result = run_cli(["-m", "+sweep=lr_search", "hydra.sweeper.n_trials=3", "sweep.repeats=2", *TINY, "sweep.register=tiny",
                      f"hydra.sweep.dir={folder / 'sweep'}", *judge_overrides], folder, mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, f"sqlite:///{folder / 'mlflow.db'}"


def test_an_optuna_search_is_a_sweep_too(search):
    folder, store = search
    client, parent, children = sweep_runs(store)
    assert parent.data.tags["gan_lab.sweeper"] == "optuna" and sorted(children) == [(j, r) for j in range(3) for r in (0, 1)]
    rates = [float(children[j, 0].data.params["optimizer.generator.lr"]) for j in range(3)]
    assert len(set(rates)) == 3 and all(5e-5 <= lr <= 2e-3 for lr in rates)  # the preset's log-uniform range
    assert all(children[j, 1].data.params["optimizer.generator.lr"] == children[j, 0].data.params["optimizer.generator.lr"]
               for j in range(3))
    fids = {key: child.data.metrics["fid"] for key, child in children.items()}
    means = [(fids[j, 0] + fids[j, 1]) / 2 for j in range(3)]
    results = yaml.safe_load((folder / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(means), rel=1e-12)  # each trial returned its runs' mean fid
    assert parent.data.tags["best_run_id"] == min(children.values(), key=lambda c: c.data.metrics["fid"]).info.run_id
    assert "summary/objective_by_trial.png" in artifact_paths(client, parent.info.run_id, "summary")


def test_the_best_job_is_registered_and_sampled_by_name(search, tmp_path, capsys):
    folder, store = search
    client, parent, children = sweep_runs(store)
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.run_id == parent.data.tags["best_run_id"]
    assert parent.data.tags["registered_model"] == "models:/tiny@champion"

    out = tmp_path / "by_name"
    assert generate_cli.main(["model_uri=models:/tiny@champion", "n=16", f"out={out}", f"mlflow.tracking_uri={store}"]) == 0
    assert generate_cli.main([f"run_id={version.run_id}", "n=16", f"out={tmp_path / 'by_run'}", f"mlflow.tracking_uri={store}"]) == 0
    assert (out / "samples.npz").read_bytes() == (tmp_path / "by_run" / "samples.npz").read_bytes()

    other = next(child.info.run_id for child in children.values() if child.info.run_id != version.run_id)
    warned = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warned.append
    logging.getLogger("mlflow").addHandler(handler)  # MLflow's logger does not propagate to caplog's
    try:
        assert register_cli.main([f"run_id={other}", "name=tiny", "alias=champion", f"mlflow.tracking_uri={store}"]) == 0
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    assert [r.getMessage() for r in warned] == []  # the logged model is registered, not a runs:/ path MLflow 3 warns about
    assert "as tiny version 2: model_uri=models:/tiny@champion" in capsys.readouterr().out
    assert client.get_model_version_by_alias("tiny", "champion").run_id == other
    assert register_cli.main(["run_id=0123456789abcdef", "name=tiny", f"mlflow.tracking_uri={store}"]) == 2
    assert "no MLflow run '0123456789abcdef'" in capsys.readouterr().err
    assert (out / "grid.png").is_file()


def test_a_sweep_through_submitit_runs_each_job_in_its_own_process(mnist_dir, judge_overrides, tmp_path):
    """``hydra/launcher=submitit_local``, the cluster launcher's local twin: submitit pickles each job and runs
    it in a process of its own, which finds its parent run through sweep.json as joblib's workers do. Its objective
    is the validation judge's confidence, a figure the summary does not show by default."""
    result = run_cli(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "optimizer.lr=1e-4,4e-4",
                      "sweep.objective=val_confidence", "sweep.direction=maximize",
                      *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}", *judge_overrides], tmp_path, mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    client, parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.data.tags["gan_lab.launcher"] == "submitit_local" and parent.info.status == "FINISHED"
    assert sorted(children) == [0, 1] and all(child.info.status == "FINISHED" for child in children.values())
    best = max(children.values(), key=lambda child: child.data.metrics["val_confidence"])
    assert parent.data.metrics["jobs"] == 2 and parent.data.tags["best_run_id"] == best.info.run_id
    assert artifact_paths(client, parent.info.run_id, "summary") >= SUMMARY_FIGURES | {"summary/summary.csv"}
    pids = {child.data.tags["gan_lab.pid"] for child in children.values()}
    assert len(pids) == 2 and parent.data.tags["gan_lab.pid"] not in pids
    for child in children.values():  # the run names its submitit log, under <sweep dir>/.submitit/
        log = child.data.tags["gan_lab.job_stdout"]
        assert log.startswith(str(tmp_path / "sweep" / ".submitit")) and child.data.tags["gan_lab.job_stderr"]
        assert f"MLflow run {child.info.run_id}" in open(log).read()


@pytest.fixture(scope="module")
def replicated(mnist_dir, judge_overrides, tmp_path_factory):
    """Two learning rates, three seeds each (``sweep.repeats=3``), one job after the other."""
    folder = tmp_path_factory.mktemp("replicated")
    result = run_cli(["-m", "optimizer.lr=2e-4,8e-4", "sweep.repeats=3", *TINY, f"hydra.sweep.dir={folder / 'sweep'}",
                      *judge_overrides], folder, mnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, folder, f"sqlite:///{folder / 'mlflow.db'}"


def test_repeats_run_each_configuration_with_several_seeds(replicated):
    result, folder, store = replicated
    client, parent, children = sweep_runs(store)
    assert sorted(children) == [(j, r) for j in (0, 1) for r in (0, 1, 2)]
    assert {key: child.data.params["seed"] for key, child in children.items()} == {
        (j, r): str(r) for j in (0, 1) for r in (0, 1, 2)}
    assert len({child.data.tags["output_dir"] for child in children.values()}) == 6  # a folder (checkpoints) each
    assert len({child.data.metrics["fid"] for child in children.values()}) == 6  # the seeds differ
    assert "triggered tf.function retracing" not in result.stdout + result.stderr


def test_the_summary_gives_mean_std_and_n_per_configuration(replicated):
    result, folder, store = replicated
    client, parent, children = sweep_runs(store)
    table = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/summary/summary.csv"))))
    assert [(row["optimizer.lr"], row["runs"], row["n"]) for row in table] == [("0.0002", "3", "3"), ("0.0008", "3", "3")]
    means = {}
    for job, row in enumerate(table):
        for metric in ("fid", "score", "precision", "kid", "val_fid", "val_recall", "pixel_coverage"):  # both judges
            values = [children[job, r].data.metrics[metric] for r in (0, 1, 2)]
            assert float(row[f"{metric}_mean"]) == pytest.approx(np.mean(values), rel=1e-3), metric
            assert float(row[f"{metric}_std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-3, abs=1e-6), metric
        means[row["optimizer.lr"]] = float(row["fid_mean"])
    best = min(means, key=means.get)
    assert parent.data.tags["best_config"] == f"optimizer.lr={best}"
    assert parent.data.metrics["best_config/fid_mean"] == pytest.approx(means[best], rel=1e-3)
    assert parent.data.metrics["best_config/n"] == 3 and "best_config/fid_std" in parent.data.metrics
    markdown = (folder / "sweep" / "summary" / "summary.md").read_text()
    assert f"Best configuration by lowest mean fid: optimizer.lr={best} (fid " in markdown and "±" in markdown
    runs = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/summary/runs.csv"))))
    assert [(row["job"], row["seed"]) for row in runs] == [(str(j), str(r)) for j in (0, 1) for r in (0, 1, 2)]
    assert float(runs[0]["fid_std"]) > 0  # each run's judge figures with their standard errors
    assert "summary/metrics_vs_optimizer.lr.png" in artifact_paths(client, parent.info.run_id, "summary")
    assert f"Best configuration (lr={float(best):.3g}): fid" in result.stdout


def test_repeats_need_a_sweep(capsys):
    from gan_lab.__main__ import check_command_line

    with pytest.raises(SystemExit) as exit_:
        check_command_line(["sweep.repeats=3"])
    assert exit_.value.code == 2
    assert "sweep.repeats=3 replicates the jobs of a sweep: add -m" in capsys.readouterr().err
