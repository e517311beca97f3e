"""Typed schemas for the Hydra config, registered in the ConfigStore.

The values live in ``conf/*.yaml``; these dataclasses give them types, so a bad override
(``optimizer.lr=fast``, an unknown key, an unknown ``data.split``) fails while Hydra composes,
before TensorFlow or MLflow is imported. This module must stay free of heavy imports.
"""

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

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


class Strategy(Enum):
    none = "none"  # one device
    mirrored = "mirrored"  # tf.distribute.MirroredStrategy: a replica per device of this process
    multi_worker = "multi_worker"  # tf.distribute.MultiWorkerMirroredStrategy over the workers of $TF_CONFIG


class Direction(Enum):
    minimize = "minimize"
    maximize = "maximize"


@dataclass
class ModelConfig:
    """What every model's config holds; a model's own config extends it (``gan_lab.ModelConfig``)."""

    name: str = MISSING  # the registered builder (gan_lab.MODELS)
    latent_dim: int = 100  # size of G's noise input
    noise: Noise = Noise.normal
    num_classes: int = 0  # > 0: class-conditional on labels 0..num_classes-1 (G and D take an int label)
    code_dim: int = 0  # > 0: InfoGAN's categorical latent code of this many values


@dataclass
class MLPModelConfig(ModelConfig):
    """The CS231n fully connected GAN; ``num_classes > 0``: its conditional twin (one-hot label at G's and D's input)."""

    generator_units: list[int] = MISSING
    discriminator_units: list[int] = MISSING
    leaky_slope: float = MISSING


@dataclass
class ConvModelConfig(ModelConfig):
    """DCGAN trunk; ``num_classes > 0`` makes it class-conditional (cgan), ``code_dim > 0`` InfoGAN."""

    generator_filters: list[int] = MISSING
    discriminator_filters: list[int] = MISSING
    kernel_size: int = MISSING
    dropout: float = MISSING
    leaky_slope: float = MISSING
    label_embedding_dim: int = 50
    conditional_bn: bool = False  # conditional: G's batch norms take their scale and shift from the label
    self_conditioned: bool = False  # with code_dim: D projects the code, on real images the one its head guesses
    spectral_norm: bool = False  # spectral normalisation of D's layers (Miyato et al. 2018)
    minibatch_std: bool = False  # D sees the batch's standard deviation as one more feature map (ProGAN)


@dataclass
class TFGANModelConfig(ModelConfig):
    """The TF-GAN MNIST example's networks (tensorflow_gan/examples/mnist/networks.py)."""

    dense_units: int = MISSING  # G's first and D's last hidden layer
    generator_filters: list[int] = MISSING  # dense 7x7xF0, then transposed convolutions F1, F2 (stride 2)
    discriminator_filters: list[int] = MISSING
    kernel_size: int = MISSING
    leaky_slope: float = MISSING
    weight_decay: float = MISSING  # L2 on every kernel
    spectral_norm: bool = MISSING  # on D's layers but the logit


@dataclass
class LossConfig:
    name: str = MISSING
    gradient_penalty: float = 0.0  # WGAN-GP: weight of (|grad D(interpolate)| - 1)^2 (wgan_gp: 10)
    r1_gamma: float = 0.0  # R1: gamma/2 * |grad D(real)|^2, with any loss; 0: off
    mode_seeking: float = 0.0  # MSGAN: weight of 1 / (|G(z1) - G(z2)| / |z1 - z2|); 0: off
    mutual_information: float = 1.0  # InfoGAN (model.code_dim > 0): weight of the code's cross-entropy
    generator_mutual_information: float = "${.mutual_information}"  # G's weight of it, if other than D's head's


@dataclass
class OptimizerConfig:
    """What every optimizer's config holds; ``generator`` and ``discriminator`` are each network's keyword
    arguments of the registered builder (gan_lab.OPTIMIZERS), ``lr`` sets both unless one is given."""

    name: str = MISSING
    lr: float = MISSING


