"""The judge: accuracy on held-out real digits, caching, MLflow records, and the evaluate command."""

import dataclasses
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gan_lab import judge as judge_module
from gan_lab import pixels
from gan_lab.config import Split
from gan_lab.data import load_data
from gan_lab.evaluate import main as evaluate_main
from gan_lab.figures import to_uint8
from gan_lab.generate import GenerateArgs, generate
from gan_lab.judge import get_judge, judge_data, judge_key
from gan_lab.trainer import train

SCALARS = {"score", "fid", "kid", "precision", "recall", "confidence", "min_share", "max_share", "kl_uniform",
           "score_std", "fid_std", "kid_std", "precision_std", "recall_std"}
CONDITIONAL = {"cond_acc", "min_class_recall", "intra_fid", "cas"}  # of the conditional samples' last evaluation
PIXELS = {"ink_ks", "stroke_ks", "pixel_coverage"}
VALIDATION = {f"val_{name}" for name in SCALARS}
CONDITIONAL_PIXELS_AND_VALIDATION = {"class_ink_ks", "class_stroke_ks", "val_cond_acc", "val_min_class_recall",
                                     "val_intra_fid"}


@pytest.fixture(scope="module")
def judge_cfg(tiny_train_cfg):
    return tiny_train_cfg()


@pytest.fixture(scope="module")
def judge(judge_cfg):
    return get_judge(judge_cfg)


def test_judge_is_far_above_chance_on_held_out_digits(judge):
    assert judge.info["n_fit"] == 6000 and judge.info["n_holdout"] == 4000
    assert judge.info["holdout_accuracy"] >= 0.93  # chance is 0.10
    assert judge.info["real"]["cond_acc"] >= 0.93
    assert judge.ceilings["real_score"] > 7.5  # confident and balanced on real digits (10 at most)


def test_real_digits_judged_against_the_reference(judge, mnist_dir):
    images, labels = load_data(str(mnist_dir), Split.test)
    real = judge.evaluate(to_uint8(images[:2000]), requested=labels[:2000])
    assert real["cond_acc"] > 0.93 and real["score"] > 7.5
    assert real["precision"] > 0.8 and real["recall"] > 0.8
    noise = np.random.default_rng(0).integers(0, 256, (2000, 28, 28), dtype=np.uint8)
    judged_noise = judge.evaluate(noise)
    assert judged_noise["fid"] > 10 * real["fid"] and judged_noise["precision"] < 0.5 * real["precision"]


def test_cas_of_real_digits_is_near_the_judges_accuracy(judge, judge_cfg):
    (images, labels), _ = judge_data(judge_cfg.data, judge_cfg.judge.holdout, judge_cfg.judge.seed)
    cas = judge.classification_accuracy_score(images[:2000], labels[:2000])
    assert cas == pytest.approx(judge.info["holdout_accuracy"], abs=0.05)
    # trained on the whole fit share (6,000 digits) for judge.cas_epochs: about the judge's own accuracy
    assert judge.ceilings["real_cas"] == pytest.approx(judge.info["holdout_accuracy"], abs=0.05)


def test_cas_of_shuffled_labels_is_near_chance(judge, judge_cfg):
    (images, labels), _ = judge_data(judge_cfg.data, judge_cfg.judge.holdout, judge_cfg.judge.seed)
    shuffled = np.random.default_rng(0).permutation(labels[:1000])
    assert judge.classification_accuracy_score(images[:1000], shuffled) < 0.3


def test_intra_class_fid_of_real_digits_with_their_own_and_swapped_classes(judge):
    matched = judge.info["real"]["intra_fid"]  # the ceiling half against the reference, class by class
    swapped = judge.evaluate(judge.ceiling_images, requested=(judge.ceiling_labels + 1) % 10)
    assert matched < 0.02 * swapped["intra_fid"]
    assert swapped["fid"] == pytest.approx(judge.info["real"]["fid"], rel=1e-3)  # the same images


