"""Shared fixtures: Hydra compose-API configs, the real MNIST test split, a temporary MLflow store."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gan_lab.config import compose_config

ROOT = Path(__file__).resolve().parents[1]


def start_cli(args: list[str], cwd: Path, mnist_dir: Path | None = None, module: str = "gan_lab",
              env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m <module> <args>`` in ``cwd``, as a user runs it, with the data from ``mnist_dir`` (and ``env``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})} | ({"GAN_LAB_DATA_DIR": str(mnist_dir)} if mnist_dir else {})
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def run_cli(args: list[str], cwd: Path, mnist_dir: Path | None = None, module: str = "gan_lab",
            timeout: float = 600) -> subprocess.CompletedProcess:
    process = start_cli(args, cwd, mnist_dir, module)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder with the canonical MNIST test split: $GAN_LAB_DATA_DIR or ../shared/data/mnist."""
    folder = Path(os.environ.get("GAN_LAB_DATA_DIR") or ROOT.parent / "shared" / "data" / "mnist")
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        message = f"MNIST test split not found in {folder}; set GAN_LAB_DATA_DIR to its folder"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def compose_cfg():
    """``compose_cfg("model=mlp", ...)`` -> the composed config, as ``python -m gan_lab`` would see it."""

    return lambda *overrides: compose_config(list(overrides))


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """A temporary sqlite MLflow store shared by the session's training runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def judge_overrides(tmp_path_factory) -> list[str]:
    """A quick judge (2 epochs on 6,000 test images), cached for the session, scoring 300 samples."""
    return [f"judge.cache_dir={tmp_path_factory.mktemp('judges')}", "judge.epochs=2", "judge.samples=300"]


@pytest.fixture(scope="session")
def tiny_train_cfg(compose_cfg, mnist_dir, mlflow_uri, judge_overrides):
    """A few steps of training on the real test split into the temporary store."""

    def _cfg(*overrides: str):
        return compose_cfg(
            f"data.path={mnist_dir}",
            "data.split=test",
            "train.epochs=1",
            "train.batch_size=32",
            "train.max_steps=3",
            "train.steps_per_execution=2",
            f"mlflow.tracking_uri={mlflow_uri}",
            "mlflow.experiment=tests",
            *judge_overrides,
            *overrides,
        )

    return _cfg