@dataclass
class AdamParams:
    lr: float = MISSING
    beta_1: float = MISSING
    beta_2: float = MISSING


@dataclass
class AdamConfig(OptimizerConfig):
    beta_1: float = MISSING
    beta_2: float = MISSING
    generator: AdamParams = MISSING
    discriminator: AdamParams = MISSING


@dataclass
class RMSpropParams:
    lr: float = MISSING
    rho: float = MISSING


@dataclass
class RMSpropConfig(OptimizerConfig):
    rho: float = MISSING
    generator: RMSpropParams = MISSING
    discriminator: RMSpropParams = MISSING


@dataclass
class DataConfig:
    name: str = MISSING  # conf/data/<name>.yaml: mnist, fashion_mnist (gan_lab.data.DATASETS); folder, npz: own images
    path: Optional[str] = None  # IDX folder or .npz; None: the dataset's env var, else Keras download (own: required)
    split: Split = Split.train  # own images have no splits: ignored
    verify: bool = True  # check local files against the canonical checksums (own images: none to check)


@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    max_steps: Optional[int] = None
    save_interval: int = MISSING
    steps_per_execution: int = MISSING
    precision: Precision = MISSING
    xla: bool = MISSING
    fast_convolutions: bool = True  # CPUs: convolutions.py's forms where measured faster (filter gradients, the direction to the image)
    ema: float = MISSING  # decay of the generator's weight average used for samples; 0: off
    deterministic: bool = MISSING  # TensorFlow op determinism (bit-identical reruns on any device)
    max_time: Optional[float] = None  # seconds of training (evaluation excluded), then end as at the last step
    d_steps: int = 1  # discriminator (critic) updates per generator update
    augment: str = ""  # DiffAugment policies on D's inputs, real and fake: "translation", "translation,cutout"
    grid_size: int = 10  # sample grids: grid_size x grid_size images; conditional: grid_size per label (or code)


@dataclass
class DistributeConfig:
    """How training spreads over devices and workers (``gan_lab/distribute.py``)."""

    strategy: Strategy = MISSING
    devices: Optional[list[str]] = None  # mirrored: the devices to replicate over; None: every GPU, else the CPU


@dataclass
class CheckpointConfig:
    every: int = MISSING  # training steps between checkpoints (also one at the end and on a stop signal)
    keep: int = MISSING  # newest checkpoints kept
    keep_best: bool = True  # with the judge: also keep the best evaluation's checkpoint (by sweep.objective)


@dataclass
class JudgeConfig:
    enabled: bool = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    holdout: float = MISSING  # share held out when the data has one split only (data.split=test)
    seed: int = MISSING
    validation: bool = MISSING  # also judge by the validation judge (another architecture, seed and data share): val_*
    validation_seed: int = MISSING
    k: int = MISSING  # neighbours of the precision/recall manifolds
    samples: int = MISSING  # generated images judged per evaluation
    subsets: int = MISSING  # disjoint subsets of the samples whose spread gives <metric>_std (standard errors)
    kid_subsets: int = MISSING  # KID: mean and std over this many random subsets
    kid_subset_size: int = MISSING  # of this many samples and reference images each (capped by the smaller set)
    cas_epochs: int = MISSING  # CAS: epochs of training a classifier on a conditional run's final samples
    every: int = MISSING  # evaluate every N epochs (and after the last)
    cache_dir: str = MISSING
    experiment: str = MISSING


@dataclass
class MLflowConfig:
    tracking_uri: Optional[str] = None  # None: sqlite file mlflow.db in the launch directory
    experiment: str = MISSING


