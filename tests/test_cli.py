"""One dialect for every command: the same keys as training, --help, and exit 2 naming a bad key."""

import pytest

from gan_lab.config import ConfigError, check_overrides

from .conftest import ROOT, run_cli

COMMANDS = ["gan_lab.generate", "gan_lab.evaluate", "gan_lab.register", "gan_lab.runs", "gan_lab.judge"]


def run(module: str, *args: str, cwd=ROOT):
    return run_cli(list(args), cwd, module=module, timeout=180)


@pytest.mark.parametrize("module", COMMANDS)
def test_every_side_command_answers_help(module):
    result = run(module, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"python -m {module}" in result.stdout and "Keys:" in result.stdout
    assert "mlflow.*: as in training" in result.stdout or "mlflow.*, " in result.stdout


@pytest.mark.parametrize(("module", "args", "message"), [
    ("gan_lab.generate", ["run_id=x", "colour=red"], "colour: no such key; valid keys: run_id, model_uri, n"),
    ("gan_lab.generate", ["run_id=x", "tracking_uri=sqlite:///x.db"], "tracking_uri: no such key; did you mean mlflow.tracking_uri?"),
    ("gan_lab.generate", ["run_id=x", "mlflow.trackinguri=x"], "mlflow.trackinguri: no such key; did you mean tracking_uri?"),
    ("gan_lab.generate", ["run_id=x", "seed=one"], "seed: Value 'one' of type 'str' could not be converted to Integer"),
    ("gan_lab.evaluate", ["images=x.npz", "data.splitt=test"], "data.splitt: no such key; did you mean split?"),
    ("gan_lab.evaluate", ["images=x.npz", "data.split=val"], "data.split: Invalid value 'val', expected one of [train, test]"),
    ("gan_lab.register", ["run_id=x"], "name: required; give name=<value>"),
    ("gan_lab.register", ["run_id=x", "name=m", "aliases=a"], "aliases: no such key; did you mean alias?"),
    ("gan_lab.runs", ["reaps"], "action=reaps: unknown; one of reap, ui"),
    ("gan_lab.runs", ["reap", "port=many"], "port: Value 'many' of type 'str' could not be converted to Integer"),
    ("gan_lab.judge", ["judge.epoch=3"], "judge.epoch: no such key; did you mean epochs or cas_epochs?"),
])
def test_side_commands_reject_a_bad_key_or_value_with_exit_2(module, args, message, tmp_path):
    result = run(module, *args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
    assert f"error: {message}" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing was created


@pytest.mark.parametrize(("override", "message"), [
    ("+experimnt=dcgan_fast", "experimnt: no such key; did you mean experiment? valid keys at the top level: model"),
    ("+model.droput=0.1", "model.droput: no such key; did you mean dropout? valid keys under model: name, latent_dim"),
    ("trian.epochs=3", "trian: no such key; did you mean train?"),
    ("train.bogus=1", "train.bogus: no such key; valid keys under train: epochs, batch_size"),
    ("+sweep=lr", "the config sweeps optimizer.lr (hydra.sweeper.params, e.g. from +sweep=...): add -m"),
    ("sweep.objective=fdi", "sweep.objective=fdi: not a judge metric; one of score, fid"),
])
def test_training_rejects_keys_no_schema_knows(override, message, tmp_path):
    result = run("gan_lab", override, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"error: {message}" in result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "outputs").exists()


def test_a_multirun_is_checked_at_its_first_job_and_its_sweeper_params(tmp_path):
    result = run("gan_lab", "-m", "optimizer.lr=1e-4,2e-4", "+train.epoch=3", cwd=tmp_path)
    assert result.returncode == 2 and "error: train.epoch: no such key; did you mean epochs?" in result.stderr
    result = run("gan_lab", "-m", "optimizer.lrr=1e-4,2e-4", cwd=tmp_path)
    assert result.returncode == 2 and "error: optimizer.lrr: no such key; did you mean lr?" in result.stderr
    result = run("gan_lab", "-m", "+sweep=grid", "model.latent_dm=64", cwd=tmp_path)  # composed with the grid's first job
    assert result.returncode == 2 and "error: model.latent_dm: no such key; did you mean latent_dim?" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_sweep_presets_compose_and_overrides_still_apply():
    with pytest.raises(ConfigError, match="add -m"):
        check_overrides(["+sweep=lr"])
    assert check_overrides(["+sweep=lr"], multirun=True).optimizer.generator.lr == 1e-4  # the first job
    assert check_overrides(["+sweep=lr", "optimizer.lr=3e-4"], multirun=True).optimizer.generator.lr == 3e-4
    first = check_overrides(["+sweep=grid", "train.epochs=2"], multirun=True)
    assert (first.model.name, first.loss.name, first.train.epochs) == ("mlp", "bce", 2)
    search = check_overrides(["+sweep=lr_search", "sweep.objective=recall", "sweep.direction=maximize"], multirun=True)
    assert search.optimizer.generator.lr == 5e-5 and search.sweep.direction.name == "maximize"
