"""MNIST loading: IDX parsing, scaling, and the errors a user sees for bad files."""

import gzip
import shutil

import numpy as np
import pytest

from gan_lab.config import Split
from gan_lab.data import DataError, load_data, parse_idx, scale_images


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trips_images_and_labels():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1, 9], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images), "x"), images)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels), "y"), labels)


def test_parse_idx_rejects_bad_magic_and_short_payload():
    raw = idx_bytes(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(DataError, match="magic number 1234"):
        parse_idx((1234).to_bytes(4, "big") + raw[4:], "bad.idx")
    with pytest.raises(DataError, match=r"short.idx: 19 bytes, but its header \(2, 2, 2\) needs 24"):
        parse_idx(raw[:-5], "short.idx")


def test_scaling_maps_uint8_to_minus_one_one():
    scaled = scale_images(np.array([[[0, 255], [128, 64]]], np.uint8))
    assert scaled.shape == (1, 2, 2, 1) and scaled.dtype == np.float32
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    assert scaled[0, 1, 0, 0] == pytest.approx(128 / 127.5 - 1, abs=1e-6)


def test_real_test_split(mnist_dir):
    images, labels = load_data(str(mnist_dir), Split.test)
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert labels.dtype == np.int32 and labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_env_var_points_at_local_files(mnist_dir, monkeypatch):
    monkeypatch.setenv("GAN_LAB_DATA_DIR", str(mnist_dir))
    images, _ = load_data(None, Split.test)
    assert len(images) == 10000


@pytest.fixture
def data_copy(mnist_dir, tmp_path):
    for f in mnist_dir.glob("t10k-*.gz"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_missing_file_names_file_and_source(data_copy):
    (data_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing MNIST file .*t10k-labels-idx1-ubyte.gz: download it from https://"):
        load_data(str(data_copy), Split.test)


def test_train_split_missing_locally(data_copy):
    with pytest.raises(DataError, match="missing MNIST file .*train-images-idx3-ubyte.gz"):
        load_data(str(data_copy), Split.train)


def test_truncated_file(data_copy):
    path = data_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is truncated \(1000 of 1648877 bytes\)"):
        load_data(str(data_copy), Split.test)


def test_flipped_byte_fails_checksum(data_copy):
    path = data_copy / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[5000] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz fails its checksum \(md5 [0-9a-f]{32}, canonical 9fb6"):
        load_data(str(data_copy), Split.test)


def test_unverified_own_data_still_gets_structural_checks(tmp_path):
    images = np.full((3, 28, 28), 255, np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([1, 2], np.uint8))))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        load_data(str(tmp_path), Split.test, verify=False)
    with pytest.raises(DataError, match="is truncated"):  # canonical checks reject it
        load_data(str(tmp_path), Split.test, verify=True)


def test_npz_source(tmp_path):
    x = np.zeros((4, 28, 28), np.uint8)
    np.savez(tmp_path / "own.npz", x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2))
    with pytest.raises(DataError, match="fails its checksum .*canonical Keras mnist.npz"):
        load_data(str(tmp_path / "own.npz"), Split.test)
    images, labels = load_data(str(tmp_path / "own.npz"), Split.test, verify=False)
    assert images.shape == (2, 28, 28, 1) and labels.tolist() == [0, 1]


def test_path_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="neither a folder of MNIST IDX .gz files nor an existing .npz"):
        load_data(str(tmp_path / "nowhere"), Split.test)