@dataclass
class SweepConfig:
    """How a multirun (``-m``) is summarised; read by the sweep callback (``gan_lab/sweep.py``)."""

    objective: str = "fid"  # the judge metric each job returns (optuna's objective) and the best job is picked by
    direction: Direction = Direction.minimize
    register: Optional[str] = None  # a model name: register the best job's generator under it when the sweep ends
    alias: str = "champion"  # the alias that registration sets
    repeats: int = 1  # each job trains this many runs, seeds seed, seed+1, ...; the summary groups them by config


@dataclass
class Config:
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    mlflow: MLflowConfig = field(default_factory=MLflowConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = MISSING
    resume: Optional[str] = None  # an MLflow run id or a run's output folder to continue
    plugins: list[str] = field(default_factory=list)  # the user's modules to import first (gan_lab/plugins.py)


def register_configs() -> None:
    """Register the schemas; YAML files pick theirs with ``defaults: [/schema/<group>/<name>@_here_]``."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, name, node in [
        ("model", "mlp", MLPModelConfig),
        ("model", "conv", ConvModelConfig),
        ("model", "tfgan", TFGANModelConfig),
        ("loss", "loss", LossConfig),
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "rmsprop", RMSpropConfig),
    ]:
        cs.store(group=f"schema/{group}", name=name, node=node)


register_configs()


def compose_config(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The config ``python -m gan_lab <overrides>`` would train with (Hydra's compose API);
    ``with_hydra``: also its ``hydra`` node (launcher, sweeper)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside the @hydra.main app
        return compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)


AUGMENT_POLICIES = ("translation", "cutout", "color")  # gan_lab/augment.py registers one function each


def augment_policies(augment: str) -> list[str]:
    """``train.augment="translation,cutout"`` -> ["translation", "cutout"] ("" and "none": no augmentation)."""
    return [p.strip() for p in augment.split(",") if p.strip() and p.strip() != "none"]


def typed_config(saved: DictConfig, plugin_roots: dict[str, str] | None = None, context: str = "plugins"
                 ) -> DictConfig:
    """A run's saved config (resolved, plain YAML) typed again by the schemas of its groups (enums back), the
    plugins it names imported first (``plugin_roots``: where the run found them, if the launch folder lacks them)."""
    from gan_lab.plugins import import_plugins

    import_plugins(saved.get("plugins", []), plugin_roots, context)
    presets = [f"{group}={saved[group].name}" for group in ("model", "loss", "optimizer", "data")]
    return OmegaConf.merge(compose_config(presets), saved)


class ConfigError(ValueError):
    """A config value outside what its key allows; the message names the key and the fix."""


AT_LEAST_ONE = (
    "train.epochs", "train.batch_size", "train.save_interval", "train.steps_per_execution", "train.d_steps",
    "train.grid_size",
    "model.latent_dim",
    "judge.epochs", "judge.batch_size", "judge.samples", "judge.every", "judge.k", "judge.kid_subsets",
    "judge.cas_epochs", "checkpoint.every", "checkpoint.keep", "sweep.repeats",
)
AT_LEAST_TWO = ("judge.subsets", "judge.kid_subset_size")  # a spread, an unbiased MMD: two or more


def validate(cfg: DictConfig) -> None:
    """Check what Hydra's types cannot (keys added with ``+``, ranges, paths) before anything is built or logged."""
    from gan_lab.metrics import SCALARS

    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(unknown_key_message(*unknown[0]))
    for key in AT_LEAST_ONE:
        if OmegaConf.select(cfg, key) < 1:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)}: must be an integer >= 1")
    for key in AT_LEAST_TWO:
        if OmegaConf.select(cfg, key) < 2:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)}: must be an integer >= 2")
    if cfg.train.max_steps is not None and cfg.train.max_steps < 1:
        raise ConfigError(f"train.max_steps={cfg.train.max_steps}: must be >= 1, or null for no cap")
    if cfg.train.max_time is not None and cfg.train.max_time <= 0:
        raise ConfigError(f"train.max_time={cfg.train.max_time}: must be > 0 seconds, or null for no budget")
    for key in ("loss.gradient_penalty", "loss.r1_gamma", "loss.mode_seeking", "loss.mutual_information",
                "loss.generator_mutual_information"):
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)}: must be >= 0 (0: off)")
    unknown = [p for p in augment_policies(cfg.train.augment) if p not in AUGMENT_POLICIES]
    if unknown:
        raise ConfigError(f"train.augment={cfg.train.augment}: unknown policy {unknown[0]!r}; "
                          f"comma-separated from {', '.join(AUGMENT_POLICIES)}")
    for network in ("generator", "discriminator"):
        if cfg.optimizer[network].lr <= 0:
            raise ConfigError(
                f"optimizer.{network}.lr={cfg.optimizer[network].lr}: must be > 0 (optimizer.lr sets both networks)"
            )
    for key, low, high in [("train.ema", 0, 1), ("judge.holdout", 0, 1), ("model.dropout", 0, 1)]:
        value = OmegaConf.select(cfg, key)
        if value is not None and not (low <= value < high and (key != "judge.holdout" or value > 0)):
            raise ConfigError(f"{key}={value}: must lie in [{low}, {high})" + (", above 0" if key == "judge.holdout" else ""))
    rows = cfg.model.get("num_classes", 0) or cfg.model.get("code_dim", 0)
    if cfg.train.grid_size**2 < rows:
        raise ConfigError(f"train.grid_size={cfg.train.grid_size}: a grid of {cfg.train.grid_size ** 2} cannot show one "
                          f"row per each of the model's {rows} labels or codes; use at least {math.isqrt(rows - 1) + 1}")
    datasets = sorted(path.stem for path in (CONF_DIR / "data").glob("*.yaml"))  # each names its data.py entry
    if cfg.data.name not in datasets:
        raise ConfigError(f"data.name={cfg.data.name}: no such dataset; one of {', '.join(datasets)} (data=<name>)")
    from gan_lab.data import OWN_SOURCES

    wanted = OWN_SOURCES.get(cfg.data.name, "the dataset's IDX .gz files or an .npz")
    if cfg.data.path is None and cfg.data.name in OWN_SOURCES:
        raise ConfigError(f"data={cfg.data.name} needs data.path: point it at {wanted}")
    if cfg.data.path is not None and not Path(cfg.data.path).expanduser().exists():
        raise ConfigError(f"data.path={cfg.data.path}: no such file or folder; point it at {wanted}")
    if cfg.distribute.devices is not None and cfg.distribute.strategy != Strategy.mirrored:
        raise ConfigError(f"distribute.devices={cfg.distribute.devices}: only distribute=mirrored replicates over "
                          "devices; drop it or add distribute=mirrored")
    if cfg.distribute.strategy == Strategy.multi_worker and cfg.train.max_time is not None:
        raise ConfigError(f"train.max_time={cfg.train.max_time} with distribute=multi_worker: each worker's clock "
                          "would stop it at another step; cap the run with train.max_steps instead")
    if cfg.sweep.objective not in SCALARS:
        raise ConfigError(f"sweep.objective={cfg.sweep.objective}: not a judge metric; one of {', '.join(SCALARS)}")