def test_judge_is_cached_and_logged_once(judge, judge_cfg, mlflow_uri, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the cached judge was retrained")

    monkeypatch.setattr(judge_module, "train_judge", no_training)
    again = get_judge(judge_cfg)
    assert again.info["key"] == judge.info["key"]
    assert again.info["mlflow_run_id"] == judge.info["mlflow_run_id"]
    np.testing.assert_array_equal(again.reference, judge.reference)
    np.testing.assert_array_equal(again.ceiling_images, judge.ceiling_images)
    run = MlflowClient(mlflow_uri).get_run(judge.info["mlflow_run_id"])
    assert run.data.tags["gan_lab.kind"] == "judge"
    assert run.data.metrics["holdout_accuracy"] == pytest.approx(judge.info["holdout_accuracy"])
    assert {f"real_{name}" for name in SCALARS | CONDITIONAL | PIXELS} <= set(run.data.metrics)
    assert again.validation.info["mlflow_run_id"] == judge.validation.info["mlflow_run_id"]
    validation_run = MlflowClient(mlflow_uri).get_run(judge.validation.info["mlflow_run_id"])
    assert validation_run.data.params["role"] == "validation"
    assert validation_run.data.metrics["real_fid"] == pytest.approx(judge.ceilings["real_val_fid"])


def test_validation_judge_is_another_classifier_trained_on_another_share(judge, judge_cfg):
    validation = judge.validation
    assert validation.info["role"] == "validation" and validation.info["key"] != judge.info["key"]
    assert validation.info["architecture"] != judge.info["architecture"]
    assert validation.info["seed"] == judge_cfg.judge.validation_seed != judge.info["seed"]
    assert judge.reference.shape[1] == 128 and validation.reference.shape[1] == 64
    assert judge.model.count_params() != validation.model.count_params()

    def rows(images):
        return {image.tobytes() for image in images}

    (fit, _), (held, _) = judge_data(judge_cfg.data, judge_cfg.judge.holdout, judge_cfg.judge.seed)
    (val_fit, _), (val_held, _) = judge_data(judge_cfg.data, judge_cfg.judge.holdout, judge_cfg.judge.seed,
                                             role="validation")
    assert len(val_fit) == len(fit) and len(val_held) == len(held)
    assert not rows(held) & rows(val_held)  # their references and ceilings share no image
    assert rows(held) <= rows(val_fit)  # it learnt from every image the judge held out
    assert validation.info["holdout_accuracy"] >= 0.9  # 2 epochs here; 10 by default


def test_both_judges_and_the_pixels_score_real_digits_near_their_ceilings(judge):
    real = judge.evaluate(judge.ceiling_images, requested=judge.ceiling_labels)
    ceilings = judge.ceilings
    assert {f"real_{name}" for name in VALIDATION | PIXELS} <= set(ceilings)
    for name in ("score", "fid", "precision", "recall", "ink_ks", "pixel_coverage"):
        assert real[name] == pytest.approx(ceilings[f"real_{name}"])  # the ceiling images themselves
    # the validation judge learnt from these images, so they score at or above its ceilings
    assert real["val_precision"] > 0.9 * ceilings["real_val_precision"]
    assert real["val_recall"] > 0.9 * ceilings["real_val_recall"]
    assert real["val_cond_acc"] > 0.93 and len(real["val_per_class_recall"]) == 10


def test_the_reference_images_pixel_side_is_computed_once_per_judge(judge, monkeypatch):
    fresh, calls = dataclasses.replace(judge), []  # as loaded from the cache: nothing computed yet
    summarise = pixels.reference
    monkeypatch.setattr(pixels, "reference", lambda *args: calls.append(args) or summarise(*args))
    images, labels = judge.ceiling_images[:300], judge.ceiling_labels[:300]
    first, second = (fresh.evaluate(images, requested=labels) for _ in range(2))
    assert len(calls) == 1
    direct = pixels.diagnostics(images, summarise(judge.reference_images, judge.reference_labels), labels)
    for name in ("ink_ks", "stroke_ks", "pixel_coverage", "class_ink_ks", "class_stroke_ks"):
        assert first[name] == second[name] == direct[name]


def test_a_collapsed_generator_is_caught_by_both_judges_and_the_pixels(judge):
    collapsed = np.repeat(judge.ceiling_images[:1], 2000, axis=0)
    judged = judge.evaluate(collapsed, requested=np.resize(judge.ceiling_labels[:1], 2000))
    ceilings = judge.ceilings
    assert judged["recall"] < 0.05 and judged["val_recall"] < 0.05
    assert judged["fid"] > 10 * ceilings["real_fid"] and judged["val_fid"] > 10 * ceilings["real_val_fid"]
    assert judged["pixel_coverage"] < 0.05 and judged["ink_ks"] > 0.5


def test_validation_judge_off(judge_cfg, judge):
    cfg = judge_cfg.copy()
    cfg.judge.validation = False
    alone = get_judge(cfg)
    assert alone.validation is None and alone.info["key"] == judge.info["key"]
    assert not any(name.startswith(("val_", "real_val_")) for name in {**alone.evaluate(alone.ceiling_images[:500]),
                                                                     **alone.ceilings})


def test_changed_settings_change_the_key(judge_cfg):
    fit, held = judge_data(judge_cfg.data, judge_cfg.judge.holdout, judge_cfg.judge.seed)
    digits = tuple("0123456789")
    key = judge_key(judge_cfg.judge, fit, held, "mnist", digits)
    changed = judge_cfg.copy()
    changed.judge.epochs = 3
    assert judge_key(changed.judge, fit, held, "mnist", digits) != key
    fit2, held2 = judge_data(judge_cfg.data, judge_cfg.judge.holdout, seed=1)
    assert judge_key(judge_cfg.judge, fit2, held2, "mnist", digits) != key


@pytest.fixture(scope="module")
def trained_runs(tiny_train_cfg, tmp_path_factory):
    return {
        model: train(tiny_train_cfg(f"model={model}", "mlflow.experiment=judged"), output_dir=tmp_path_factory.mktemp(model))
        for model in ("dcgan", "cgan")
    }


@pytest.mark.parametrize("model", ["dcgan", "cgan"])
def test_training_run_logs_judge_metrics_and_figures(trained_runs, mlflow_uri, model):
    client = MlflowClient(mlflow_uri)
    run = client.get_run(trained_runs[model])
    judged = SCALARS | PIXELS | VALIDATION
    if model == "cgan":
        judged |= CONDITIONAL | CONDITIONAL_PIXELS_AND_VALIDATION
    expected = judged | {f"real_{name}" for name in judged}
    assert expected <= set(run.data.metrics)
    assert ("cas" in run.data.metrics) == (model == "cgan")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == [1]
    assert all(np.isfinite(run.data.metrics[name]) for name in expected)
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any(p.startswith("images/label_histogram") for p in images)
    assert any(p.startswith("images/confusion_matrix") for p in images) == (model == "cgan")
    record = json.loads(open(client.download_artifacts(run.info.run_id, "judge/step_0001.json")).read())
    assert sum(record["counts"]) == 300 and record["real_score"] == run.data.metrics["real_score"]
    assert ("confusion" in record) == (model == "cgan")
    assert ("val_per_class_recall" in record) == ("per_class_ink_ks" in record) == (model == "cgan")
    assert run.data.tags["judge_run_id"] and run.data.tags["val_judge_run_id"] != run.data.tags["judge_run_id"]


def test_evaluate_run_logs_into_it(trained_runs, mlflow_uri, judge_overrides, capsys):
    run_id = trained_runs["cgan"]
    assert evaluate_main([f"run_id={run_id}", "n=200", f"mlflow.tracking_uri={mlflow_uri}", *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert 0 <= printed["cond_acc"] <= 1 and sum(printed["counts"]) == 200 and "real_fid" in printed
    assert 0 <= printed["cas"] <= 1 and "real_cas" in printed
    history = MlflowClient(mlflow_uri).get_metric_history(run_id, "cond_acc")
    assert [m.step for m in history] == [1, 1] and history[-1].value == pytest.approx(printed["cond_acc"])


def test_evaluate_exported_samples(trained_runs, mlflow_uri, judge_overrides, mnist_dir, tmp_path, capsys):
    npz = generate(GenerateArgs(run_id=trained_runs["cgan"], n=100, out=str(tmp_path)), tracking_uri=mlflow_uri)
    args = [f"images={npz}", f"data.path={mnist_dir}", "data.split=test", f"mlflow.tracking_uri={mlflow_uri}"]
    assert evaluate_main([*args, *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert SCALARS | {"cond_acc", "real_score", "real_cond_acc"} <= set(printed)
    assert sum(printed["counts"]) == 100


@pytest.mark.parametrize(("layout", "assumed"), [("uint8 N x 28 x 28", "uint8 0-255"),
                                               ("float 0-1 N x 28 x 28 x 1", "float 0-1"),
                                               ("float -1-1 N x 784", "float -1-1")])
def test_evaluate_accepts_the_usual_image_layouts(judge, judge_overrides, mnist_dir, mlflow_uri, tmp_path, capsys,
                                                  layout, assumed):
    """The same real digits in three layouts: the same figures, the range it assumed, JSON alone on stdout."""
    images, labels = load_data(str(mnist_dir), Split.test)
    digits = to_uint8(images[:500])
    arrays = {"uint8 N x 28 x 28": digits, "float 0-1 N x 28 x 28 x 1": (digits / 255.0)[..., None],
              "float -1-1 N x 784": (digits / 127.5 - 1.0).reshape(500, 784)}
    np.savez(tmp_path / "digits.npz", images=arrays[layout], labels=labels[:500])
    args = [f"images={tmp_path / 'digits.npz'}", f"data.path={mnist_dir}", "data.split=test", f"mlflow.tracking_uri={mlflow_uri}"]
    assert evaluate_main([*args, *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)  # nothing but the JSON object
    assert printed["assumed_range"] == assumed
    expected = judge.evaluate(digits, requested=labels[:500])
    for name in ("score", "fid", "cond_acc"):
        assert printed[name] == pytest.approx(expected[name], rel=1e-3), name
    assert printed["score"] > 7


def test_evaluate_bad_input(tmp_path, capsys):
    np.savez(tmp_path / "counts.npz", images=np.zeros((3, 28, 28), np.int32))
    np.savez(tmp_path / "bytes_as_floats.npz", images=np.full((3, 28, 28), 255.0, np.float32))
    np.savez(tmp_path / "large.npz", images=np.zeros((3, 32, 32), np.uint8))
    cases = [
        ([], "give one of run_id=<MLflow run id>, model_uri=models:/<name>@<alias> or images=<file.npz>"),
        (["images=a.npz", "run_id=b"], "give one of"),
        ([f"images={tmp_path / 'missing.npz'}"], "not an .npz with an 'images' array"),
        ([f"images={tmp_path / 'counts.npz'}"], "'images' must be uint8 (0-255) or float (0-1 or -1-1), got int32"),
        ([f"images={tmp_path / 'bytes_as_floats.npz'}"], "float images must lie in 0-1 or -1-1, found 255 to 255"),
        ([f"images={tmp_path / 'large.npz'}"], "must be N x 28 x 28, N x 28 x 28 x 1 or N x 784, got (3, 32, 32)"),
        (["images=x.npz", "n=0"], "n=0: must be >= 1"),
        (["images=x.npz", "samples=3"], "samples: no such key; did you mean judge.samples? valid keys: run_id, model_uri, images, n"),
        (["images=x.npz", "judge.sample=3"], "judge.sample: no such key; did you mean samples?"),
    ]
    for argv, message in cases:
        assert evaluate_main(argv) == 2, argv
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == "", argv


def test_sampling_options_are_logged_beside_the_plain_figures(trained_runs, mlflow_uri, judge_overrides, capsys):
    run_id = trained_runs["dcgan"]
    argv = [f"run_id={run_id}", "n=300", "truncation=0.8", "rejection=50", f"mlflow.tracking_uri={mlflow_uri}"]
    assert evaluate_main([*argv, *judge_overrides]) == 0
    printed = json.loads(capsys.readouterr().out)
    prefix = "truncation_0.8_drs_50"
    assert {"score", "fid", f"{prefix}/score", f"{prefix}/fid", f"{prefix}/acceptance_rate"} <= set(printed)
    assert 0 < printed[f"{prefix}/acceptance_rate"] < 1 and sum(printed[f"{prefix}/counts"]) == 300
    metrics = MlflowClient(mlflow_uri).get_run(run_id).data.metrics
    assert metrics["score"] == pytest.approx(printed["score"])  # the plain figure stays the plain one
    assert metrics[f"{prefix}/score"] == pytest.approx(printed[f"{prefix}/score"])


def test_generate_with_sampling_options_is_reproducible(trained_runs, mlflow_uri, tmp_path):
    def samples(folder: str, **options) -> bytes:
        args = GenerateArgs(run_id=trained_runs["cgan"], n=40, out=str(tmp_path / folder), labels=[3, 5], **options)
        return generate(args, seed=1, tracking_uri=mlflow_uri).read_bytes()

    plain, truncated = samples("plain"), samples("t", truncation=0.5)
    rejected = samples("r", rejection=50.0)
    assert truncated != plain and rejected != plain and samples("r2", rejection=50.0) == rejected
    with np.load(tmp_path / "r" / "samples.npz") as data:
        assert data["images"].shape == (40, 28, 28) and set(data["labels"].tolist()) == {3, 5}
