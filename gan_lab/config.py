"""Typed schemas for the Hydra config, registered in the ConfigStore.

The values live in ``conf/*.yaml``; these dataclasses give them types, so a bad override
(``optimizer.lr=fast``, an unknown key, an unknown ``data.split``) fails while Hydra composes,
before TensorFlow or MLflow is imported. This module must stay free of heavy imports.
"""

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


class Noise(Enum):
    normal = "normal"  # N(0, 1)
    uniform = "uniform"  # U(-1, 1)


class Precision(Enum):
    auto = "auto"  # mixed_bfloat16 where the hardware supports it, else float32
    float32 = "float32"
    mixed_bfloat16 = "mixed_bfloat16"


class Split(Enum):
    train = "train"
    test = "test"


@dataclass
class MLPModelConfig:
    name: str = MISSING
    latent_dim: int = MISSING
    noise: Noise = MISSING
    generator_units: list[int] = MISSING
    discriminator_units: list[int] = MISSING
    leaky_slope: float = MISSING


@dataclass
class ConvModelConfig:
    """DCGAN trunk; ``num_classes > 0`` makes it class-conditional (cgan)."""

    name: str = MISSING
    latent_dim: int = MISSING
    noise: Noise = MISSING
    generator_filters: list[int] = MISSING
    discriminator_filters: list[int] = MISSING
    kernel_size: int = MISSING
    dropout: float = MISSING
    leaky_slope: float = MISSING
    num_classes: int = 0
    label_embedding_dim: int = 50


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class AdamParams:
    lr: float = MISSING
    beta_1: float = MISSING
    beta_2: float = MISSING


@dataclass
class AdamConfig:
    name: str = MISSING
    lr: float = MISSING
    beta_1: float = MISSING
    beta_2: float = MISSING
    generator: AdamParams = MISSING
    discriminator: AdamParams = MISSING


@dataclass
class RMSpropParams:
    lr: float = MISSING
    rho: float = MISSING


@dataclass
class RMSpropConfig:
    name: str = MISSING
    lr: float = MISSING
    rho: float = MISSING
    generator: RMSpropParams = MISSING
    discriminator: RMSpropParams = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    path: Optional[str] = None  # IDX folder or .npz; None: $GAN_LAB_DATA_DIR, else Keras download
    split: Split = Split.train
    verify: bool = True  # check local files against the canonical checksums


@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    max_steps: Optional[int] = None
    save_interval: int = MISSING
    steps_per_execution: int = MISSING
    precision: Precision = MISSING
    xla: bool = MISSING
    ema: float = MISSING  # decay of the generator's weight average used for samples; 0: off
    deterministic: bool = MISSING  # TensorFlow op determinism (bit-identical reruns on any device)


@dataclass
class CheckpointConfig:
    every: int = MISSING  # training steps between checkpoints (also one at the end and on a stop signal)
    keep: int = MISSING  # newest checkpoints kept


@dataclass
class JudgeConfig:
    enabled: bool = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    holdout: float = MISSING  # share held out when the data has one split only (data.split=test)
    seed: int = MISSING
    k: int = MISSING  # neighbours of the precision/recall manifolds
    samples: int = MISSING  # generated images judged per evaluation
    every: int = MISSING  # evaluate every N epochs (and after the last)
    cache_dir: str = MISSING
    experiment: str = MISSING


@dataclass
class MLflowConfig:
    tracking_uri: Optional[str] = None  # None: sqlite file mlflow.db in the launch directory
    experiment: str = MISSING


@dataclass
class Config:
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    mlflow: MLflowConfig = field(default_factory=MLflowConfig)
    seed: int = MISSING
    resume: Optional[str] = None  # an MLflow run id or a run's output folder to continue


def register_configs() -> None:
    """Register the schemas; YAML files pick theirs with ``defaults: [/schema/<group>/<name>@_here_]``."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, name, node in [
        ("model", "mlp", MLPModelConfig),
        ("model", "conv", ConvModelConfig),
        ("loss", "loss", LossConfig),
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "rmsprop", RMSpropConfig),
    ]:
        cs.store(group=f"schema/{group}", name=name, node=node)


register_configs()


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``python -m gan_lab <overrides>`` would train with (Hydra's compose API)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside the @hydra.main app
        return compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


class ConfigError(ValueError):
    """A config value outside what its key allows; the message names the key and the fix."""


AT_LEAST_ONE = (
    "train.epochs", "train.batch_size", "train.save_interval", "train.steps_per_execution", "model.latent_dim",
    "judge.epochs", "judge.batch_size", "judge.samples", "judge.every", "judge.k", "checkpoint.every",
    "checkpoint.keep",
)


def validate(cfg: DictConfig) -> None:
    """Check the values Hydra's types cannot (ranges, paths) before anything is built or logged."""
    for key in AT_LEAST_ONE:
        if OmegaConf.select(cfg, key) < 1:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)}: must be an integer >= 1")
    if cfg.train.max_steps is not None and cfg.train.max_steps < 1:
        raise ConfigError(f"train.max_steps={cfg.train.max_steps}: must be >= 1, or null for no cap")
    for network in ("generator", "discriminator"):
        if cfg.optimizer[network].lr <= 0:
            raise ConfigError(
                f"optimizer.{network}.lr={cfg.optimizer[network].lr}: must be > 0 (optimizer.lr sets both networks)"
            )
    for key, low, high in [("train.ema", 0, 1), ("judge.holdout", 0, 1), ("model.dropout", 0, 1)]:
        value = OmegaConf.select(cfg, key)
        if value is not None and not (low <= value < high and (key != "judge.holdout" or value > 0)):
            raise ConfigError(f"{key}={value}: must lie in [{low}, {high})" + (", above 0" if key == "judge.holdout" else ""))
    if cfg.data.path is not None and not Path(cfg.data.path).expanduser().exists():
        raise ConfigError(
            f"data.path={cfg.data.path}: no such file or folder; point it at the MNIST IDX .gz files or an .npz"
        )