def config_groups() -> list[str]:
    """The config groups of ``conf/`` (``model``, ``loss``, ..., ``experiment``, ``sweep``)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def unknown_keys(cfg: DictConfig) -> list[tuple[str, list[str]]]:
    """Keys no schema declares (added with ``+``, which Hydra accepts), each with the keys valid in its place."""
    found = []

    def walk(node: DictConfig, prefix: str) -> None:
        schema = OmegaConf.get_type(node)
        known = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
        for key in node:
            if known is not None and key not in known:
                found.append((prefix + key, known))
            elif isinstance(node._get_node(key), DictConfig):
                walk(node._get_node(key), f"{prefix}{key}.")

    walk(cfg, "")
    return found


def unknown_key_message(key: str, known: list[str], groups: list[str] | None = None) -> str:
    """``<key>: no such key``, the nearest valid keys and the valid ones (``groups``: config groups too)."""
    parent, _, name = key.rpartition(".")
    groups = (config_groups() if not parent else []) if groups is None else groups
    near = difflib.get_close_matches(name, list(dict.fromkeys([*known, *groups])), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    message = f"{key}: no such key; {hint}valid keys {f'under {parent}' if parent else 'at the top level'}: {', '.join(known)}"
    return message + (f"; config groups (group=<preset>): {', '.join(groups)}" if groups else "")


def composition_error(err: Exception) -> str:
    """Hydra's composition error as one message naming the key, with the nearest valid keys where one is unknown."""
    from omegaconf.errors import (
        ConfigAttributeError,
        ConfigKeyError,
        OmegaConfBaseException,
    )

    cause = err.__cause__
    message = str(err).split("\nConfig search path")[0].strip()  # Hydra appends its search path to "Could not find"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and dataclasses.is_dataclass(cause.object_type):
        known = [f.name for f in dataclasses.fields(cause.object_type)]
        return f"{unknown_key_message(cause.full_key, known)} ({cause.msg.splitlines()[0]})"
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        return f"{cause.full_key}: {cause.msg.splitlines()[0]} ({message.splitlines()[0]})"
    return message


