"""Config composition: every model x loss builds; bad overrides fail fast with Hydra's message."""

import os
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from gan_lab.config import ConfigError, validate
from gan_lab.losses import LOSSES
from gan_lab.models import build_models
from gan_lab.optimizers import build_optimizer

from .conftest import ROOT


@pytest.mark.parametrize("model", ["mlp", "dcgan", "cgan"])
@pytest.mark.parametrize("loss", ["bce", "lsgan"])
def test_every_model_and_loss_composes_and_builds(compose_cfg, model, loss):
    cfg = compose_cfg(f"model={model}", f"loss={loss}")
    assert (cfg.model.name, cfg.loss.name) == (model, loss)
    generator, discriminator = build_models(cfg.model)
    assert generator.output_shape == (None, 28, 28, 1) and discriminator.output_shape == (None, 1)
    assert LOSSES.get(cfg.loss.name).generator_loss is not None


def test_defaults(compose_cfg):
    """`python -m gan_lab`: the quality study's best unconditional recipe (experiments/quality.md), no labels."""
    cfg = compose_cfg()
    assert (cfg.model.name, cfg.loss.name, cfg.optimizer.name, cfg.data.name) == ("selfcond", "lsgan", "adam", "mnist")
    assert (cfg.model.code_dim, cfg.model.self_conditioned, cfg.model.num_classes, cfg.model.dropout) == (30, True, 0, 0)
    assert (cfg.loss.mutual_information, cfg.loss.generator_mutual_information) == (1.0, 0.15)
    assert cfg.optimizer.generator.lr == cfg.optimizer.discriminator.lr == 4e-4
    assert cfg.data.split.name == "train"
    assert compose_cfg("loss=bce", "optimizer.lr=1e-4").loss.name == "bce"  # the command line still wins


def test_classic_setups_compose_as_published(compose_cfg):
    """Choosing a classic model brings none of the default recipe's settings."""
    dcgan = compose_cfg("model=dcgan")  # the TensorFlow DCGAN tutorial
    assert (dcgan.loss.name, dcgan.model.dropout, dcgan.model.code_dim, dcgan.model.conditional_bn) == ("bce", 0.3, 0, False)
    assert (dcgan.loss.mode_seeking, dcgan.optimizer.generator.lr, dcgan.model.latent_dim) == (0.0, 2e-4, 100)
    mlp = compose_cfg("model=mlp", "loss=lsgan")  # the CS231n notebook's least-squares GAN
    assert (mlp.loss.name, mlp.model.latent_dim, mlp.model.noise.value, mlp.optimizer.generator.lr) == (
        "lsgan", 96, "uniform", 2e-4)
    cgan = compose_cfg("model=cgan")  # the study's best conditional recipe
    assert (cgan.loss.name, cgan.loss.mode_seeking, cgan.model.conditional_bn) == ("bce", 0.3, True)
    first = compose_cfg("model=cgan", "model.conditional_bn=false", "loss.mode_seeking=0")  # cgan as first built
    assert (first.model.conditional_bn, first.loss.mode_seeking, first.model.dropout) == (False, 0.0, 0.3)


PRESETS = {  # experiment -> (model, classes, loss, lr, beta_1, batch, epochs, grid every N epochs, grid side)
    "keras_mlp_gan": ("mlp", 0, "bce", 1e-3, 0.5, 128, 10, 1, 4),
    "mlp_lsgan": ("mlp", 0, "lsgan", 1e-3, 0.5, 128, 10, 1, 4),
    "tf_dcgan_tutorial": ("dcgan", 0, "bce", 1e-4, 0.9, 256, 50, 1, 4),
    "dcgan_classifier_check": ("dcgan", 0, "bce", 2e-4, 0.5, 128, 50, 5, 10),
    "gan_cgan_pair": ("mlp", 0, "bce", 1e-3, 0.5, 128, 10, 1, 10),
}


