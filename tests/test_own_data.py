"""Own images as datasets (data=folder, data=npz): loading and conversion, the errors for bad input, a judge of
the data's own classes keyed by their content, and training on labelled and unlabelled data. The folders are
built here from the real MNIST test split."""

import json
import re
import shutil

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from gan_lab import figures
from gan_lab.config import ConfigError, Split, check_overrides
from gan_lab.data import DataError, load, load_data
from gan_lab.figures import to_uint8
from gan_lab.judge import get_judge, judge_data, judge_key
from gan_lab.trainer import train

DIGITS = {"zero": 0, "three": 3, "seven": 7}  # class folder -> digit; sorted by name: seven, three, zero
CLASSES = ("seven", "three", "zero")
PER_CLASS, CONVERTED = 40, 4  # images per class folder; the first CONVERTED of each saved as RGB 32x32 JPEG


@pytest.fixture(scope="module")
def digits(mnist_dir) -> dict[int, np.ndarray]:
    images, labels = load_data(str(mnist_dir), Split.test)
    return {digit: to_uint8(images[labels == digit][:PER_CLASS]) for digit in DIGITS.values()}


def write_folder(root, digits) -> None:
    """One folder per class: PNGs as MNIST has them, but the first few RGB 32x32 JPEGs."""
    for name, digit in DIGITS.items():
        (root / name).mkdir(parents=True)
        for i, image in enumerate(digits[digit]):
            if i < CONVERTED:
                Image.fromarray(image).convert("RGB").resize((32, 32)).save(root / name / f"{i:03d}.jpg", quality=95)
            else:
                Image.fromarray(image).save(root / name / f"{i:03d}.png")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("labelled")
    write_folder(root, digits)
    return root


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("unlabelled")
    for i, image in enumerate(np.concatenate(list(digits.values()))[:96]):
        Image.fromarray(image).save(root / f"{i:03d}.png")
    return root


def folder_cfg(path, *overrides):
    return check_overrides(["data=folder", f"data.path={path}", *overrides])


def test_folder_classes_labels_and_one_conversion_line(labelled, digits, capsys):
    data = load(folder_cfg(labelled).data)
    out = capsys.readouterr().out
    assert out == f"data.path={labelled}: converted {3 * CONVERTED} of {3 * PER_CLASS} images to 28x28 grayscale\n"
    assert data.images.shape == (3 * PER_CLASS, 28, 28, 1) and data.images.dtype == np.float32
    assert data.classes == CLASSES and data.split is None
    assert data.labels.dtype == np.int32 and data.labels.tolist() == [0] * 40 + [1] * 40 + [2] * 40
    seven = to_uint8(data.images[data.labels == 0])
    np.testing.assert_array_equal(seven[CONVERTED:], digits[7][CONVERTED:])  # 28x28 grayscale PNGs as they are
    difference = np.abs(seven[:CONVERTED].astype(int) - digits[7][:CONVERTED]).mean()
    assert difference < 12  # the converted JPEGs: the same digits, give or take the resampling


def test_flat_folder_is_unlabelled(unlabelled, capsys):
    data = load(folder_cfg(unlabelled).data)
    assert data.images.shape == (96, 28, 28, 1) and data.labels is None and data.classes == ()
    assert capsys.readouterr().out == ""  # nothing to convert


def test_npz_labels_classes_and_defaults(tmp_path, digits):
    images = np.concatenate([digits[0][:5], digits[3][:5]])
    np.savez(tmp_path / "named.npz", images=images, labels=np.repeat([1, 0], 5), classes=np.array(["three", "zero"]))
    np.savez(tmp_path / "numbered.npz", images=images, labels=np.repeat([0, 1], 5).astype(np.uint8))
    np.savez(tmp_path / "bare.npz", images=images)
    named = load(check_overrides(["data=npz", f"data.path={tmp_path / 'named.npz'}"]).data)
    assert named.classes == ("three", "zero") and named.labels.tolist() == [1] * 5 + [0] * 5
    np.testing.assert_array_equal(to_uint8(named.images), images)
    numbered = load(check_overrides(["data=npz", f"data.path={tmp_path / 'numbered.npz'}"]).data)
    assert numbered.classes == ("0", "1") and numbered.labels.dtype == np.int32
    bare = load(check_overrides(["data=npz", f"data.path={tmp_path / 'bare.npz'}"]).data)
    assert bare.labels is None and bare.classes == () and len(bare.images) == 10


def test_own_data_needs_a_path():
    with pytest.raises(ConfigError, match="data=folder needs data.path: point it at a folder of PNG or JPEG images"):
        check_overrides(["data=folder"])
    with pytest.raises(ConfigError, match=r"data.path=/no/such.npz: no such file or folder; point it at an .npz"):
        check_overrides(["data=npz", "data.path=/no/such.npz"])


