"""``python -m gan_lab.bench [section ...] [--models dcgan mlp cgan] [--rounds 3]``

Benchmarks that print timings and ratios (not tests). Sections:

- ``train``: images/s of the trainer against a plain reference step (the TensorFlow DCGAN
  tutorial's two-tape ``@tf.function`` step, written below, on the same architecture and batch
  size), each in float32 and mixed_bfloat16, all interleaved round by round in one process;
- ``memory``: peak RSS of a default one-epoch DCGAN run on the test split;
- ``judge``: all judge metrics for 10,000 samples;
- ``cli``: start-up of ``python -m gan_lab --help`` / ``--cfg job``.

Data: ``$GAN_LAB_DATA_DIR``, else ``../shared/data/mnist`` (the test split).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> str:
    return os.environ.get("GAN_LAB_DATA_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")


BATCH_SIZE = {"dcgan": 256, "cgan": 256, "mlp": 128}  # the sizes of the reference measurements
STEPS = {"dcgan": 24, "cgan": 24, "mlp": 160}  # steps timed per round


def reference_step(cfg, precision: str, images, labels):
    """The tutorial's plain training loop: stock layers, two tapes, Adam 1e-4, tf.data batches."""
    import tensorflow as tf

    from gan_lab.models import build_models, is_conditional

    keras.config.set_dtype_policy(precision)
    generator, discriminator = build_models(cfg.model)
    keras.config.set_dtype_policy("float32")
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    g_optimizer, d_optimizer = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)
    batch_size, latent_dim, conditional = cfg.train.batch_size, cfg.model.latent_dim, is_conditional(cfg.model)

    @tf.function
    def train_step(images, labels):
        noise = tf.random.normal([batch_size, latent_dim])
        fake_labels = tf.random.uniform([batch_size], 0, 10, tf.int32)
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            if conditional:
                generated = generator([noise, fake_labels], training=True)
                real_output = discriminator([images, labels], training=True)
                fake_output = discriminator([generated, fake_labels], training=True)
            else:
                generated = generator(noise, training=True)
                real_output = discriminator(images, training=True)
                fake_output = discriminator(generated, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
                tf.zeros_like(fake_output), fake_output
            )
        gen_grads = gen_tape.gradient(gen_loss, generator.trainable_variables)
        disc_grads = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
        g_optimizer.apply_gradients(zip(gen_grads, generator.trainable_variables))
        d_optimizer.apply_gradients(zip(disc_grads, discriminator.trainable_variables))

    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images)).batch(
        batch_size, drop_remainder=True).repeat()
    batches = iter(dataset)

    def run(steps: int) -> None:
        for _ in range(steps):
            train_step(*next(batches))

    return run


class Interleaved(keras.callbacks.Callback):
    """Times each trainer epoch, then runs and times one block of each plain step."""

    def __init__(self, images_per_block: int, steps: int, plain: dict):
        super().__init__()
        self.images_per_block, self.steps, self.plain = images_per_block, steps, plain
        self.speeds = {"trainer": [], **{name: [] for name in plain}}

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.start
        if epoch == 0:  # tracing and warm-up
            return
        self.speeds["trainer"].append(self.images_per_block / elapsed)
        for name, run in self.plain.items():
            start = time.perf_counter()
            run(self.steps)
            self.speeds[name].append(self.images_per_block / (time.perf_counter() - start))