@pytest.mark.parametrize("experiment", PRESETS)
def test_classic_presets_as_published(compose_cfg, experiment):
    """Each classic write-up's preset: its networks, loss, optimizer, batch, epochs and grid schedule, no
    weight average (none of them used one), nothing of the default recipe."""
    cfg = compose_cfg(f"experiment={experiment}")
    assert (cfg.model.name, cfg.model.num_classes, cfg.loss.name, cfg.optimizer.generator.lr,
            cfg.optimizer.discriminator.beta_1, cfg.train.batch_size, cfg.train.epochs, cfg.train.save_interval,
            cfg.train.grid_size) == PRESETS[experiment]
    assert cfg.train.ema == 0 and cfg.loss.mode_seeking == 0 and cfg.optimizer.generator.beta_2 == 0.999
    if cfg.model.name == "mlp":
        assert (cfg.model.latent_dim, cfg.model.noise.value, list(cfg.model.generator_units),
                list(cfg.model.discriminator_units), cfg.model.leaky_slope) == (96, "uniform", [1024, 1024], [256, 256], 0.01)
    else:
        assert (cfg.model.latent_dim, cfg.model.dropout, cfg.model.code_dim) == (100, 0.3, 0)


def test_gan_cgan_pair_sweeps_the_conditional_twin(compose_cfg):
    """`-m experiment=gan_cgan_pair` runs the GAN and its twin as one sweep; the twin composes alike but for its labels."""
    from hydra import compose, initialize_config_dir

    from gan_lab.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=["experiment=gan_cgan_pair"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params == {"model.num_classes": "0,10"}
    plain, twin = compose_cfg("experiment=gan_cgan_pair"), compose_cfg("experiment=gan_cgan_pair", "model.num_classes=10")
    twin.model.num_classes = 0
    assert plain == twin


def test_lr_sets_both_networks_and_each_can_differ(compose_cfg):
    cfg = compose_cfg("optimizer.lr=1e-3")
    assert cfg.optimizer.generator.lr == cfg.optimizer.discriminator.lr == 1e-3
    cfg = compose_cfg("optimizer.lr=1e-3", "optimizer.discriminator.lr=4e-4", "optimizer.generator.beta_1=0.9")
    assert (cfg.optimizer.generator.lr, cfg.optimizer.discriminator.lr) == (1e-3, 4e-4)
    assert (cfg.optimizer.generator.beta_1, cfg.optimizer.discriminator.beta_1) == (0.9, 0.5)
    g_opt = build_optimizer(cfg.optimizer.name, cfg.optimizer.generator)
    assert float(g_opt.learning_rate) == pytest.approx(1e-3) and g_opt.beta_1 == 0.9


def test_experiment_preset_changes_only_what_it_lists(compose_cfg):
    default, fast = compose_cfg("model=dcgan"), compose_cfg("experiment=dcgan_fast")
    assert (fast.model.name, fast.loss.name, fast.model.dropout) == ("dcgan", "lsgan", 0.0)
    assert fast.optimizer.generator.lr == fast.optimizer.discriminator.lr == 4e-4
    for changed in (("loss", "name"), ("model", "dropout"), ("optimizer", "lr")):
        default[changed[0]][changed[1]] = fast[changed[0]][changed[1]]
    assert default == fast
    assert compose_cfg("experiment=dcgan_fast", "optimizer.lr=1e-4").optimizer.generator.lr == 1e-4


def test_rmsprop(compose_cfg):
    cfg = compose_cfg("optimizer=rmsprop", "optimizer.generator.lr=1e-4")
    optimizer = build_optimizer(cfg.optimizer.name, cfg.optimizer.generator)
    assert type(optimizer).__name__ == "RMSprop" and float(optimizer.learning_rate) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=fast", "Value 'fast' of type 'str' could not be converted to Float"),
        ("train.batch_size=big", "could not be converted to Integer"),
        ("data.split=val", "Invalid value 'val', expected one of [train, test]"),
        ("model.noise=gauss", "expected one of [normal, uniform]"),
        ("train.bogus=1", "Key 'bogus' not in 'TrainConfig'"),
        ("model=vae", "Could not find 'model/vae'"),
        ("loss=ralsgan", "Could not find 'loss/ralsgan'"),
    ],
)
def test_bad_override_fails_at_composition(compose_cfg, override, message):
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg(override)
    assert message in f"{info.value} {info.value.__cause__}"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=-1e-4", "optimizer.generator.lr=-0.0001: must be > 0 (optimizer.lr sets both networks)"),
        ("optimizer.discriminator.lr=0", "optimizer.discriminator.lr=0.0: must be > 0"),
        ("train.batch_size=-8", "train.batch_size=-8: must be an integer >= 1"),
        ("model.latent_dim=0", "model.latent_dim=0: must be an integer >= 1"),
        ("train.max_steps=0", "train.max_steps=0: must be >= 1, or null for no cap"),
        ("train.ema=1.5", "train.ema=1.5: must lie in [0, 1)"),
        ("judge.holdout=0", "judge.holdout=0.0: must lie in [0, 1), above 0"),
        ("judge.subsets=1", "judge.subsets=1: must be an integer >= 2"),
        ("judge.cas_epochs=0", "judge.cas_epochs=0: must be an integer >= 1"),
        ("data.path=/no/such/dir", "data.path=/no/such/dir: no such file or folder"),
        ("train.grid_size=3", "train.grid_size=3: a grid of 9 cannot show one row per each of the model's 30 labels "
                              "or codes; use at least 6"),
    ],
)
def test_bad_values_fail_validation(compose_cfg, override, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(override))
    assert message in str(info.value)


