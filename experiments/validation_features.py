"""Does the validation judge's feature layer decide what it sees? Trains four variants of its classifier on its
data share, 10 epochs, seed 1 (features: the 64 ReLU units it uses, the same before the ReLU, global average
pooling of its last convolution, 256 ReLU units trained with dropout) and prints, for each, the real ceiling's
precision and recall (k=3) and those of the given runs' generators, on 10,000 samples and on the first 2,000
(as many as the reference), as shares of the real ones.

    GAN_LAB_DATA_DIR=../shared/data/mnist python experiments/validation_features.py <run id> ...   # runs of outputs/quality/mlflow.db
"""

import sys

import keras

from gan_lab import tracking
from gan_lab.config import compose_config
from gan_lab.judge import as_input, judge_data
from gan_lab.metrics import coverage, inside, knn_radii
from gan_lab.models import predict
from gan_lab.sampling import draw

STORE = "sqlite:///outputs/quality/mlflow.db"
FEATURES = ("relu64", "pre64", "gap", "dropout256")


def classifier(features: str) -> tuple[keras.Model, keras.Model]:
    """(image -> probabilities, image -> the chosen features) of the validation judge's convolutions."""
    image = keras.Input((28, 28, 1))
    h = image
    for filters, kernel, stride in [(32, 5, 2), (64, 5, 2), (128, 3, 1)]:
        h = keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(filters, kernel, strides=stride, padding="same")(h))
    pre = keras.layers.Dense(256 if features == "dropout256" else 64)(keras.layers.Flatten()(h))
    relu = keras.layers.ReLU()(pre)
    head = keras.layers.Dropout(0.3)(relu) if features == "dropout256" else relu
    probs = keras.layers.Dense(10, activation="softmax")(head)
    chosen = {"pre64": pre, "gap": keras.layers.GlobalAveragePooling2D()(h)}.get(features, relu)
    return keras.Model(image, probs), keras.Model(image, chosen)


def precision_recall(real, fake) -> tuple[float, float]:
    return float(inside(fake, real, knn_radii(real, 3)).mean()), coverage(real, fake, knn_radii(fake, 3))


def main(run_ids: list[str]) -> None:
    cfg = compose_config(["data.split=test"])
    (fit_x, fit_y), (held_x, held_y) = judge_data(cfg.data, cfg.judge.holdout, cfg.judge.seed, role="validation")
    ceiling, reference = as_input(held_x[0::2]), as_input(held_x[1::2])
    samples = {}
    for run_id in run_ids:
        run, source = tracking.generator_source(run_id, None, STORE)
        samples[run_id[:6]] = as_input(draw(tracking.load_generator(run, source)[0], tracking.run_config(run).model,
                                            10000, 0)[0])
    for features in FEATURES:
        keras.utils.set_random_seed(1)
        model, embed = classifier(features)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(as_input(fit_x), fit_y, epochs=10, batch_size=128, verbose=0)
        accuracy = model.evaluate(as_input(held_x), held_y, verbose=0)[1]
        real = predict(embed, reference)
        real_p, real_r = precision_recall(real, predict(embed, ceiling))
        line = f"{features}: accuracy {accuracy:.3f}, real precision {real_p:.3f} recall {real_r:.3f}"
        for name, images in samples.items():
            fake = predict(embed, images)
            (p2, r2), (p10, r10) = precision_recall(real, fake[:2000]), precision_recall(real, fake)
            line += (f" | {name}: 2,000 p {p2 / real_p:.2f} r {r2 / real_r:.2f}; "
                     f"10,000 p {p10 / real_p:.2f} r {r10 / real_r:.2f}")
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
