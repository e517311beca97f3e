"""The judge: a classifier of the configured dataset that scores generated images, and its real-data ceilings.

A small CNN (two Conv2D with MaxPooling, Flatten, two Dense, a softmax over the dataset's K classes)
trained by gan_lab on the configured data and cached on disk under a key of its architecture, dataset,
data (images, labels and class names) and settings. Its penultimate layer gives the features for the
Fréchet and kernel distances and precision/recall. It needs labelled data of at least two classes
(``unjudgeable``). Its judgements also hold the pixel diagnostics (``gan_lab.pixels``) of the samples
against its real reference images.

The *validation judge* (``judge.validation``, on by default) confirms it: a classifier of another
architecture (strided 5x5 convolutions and LeakyReLU, no pooling, 64 features), seed
(``judge.validation_seed``) and data share, whose figures are logged as ``val_<metric>``. A recipe tuned on
one judge's feature space can fit that space; select on one judge, confirm on the other.

Data: with ``data.split=train`` the judge trains on the train split and holds out the test
split; with ``data.split=test``, and for own images (data=folder, data=npz), which have no splits, it
trains on a ``1 - judge.holdout`` share and holds out the rest; the validation judge holds out a share of
the first one's training images instead (disjoint while judge.holdout <= 0.5) and trains on every image the
first held out. With the train split both hold out the test split. The held-out images are halved: one
half is the real *reference* that samples are compared with, the other is judged like a sample set to
give the real-data ceilings; each class needs more than ``judge.k`` images in each half. The ceiling half is
kept with the judge: CAS tests on it the classifier trained on a conditional generator's samples.

``python -m gan_lab.judge [data.*] [judge.*] [mlflow.*]`` trains (or loads) the judge and prints its figures.
"""

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow import MlflowClient
from omegaconf import DictConfig

from gan_lab import figures, pixels, tracking
from gan_lab.config import Split
from gan_lab.data import Data, DataError, load, scale_images
from gan_lab.metrics import SCALARS, VALIDATION_PREFIX, accuracy, sample_metrics
from gan_lab.models import IMAGE_SHAPE, FastLeakyReLU, predict
from gan_lab.sampling import draw

# v2: reference labels; v3: K outputs, the dataset's classes, their names in the key and judge.json;
# v4: the ceiling images kept, for CAS; v5: the reference images kept, for the pixel diagnostics
ARCHITECTURES = {
    "judge": "conv32x3-maxpool-conv64x3-maxpool-flatten-dense128-dense{classes}-softmax/v5",
    "validation": "conv32x5s2-lrelu-conv64x5s2-lrelu-conv128x3-lrelu-flatten-dense64-dense{classes}-softmax/v5",
}
JUDGE_KEY_TAG = "gan_lab.judge_key"
# The judge.* settings its training and real-data ceilings depend on: in its key, judge.json and MLflow params.
SETTINGS = ("epochs", "batch_size", "holdout", "seed", "k", "subsets", "kid_subsets", "kid_subset_size", "cas_epochs")


def architecture(num_classes: int, role: str = "judge") -> str:
    """The architecture of the judge (``role`` "judge" or "validation") with ``num_classes`` outputs, as its key
    and records name it."""
    return ARCHITECTURES[role].format(classes=num_classes)


def build_classifier(num_classes: int) -> keras.Model:
    """The judge: image in [-1, 1] -> (probabilities of ``num_classes`` classes, 128 penultimate features)."""
    image = keras.Input((28, 28, 1), name="image")
    h = keras.layers.Conv2D(32, 3, activation="relu")(image)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    features = keras.layers.Dense(128, activation="relu", name="features")(h)
    probs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(features)
    return keras.Model(image, [probs, features], name="judge")


def build_validation_classifier(num_classes: int) -> keras.Model:
    """The validation judge, unlike the judge in every layer: image in [-1, 1] -> (probabilities, 64 features)."""
    image = keras.Input((28, 28, 1), name="image")
    h = image
    for filters, kernel, stride in [(32, 5, 2), (64, 5, 2), (128, 3, 1)]:
        h = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same")(h)
        h = FastLeakyReLU(0.2)(h)  # Keras' LeakyReLU, without oneDNN's remapper error on Conv2D + bias before it
    h = keras.layers.Flatten()(h)
    features = keras.layers.Dense(64, activation="relu", name="features")(h)
    probs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(features)
    return keras.Model(image, [probs, features], name="validation_judge")


