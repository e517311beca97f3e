"""A user's own loss and model from their own folder (experiments/plugin_example), through the CLI as a user
runs it: train, a joblib sweep, resume after an interrupt, generate; and what a bad plugin gets."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gan_lab.config import ConfigError, check_overrides

from .conftest import ROOT, run_cli, start_cli
from .test_reliability import run_of, wait_for
from .test_sweep import sweep_runs

EXAMPLE = ROOT / "experiments" / "plugin_example"
MINE = ["plugins=[my_parts]", "model=residual", "model.width=8", "loss=ralsgan", "train.batch_size=16"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, mnist_dir):
    """An empty folder holding only the example's my_parts.py and a folder of labelled PNGs (3 digits)."""
    folder = tmp_path_factory.mktemp("mine")
    shutil.copy(EXAMPLE / "my_parts.py", folder)
    made = subprocess.run([sys.executable, str(EXAMPLE / "make_digits.py"), "digits", "--per-class", "40",
                           "--classes", "0,1,7"], cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GAN_LAB_DATA_DIR": str(mnist_dir), "PYTHONPATH": str(ROOT)})
    assert made.returncode == 0, made.stderr
    assert "wrote 120 PNGs to digits" in made.stdout
    return folder


@pytest.fixture(scope="module")
def trained(folder, judge_overrides):
    """One training run of the user's model and loss on their PNG folder."""
    result = run_cli([*MINE, "data=folder", "data.path=digits", "train.max_steps=4", "hydra.run.dir=run",
                      *judge_overrides], folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_of(folder / "run", MlflowClient(f"sqlite:///{folder / 'mlflow.db'}"))


def test_the_users_model_and_loss_train_log_and_are_judged_on_their_classes(trained, folder):
    params = trained.data.params
    assert trained.info.status == "FINISHED" and trained.info.run_name == "residual-ralsgan"
    assert params["model.name"] == "residual" and params["model.width"] == "8" and params["loss.name"] == "ralsgan"
    assert params["plugins"] == "['my_parts']" and params["loss.r1_gamma"] == "0.0"  # the base loss fields compose
    assert json.loads(trained.data.tags["gan_lab.plugins"]) == {"my_parts": str(folder)}
    assert {"score", "fid", "precision", "recall"} <= set(trained.data.metrics)


def test_generate_finds_the_plugin_from_the_run_and_names_it_when_it_is_gone(trained, folder, tmp_path):
    store = f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}"
    done = run_cli(["n=9", f"run_id={trained.info.run_id}", "out=samples", store], tmp_path, module="gan_lab.generate")
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "samples" / "samples.npz") as samples:
        assert samples["images"].shape == (9, 28, 28)

    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(folder / "my_parts.py", moved / "my_parts.py")
    try:
        missing = run_cli(["n=9", f"run_id={trained.info.run_id}", store], tmp_path, module="gan_lab.generate")
    finally:
        shutil.move(moved / "my_parts.py", folder / "my_parts.py")
    assert missing.returncode == 2
    assert (f"run {trained.info.run_id} was trained with plugins=['my_parts']: cannot import plugin 'my_parts' "
            "(ModuleNotFoundError: No module named 'my_parts')") in missing.stderr


def test_a_joblib_sweep_over_the_plugin_is_one_parent_with_two_children(folder, judge_overrides):
    sweep = folder / "sweep"
    result = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *MINE, "data=folder",
                      "data.path=digits", "train.max_steps=2", "optimizer.lr=1e-4,2e-4", f"hydra.sweep.dir={sweep}",
                      f"mlflow.tracking_uri=sqlite:///{sweep / 'mlflow.db'}", *judge_overrides], folder)
    assert result.returncode == 0, result.stderr[-3000:]
    client, parent, children = sweep_runs(f"sqlite:///{sweep / 'mlflow.db'}")  # a store of its own
    assert sorted(children) == [0, 1]
    assert {child.data.params["model.name"] for child in children.values()} == {"residual"}
    assert [children[j].data.params["optimizer.generator.lr"] for j in (0, 1)] == ["0.0001", "0.0002"]
    assert {"summary/summary.md"} <= {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}


def test_an_interrupted_plugin_run_resumes(folder):
    run_dir = folder / "interrupted"
    process = start_cli([*MINE, "data=folder", "data.path=digits", "train.epochs=1000", "checkpoint.every=2",
                         "judge.enabled=false", f"hydra.run.dir={run_dir}"], folder)
    wait_for(lambda: (run_dir / "checkpoints" / "checkpoint").exists() or process.poll() is not None,
             what="the first checkpoint")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    run = run_of(run_dir, client)
    assert run.info.status == "KILLED", stderr[-3000:]
    stopped_at = int(re.search(r"at step (\d+)", stderr).group(1))

    resumed = run_cli([f"resume={run.info.run_id}", f"train.max_steps={stopped_at + 2}"], folder)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["train_steps"] == stopped_at + 2
    assert run.data.params["model.name"] == "residual"


def test_a_missing_or_broken_plugin_is_named_before_anything_is_logged(tmp_path, monkeypatch):
    done = run_cli(["plugins=[my_partz]", "model=residual"], tmp_path)
    assert done.returncode == 2
    assert "plugins: cannot import plugin 'my_partz' (ModuleNotFoundError: No module named 'my_partz')" in done.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "outputs").exists()

    (tmp_path / "broken_parts.py").write_text("import math\nmath.sqrt(-1)\n")
    monkeypatch.chdir(tmp_path)  # the launch folder is importable
    with pytest.raises(ConfigError, match=r"cannot import plugin 'broken_parts' \(ValueError: math domain error\)"):
        check_overrides(["plugins=[broken_parts]"])


def test_the_users_config_fields_are_validated_like_built_in_ones(folder):
    done = run_cli([*MINE, "model.width=abc"], folder)
    assert done.returncode == 2
    assert "model.width: Value 'abc' of type 'str' could not be converted to Integer" in done.stderr
    done = run_cli([*MINE, "model.depth=3"], folder)
    assert done.returncode == 2 and "model.depth: no such key" in done.stderr and "width" in done.stderr
