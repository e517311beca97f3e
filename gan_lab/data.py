"""The data a config names (``load``): MNIST and Fashion-MNIST (Keras' checksummed download, or local IDX
.gz files / an .npz), or the user's own images (``OWN_SOURCES``), and the training pipeline over them
(``make_dataset``).

``load_data`` returns images as float32 (N, 28, 28, 1) in [-1, 1] and int32 labels of the dataset
named by ``data.name`` (``DATASETS``). Both datasets use the same four IDX file names, so each has its
own table of canonical sizes and MD5 sums; a truncated, corrupt, missing or other dataset's file is
named in the error together with how to get a good copy.

Verification (``data.verify=true``) is against the canonical files: the IDX .gz files of either
dataset, and for MNIST also Keras' ``mnist.npz``. Keras publishes no Fashion-MNIST .npz, so an .npz
given for it cannot be verified: that is an error unless ``data.verify=false``. Any source, verified
or not, must hold uint8 N x 28 x 28 images and as many labels, each one of the dataset's classes.

Own images have no splits and no canonical copy (data.split and data.verify do not apply): ``data=folder``
reads one subfolder of PNG/JPEG images per class (sorted by name; label = index), converting any image
that is not 28x28 grayscale; ``data=npz`` reads the arrays ``images``, ``labels`` and ``classes``. A flat
folder, or an .npz without ``labels``, is unlabelled: ``Data.labels`` is None and ``Data.classes`` empty.
"""

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gan_lab.config import Split

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

