"""End to end on the real MNIST test split: train a few steps, check MLflow, generate samples."""


import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gan_lab import trainer
from gan_lab.callbacks import grid_epochs
from gan_lab.config import Precision
from gan_lab.generate import GenerateArgs, generate
from gan_lab.generate import main as generate_main
from gan_lab.precision import bf16_supported, cpu_bf16, resolve_precision
from gan_lab.trainer import train

EPOCH_METRICS = {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"}


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    paths = set()
    for item in client.list_artifacts(run_id, path):
        paths |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return paths


@pytest.fixture(scope="module")
def runs(tiny_train_cfg, tmp_path_factory):
    """One tiny training run per model x loss: {(model, loss): (run_id, output_dir)}."""
    result = {}
    for model in ("mlp", "dcgan", "cgan"):
        for loss in ("bce", "lsgan"):
            out = tmp_path_factory.mktemp(f"{model}-{loss}")
            result[model, loss] = train(tiny_train_cfg(f"model={model}", f"loss={loss}"), output_dir=out), out
    return result


@pytest.mark.parametrize("model", ["mlp", "dcgan", "cgan"])
@pytest.mark.parametrize("loss", ["bce", "lsgan"])
def test_run_is_recorded_in_mlflow(runs, mlflow_uri, model, loss):
    run_id, out = runs[model, loss]
    client = MlflowClient(mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{model}-{loss}"
    assert run.data.params["model.name"] == model and run.data.params["optimizer.generator.lr"] == "0.0002"
    assert run.data.params["data.split"] == "test"
    assert EPOCH_METRICS <= set(run.data.metrics)
    assert run.data.metrics["train_steps"] == 3 and run.data.metrics["train_seconds"] > 0
    assert run.data.tags["precision"] == resolve_precision(Precision.auto)
    history = client.get_metric_history(run_id, "d_loss")
    assert [m.step for m in history] == [1] and np.isfinite(history[0].value)
    assert 0.0 <= run.data.metrics["d_acc_real"] <= 1.0

    artifacts = artifact_paths(client, run_id)
    assert {"config.yaml", "loss_curve.png", "discriminator.weights.h5"} <= artifacts
    assert any(p.startswith("images/samples") and p.endswith(".png") for p in artifacts)  # log_image, step 1
    assert len([p for p in artifacts if p.startswith("samples/")]) == 100
    assert (out / "grids" / "epoch_0001.png").is_file() and (out / "generator.keras").is_file()
    logged_models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    assert sorted(m.name for m in logged_models) == ["generator", "generator_best"]  # judged: the best kept too


@pytest.mark.parametrize("model", ["mlp", "cgan"])
def test_generate_from_run(runs, mlflow_uri, tmp_path, model):
    run_id, _ = runs[model, "bce"]
    npz = generate(GenerateArgs(run_id=run_id, n=25, out=str(tmp_path / "a")), seed=3, tracking_uri=mlflow_uri)
    with np.load(npz) as data:
        images = data["images"]
        assert images.shape == (25, 28, 28) and images.dtype == np.uint8
        assert images.max() > images.min()
        if model == "cgan":
            assert np.bincount(data["labels"]).tolist() == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
        else:
            assert "labels" not in data.files
    assert (tmp_path / "a" / "grid.png").is_file()

    again = generate(GenerateArgs(run_id=run_id, n=25, out=str(tmp_path / "b")), seed=3, tracking_uri=mlflow_uri)
    other = generate(GenerateArgs(run_id=run_id, n=25, out=str(tmp_path / "c")), seed=4, tracking_uri=mlflow_uri)
    assert again.read_bytes() == npz.read_bytes()
    assert (tmp_path / "b" / "grid.png").read_bytes() == (tmp_path / "a" / "grid.png").read_bytes()
    assert other.read_bytes() != npz.read_bytes()


def test_generate_requested_labels(runs, mlflow_uri, tmp_path):
    run_id, _ = runs["cgan", "lsgan"]
    npz = generate(GenerateArgs(run_id=run_id, n=12, out=str(tmp_path), labels=[7]), tracking_uri=mlflow_uri)
    with np.load(npz) as data:
        assert data["labels"].tolist() == [7] * 12


def test_generate_bad_requests(runs, mlflow_uri, capsys):
    mlp_run, _ = runs["mlp", "bce"]
    cgan_run, _ = runs["cgan", "bce"]
    store = f"mlflow.tracking_uri={mlflow_uri}"
    cases = [
        ([f"run_id={mlp_run}", "n=0", store], "n=0: must be >= 1"),
        (["n=5", store], "give one of run_id=<MLflow run id> or model_uri=models:/<name>@<alias>"),
        ([f"run_id={mlp_run}", "n=lots"], "n: Value 'lots' of type 'str' could not be converted to Integer"),
        ([f"run_id={mlp_run}", "colour=red"], "colour: no such key; valid keys: run_id, model_uri, n"),
        ([f"run_id={mlp_run}", "tracking_uri=x"], "tracking_uri: no such key; did you mean "),
        (["run_id=0123456789abcdef", store], "no MLflow run '0123456789abcdef'"),
        ([f"run_id={mlp_run}", "labels=[7]", store], "labels= needs a cgan run"),
        ([f"run_id={cgan_run}", "labels=[12]", store], "labels=[12]: must lie in 0..9"),
        (["model_uri=models:/nobody@champion", store], "model_uri=models:/nobody@champion: not found in"),
    ]
    for argv, message in cases:
        assert generate_main(argv) == 2
        assert message in capsys.readouterr().err, argv


def test_presets_run_with_their_grids_and_the_conditional_twin_draws_the_asked_digit(tiny_train_cfg, mlflow_uri,
                                                                                      tmp_path):
    """tf_dcgan_tutorial's 4x4 grids (16 final samples); gan_cgan_pair's twin: one grid row per digit, labels= works."""
    from PIL import Image

    run_id = train(tiny_train_cfg("experiment=tf_dcgan_tutorial", "train.batch_size=32"), output_dir=tmp_path / "tf")
    assert np.asarray(Image.open(tmp_path / "tf" / "grid.png")).shape == (4 * 30 + 2, 4 * 30 + 2)
    assert len([p for p in artifact_paths(MlflowClient(mlflow_uri), run_id) if p.startswith("samples/")]) == 16

    run_id = train(tiny_train_cfg("experiment=gan_cgan_pair", "model.num_classes=10"), output_dir=tmp_path / "twin")
    samples = sorted(p.name for p in (tmp_path / "twin" / "samples").iterdir())
    assert len(samples) == 100 and samples[:10] == [f"{i:03d}_label0.png" for i in range(10)]
    npz = generate(GenerateArgs(run_id=run_id, n=6, out=str(tmp_path / "g"), labels=[3]), tracking_uri=mlflow_uri)
    with np.load(npz) as data:
        assert data["labels"].tolist() == [3] * 6 and data["images"].shape == (6, 28, 28)


def test_crash_marks_run_failed(tiny_train_cfg, mlflow_uri, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(trainer, "_save_results", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        train(tiny_train_cfg("model=mlp", "mlflow.experiment=crash"), output_dir=tmp_path)
    runs = MlflowClient(mlflow_uri).search_runs([mlflow.get_experiment_by_name("crash").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_step_cap_inside_a_later_epoch_is_exact(tiny_train_cfg, mlflow_uri, tmp_path):
    # 10,000 images / batch 1000 = 10 steps per epoch; the cap of 23 falls inside epoch 3.
    cfg = tiny_train_cfg(
        "model=mlp", "train.batch_size=1000", "train.epochs=5", "train.max_steps=23",
        "train.steps_per_execution=4", "train.save_interval=2", "mlflow.experiment=cap",
    )
    run = MlflowClient(mlflow_uri).get_run(train(cfg, output_dir=tmp_path))
    assert run.data.metrics["train_steps"] == 23
    assert [m.step for m in MlflowClient(mlflow_uri).get_metric_history(run.info.run_id, "g_loss")] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == [f"epoch_000{e}.png" for e in (1, 2, 3)]


def test_precision_choice():
    assert resolve_precision(Precision.float32) == "float32"
    assert resolve_precision(Precision.mixed_bfloat16) == "mixed_bfloat16"
    assert resolve_precision(Precision.auto) == ("mixed_bfloat16" if bf16_supported() else "float32")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("avx512f amx_bf16 avx512_bf16 amx_tile", "AMX-BF16"), ("avx512f avx512_bf16 avx512_vnni", "AVX512-BF16"),
     ("avx2 avx512f", None)],
)
def test_cpu_bf16_reads_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"model name\t: Some CPU\nflags\t\t: fpu sse2 {flags}\n")
    assert cpu_bf16(cpuinfo) == expected
    assert cpu_bf16(tmp_path / "missing") is None


def test_grid_epochs():
    assert grid_epochs(3, 5) == {1, 2, 3}
    assert grid_epochs(22, 5) == {1, 2, 3, 4, 5, 10, 15, 20, 22}


def test_ema_generator_follows_the_warmed_up_average(compose_cfg):
    """After one step: ema = d * before + (1 - d) * generator, d = min(ema, (1 + t) / (10 + t)), t = 1."""
    cfg = compose_cfg("model=mlp", "train.precision=float32", "train.ema=0.999")
    gan = trainer.build_gan(cfg, steps_per_execution=1)
    before = [w.numpy() for w in gan.ema_generator.weights]
    rng = np.random.default_rng(0)
    gan.train_step((rng.uniform(-1, 1, (8, 28, 28, 1)).astype("float32"), np.zeros(8, "int32")))
    decay = min(0.999, 2 / 11)
    for old, new, average in zip(before, gan.generator.weights, gan.ema_generator.weights):
        assert not np.allclose(new.numpy(), old)  # the step moved the generator
        np.testing.assert_allclose(average.numpy(), decay * old + (1 - decay) * new.numpy(), rtol=1e-5, atol=1e-7)
