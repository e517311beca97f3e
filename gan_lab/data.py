"""MNIST loading (Keras' checksummed download, or local IDX .gz files / an .npz) and the training
pipeline over it (``make_dataset``).

``load_mnist`` returns images as float32 (N, 28, 28, 1) in [-1, 1] and int32 labels.
Local files are checked against the canonical sizes and MD5 sums, so a truncated, corrupt
or missing file is named in the error together with how to get a good copy.
"""

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from gan_lab.config import Split

ENV_VAR = "GAN_LAB_DATA_DIR"
SOURCE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

# split -> (images file, labels file); file -> (bytes, md5) of the canonical distribution
IDX_FILES = {
    Split.train: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    Split.test: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CANONICAL = {
    "train-images-idx3-ubyte.gz": (9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": (28881, "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": (1648877, "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": (4542, "ec29112dd5afa0611ce80d1b7f02629c"),
}
IDX_MAGIC = {2051: 3, 2049: 1}  # magic number -> number of dimensions (images, labels)


class DataError(RuntimeError):
    """The data could not be loaded; the message says which file and how to fix it."""


def load_mnist(path: str | None = None, split: Split = Split.train, verify: bool = True):
    """(images, labels) of one split from ``path`` or $GAN_LAB_DATA_DIR, else Keras' download."""
    path = path or os.environ.get(ENV_VAR) or None
    if path is None:
        x, y = _keras_download(split)
    else:
        source = Path(path).expanduser().resolve()
        if source.is_dir():
            x, y = _read_idx_split(source, split, verify)
        elif source.is_file() and source.suffix == ".npz":
            x, y = _read_npz(source, split, verify)
        else:
            raise DataError(
                f"data.path {path!r} ({source}) is neither a folder of MNIST IDX .gz files nor an "
                f"existing .npz file; point data.path (or ${ENV_VAR}) at one."
            )
    return scale_images(x), y.astype(np.int32)


def scale_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [-1, 1]."""
    return (x.astype(np.float32) / 127.5 - 1.0)[..., None]


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Decode an (uncompressed) IDX file: big-endian magic, dimension sizes, uint8 payload."""
    if len(raw) < 8:
        raise DataError(f"{name}: only {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in IDX_MAGIC:
        raise DataError(f"{name}: IDX magic number {magic}, expected 2051 (images) or 2049 (labels)")
    ndim = IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{name}: {len(raw)} bytes, but its header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _how_to_get(name: str) -> str:
    return f"download it from {SOURCE_URL}{name}"


def _check_file(file: Path) -> None:
    """Raise DataError if ``file`` is missing or differs from the canonical size / MD5."""
    if not file.is_file():
        raise DataError(f"missing MNIST file {file}: {_how_to_get(file.name)}")
    size, md5 = CANONICAL[file.name]
    actual_size = file.stat().st_size
    if actual_size < size:
        raise DataError(
            f"{file} is truncated ({actual_size} of {size} bytes): {_how_to_get(file.name)}"
        )
    actual_md5 = hashlib.md5(file.read_bytes()).hexdigest()
    if actual_size != size or actual_md5 != md5:
        raise DataError(
            f"{file} fails its checksum (md5 {actual_md5}, canonical {md5}): the file is corrupt "
            f"or not the canonical MNIST; {_how_to_get(file.name)}, or set data.verify=false "
            "to use MNIST-like data of your own."
        )


def _read_idx_split(folder: Path, split: Split, verify: bool):
    arrays = []
    for name in IDX_FILES[split]:
        file = folder / name
        if verify:
            _check_file(file)
        elif not file.is_file():
            raise DataError(f"missing MNIST file {file}: {_how_to_get(name)}")
        try:
            raw = gzip.decompress(file.read_bytes())
        except (OSError, EOFError) as err:
            raise DataError(f"{file} is not a readable gzip file ({err}): {_how_to_get(name)}") from None
        arrays.append(parse_idx(raw, str(file)))
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels for split {split.name}")
    return images, labels


def _read_npz(file: Path, split: Split, verify: bool):
    if verify:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest != KERAS_NPZ_SHA256:
            raise DataError(
                f"{file} fails its checksum (sha256 {digest}, canonical Keras mnist.npz "
                f"{KERAS_NPZ_SHA256}); re-download it with keras.datasets.mnist.load_data(), "
                "or set data.verify=false to use an .npz of your own."
            )
    keys = (f"x_{split.name}", f"y_{split.name}")
    with np.load(file, allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DataError(f"{file} lacks arrays {missing}; an MNIST .npz holds x_train, y_train, x_test, y_test")
        return npz[keys[0]], npz[keys[1]]


def _keras_download(split: Split):
    """keras.datasets.mnist (checksummed, cached in ~/.keras/datasets)."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as err:  # any network or cache failure: say how to work offline
        raise DataError(
            f"could not download MNIST through Keras ({type(err).__name__}: {err}). Offline, point "
            f"data.path=<folder> or ${ENV_VAR}=<folder> at the four canonical IDX .gz files "
            "(or an mnist.npz)."
        ) from None
    return (x_train, y_train) if split == Split.train else (x_test, y_test)


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, start_step: int = 0):
    """Endless in-memory batches of (image, label) from training step ``start_step`` on.

    Each epoch is a permutation drawn from ``(seed, epoch)`` alone, its partial last batch
    dropped, so a resumed run sees the same batches as an uninterrupted one. Use with ``fit(...,
    steps_per_epoch=len(images) // batch_size)``; one iterator serves every epoch.
    """
    import tensorflow as tf  # here, so that importing this module (config errors, --help) stays light

    steps_per_epoch = len(images) // batch_size
    first_epoch, skip = divmod(start_step, steps_per_epoch)
    images, labels = tf.constant(images), tf.constant(labels)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(images)), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order[: steps_per_epoch * batch_size], [steps_per_epoch, batch_size]))

    return (
        tf.data.Dataset.range(first_epoch, 2**62)
        .flat_map(epoch_batches)
        .skip(skip)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
    )