# split -> (images file, labels file), the same names for both datasets
IDX_FILES = {
    Split.train: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    Split.test: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_MAGIC = {2051: 3, 2049: 1}  # magic number -> number of dimensions (images, labels)

# data.name of the user's own images (conf/data/<name>.yaml) -> what data.path must point at
OWN_SOURCES = {
    "folder": "a folder of PNG or JPEG images, one subfolder per class (images alone: unlabelled)",
    "npz": "an .npz with arrays images (uint8 N x 28 x 28) and optionally labels (0..K-1) and classes (K names)",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_LAYOUT = "np.savez(path, images=<uint8 N x 28 x 28>, labels=<integers 0..K-1>, classes=<K names>)"


@dataclass(frozen=True)
class Dataset:
    name: str  # data.name
    title: str  # as people write it, for messages
    env_var: str  # its folder (or .npz) when data.path is unset
    source_url: str  # where each canonical file can be downloaded: <source_url><file name>
    canonical: dict[str, tuple[int, str]]  # IDX file -> (bytes, md5) of the canonical distribution
    classes: tuple[str, ...]  # label -> name, on the judge's figures
    keras_npz_sha256: str | None  # Keras' .npz of it (MNIST only), the one .npz that can be verified


DATASETS = {
    "mnist": Dataset(
        name="mnist", title="MNIST", env_var="GAN_LAB_DATA_DIR",
        source_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        canonical={
            "train-images-idx3-ubyte.gz": (9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train-labels-idx1-ubyte.gz": (28881, "d53e105ee54ea40749a09fcbcd1e9432"),
            "t10k-images-idx3-ubyte.gz": (1648877, "9fb629c4189551a2d022fa330f9573f3"),
            "t10k-labels-idx1-ubyte.gz": (4542, "ec29112dd5afa0611ce80d1b7f02629c"),
        },
        classes=tuple(str(digit) for digit in range(10)),
        keras_npz_sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    ),
    # zalandoresearch/fashion-mnist's files; Keras serves the same bytes (equal SHA-256) from KERAS_URL
    "fashion_mnist": Dataset(
        name="fashion_mnist", title="Fashion-MNIST", env_var="GAN_LAB_FASHION_MNIST_DIR",
        source_url=KERAS_URL,
        canonical={
            "train-images-idx3-ubyte.gz": (26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train-labels-idx1-ubyte.gz": (29515, "25c81989df183df01b3e8a0aad5dffbe"),
            "t10k-images-idx3-ubyte.gz": (4422102, "bef4ecab320f06d8554ea6380940ec79"),
            "t10k-labels-idx1-ubyte.gz": (5148, "bb300cfdad3c16e7a12a480ee83cd310"),
        },
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
        keras_npz_sha256=None,
    ),
}


class DataError(RuntimeError):
    """The data could not be loaded; the message says which file and how to fix it."""


@dataclass(frozen=True)
class Data:
    """The images a config's ``data`` names, ready to train on."""

    name: str  # data.name
    title: str  # how messages name it: "MNIST", "data.path=<folder>"
    images: np.ndarray  # float32 (N, 28, 28, 1) in [-1, 1]
    labels: np.ndarray | None  # int32 (N,), each an index into classes; None: unlabelled
    classes: tuple[str, ...]  # label -> name; empty when unlabelled
    split: Split | None  # the split loaded; None: own images, which have no splits


def get_dataset(name: str) -> Dataset:
    """The dataset ``data.name`` names; DataError listing the valid names if none."""
    if name not in DATASETS:
        raise DataError(f"data.name={name}: no such dataset; one of {', '.join(DATASETS)} (data=<name>)")
    return DATASETS[name]


def load(data_cfg: DictConfig, split: Split | None = None) -> Data:
    """The data of ``data_cfg`` (a config's ``data``): its split (or ``split``) of MNIST or Fashion-MNIST, or all
    of the user's own images (data=folder, data=npz)."""
    if data_cfg.name in OWN_SOURCES:
        title = f"data.path={data_cfg.path}"
        if data_cfg.path is None:
            raise DataError(f"data={data_cfg.name} needs data.path=<{OWN_SOURCES[data_cfg.name]}>")
        read = _read_folder if data_cfg.name == "folder" else _read_own_npz
        images, labels, classes = read(Path(data_cfg.path).expanduser(), title)
        return Data(data_cfg.name, title, scale_images(images), labels, classes, split=None)
    dataset = get_dataset(data_cfg.name)
    split = split or data_cfg.split
    images, labels = load_data(data_cfg.path, split, data_cfg.verify, data_cfg.name)
    return Data(dataset.name, dataset.title, images, labels, dataset.classes, split)


def load_data(path: str | None = None, split: Split = Split.train, verify: bool = True, name: str = "mnist"):
    """(images, labels) of one split of dataset ``name`` from ``path`` or its environment variable
    (``$GAN_LAB_DATA_DIR`` for MNIST, ``$GAN_LAB_FASHION_MNIST_DIR`` for Fashion-MNIST), else Keras' download."""
    dataset = get_dataset(name)
    path = path or os.environ.get(dataset.env_var) or None
    if path is None:
        x, y = _keras_download(dataset, split)
    else:
        source = Path(path).expanduser().resolve()
        if source.is_dir():
            x, y = _read_idx_split(source, split, verify, dataset)
        elif source.is_file() and source.suffix == ".npz":
            x, y = _read_npz(source, split, verify, dataset)
        else:
            raise DataError(
                f"data.path {path!r} ({source}) is neither a folder of {dataset.title} IDX .gz files nor an "
                f"existing .npz file; point data.path (or ${dataset.env_var}) at one."
            )
    _check_arrays(x, y, dataset, str(path or "Keras' download"))
    return scale_images(x), y.astype(np.int32)


def _check_arrays(images: np.ndarray, labels: np.ndarray, dataset: Dataset, source: str) -> None:
    """What every source must hold, verified or not: uint8 N x 28 x 28 images, N labels of the dataset's classes."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{source}: images must be uint8 N x 28 x 28, got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise DataError(f"{source}: {len(images)} images but {len(labels)} labels (shape {labels.shape}), one per image needed")
    if len(labels) and not (np.issubdtype(labels.dtype, np.integer) and 0 <= labels.min() and
                            labels.max() < len(dataset.classes)):
        raise DataError(f"{source}: labels must be integers 0-{len(dataset.classes) - 1} ({dataset.title}'s classes), "
                        f"found {labels.dtype} {labels.min()}-{labels.max()}")


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


def _how_to_get(dataset: Dataset, name: str) -> str:
    return f"download it from {dataset.source_url}{name}"


def _check_file(file: Path, content: bytes, dataset: Dataset) -> None:
    """Raise DataError if ``file`` (its ``content``) differs from the dataset's canonical size / MD5."""
    size, md5 = dataset.canonical[file.name]
    actual_size, actual_md5 = len(content), hashlib.md5(content).hexdigest()
    if (actual_size, actual_md5) == (size, md5):
        return
    other = next((d for d in DATASETS.values() if d.canonical[file.name] == (actual_size, actual_md5)), None)
    if other is not None:
        raise DataError(
            f"{file} is {other.title}'s {file.name}, not {dataset.title}'s: point data.path (or "
            f"${dataset.env_var}) at a folder of {dataset.title} files, or train on it with data={other.name}"
        )
    if actual_size < size:
        raise DataError(
            f"{file} is truncated ({actual_size} of {size} bytes): {_how_to_get(dataset, file.name)}"
        )
    raise DataError(
        f"{file} fails its checksum (md5 {actual_md5}, canonical {md5}): the file is corrupt "
        f"or not the canonical {dataset.title}; {_how_to_get(dataset, file.name)}, or set data.verify=false "
        f"to use {dataset.title}-like data of your own."
    )


def _read_idx_split(folder: Path, split: Split, verify: bool, dataset: Dataset):
    arrays = []
    for name in IDX_FILES[split]:
        file = folder / name
        if not file.is_file():
            raise DataError(f"missing {dataset.title} file {file}: {_how_to_get(dataset, name)}")
        content = file.read_bytes()  # read once: checked, then decompressed
        if verify:
            _check_file(file, content, dataset)
        try:
            raw = gzip.decompress(content)
        except (OSError, EOFError) as err:
            raise DataError(f"{file} is not a readable gzip file ({err}): {_how_to_get(dataset, name)}") from None
        arrays.append(parse_idx(raw, str(file)))
    return arrays


def _read_npz(file: Path, split: Split, verify: bool, dataset: Dataset):
    if verify and dataset.keras_npz_sha256 is None:
        raise DataError(
            f"{file}: there is no canonical {dataset.title} .npz to verify it against; point data.path at a "
            f"folder of the four canonical IDX .gz files, or set data.verify=false to use this .npz unverified"
        )
    if verify:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest != dataset.keras_npz_sha256:
            raise DataError(
                f"{file} fails its checksum (sha256 {digest}, canonical Keras {dataset.name}.npz "
                f"{dataset.keras_npz_sha256}); re-download it with keras.datasets.{dataset.name}.load_data(), "
                "or set data.verify=false to use an .npz of your own."
            )
    keys = (f"x_{split.name}", f"y_{split.name}")
    with np.load(file, allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DataError(f"{file} lacks arrays {missing}; a {dataset.title} .npz holds x_train, y_train, x_test, y_test")
        return npz[keys[0]], npz[keys[1]]


def _keras_download(dataset: Dataset, split: Split):
    """Keras' copy, checksummed and cached in ~/.keras/datasets: ``keras.datasets.mnist`` (its .npz), or
    Fashion-MNIST's two IDX files of the split, fetched with their canonical MD5 (Keras 3.15's
    ``fashion_mnist.load_data`` checks none) into ``keras.datasets.fashion_mnist``'s cache, then read as local files."""
    import keras

    try:
        if dataset.keras_npz_sha256 is not None:
            (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, dataset.name).load_data()
            return (x_train, y_train) if split == Split.train else (x_test, y_test)
        for name in IDX_FILES[split]:  # both land in one folder
            cached = keras.utils.get_file(name, origin=KERAS_URL + name, file_hash=dataset.canonical[name][1],
                                          cache_subdir=os.path.join("datasets", "fashion-mnist"))
    except Exception as err:  # any network or cache failure: say how to work offline
        raise DataError(
            f"could not download {dataset.title} through Keras ({type(err).__name__}: {err}). Offline, point "
            f"data.path=<folder> or ${dataset.env_var}=<folder> at the four canonical IDX .gz files"
            + (f" (or a {dataset.name}.npz)." if dataset.keras_npz_sha256 else ".")
        ) from None
    return _read_idx_split(Path(cached).parent, split, True, dataset)


def _visible(folder: Path) -> list[Path]:
    """The entries of ``folder`` by name, hidden ones (.DS_Store, ...) left out."""
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _image_files(folder: Path, title: str) -> list[Path]:
    """The PNG and JPEG files of ``folder``; DataError naming anything else in it."""
    files = _visible(folder)
    for entry in files:
        if entry.is_dir():
            raise DataError(f"{entry}: a folder inside {folder}; {title} is read one level deep (one subfolder of "
                            "images per class): move its images up, or the folder out")
        if entry.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{entry}: not a PNG or JPEG image ({', '.join(IMAGE_SUFFIXES)}); convert it, or move it "
                            f"out of {title}")
    return files


def _read_images(files: list[Path], title: str) -> np.ndarray:
    """uint8 (N, 28, 28) of image files: 28x28 grayscale ones as they are, others converted, with one line
    saying how many were."""
    from PIL import Image

    images, converted = np.empty((len(files), 28, 28), np.uint8), 0
    for i, file in enumerate(files):
        try:
            with Image.open(file, formats=("PNG", "JPEG")) as image:
                image.load()  # decode it all now, so a truncated file fails here
                if image.mode != "L" or image.size != (28, 28):
                    image = image.convert("L").resize((28, 28), Image.Resampling.LANCZOS)
                    converted += 1
                images[i] = np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"{file}: not a readable PNG or JPEG image ({err}); replace it with a good copy, "
                            "or remove it") from None
    if converted:
        print(f"{title}: converted {converted} of {len(files)} images to 28x28 grayscale")
    return images


def _read_folder(folder: Path, title: str):
    """(uint8 images, int32 labels or None, class names) of a folder of class subfolders, or of images alone."""
    if not folder.is_dir():
        raise DataError(f"{title} is not a folder: data=folder reads {OWN_SOURCES['folder']} (data=npz reads an .npz)")
    entries = _visible(folder)
    class_folders = [entry for entry in entries if entry.is_dir()]
    if not class_folders:
        files = _image_files(folder, title)
        if not files:
            raise DataError(f"{title} holds no images: put PNG or JPEG images in it, one subfolder per class "
                            "(or all in the folder itself, unlabelled)")
        return _read_images(files, title), None, ()
    loose = [entry for entry in entries if not entry.is_dir()]
    if loose:
        raise DataError(f"{loose[0]}: {title} has class subfolders ({', '.join(f.name for f in class_folders)}), "
                        "so every image belongs in one of them; move this file into its class folder, or out")
    files, labels = [], []
    for label, class_folder in enumerate(class_folders):
        found = _image_files(class_folder, title)
        if not found:
            raise DataError(f"class folder {class_folder} holds no images: add PNG or JPEG images of "
                            f"{class_folder.name!r} to it, or remove it")
        files += found
        labels += [label] * len(found)
    return _read_images(files, title), np.asarray(labels, np.int32), tuple(f.name for f in class_folders)


def _read_own_npz(file: Path, title: str):
    """(uint8 images, int32 labels or None, class names) of an .npz of ``images``, ``labels`` and ``classes``."""
    import zipfile

    if not file.is_file():
        raise DataError(f"{title} is not a file: data=npz reads {OWN_SOURCES['npz']} (data=folder reads a folder)")
    try:
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("one .npy array, not named arrays")
        with loaded as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{file}: not a readable .npz of arrays ({err}); write it with {NPZ_LAYOUT}") from None
    if "images" not in arrays:
        keras_like = " (Keras' mnist.npz: data=mnist data.path=<it>)" if "x_train" in arrays else ""
        raise DataError(f"{file} has no 'images' array (it holds {', '.join(arrays) or 'none'}){keras_like}; "
                        f"write it with {NPZ_LAYOUT}")
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{file}: 'images' must be uint8 N x 28 x 28 (grayscale 0-255), got {images.dtype} "
                        f"{images.shape}; convert them before saving (data=folder converts PNG/JPEG images itself)")
    if not len(images):
        raise DataError(f"{file}: 'images' holds no images; write it with {NPZ_LAYOUT}")
    if "labels" not in arrays:
        if "classes" in arrays:
            raise DataError(f"{file} names 'classes' but has no 'labels'; add a label per image, or drop 'classes' "
                            "for unlabelled data")
        return images, None, ()
    labels = arrays["labels"]
    if labels.shape != (len(images),):
        raise DataError(f"{file}: {len(images)} images but 'labels' of shape {labels.shape}; one label per image "
                        "needed")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{file}: 'labels' must be integers 0..K-1, got {labels.dtype}; save labels.astype(int)")
    named = "classes" in arrays
    if named:
        names = arrays["classes"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{file}: 'classes' must be a list of K names (strings), got {names.dtype} {names.shape}")
        classes = tuple(str(name.decode() if isinstance(name, bytes) else name) for name in names)
        if len(set(classes)) != len(classes):
            raise DataError(f"{file}: 'classes' names a class twice ({', '.join(classes)}); give one name per class")
    else:
        classes = tuple(str(label) for label in range(max(labels.max() + 1, 1)))
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= len(classes):
        count = f"'classes' names {len(classes)}" if named else "K: the largest label + 1"
        raise DataError(f"{file}: labels must lie in 0..{len(classes) - 1} ({count}), found {low}..{high}; "
                        "renumber the labels" + (", or give one name per label in 'classes'" if named else ""))
    empty = [label for label, count in enumerate(np.bincount(labels, minlength=len(classes))) if not count]
    if empty:
        raise DataError(f"{file}: class {classes[empty[0]]!r} (label {empty[0]}) has no images; every label 0..K-1 "
                        "needs some: renumber the labels" + (", or drop its name from 'classes'" if named else ""))
    return images, labels.astype(np.int32), classes


def make_dataset(images: np.ndarray, labels: np.ndarray | None, batch_size: int, seed: int, start_step: int = 0):
    """Endless in-memory batches of (image, label), or of images alone for unlabelled data (``labels`` None),
    from training step ``start_step`` on.

    Each epoch is a permutation drawn from ``(seed, epoch)`` alone, its partial last batch
    dropped, so a resumed run sees the same batches as an uninterrupted one. Use with ``fit(...,
    steps_per_epoch=len(images) // batch_size)``; one iterator serves every epoch.
    """
    import tensorflow as tf  # here, so that importing this module (config errors, --help) stays light

    steps_per_epoch = len(images) // batch_size
    first_epoch, skip = divmod(start_step, steps_per_epoch)
    images = tf.constant(images)
    labels = None if labels is None else tf.constant(labels)

    def batch(index):
        return tf.gather(images, index) if labels is None else (tf.gather(images, index), tf.gather(labels, index))

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(images)), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order[: steps_per_epoch * batch_size], [steps_per_epoch, batch_size]))

    return (
        tf.data.Dataset.range(first_epoch, 2**62)
        .flat_map(epoch_batches)
        .skip(skip)
        .map(batch)
    )