def bench_train(models: list[str], rounds: int) -> None:
    """Images/s of the trainer vs the plain step per model and precision; ratios to plain float32.

    The trainer runs as ``train(cfg)`` runs it: one ``fit`` over one endless dataset, in epochs of ``STEPS`` steps; after
    each epoch a callback times one block of each plain step, so all are measured side by side.
    """
    from gan_lab.config import Split, compose_config
    from gan_lab.data import load_mnist
    from gan_lab.trainer import build_gan, make_dataset, resolve_precision

    images, labels = load_mnist(data_dir(), Split.test)
    speeds: dict[tuple[str, str, str], list[float]] = {}
    for model in models:
        batch, steps = BATCH_SIZE[model], STEPS[model]
        configs = {p: compose_config([f"model={model}", f"train.batch_size={batch}", *p]) for p in
                   [(), ("train.precision=float32",)]}  # the model's default precision, and float32
        plain = {}
        for cfg in configs.values():
            chosen = resolve_precision(cfg.train.precision)
            plain.setdefault(chosen, reference_step(cfg, chosen, images, labels))
        for run in plain.values():
            run(8)  # trace and warm up
        for cfg in configs.values():
            gan = build_gan(cfg)
            timer = Interleaved(steps * batch, steps, plain)
            dataset = make_dataset(images, labels, batch, cfg.seed)
            gan.fit(dataset, epochs=rounds + 1, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False)
            speeds.setdefault((model, "trainer", resolve_precision(cfg.train.precision)), []).extend(timer.speeds["trainer"])
            for precision in plain:
                speeds.setdefault((model, "plain", precision), []).extend(timer.speeds[precision])
    if os.environ.get("GAN_LAB_BENCH_VERBOSE"):
        for key, values in sorted(speeds.items()):
            print(key, [round(v) for v in values])
    median = {key: statistics.median(values) for key, values in sorted(speeds.items())}
    print(f"\nTraining throughput, images/s (median of interleaved blocks); ratio to the plain float32 step")
    print(f"{'model':6} {'batch':>5} {'step':8} {'precision':15} {'images/s':>9} {'ratio':>6} {'blocks':>6}")
    for (model, impl, precision), value in median.items():
        base = median[model, "plain", "float32"]
        print(f"{model:6} {BATCH_SIZE[model]:5d} {impl:8} {precision:15} {value:9.0f} {value / base:6.2f}"
              f" {len(speeds[model, impl, precision]):6d}")
    best = {}
    for model in models:
        default = resolve_precision(compose_config([f"model={model}"]).train.precision)
        best[model] = median[model, "trainer", default]
        target = "; target >= 2.0" if model in ("dcgan", "mlp") else ""
        print(f"{model}: the trainer at its default precision ({default}) runs "
              f"{best[model] / median[model, 'plain', 'float32']:.2f}x the plain float32 step{target}")
    if {"dcgan", "cgan"} <= set(models):
        print(f"cgan per image: {best['cgan'] / best['dcgan']:.2f} of dcgan's throughput; target >= 0.85")


def bench_memory() -> None:
    """Peak RSS of ``python -m gan_lab data.split=test train.epochs=1`` (judge included)."""
    with tempfile.TemporaryDirectory(prefix="gan_lab-bench-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "gan_lab", "data.split=test", "train.epochs=1", f"data.path={data_dir()}",
             f"hydra.run.dir={tmp}/run"],
            cwd=tmp, check=True, capture_output=True,
        )
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"peak RSS of a one-epoch default DCGAN run (judge included): {peak_gb:.2f} GB; target <= 2.5 GB")


def bench_judge(n: int = 10_000, repeats: int = 3) -> None:
    """Time every judge metric (forward pass, score, FID, precision/recall, histogram) on n images."""
    import numpy as np

    from gan_lab.config import Split, compose_config
    from gan_lab.data import load_mnist
    from gan_lab.figures import to_uint8
    from gan_lab.judge import get_judge

    store = tempfile.mkdtemp(prefix="gan_lab-bench-")
    cfg = compose_config([f"data.path={data_dir()}", "data.split=test", f"mlflow.tracking_uri=sqlite:///{store}/mlflow.db"])
    judge = get_judge(cfg)
    images, labels = load_mnist(data_dir(), Split.test)
    samples, requested = to_uint8(images)[:n], labels[:n]
    samples = np.resize(samples, (n, 28, 28))
    judge.evaluate(samples[:100])  # warm-up: trace the predict function
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        judge.evaluate(samples, requested=np.resize(requested, n))
        times.append(time.perf_counter() - start)
    print(f"judge metrics, {n} samples: median {statistics.median(times):.2f} s (of {repeats}: "
          + ", ".join(f"{t:.2f}" for t in times) + "); target <= 10 s")


def bench_cli(repeats: int = 5) -> None:
    """Wall time of ``python -m gan_lab --help`` and ``--cfg job`` (no TensorFlow import)."""
    for args in (["--help"], ["--cfg", "job"]):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "gan_lab", *args], cwd=ROOT, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        print(f"python -m gan_lab {' '.join(args)}: median {statistics.median(times):.2f} s; target <= 1.5 s")


def main(argv: list[str]) -> int:
    sections = ("train", "memory", "judge", "cli")
    parser = argparse.ArgumentParser(prog="python -m gan_lab.bench", description="Benchmarks that print timings.")
    parser.add_argument("sections", nargs="*", metavar="section", help=f"any of {', '.join(sections)} (default: all)")
    parser.add_argument("--models", nargs="+", choices=list(BATCH_SIZE), default=list(BATCH_SIZE))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in sections]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections)}")
    for name in args.sections or sections:
        if name == "train":
            bench_train(args.models, args.rounds)
        else:
            {"memory": bench_memory, "judge": bench_judge, "cli": bench_cli}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