@pytest.mark.parametrize("objective", ["kid", "fid_std", "intra_fid", "cas", "val_fid", "val_recall", "pixel_coverage", "ink_ks"])
def test_the_judges_new_metrics_are_sweep_objectives(compose_cfg, objective):
    validate(compose_cfg(f"sweep.objective={objective}"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.bogus=1", "Key 'bogus' not in 'TrainConfig'"),
        ("train.batch_size=big", "Value 'big' of type 'str' could not be converted to Integer"),
        ("model=vae", "Could not find 'model/vae'"),
        ("loss=ralsgan", "Could not find 'loss/ralsgan'"),
        ("optimizer=sgd", "Could not find 'optimizer/sgd'"),
        ("data.split=val", "Invalid value 'val', expected one of [train, test]"),
        ("train.batch_size=-8", "error: train.batch_size=-8: must be an integer >= 1"),
        ("optimizer.lr=-1", "error: optimizer.generator.lr=-1.0: must be > 0"),
        ("model.latent_dim=0", "error: model.latent_dim=0: must be an integer >= 1"),
        ("data.path=/no/such/dir", "error: data.path=/no/such/dir: no such file or folder"),
        ("checkpoint.every=0", "error: checkpoint.every=0: must be an integer >= 1"),
    ],
)
def test_cli_bad_override_fails_before_any_run(tmp_path, override, message):
    result = subprocess.run(
        [sys.executable, "-m", "gan_lab", override], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.rglob("checkpoints"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gan_lab", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("args", [("--help",), ("--cfg", "job"), ("--cfg", "job", "optimizer.lr=fast")])
def test_cli_help_and_cfg_do_not_import_tensorflow(args):
    result = _cli(*args)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "tensorflow" not in imported and "mlflow" not in imported and "keras" not in imported
    if "optimizer.lr=fast" in args:
        assert result.returncode != 0 and "could not be converted to Float" in result.stderr
    else:
        assert result.returncode == 0 and "model:" in result.stdout


def test_a_registered_config_composes_and_validates_like_a_built_in_one(compose_cfg):
    """register(name, config=...) is what model=<name> composes (gan_lab's own models register alike)."""
    from dataclasses import dataclass

    from gan_lab.config import ConvModelConfig, ModelConfig
    from gan_lab.models import MODELS
    from gan_lab.registry import Registry

    @dataclass
    class ProbeConfig(ModelConfig):
        hidden: int = 7

    Registry("model", base=ModelConfig).register("config_probe", config=ProbeConfig)(lambda cfg: None)
    cfg = compose_cfg("model=config_probe", "model.hidden=3").model
    assert (cfg.name, cfg.hidden, cfg.latent_dim, cfg.num_classes) == ("config_probe", 3, 100, 0)
    with pytest.raises(Exception, match="hidden"):
        compose_cfg("model=config_probe", "model.hidden=abc")
    with pytest.raises(TypeError, match="must be a dataclass extending gan_lab.ModelConfig"):
        Registry("model", base=ModelConfig).register("config_probe_2", config=dict)
    assert MODELS.config("dcgan") is ConvModelConfig and MODELS.config("cgan") is ConvModelConfig
    for name in MODELS.names():  # each shipped preset is an instance of the config its builder registered
        assert isinstance(OmegaConf.to_object(compose_cfg(f"model={name}").model), MODELS.config(name)), name
