"""The best checkpoint: kept apart from the newest ones, exported as generator_best, picked with checkpoint=;
every kept checkpoint judged after the fact with evaluate checkpoints=all."""

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from gan_lab import callbacks
from gan_lab import evaluate as evaluate_cli
from gan_lab import generate as generate_cli
from gan_lab import register as register_cli
from gan_lab.trainer import train

STEPS_PER_EPOCH = 19  # 10,000 test images in batches of 512
FORCED_FID = [3.0, 1.0, 2.0]  # the three evaluations' fid: the second is the best, the last worse


@pytest.fixture(scope="module")
def run_with_earlier_best(tiny_train_cfg, tmp_path_factory):
    """An mlp trained 3 epochs, judged after each, whose judged fid is forced to FORCED_FID in that order."""
    judged = []
    real_judge_generator = callbacks.judge_generator

    def forced(*args, **kwargs):
        result = real_judge_generator(*args, **kwargs)
        judged.append(result["fid"])
        return {**result, "fid": FORCED_FID[len(judged) - 1]}

    cfg = tiny_train_cfg("model=mlp", "train.epochs=3", "train.batch_size=512", "train.max_steps=null", "judge.every=1",
                         "mlflow.experiment=best")
    folder = tmp_path_factory.mktemp("best")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks, "judge_generator", forced)
        run_id = train(cfg, output_dir=folder)
    return run_id, folder


def samples(tmp_path: Path, uri: str, *args: str) -> bytes:
    out = tmp_path / "_".join(args or ("default",))
    assert generate_cli.main([*args, "n=20", f"out={out}", f"mlflow.tracking_uri={uri}"]) == 0
    return (out / "samples.npz").read_bytes()


def test_the_best_evaluation_is_kept_and_exported_beside_the_last(run_with_earlier_best, mlflow_uri):
    run_id, folder = run_with_earlier_best
    run = MlflowClient(mlflow_uri).get_run(run_id)
    assert (run.data.tags["best_step"], run.data.tags["best_epoch"]) == (str(2 * STEPS_PER_EPOCH), "2")
    assert [m.value for m in MlflowClient(mlflow_uri).get_metric_history(run_id, "best_fid")] == [3.0, 1.0]
    record = json.loads((folder / "checkpoints" / "best" / "best.json").read_text())
    assert (record["step"], record["value"], record["objective"]) == (2 * STEPS_PER_EPOCH, 1.0, "fid")
    logged = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list",
                                         filter_string=f"source_run_id='{run_id}'")
    assert sorted(model.name for model in logged) == ["generator", "generator_best"]


def test_generate_checkpoint_best_uses_the_earlier_generator(run_with_earlier_best, mlflow_uri, tmp_path):
    run_id, _ = run_with_earlier_best
    best = samples(tmp_path, mlflow_uri, f"run_id={run_id}", "checkpoint=best")
    assert best == samples(tmp_path, mlflow_uri, f"run_id={run_id}", f"checkpoint={2 * STEPS_PER_EPOCH}")
    last = samples(tmp_path, mlflow_uri, f"run_id={run_id}", "checkpoint=last")
    assert last == samples(tmp_path, mlflow_uri, f"run_id={run_id}") == samples(
        tmp_path, mlflow_uri, f"run_id={run_id}", f"checkpoint={3 * STEPS_PER_EPOCH}")
    assert best != last


def test_register_takes_a_checkpoint(run_with_earlier_best, mlflow_uri, capsys):
    run_id, _ = run_with_earlier_best
    assert register_cli.main([f"run_id={run_id}", "name=kept", "checkpoint=best", f"mlflow.tracking_uri={mlflow_uri}"]) == 0
    assert "(checkpoint=best) as kept version 1" in capsys.readouterr().out
    version = MlflowClient(mlflow_uri).get_model_version("kept", "1")
    logged = mlflow.search_logged_models(filter_string=f"source_run_id='{run_id}'", output_format="list",
                                         experiment_ids=[MlflowClient(mlflow_uri).get_run(run_id).info.experiment_id])
    assert {model.name for model in logged if model.model_id in version.source} == {"generator_best"}


def test_evaluate_checkpoints_all_logs_the_curve_by_step(run_with_earlier_best, mlflow_uri, judge_overrides, capsys):
    run_id, _ = run_with_earlier_best
    assert evaluate_cli.main([f"run_id={run_id}", "checkpoints=all", "n=200", f"mlflow.tracking_uri={mlflow_uri}",
                              *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    steps = [2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]  # the best and the newest kept (checkpoint.every=500)
    assert sorted(int(step) for step in printed["checkpoints"]) == steps
    history = MlflowClient(mlflow_uri).get_metric_history(run_id, "eval/fid")
    assert sorted((m.step, m.value) for m in history) == [(s, printed["checkpoints"][str(s)]["fid"]) for s in steps]
    assert printed["best_step"] in steps


def test_a_checkpoint_that_is_not_kept_is_named_with_the_kept_ones(run_with_earlier_best, mlflow_uri, capsys):
    run_id, folder = run_with_earlier_best
    assert generate_cli.main([f"run_id={run_id}", "checkpoint=5", f"mlflow.tracking_uri={mlflow_uri}"]) == 2
    assert f"checkpoint=5: run {run_id} keeps the checkpoints of steps 38, 57 in {folder / 'checkpoints'}" in (
        capsys.readouterr().err)
    assert generate_cli.main([f"run_id={run_id}", "checkpoint=latest", f"mlflow.tracking_uri={mlflow_uri}"]) == 2
    assert "checkpoint=latest: give best, last or a training step (a number)" in capsys.readouterr().err


def test_a_run_without_the_judge_has_no_best_and_is_scored_afterwards(tiny_train_cfg, tmp_path, mlflow_uri,
                                                                      judge_overrides, capsys):
    run_id = train(tiny_train_cfg("model=mlp", "judge.enabled=false", "mlflow.experiment=best"), output_dir=tmp_path)
    assert not (tmp_path / "checkpoints" / "best").exists()
    assert generate_cli.main([f"run_id={run_id}", "checkpoint=best", f"mlflow.tracking_uri={mlflow_uri}"]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} has no best checkpoint's generator: it trained without the judge" in err
    assert f"python -m gan_lab.evaluate run_id={run_id} checkpoints=all" in err
    assert evaluate_cli.main([f"run_id={run_id}", "checkpoints=all", "n=200", f"mlflow.tracking_uri={mlflow_uri}",
                              *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["checkpoints"]) == ["3"] and printed["best_step"] == 3  # its one checkpoint, at the end
    history = MlflowClient(mlflow_uri).get_metric_history(run_id, "eval/fid")
    assert [(m.step, m.value) for m in history] == [(3, printed["checkpoints"]["3"]["fid"])]


def test_evaluate_checkpoint_best_logs_beside_the_plain_figures(run_with_earlier_best, mlflow_uri, judge_overrides,
                                                                 capsys):
    run_id, _ = run_with_earlier_best
    assert evaluate_cli.main([f"run_id={run_id}", "checkpoint=best", "n=200", f"mlflow.tracking_uri={mlflow_uri}",
                              *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["generator"] == f"runs:/{run_id}/generator_best"
    metrics = MlflowClient(mlflow_uri).get_run(run_id).data.metrics
    assert metrics["checkpoint_best/fid"] == pytest.approx(printed["fid"])
    assert metrics["fid"] == FORCED_FID[-1]  # the run's own figures stay the last evaluation's