def bad_folder(root, case: str):
    """A small class folder layout broken in one way; returns (data.path, the file or folder the error names)."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("L", (28, 28), 128).save(root / name / "1.png")
    png = (root / "a" / "1.png").read_bytes()
    if case == "empty folder":
        for name in ("a", "b"):
            shutil.rmtree(root / name)
        return root, root
    if case == "corrupt image":
        (root / "b" / "2.png").write_bytes(b"not an image at all")
        return root, root / "b" / "2.png"
    if case == "truncated image":
        (root / "b" / "2.png").write_bytes(png[: len(png) // 2])
        return root, root / "b" / "2.png"
    if case == "class folder without images":
        (root / "c").mkdir()
        return root, root / "c"
    if case == "not an image":
        (root / "a" / "notes.txt").write_text("x")
        return root, root / "a" / "notes.txt"
    if case == "image beside class folders":
        (root / "loose.png").write_bytes(png)
        return root, root / "loose.png"
    raise ValueError(case)


@pytest.mark.parametrize(("case", "fix"), [
    ("empty folder", "holds no images: put PNG or JPEG images in it, one subfolder per class"),
    ("corrupt image", "not a readable PNG or JPEG image .*replace it with a good copy, or remove it"),
    ("truncated image", "not a readable PNG or JPEG image .*replace it with a good copy, or remove it"),
    ("class folder without images", "holds no images: add PNG or JPEG images of 'c' to it, or remove it"),
    ("not an image", r"not a PNG or JPEG image \(.png, .jpg, .jpeg\); convert it, or move it out"),
    ("image beside class folders", "every image belongs in one of them; move this file into its class folder"),
])
def test_bad_folder_names_the_file_and_the_fix(tmp_path, case, fix):
    path, named = bad_folder(tmp_path / "images", case)
    with pytest.raises(DataError, match=f"{re.escape(str(named))}.*{fix}"):
        load(folder_cfg(path).data)


GOOD = np.zeros((4, 28, 28), np.uint8)


@pytest.mark.parametrize(("arrays", "fix"), [
    ({"images": GOOD, "labels": np.array([0, 1, 2, 3]), "classes": np.array(["a", "b"])},
     r"labels must lie in 0..1 \('classes' names 2\), found 0..3; renumber the labels, or give one name per label"),
    ({"images": GOOD, "labels": np.array([-1, 0, 1, 1])}, r"labels must lie in 0..1 .*found -1..1; renumber the labels"),
    ({"images": GOOD, "labels": np.array([0, 1, 0])}, r"4 images but 'labels' of shape \(3,\); one label per image"),
    ({"images": GOOD.astype(np.float32), "labels": np.arange(4)}, "'images' must be uint8 N x 28 x 28 .*got float32"),
    ({"images": np.zeros((4, 32, 32), np.uint8)}, r"'images' must be uint8 N x 28 x 28 .*\(4, 32, 32\); convert them"),
    ({"images": GOOD, "labels": np.array([0, 0, 1, 1]), "classes": np.array(["a", "b", "c"])},
     "class 'c' \\(label 2\\) has no images; .* or drop its name from 'classes'"),
    ({"images": GOOD, "labels": np.array([0, 0.5, 1, 1])}, "'labels' must be integers 0..K-1, got float64"),
    ({"images": GOOD, "classes": np.array(["a"])}, "names 'classes' but has no 'labels'; add a label per image"),
    ({"x_train": GOOD}, r"has no 'images' array \(it holds x_train\) \(Keras' mnist.npz: data=mnist"),
])
def test_bad_npz_names_the_file_and_the_fix(tmp_path, arrays, fix):
    np.savez(tmp_path / "own.npz", **arrays)
    with pytest.raises(DataError, match=f"{re.escape(str(tmp_path / 'own.npz'))}.*{fix}"):
        load(check_overrides(["data=npz", f"data.path={tmp_path / 'own.npz'}"]).data)


def test_unreadable_npz(tmp_path):
    (tmp_path / "own.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"own.npz: not a readable .npz of arrays .*write it with np.savez\(path, images="):
        load(check_overrides(["data=npz", f"data.path={tmp_path / 'own.npz'}"]).data)


@pytest.fixture(scope="module")
def folder_judge(labelled, judge_overrides, mlflow_uri):
    return get_judge(folder_cfg(labelled, *judge_overrides, f"mlflow.tracking_uri={mlflow_uri}"))


def test_judge_of_a_folder_has_its_classes(folder_judge, monkeypatch):
    probs, _ = folder_judge.outputs(np.zeros((2, 28, 28), np.uint8))
    assert probs.shape == (2, 3)
    info = folder_judge.info
    assert info["classes"] == list(CLASSES) and info["dataset"] == "folder"
    assert "dense3-softmax" in info["architecture"] and (info["n_fit"], info["n_holdout"]) == (72, 48)
    assert len(info["real"]["counts"]) == 3 and 0 <= info["real"]["cond_acc"] <= 1
    assert {"real_score", "real_fid", "real_cond_acc"} <= set(folder_judge.ceilings)
    drawn = []
    monkeypatch.setattr(figures, "_rgb", lambda fig: drawn.append(fig) or np.zeros((1, 1, 3), np.uint8))
    figures.histogram_figure(info["real"]["counts"], classes=folder_judge.classes)
    axes = drawn[0].axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == list(CLASSES)
    assert axes.get_title() == "Label histogram (3 classes)"
    figures._pyplot().close("all")


def test_judge_key_follows_the_folders_content(labelled, tmp_path, compose_cfg):
    def key(folder) -> str:
        cfg = folder_cfg(folder)
        data = load(cfg.data)
        return judge_key(cfg.judge, *judge_data(cfg.data, cfg.judge.holdout, cfg.judge.seed, data), "folder",
                         data.classes)

    copy = tmp_path / "copy"
    shutil.copytree(labelled, copy)
    original = key(copy)
    assert key(copy) == original
    (copy / "zero").rename(copy / "zilch")  # the same images and labels, another class name
    renamed = key(copy)
    assert renamed != original
    Image.new("L", (28, 28), 0).save(copy / "zilch" / "010.png")  # one image edited
    assert key(copy) not in (original, renamed)


def test_judge_needs_labels_and_enough_images_per_class(unlabelled, labelled, tmp_path):
    with pytest.raises(DataError, match=f"data.path={unlabelled} is unlabelled .*give its images labels of two classes"):
        get_judge(folder_cfg(unlabelled))
    few = tmp_path / "few"
    for name in CLASSES:
        (few / name).mkdir(parents=True)
        for file in sorted((labelled / name).glob("*.png"))[:8]:
            shutil.copy(file, few / name)
    with pytest.raises(DataError, match="class '.*' has 8 images, too few for the judge: it needs more than judge.k=3 "
                                        ".* Add images .*or train without the judge: judge.enabled=false"):
        get_judge(folder_cfg(few))


def test_unlabelled_folder_trains_without_a_judge(tiny_train_cfg, unlabelled, mlflow_uri, tmp_path, capsys):
    run_id = train(tiny_train_cfg("data=folder", f"data.path={unlabelled}", "model=dcgan"), output_dir=tmp_path / "run")
    assert f"Judge skipped: data.path={unlabelled} is unlabelled and the judge is a classifier of its classes; the " \
           "run trains and logs without judge metrics" in capsys.readouterr().out
    run = MlflowClient(mlflow_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["train_steps"] == 3
    assert not {"score", "fid", "real_score"} & set(run.data.metrics) and "judge_run_id" not in run.data.tags
    assert run.data.params["data.name"] == "folder"


@pytest.mark.parametrize(("folder", "overrides", "message"), [
    ("unlabelled", [], "model=cgan is conditional .* but data.path=.* is unlabelled: give the images labels .*, or "
                       "train an unconditional model \\(model=dcgan\\)"),
    ("labelled", [], "model.num_classes=10: data.path=.* has 3 classes \\(seven, three, zero\\); set model.num_classes=3"),
])
def test_conditional_model_refuses_data_it_cannot_condition_on(tiny_train_cfg, request, tmp_path, folder, overrides,
                                                               message):
    store = tmp_path / "mlflow.db"
    cfg = tiny_train_cfg("data=folder", f"data.path={request.getfixturevalue(folder)}", "model=cgan",
                         f"mlflow.tracking_uri=sqlite:///{store}", *overrides)
    with pytest.raises(ConfigError, match=message):
        train(cfg, output_dir=tmp_path / "run")
    assert not store.exists() and not (tmp_path / "run").exists()  # nothing logged, no run folder


def test_labelled_folder_run_is_judged_by_its_classes(tiny_train_cfg, labelled, folder_judge, mlflow_uri, tmp_path):
    cfg = tiny_train_cfg("data=folder", f"data.path={labelled}", "model=cgan", "model.num_classes=3", "train.grid_size=3")
    client = MlflowClient(mlflow_uri)
    run = client.get_run(train(cfg, output_dir=tmp_path / "run"))
    assert run.info.status == "FINISHED" and run.data.tags["judge_key"] == folder_judge.info["key"]
    assert {"score", "fid", "cond_acc", "real_score", "real_cond_acc"} <= set(run.data.metrics)
    record = json.loads(open(client.download_artifacts(run.info.run_id, "judge/step_0001.json")).read())
    assert record["classes"] == list(CLASSES) and len(record["counts"]) == 3 and sum(record["counts"]) == 300
    assert np.asarray(record["confusion"]).shape == (3, 3)
    assert run.data.metrics["real_score"] == pytest.approx(folder_judge.ceilings["real_score"])