def as_override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar (null, true/false, quoted strings)."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"{key}={value}"
    quoted = str(value.name if isinstance(value, Enum) else value).replace("'", "\\'")
    return f"{key}='{quoted}'"


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """The overrides of a multirun's first job: each sweep (``a=1,2``, ``range(..)``, ``interval(..)``) at its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    single = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if not override.is_sweep_override():
            single.append(override.input_line)
        elif isinstance(override.value(), IntervalSweep):
            single.append(f"{override.get_key_element()}={override.value().start}")
        else:
            single.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
    return single


def plugins_of(overrides: list[str]) -> list[str]:
    """The modules a ``plugins=[a,b]`` (or ``plugins=a``) override names; [] without one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        if override.key_or_group == "plugins" and not override.is_delete():
            value = override.value()
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return []


def check_overrides(overrides: list[str], multirun: bool = False) -> DictConfig:
    """Compose and validate the config these command-line overrides give, as Hydra will, and return it
    (without its ``hydra`` node); a multirun is checked at its first job, sweeper params (``+sweep=...``)
    included. Raises ConfigError naming the key and the fix."""
    from hydra.errors import HydraException

    from gan_lab.plugins import import_plugins

    try:
        if multirun:
            overrides = first_of_sweeps(overrides)
        named = plugins_of(overrides)
        import_plugins(named)  # before composing: they register what model=, loss= may name
        cfg = compose_config(overrides, with_hydra=True)
        if set(cfg.plugins) - set(named):  # named by a preset: theirs too, then compose again
            import_plugins(cfg.plugins)
            cfg = compose_config(overrides, with_hydra=True)
        params = cfg.hydra.sweeper.get("params") or {}
        if params and not multirun:
            raise ConfigError(f"the config sweeps {', '.join(params)} (hydra.sweeper.params, e.g. from +sweep=...): "
                              "add -m to run the sweep")
        if params:  # the sweeper puts them before the command line's, which win
            cfg = compose_config(first_of_sweeps([f"{key}={value}" for key, value in params.items()]) + overrides,
                                 with_hydra=True)
    except HydraException as err:
        raise ConfigError(composition_error(err)) from None
    with open_dict(cfg):
        del cfg["hydra"]
    validate(cfg)
    if cfg.sweep.repeats > 1 and not multirun:
        raise ConfigError(f"sweep.repeats={cfg.sweep.repeats} replicates the jobs of a sweep: add -m "
                          f"(python -m gan_lab -m sweep.repeats={cfg.sweep.repeats} ...)")
    return cfg
