"""data=fashion_mnist: the same loader with Fashion-MNIST's own canonical files, a judge keyed by the
dataset, its class names on the figures. No copy of Fashion-MNIST is here: the tests write small IDX files
and, where the loader should accept them, make them canonical for the test."""

import dataclasses
import gzip
import hashlib
import re
import shutil

import numpy as np
import pytest

from gan_lab import figures
from gan_lab import judge as judge_module
from gan_lab.config import ConfigError, Split, check_overrides
from gan_lab.data import DATASETS, DataError, load_data
from gan_lab.judge import Judge, judge_key, log_judgement
from tests.test_data import idx_bytes

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    """(folder, images, labels): a test split of 20 made-up images in Fashion-MNIST's IDX files, entered in
    its canonical table for the test (the real entries stay for the other files)."""
    monkeypatch.delenv("GAN_LAB_FASHION_MNIST_DIR", raising=False)
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    images[0], images[1] = 0, 255
    labels = (np.arange(20) % 10).astype(np.uint8)
    canonical = dict(DATASETS["fashion_mnist"].canonical)
    for name, array in [("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)]:
        raw = gzip.compress(idx_bytes(array), mtime=0)
        (tmp_path / name).write_bytes(raw)
        canonical[name] = (len(raw), hashlib.md5(raw).hexdigest())
    monkeypatch.setitem(DATASETS, "fashion_mnist", dataclasses.replace(DATASETS["fashion_mnist"], canonical=canonical))
    return tmp_path, images, labels


def test_data_fashion_mnist_loads_local_idx_files(fashion):
    folder, images, labels = fashion
    cfg = check_overrides(["data=fashion_mnist", f"data.path={folder}", "data.split=test"])
    assert (cfg.data.name, cfg.data.verify) == ("fashion_mnist", True)
    x, y = load_data(cfg.data.path, cfg.data.split, cfg.data.verify, cfg.data.name)
    assert x.shape == (20, 28, 28, 1) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_allclose(x[..., 0], images / 127.5 - 1.0, atol=1e-6)
    assert y.dtype == np.int32 and y.tolist() == labels.tolist()
    with pytest.raises(DataError, match="is Fashion-MNIST's t10k-images-idx3-ubyte.gz, not MNIST's: .* data=fashion_mnist"):
        load_data(str(folder), Split.test, name="mnist")  # the same file names, per dataset checksums


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_corrupted_fashion_file_is_rejected(fashion, damage):
    folder = fashion[0]
    file = folder / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(file.read_bytes())
    size = len(raw)
    if damage == "flipped byte":
        raw[size // 2] ^= 0xFF
        expected = (rf"{re.escape(str(file))} fails its checksum \(md5 [0-9a-f]{{32}}, canonical [0-9a-f]{{32}}\): "
                    r"the file is corrupt or not the canonical Fashion-MNIST; ")
    else:
        raw = raw[: size // 2]
        expected = rf"{re.escape(str(file))} is truncated \({size // 2} of {size} bytes\): "
    file.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=expected + re.escape(f"download it from {KERAS_URL}{file.name}")):
        load_data(str(folder), Split.test, name="fashion_mnist")


def test_mnist_files_are_named_as_such_under_fashion_mnist(mnist_dir, tmp_path):
    """The file names are the same: MNIST's canonical files are recognised, and the fix named."""
    for file in mnist_dir.glob("t10k-*.gz"):
        shutil.copy(file, tmp_path / file.name)
    message = (r"t10k-images-idx3-ubyte.gz is MNIST's t10k-images-idx3-ubyte.gz, not Fashion-MNIST's: point data.path "
               r"\(or \$GAN_LAB_FASHION_MNIST_DIR\) at a folder of Fashion-MNIST files, or train on it with data=mnist")
    with pytest.raises(DataError, match=message):
        load_data(str(tmp_path), Split.test, name="fashion_mnist")


def test_fashion_npz_cannot_be_verified_so_needs_verify_false(tmp_path):
    x = np.zeros((4, 28, 28), np.uint8)
    np.savez(tmp_path / "fashion.npz", x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.array([9, 10]))
    with pytest.raises(DataError, match="no canonical Fashion-MNIST .npz to verify it against; .*data.verify=false"):
        load_data(str(tmp_path / "fashion.npz"), Split.test, name="fashion_mnist")
    images, labels = load_data(str(tmp_path / "fashion.npz"), Split.train, verify=False, name="fashion_mnist")
    assert images.shape == (4, 28, 28, 1) and labels.tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match=r"labels must be integers 0-9 \(Fashion-MNIST's classes\), found int64 9-10"):
        load_data(str(tmp_path / "fashion.npz"), Split.test, verify=False, name="fashion_mnist")


def test_keras_download_is_checked_like_local_files(fashion, monkeypatch):
    """Offline stand-in for keras.utils.get_file: each file of the split asked for with its canonical MD5."""
    import keras

    folder, images, _ = fashion
    asked = {}

    def cached(name, origin, file_hash, cache_subdir):
        asked[name] = (origin, file_hash, cache_subdir)
        return str(folder / name)

    monkeypatch.setattr(keras.utils, "get_file", cached)
    x, _ = load_data(None, Split.test, name="fashion_mnist")
    assert len(x) == len(images)
    canonical = DATASETS["fashion_mnist"].canonical
    assert asked == {name: (KERAS_URL + name, canonical[name][1], "datasets/fashion-mnist")
                     for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match=r"could not download Fashion-MNIST through Keras \(OSError: no network\)\. "
                                        r"Offline, point .*\$GAN_LAB_FASHION_MNIST_DIR=<folder>"):
        load_data(None, Split.test, name="fashion_mnist")


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ConfigError, match="data.name=cifar10: no such dataset; one of fashion_mnist, folder, mnist, npz"):
        check_overrides(["data.name=cifar10"])
    with pytest.raises(DataError, match="data.name=cifar10: no such dataset; one of mnist, fashion_mnist"):
        load_data("anywhere", Split.test, name="cifar10")


def test_every_data_preset_names_a_dataset_the_loader_knows(compose_cfg):
    from gan_lab.config import CONF_DIR
    from gan_lab.data import DATASETS, OWN_SOURCES

    presets = sorted(path.stem for path in (CONF_DIR / "data").glob("*.yaml"))
    assert presets == sorted([*DATASETS, *OWN_SOURCES]) == ["fashion_mnist", "folder", "mnist", "npz"]
    assert all(compose_cfg(f"data={name}").data.name == name for name in presets)


def test_judge_key_differs_by_dataset_for_the_same_arrays(compose_cfg):
    images = np.zeros((4, 28, 28, 1), np.float32)
    fit = held = (images, np.arange(4, dtype=np.int32))
    judge_cfg = compose_cfg().judge
    mnist, fashion = DATASETS["mnist"].classes, DATASETS["fashion_mnist"].classes
    assert judge_key(judge_cfg, fit, held, "mnist", mnist) != judge_key(judge_cfg, fit, held, "fashion_mnist", fashion)
    assert judge_key(judge_cfg, fit, held, "mnist", mnist) == judge_key(judge_cfg, fit, held, "mnist", mnist)


class RecordingClient:
    """MlflowClient's calls that log_judgement makes, recorded instead of stored."""

    images = []

    def log_metric(self, *args, **kwargs):
        pass

    def log_image(self, run_id, image, key, step):
        self.images.append(key)

    def log_dict(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("dataset, classes", [("fashion_mnist", FASHION_CLASSES), ("mnist", list("0123456789"))])
def test_judge_figures_name_the_datasets_classes(monkeypatch, dataset, classes):
    drawn = []
    monkeypatch.setattr(figures, "_rgb", lambda fig: drawn.append(fig) or np.zeros((1, 1, 3), np.uint8))
    monkeypatch.setattr(judge_module, "MlflowClient", RecordingClient)
    monkeypatch.setattr(RecordingClient, "images", [])
    judge = Judge(model=None, reference=None, reference_labels=None, reference_images=None, ceiling_images=None,
                  ceiling_labels=None,
                  info={"dataset": dataset, "classes": classes, "key": "k", "real": {"counts": [10] * 10}})
    log_judgement("run", judge, {"counts": list(range(10)), "confusion": np.eye(10, dtype=int).tolist()}, step=1)
    assert RecordingClient.images == ["label_histogram", "confusion_matrix"]
    histogram, confusion = (fig.axes[0] for fig in drawn)
    assert [t.get_text() for t in histogram.get_xticklabels()] == classes
    assert "digit" not in histogram.get_xlabel()
    assert [t.get_text() for t in confusion.get_xticklabels()] == classes
    assert [t.get_text() for t in confusion.get_yticklabels()] == classes
    figures._pyplot().close("all")


def test_sweep_histograms_name_each_jobs_classes(monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "_rgb", lambda fig: drawn.append(fig) or np.zeros((1, 1, 3), np.uint8))
    figures.histograms_side_by_side(["fashion job", "mnist job"], [[1] * 10, [2] * 10],
                                    [DATASETS["fashion_mnist"].classes, DATASETS["mnist"].classes])
    fashion_panel, mnist_panel = drawn[0].axes[:2]
    assert [t.get_text() for t in fashion_panel.get_xticklabels()] == FASHION_CLASSES
    assert [t.get_text() for t in mnist_panel.get_xticklabels()] == list("0123456789")
    figures._pyplot().close("all")
