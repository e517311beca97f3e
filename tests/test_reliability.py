"""Reliability: kill -9 and resume bit for bit, stop signals, divergence, determinism, reaping
dead runs, corrupt checkpoints, resume errors and parallel sweeps on sqlite."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from gan_lab import runs as runs_cli
from gan_lab.callbacks import TrainingDiverged
from gan_lab.checkpoints import CheckpointError, locate_run, resume_config
from gan_lab.config import ConfigError, Split
from gan_lab.generate import GenerateArgs, generate
from gan_lab.losses import LOSSES, GANLoss, bce_discriminator_loss, bce_generator_loss
from gan_lab.trainer import train

from .conftest import run_cli, start_cli


def final_state(run_dir: Path) -> dict[str, np.ndarray]:
    """The newest checkpoint's variables, without the last one (wall-clock training seconds)."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("state/")]
    last = max(int(n.split("/")[1]) for n in names)
    return {n: reader.get_tensor(n) for n in names if int(n.split("/")[1]) != last}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) > 40
    assert [n for n in a if not np.array_equal(a[n], b[n])] == []


def wait_for(condition, timeout: float = 300.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def run_of(folder: Path, client: MlflowClient):
    import json

    return client.get_run(json.loads((folder / "run.json").read_text())["run_id"])


def test_kill9_then_resume_is_bit_identical(mnist_dir, tmp_path):
    """kill -9 mid-epoch; the run stays RUNNING until reaped; resuming it ends with the weights,
    metrics and generated samples of a run that was never interrupted."""
    args = ["data.split=test", "train.epochs=2", "train.max_steps=400", "train.batch_size=32", "checkpoint.every=24",
            "judge.enabled=false"]  # 312 steps per epoch: the kill lands in epoch 1, the cap in epoch 2
    reference = run_cli([*args, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path, mnist_dir)
    assert reference.returncode == 0, reference.stderr[-3000:]

    process = start_cli([*args, f"hydra.run.dir={tmp_path / 'killed'}"], tmp_path, mnist_dir)
    # until the manager's state file names a checkpoint it is not the one a resume starts from
    # (its .index file appears earlier)
    def latest_step() -> int:
        return int((tf.train.latest_checkpoint(str(tmp_path / "killed/checkpoints")) or "ckpt-0").rsplit("-", 1)[1])

    wait_for(lambda: latest_step() >= 48 or process.poll() is not None, what="the second checkpoint")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    assert run_of(tmp_path / "killed", client).info.status == "RUNNING"
    assert runs_cli.main(["reap", f"mlflow.tracking_uri={uri}"]) == 0
    reaped = run_of(tmp_path / "killed", client)
    assert reaped.info.status == "KILLED" and "was gone" in reaped.data.tags["gan_lab.reaped"]

    resumed = run_cli([f"resume={tmp_path / 'killed'}"], tmp_path, mnist_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    step = int(re.search(r"Resuming from \S+ckpt-(\d+) \(step (\d+) of 400\)", resumed.stdout).group(2))
    assert 48 <= step < 312  # inside the first epoch

    assert_same_state(final_state(tmp_path / "reference"), final_state(tmp_path / "killed"))
    runs = {name: run_of(tmp_path / name, client) for name in ("reference", "killed")}
    assert runs["killed"].info.status == "FINISHED" and runs["killed"].info.run_id == reaped.info.run_id
    for metric in ("d_loss", "g_loss", "d_acc_real"):
        histories = [[(m.step, m.value) for m in client.get_metric_history(r.info.run_id, metric)] for r in runs.values()]
        assert [s for s, _ in histories[1]] == [1, 2]  # no step logged twice
        assert histories[0] == histories[1]
    samples = [generate(GenerateArgs(run_id=r.info.run_id, n=16, out=str(tmp_path / f"samples-{name}")),
                        seed=0, tracking_uri=uri).read_bytes() for name, r in runs.items()]
    assert samples[0] == samples[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_checkpoints_marks_killed_and_resumes(mnist_dir, tmp_path, signum):
    process = start_cli(["model=mlp", "data.split=test", "train.epochs=1000", "judge.enabled=false",
                         f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, mnist_dir)
    wait_for(lambda: (tmp_path / "run/grids/epoch_0001.png").exists() or process.poll() is not None,
             what="the first epoch")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = run_of(tmp_path / "run", client)
    assert run.info.status == "KILLED"
    assert f"{signal.Signals(signum).name} at step" in stderr
    assert f"continue it with: python -m gan_lab resume={run.info.run_id}" in stderr
    stopped_at = int(re.search(r"at step (\d+)", stderr).group(1))
    assert tf.train.latest_checkpoint(str(tmp_path / "run/checkpoints")).endswith(f"ckpt-{stopped_at}")

    resumed = run_cli([f"resume={run.info.run_id}", "train.epochs=3"], tmp_path, mnist_dir)  # and train a little longer
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["train_steps"] == 3 * 156
    assert [m.step for m in client.get_metric_history(run.info.run_id, "d_loss")] == [1, 2, 3]


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tiny_train_cfg, mlflow_uri, tmp_path):
    """A loss poisoned with NaN from step 7 on: FAILED at step 7, checkpoints up to step 6 kept."""
    calls = tf.Variable(0)

    def poisoned_discriminator_loss(real_logits, fake_logits):
        calls.assign_add(1)
        loss = bce_discriminator_loss(real_logits, fake_logits)
        return loss * tf.where(calls >= 7, np.nan, 1.0)  # NaN reaches the gradients too

    LOSSES.register("poisoned")(GANLoss(bce_generator_loss, poisoned_discriminator_loss, real_threshold=0.0))
    cfg = tiny_train_cfg("model=mlp", "loss.name=poisoned", "train.max_steps=20", "checkpoint.every=2",
                         "judge.enabled=false", "mlflow.experiment=diverge")
    with pytest.raises(TrainingDiverged, match=r"non-finite d_loss and gradients at step 7; the last good checkpoint is step 6"):
        train(cfg, output_dir=tmp_path)
    run = MlflowClient(mlflow_uri).search_runs([mlflow.get_experiment_by_name("diverge").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["gan_lab.failure_step"] == "7"
    assert run.data.tags["gan_lab.failure"] == "non-finite d_loss and gradients at step 7"
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")
    assert all(np.isfinite(value).all() for value in final_state(tmp_path).values())


def test_same_seed_same_run_other_seed_other_run(tiny_train_cfg, mlflow_uri, tmp_path):
    client = MlflowClient(mlflow_uri)

    def losses_and_state(seed: int, folder: str):
        cfg = tiny_train_cfg("model=mlp", "train.epochs=2", "train.max_steps=null", f"seed={seed}",
                             "judge.enabled=false", "mlflow.experiment=determinism")
        run_id = train(cfg, output_dir=tmp_path / folder)  # 2 epochs of 312 steps
        losses = [(m.step, m.value) for name in ("d_loss", "g_loss") for m in client.get_metric_history(run_id, name)]
        return losses, final_state(tmp_path / folder)

    first, again, other = losses_and_state(0, "a"), losses_and_state(0, "b"), losses_and_state(1, "c")
    assert len(first[0]) == 4 and first[0] == again[0]
    assert_same_state(first[1], again[1])
    assert first[0] != other[0]
    assert sum(not np.array_equal(first[1][n], other[1][n]) for n in first[1]) > 40


def test_per_step_losses_repeat(compose_cfg, mnist_dir):
    """The default model and precision (selfcond, bf16 where supported), one loss pair per step: the balanced
    code assignment of real images repeats too."""
    from gan_lab.data import load_data, make_dataset
    from gan_lab.trainer import build_gan

    images, labels = load_data(str(mnist_dir), Split.test)

    def per_step_losses(seed: int) -> list[tuple[float, float]]:
        cfg = compose_cfg(f"seed={seed}")
        keras.utils.set_random_seed(seed)
        gan = build_gan(cfg, steps_per_execution=1)
        steps = []
        record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(
            (float(logs["d_loss"]), float(logs["g_loss"]))))  # running means: equal sequences <=> equal steps
        gan.fit(make_dataset(images, labels, 64, seed), epochs=1, steps_per_epoch=12, callbacks=[record], verbose=0,
                shuffle=False)
        return steps

    first = per_step_losses(0)
    assert len(first) == 12 and per_step_losses(0) == first and per_step_losses(1) != first


def flip_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tiny_train_cfg, tmp_path, capsys):
    overrides = ["model=mlp", "checkpoint.every=2", "judge.enabled=false", "mlflow.experiment=corrupt"]
    train(tiny_train_cfg(*overrides, "train.max_steps=6"), output_dir=tmp_path)
    flip_byte(tmp_path / "checkpoints/ckpt-6.data-00000-of-00001")
    capsys.readouterr()

    cfg = tiny_train_cfg(*overrides, "train.max_steps=8")  # as `python -m gan_lab resume=<folder> train.max_steps=8`
    run_id, _, folder = locate_run(str(tmp_path), cfg.mlflow.tracking_uri)
    resumed = resume_config(folder, cfg, [f"resume={tmp_path}", "train.max_steps=8"])
    assert resumed.train.max_steps == 8 and resumed.resume is None
    train(resumed, output_dir=folder, run_id=run_id)
    out = capsys.readouterr().out
    assert f"warning: checkpoint {tmp_path}/checkpoints/ckpt-6 is unreadable" in out
    assert "Resuming from" in out and "ckpt-4 (step 4 of 8)" in out

    for data in (tmp_path / "checkpoints").glob("*.data-*"):
        flip_byte(data)
    with pytest.raises(CheckpointError) as info:
        train(resumed, output_dir=folder, run_id=run_id)
    lines = str(info.value).splitlines()
    assert lines[0] == "no readable checkpoint:"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [f"{tmp_path}/checkpoints/ckpt-{s}" for s in (8, 6, 4)]
    assert all("Checksum does not match" in line for line in lines[1:])


def test_resume_errors(tiny_train_cfg, mlflow_uri, judge_overrides, tmp_path):
    cfg = tiny_train_cfg("model=mlp", "mlflow.experiment=resume-errors")
    run_id = train(cfg, output_dir=tmp_path / "run")
    client = MlflowClient(mlflow_uri)
    judge_run = client.search_runs([client.get_experiment_by_name("gan_lab-judges").experiment_id])[0].info.run_id

    cases = [
        ("0123456789abcdef", "resume=0123456789abcdef: no MLflow run '0123456789abcdef'"),
        (judge_run, f"MLflow run '{judge_run}' is not a gan_lab training run"),
        (str(tmp_path), f"resume={tmp_path}: {tmp_path} is not a gan_lab run folder (no run.json)"),
    ]
    for target, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            locate_run(target, mlflow_uri)
    for override in ("model=dcgan", "optimizer.lr=0.1", "seed=3"):
        with pytest.raises(ConfigError, match=re.escape(f"{override}: a resumed run keeps its config; only train.epochs")):
            resume_config(tmp_path / "run", cfg, [f"resume={run_id}", override])
    with pytest.raises(ConfigError, match="holds the checkpoints of an earlier run: continue it with resume="):
        train(cfg, output_dir=tmp_path / "run")

    # a run whose process is alive (this one) cannot be resumed
    live = client.create_run(client.get_experiment_by_name("resume-errors").experiment_id,
                             tags={"gan_lab.kind": "train", **_owner_tags_of_this_process(), "output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=f"run {live.info.run_id} is still running \\(pid {os.getpid()}"):
        locate_run(live.info.run_id, mlflow_uri)


def _owner_tags_of_this_process() -> dict[str, str]:
    from gan_lab.tracking import _owner_tags

    return _owner_tags()


def test_next_run_reaps_runs_whose_process_died(tiny_train_cfg, mlflow_uri, tmp_path):
    client = MlflowClient(mlflow_uri)
    experiment_id = client.create_experiment("reaping")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = _owner_tags_of_this_process()
    orphan = client.create_run(experiment_id, tags={"gan_lab.kind": "train", **owner, "gan_lab.pid": dead.stdout.strip()})
    alive = client.create_run(experiment_id, tags={"gan_lab.kind": "train", **owner})
    train(tiny_train_cfg("model=mlp", "judge.enabled=false", "mlflow.experiment=reaping"), output_dir=tmp_path)
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    client.set_terminated(alive.info.run_id)