BUILDERS = {"judge": build_classifier, "validation": build_validation_classifier}


def as_input(images: np.ndarray) -> np.ndarray:
    """The classifier's input: uint8 (N, 28, 28) images scaled, float (N, 28, 28, 1) in [-1, 1] as they are."""
    return scale_images(images) if images.dtype == np.uint8 else images


def fit_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int, batch_size: int, seed: int,
                   verbose: int = 0, role: str = "judge") -> keras.Model:
    """The ``role``'s classifier trained (Adam, cross-entropy) on labelled images, from ``seed``: it seeds Python,
    NumPy and TensorFlow (``keras.utils.set_random_seed``), so the same call trains the same classifier."""
    keras.utils.set_random_seed(seed)
    model = BUILDERS[role](num_classes)
    trainable = keras.Model(model.input, model.output[0])
    trainable.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trainable.fit(as_input(images), labels, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose)
    return model


@dataclass
class Judge:
    model: keras.Model  # image -> (probs, features)
    reference: np.ndarray  # features of the real reference images
    reference_labels: np.ndarray  # their classes (for per-class recall and FID of conditional samples)
    reference_images: np.ndarray  # uint8, the reference images themselves (for the pixel diagnostics)
    ceiling_images: np.ndarray  # uint8, the held-out real images judged for the ceilings; CAS tests on them
    ceiling_labels: np.ndarray
    info: dict  # key, role, dataset, classes, settings, accuracies, real-data ceilings ("real": {...}), MLflow run id
    validation: "Judge | None" = None  # the validation judge, whose figures this one's judgements add as val_*

    @cached_property
    def pixel_reference(self) -> pixels.Reference:
        """The reference images' side of the pixel diagnostics, computed at the first evaluation."""
        return pixels.reference(self.reference_images, self.reference_labels)

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probs, features) of uint8 (N, 28, 28) images, or float (N, 28, 28, 1) in [-1, 1]."""
        probs, features = predict(self.model, as_input(images))
        return probs, features

    def evaluate(self, images: np.ndarray, requested: np.ndarray | None = None, cas: bool = False) -> dict:
        """All figures of a sample set: this classifier's, the pixel diagnostics and the validation judge's
        (``val_*``); ``requested``: the labels a conditional generator was given; ``cas``: with them, the costly
        ``cas`` too (this judge's only)."""
        result = self.classifier_metrics(images, requested, cas)
        result |= pixels.diagnostics(images, self.pixel_reference, requested)
        if self.validation is not None:
            judged = self.validation.classifier_metrics(images, requested)
            result |= {VALIDATION_PREFIX + name: value for name, value in judged.items()}
        return result

    def classifier_metrics(self, images: np.ndarray, requested: np.ndarray | None = None, cas: bool = False) -> dict:
        """The figures of ``metrics.sample_metrics`` on this classifier's outputs (and ``cas``, as above)."""
        probs, features = self.outputs(images)
        info = self.info
        result = sample_metrics(probs, features, self.reference, requested, info["k"], self.reference_labels,
                                info["subsets"], info["kid_subsets"], info["kid_subset_size"])
        if cas and requested is not None:
            result["cas"] = self.classification_accuracy_score(images, requested)
        return result

    def classification_accuracy_score(self, images: np.ndarray, labels: np.ndarray) -> float:
        """CAS (Ravuri & Vinyals 2019): the accuracy on the ceiling images of a classifier of the judge's
        architecture trained on these labelled images (judge.cas_epochs, judge.batch_size, judge.seed)."""
        info = self.info
        model = fit_classifier(images, labels, len(self.classes), info["cas_epochs"], info["batch_size"], info["seed"])
        return accuracy(predict(model, as_input(self.ceiling_images))[0], self.ceiling_labels)

    @property
    def classes(self) -> tuple[str, ...]:
        """The names of its labels (digits, Fashion-MNIST's clothes, an own dataset's class folders)."""
        return tuple(self.info["classes"])

    @property
    def ceilings(self) -> dict[str, float]:
        """The real-data figures under ``real_<metric>`` names, the validation judge's as ``real_val_<metric>``."""
        real = dict(self.info["real"])
        if self.validation is not None:
            real |= {VALIDATION_PREFIX + name: value for name, value in self.validation.info["real"].items()}
        return {f"real_{name}": value for name, value in real.items() if name in SCALARS}


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def unjudgeable(data: Data) -> str | None:
    """Why the judge, a classifier, cannot be trained on ``data`` (no labels, one class), or None."""
    if data.labels is None:
        return f"{data.title} is unlabelled and the judge is a classifier of its classes"
    if len(data.classes) < 2:
        return f"{data.title} has one class ({data.classes[0]!r}) and the judge, a classifier, needs two or more"
    return None


def judge_data(data_cfg: DictConfig, holdout: float, seed: int, data: Data | None = None, role: str = "judge"):
    """((fit images, labels), (held-out images, labels)) for the judge or the validation judge (``role``), as
    described above; ``seed``: the judge's, which shuffles the images for both; ``data``: the data of
    ``data_cfg`` if already loaded."""
    data = load(data_cfg) if data is None else data
    images, labels = data.images, data.labels
    if data.split == Split.train:
        test = load(data_cfg, Split.test)
        return (images, labels), (test.images, test.labels)
    if not 0 < holdout < 1:
        raise ValueError(f"judge.holdout must lie strictly between 0 and 1, got {holdout}")
    order = np.random.default_rng(seed).permutation(len(images))
    size = round(len(images) * holdout)
    start = 0 if role == "judge" else min(size, len(images) - size)  # the validation judge's: next to the judge's
    held = order[start : start + size]
    fit = np.concatenate([order[:start], order[start + size :]])
    return (images[fit], labels[fit]), (images[held], labels[held])


def check_class_sizes(fit, held, classes: tuple[str, ...], judge_cfg: DictConfig, title: str) -> None:
    """DataError unless every class is in the fit share and has more than ``judge.k`` images in each held-out
    half (reference and ceiling), which per-class recall and the precision/recall manifolds need."""
    fit_counts = np.bincount(fit[1], minlength=len(classes))
    halves = [np.bincount(held[1][start::2], minlength=len(classes)) for start in (0, 1)]
    for label, name in enumerate(classes):
        if fit_counts[label] < 1 or min(half[label] for half in halves) <= judge_cfg.k:
            total = fit_counts[label] + sum(half[label] for half in halves)
            suggested = math.ceil(2 * (judge_cfg.k + 1) / judge_cfg.holdout) + 1
            raise DataError(
                f"{title}: class {name!r} has {total} images, too few for the judge: it needs more than "
                f"judge.k={judge_cfg.k} of each class in each half of its held-out share (judge.holdout="
                f"{judge_cfg.holdout}), here {halves[0][label]} and {halves[1][label]}. Add images (about "
                f"{suggested} or more per class), or train without the judge: judge.enabled=false"
            )


def settings(judge_cfg: DictConfig, role: str = "judge") -> dict:
    """The settings of the judge or the validation judge (``role``), as its key and records hold them: the
    validation judge trains from ``judge.validation_seed``; ``split_seed`` shuffled the data for both."""
    values = {k: judge_cfg[k] for k in SETTINGS}
    if role == "validation":
        values |= {"seed": judge_cfg.validation_seed, "split_seed": judge_cfg.seed}
    return values


def judge_key(judge_cfg: DictConfig, fit, held, dataset: str, classes: tuple[str, ...], role: str = "judge") -> str:
    """The cache key: architecture, ``dataset`` (data.name) and its ``classes`` (named, not only
    fingerprinted, so a judge never serves other class names), the arrays and the settings."""
    spec = {"architecture": architecture(len(classes), role), "dataset": dataset, "classes": list(classes),
            **settings(judge_cfg, role), "fit": _fingerprint(*fit), "held": _fingerprint(*held)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    return accuracy(predict(model, images)[0], labels)


def train_judge(judge_cfg: DictConfig, fit, held, key: str, data: Data, role: str = "judge") -> Judge:
    """Train the classifier of ``data``'s classes (the judge or, ``role``, the validation judge) and compute the
    real-data reference and ceilings. The judge's ceilings hold the pixel diagnostics and ``real_cas``, which
    trains CAS's classifier on the real images of the fit share (all of them: judge.samples may change without
    retraining the judge)."""
    title = "the judge" if role == "judge" else "the validation judge"
    print(f"Training {title} {key} on {len(fit[0])} images of {data.title} ({len(data.classes)} classes), "
          f"{len(held[0])} held out")
    values = settings(judge_cfg, role)
    model = fit_classifier(*fit, len(data.classes), judge_cfg.epochs, judge_cfg.batch_size, values["seed"],
                           verbose=1 if sys.stdout.isatty() else 2, role=role)

    held_x, held_y = held
    ceiling_x, ceiling_y, reference_x, reference_y = held_x[0::2], held_y[0::2], held_x[1::2], held_y[1::2]
    judge = Judge(model, reference=predict(model, reference_x)[1], reference_labels=reference_y,
                  reference_images=figures.to_uint8(reference_x), ceiling_images=figures.to_uint8(ceiling_x),
                  ceiling_labels=ceiling_y, info={})
    judge.info = {
        "key": key,
        "role": role,
        "dataset": data.name,
        "classes": list(data.classes),
        "architecture": architecture(len(data.classes), role),
        **values,
        "n_fit": len(fit[0]),
        "n_holdout": len(held_x),
        "fit_accuracy": _accuracy(model, *fit),
        "holdout_accuracy": _accuracy(model, held_x, held_y),
    }
    judge.info["real"] = judge.classifier_metrics(ceiling_x, requested=ceiling_y)
    if role == "judge":
        judge.info["real"] |= pixels.diagnostics(ceiling_x, judge.pixel_reference, ceiling_y)
        judge.info["real"]["cas"] = judge.classification_accuracy_score(*fit)
    return judge


def _save(judge: Judge, folder: Path) -> None:
    """Write the judge atomically: a temporary folder renamed into place (unless another process,
    training the same judge, got there first)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    judge.model.save(staging / "judge.keras")
    np.save(staging / "reference.npy", judge.reference)
    np.save(staging / "reference_labels.npy", judge.reference_labels)
    np.save(staging / "reference_images.npy", judge.reference_images)
    np.savez(staging / "ceiling.npz", images=judge.ceiling_images, labels=judge.ceiling_labels)
    (staging / "judge.json").write_text(json.dumps(judge.info, indent=2))
    try:
        os.replace(staging, folder)
    except OSError:
        if not (folder / "judge.json").is_file():
            raise
        shutil.rmtree(staging)


def _load(folder: Path) -> Judge:
    with np.load(folder / "ceiling.npz") as ceiling:
        return Judge(
            model=keras.saving.load_model(folder / "judge.keras"),
            reference=np.load(folder / "reference.npy"),
            reference_labels=np.load(folder / "reference_labels.npy"),
            reference_images=np.load(folder / "reference_images.npy"),
            ceiling_images=ceiling["images"],
            ceiling_labels=ceiling["labels"],
            info=json.loads((folder / "judge.json").read_text()),
        )


def get_judge(cfg: DictConfig, data: Data | None = None) -> Judge:
    """The judge for ``cfg.data`` (``data``: its data, if already loaded) and ``cfg.judge``, with its validation
    judge attached (``judge.validation``): each from the cache, else trained and cached. DataError, before
    anything is logged, for data it cannot judge.

    Either way each is logged once to the MLflow store of ``cfg.mlflow``; its run id is in
    ``info["mlflow_run_id"]``.
    """
    data = load(cfg.data) if data is None else data
    reason = unjudgeable(data)
    if reason:
        raise DataError(f"{reason}: give its images labels of two classes or more (one subfolder per class, or a "
                        "'labels' array in the .npz)")
    roles = ("judge", "validation") if cfg.judge.validation else ("judge",)
    shares = {role: judge_data(cfg.data, cfg.judge.holdout, cfg.judge.seed, data, role) for role in roles}
    for fit, held in shares.values():
        check_class_sizes(fit, held, data.classes, cfg.judge, data.title)
    judge, *validation = (_cached_judge(cfg, data, *shares[role], role) for role in roles)
    judge.validation = validation[0] if validation else None
    return judge


def _cached_judge(cfg: DictConfig, data: Data, fit, held, role: str) -> Judge:
    key = judge_key(cfg.judge, fit, held, data.name, data.classes, role)
    folder = Path(cfg.judge.cache_dir).expanduser() / key
    if (folder / "judge.json").is_file():
        judge = _load(folder)
    else:
        judge = train_judge(cfg.judge, fit, held, key, data, role)
        _save(judge, folder)
    judge.info["mlflow_run_id"] = _log_once(judge, cfg)
    return judge


def _log_once(judge: Judge, cfg: DictConfig) -> str:
    """The MLflow run holding this judge in the configured store, created on first use."""
    experiment_id = tracking.use_experiment(tracking.tracking_uri(cfg.mlflow.tracking_uri), cfg.judge.experiment,
                                            tracking.JUDGE_COLUMNS)
    info, key = judge.info, judge.info["key"]
    found = MlflowClient().search_runs([experiment_id], f"tags.`{JUDGE_KEY_TAG}` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{info['role']}-{key[:8]}",
                          tags={tracking.RUN_KIND_TAG: "judge", JUDGE_KEY_TAG: key}) as run:
        mlflow.log_params({k: info[k] for k in ("role", "architecture", *SETTINGS, "n_fit", "n_holdout")})
        mlflow.log_params({f"data.{k}": v for k, v in tracking.flatten(cfg.data).items()})
        mlflow.log_metrics({"fit_accuracy": info["fit_accuracy"], "holdout_accuracy": info["holdout_accuracy"],
                            **judge.ceilings})
        mlflow.log_dict(info, "judge.json")
        mlflow.log_image(figures.histogram_figure(info["real"]["counts"], classes=judge.classes), "real_label_histogram.png")
        blank = np.full((2, *IMAGE_SHAPE), -1.0, np.float32)  # the input format: images in [-1, 1]
        tracking.log_keras_model(judge.model, "judge", blank, keep_example=False)  # two outputs: not servable
        return run.info.run_id


def judge_generator(judge: Judge, generator: keras.Model, model_cfg: DictConfig, n: int, seed: int = 0,
                    truncation: float | None = None, discriminator: keras.Model | None = None,
                    percentile: float | None = None, cas: bool = False) -> dict:
    """Draw ``n`` samples (fixed ``seed``; conditional: balanced labels; the sampling options of
    ``sampling.draw``) and judge them (``cas``: a conditional generator's CAS too); with rejection sampling, its
    statistics too."""
    images, labels, stats = draw(generator, model_cfg, n, seed, truncation, discriminator, percentile)
    return {**judge.evaluate(images, requested=labels, cas=cas), **stats}


def log_judgement(run_id: str, judge: Judge, result: dict, step: int, prefix: str = "") -> None:
    """Metrics (with their real_ ceilings), histogram and confusion figures, and the full dict, into a run.
    ``prefix`` (e.g. ``truncation_0.8``): judged with a sampling option, logged as ``<prefix>/<metric>`` beside
    the plain figures, never in their place."""
    client = MlflowClient()
    named = (lambda name: f"{prefix}/{name}") if prefix else (lambda name: name)
    scalars = {name: result[name] for name in (*SCALARS, "acceptance_rate") if name in result}
    ceilings = {name: value for name, value in judge.ceilings.items() if name.removeprefix("real_") in scalars}
    for name, value in scalars.items():
        client.log_metric(run_id, named(name), value, step=step)
    for name, value in ceilings.items():
        client.log_metric(run_id, name, value, step=step)
    real = judge.info["real"]
    client.log_image(run_id, figures.histogram_figure(result["counts"], real["counts"], classes=judge.classes),
                     key=named("label_histogram"), step=step)
    if "confusion" in result:
        client.log_image(run_id, figures.confusion_figure(result["confusion"], judge.classes), key=named("confusion_matrix"), step=step)
    folder = f"judge/{prefix}" if prefix else "judge"
    record = {**result, **ceilings, "step": step, "judge": judge.info["key"], "classes": list(judge.classes)}
    if judge.validation is not None:
        record["validation_judge"] = judge.validation.info["key"]
    client.log_dict(run_id, record, f"{folder}/step_{step:04d}.json")


def summary(judge: Judge) -> dict:
    """What ``python -m gan_lab.judge`` prints."""
    shown = ("key", "n_fit", "n_holdout", "fit_accuracy", "holdout_accuracy", "mlflow_run_id")
    info = judge.info
    result = {k: info[k] for k in ("dataset", "classes", *shown)}
    if judge.validation is not None:
        result |= {f"validation_{k}": judge.validation.info[k] for k in shown}
    return result | {**judge.ceilings, "real_counts": info["real"]["counts"]}


@dataclass
class JudgeArgs:
    """The judge command has no keys of its own."""


def _main(args: JudgeArgs, overrides: list[str]) -> None:
    from gan_lab.config import check_overrides

    print(json.dumps(summary(get_judge(check_overrides(overrides))), indent=2))


def main(argv: list[str] | None = None) -> int:
    from gan_lab.cli import run_command

    return run_command(__doc__, JudgeArgs, ("data", "judge", "mlflow"), _main, argv)


if __name__ == "__main__":
    sys.exit(main())
