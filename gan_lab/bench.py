"""``python -m gan_lab.bench [section ...] [--models dcgan mlp cgan] [--rounds 3]``

Benchmarks that print timings and ratios (not tests). Sections:

- ``train``: images/s of the trainer against a plain reference step (the TensorFlow DCGAN
  tutorial's two-tape ``@tf.function`` step, written below, on the same architecture and batch
  size; selfcond, infogan and tfgan have the trainer only), each in float32 and
  mixed_bfloat16, for every model, all interleaved round by round in one process with this CPU's
  bfloat16 and float32 matmul peak, and each trainer's share of the images/s that peak allows (FLOPs
  per image counted from the layer shapes), and the share dcgan's convolutions alone allow (each
  convolution op of its step timed alone in the same rounds);
- ``train-no-amx``: the same in a subprocess with AMX switched off (``ONEDNN_MAX_CPU_ISA``), for CPUs
  with AVX512-BF16 alone;
- ``memory``: peak RSS of a default one-epoch run on the test split;
- ``judge``: all judge metrics for 10,000 samples;
- ``cli``: start-up of ``python -m gan_lab --help`` / ``--cfg job``.

Data: ``$GAN_LAB_DATA_DIR``, else ``../shared/data/mnist`` (the test split).
"""

import argparse
import os
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


BATCH_SIZE = {"dcgan": 256, "cgan": 256, "selfcond": 256, "infogan": 256, "tfgan": 256, "mlp": 128}  # as measured before
TARGET_SHARE = {"dcgan": 0.75, "cgan": 0.65, "selfcond": 0.65}  # of the ceiling at the default precision (issue 23)
STEPS = {"dcgan": 24, "cgan": 24, "selfcond": 24, "infogan": 24, "tfgan": 24, "mlp": 160}  # steps timed per block (multiples of steps_per_execution)
PLAIN_STEP = {"dcgan", "cgan", "mlp"}  # the tutorial step trains these; the others are timed as the trainer only


def machine() -> str:
    """CPU model, cores and bfloat16 instructions: the ratios depend on them."""
    from gan_lab.precision import cpu_bf16

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    capped = f", oneDNN capped at ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}" \
        if os.environ.get("ONEDNN_MAX_CPU_ISA") else ""
    return f"{model}, {len(os.sched_getaffinity(0))} cores, bfloat16: {cpu_bf16() or 'none'}{capped}"


def reference_step(cfg, precision: str, images, labels):
    """The tutorial's plain training loop: stock layers, two tapes, Adam 1e-4, tf.data batches.

    Returns ``run(steps)``, which trains ``steps`` steps."""
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
        return disc_loss

    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images)).batch(
        batch_size, drop_remainder=True).repeat()
    batches = iter(dataset)

    def run(steps: int) -> None:
        for _ in range(steps):
            loss = train_step(*next(batches))
        float(loss)

    return run


def trainer_config(overrides: list[str]):
    """The config the bench times a trainer with: ``overrides`` at their ``model=``'s bench batch size."""
    from gan_lab.config import compose_config

    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "dcgan")
    return compose_config([f"train.batch_size={BATCH_SIZE.get(model, 256)}", *overrides])


def trainer_step(cfg, images, labels):
    """The trainer: ``build_gan`` and ``make_dataset`` as ``train(cfg)`` uses them, driven by the
    compiled multi-step function ``fit`` calls, on one endless iterator.

    Returns ``run(steps)``; ``steps`` must be a multiple of ``train.steps_per_execution``."""
    from gan_lab.data import make_dataset
    from gan_lab.trainer import build_gan

    gan = build_gan(cfg)
    gan.make_train_function()
    batches = iter(make_dataset(images, labels, cfg.train.batch_size, cfg.seed))

    def run(steps: int) -> None:
        for _ in range(steps // gan.steps_per_execution):
            gan.train_function(batches)
        float(gan.trackers[0].result())

    return run


def layer_flops(layer) -> int:
    """Multiply-adds x 2 of one image through a dense or convolution layer (0 for any other layer)."""
    inner = getattr(layer, "layer", layer)  # spectral normalisation wraps its layer
    if isinstance(inner, keras.layers.Dense):
        return 2 * inner.kernel.shape[0] * inner.kernel.shape[1]
    if isinstance(inner, keras.layers.Conv2DTranspose):  # each input pixel meets the whole kernel
        k_h, k_w, c_out, c_in = inner.kernel.shape
        return 2 * k_h * k_w * c_in * c_out * layer.input.shape[1] * layer.input.shape[2]
    if isinstance(inner, keras.layers.Conv2D):  # each output pixel does
        k_h, k_w, c_in, c_out = inner.kernel.shape
        return 2 * k_h * k_w * c_in * c_out * layer.output.shape[1] * layer.output.shape[2]
    return 0


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of one image through ``model``'s dense and convolution layers (the rest is small)."""
    return sum(layer_flops(layer) for layer in model.layers)


def step_flops(model_cfg) -> int:
    """FLOPs per image of a training step: G forward and backward (3 x forward), D forward on real and
    fake (2), D's activation and weight gradients for both (4), and D's activation gradients once more
    on the way to G (1): 3 F_G + 7 F_D."""
    from gan_lab.models import build_models

    generator, discriminator = build_models(model_cfg)
    return 3 * forward_flops(generator) + 7 * forward_flops(discriminator)


def matmul_peak(dtype: str, n: int = 2048):
    """``run(steps)``: ``steps`` (n x n) @ (n x n) products in ``dtype``; this CPU's dense-maths ceiling."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def product(x):
        return tf.reduce_sum(tf.cast(tf.matmul(x, x), tf.float32))

    def run(steps: int) -> None:
        for _ in range(steps):
            float(product(a))

    return run, 2 * n**3


def convolution_ops(model_cfg, batch_size: int) -> list[tuple[str, int, int, object]]:
    """The convolutions of one training step, op by op: ``(name, uses per step, FLOPs, run(steps))``
    at ``batch_size``, each in its layer's compute dtype under mixed_bfloat16 (bfloat16; G's last layer float32).

    Each layer's ``forward``, ``input_grad`` and ``filter_grad`` run as the raw op TensorFlow uses
    for it (Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter; a transposed convolution's forward
    is the Conv2DBackpropInput of the convolution it transposes, its input gradient a Conv2D). Each
    is used as the step uses it: G's layers once each way, D's forward twice (real, fake), its filter
    gradient twice and its input gradient three times (real and fake for D, fake again for G), once
    for D's first layer (only G needs the gradient of the images). Beside them, as ``gan_lab.convolutions``
    computes them: each filter gradient ("filter_grad rewrite") and the direction to an image's few
    channels, D1's input gradient and G3's forward ("... col2im"), a convolution's to an image (tfgan's last
    layer: "forward sum_taps", "filter_grad matmul"); the uses count the form the trainer takes."""
    import tensorflow as tf

    from gan_lab.convolutions import (convolve_to_few_channels, convolves_to_few_channels, few_channels, filter_gradient,
                                      filter_gradient_as_matmul, filter_gradient_by_matmul, rewrites, to_few_channels)
    from gan_lab.models import build_models

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        generator, discriminator = build_models(model_cfg)
    finally:
        keras.config.set_dtype_policy(previous)
    ops = []
    for network, is_d in ((generator, False), (discriminator, True)):
        convolutions = [layer for layer in network.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
        for index, layer in enumerate(convolutions):
            transposed = isinstance(layer, keras.layers.Conv2DTranspose)
            dtype = tf.as_dtype(layer.compute_dtype)
            big, small = (layer.output.shape, layer.input.shape) if transposed else (layer.input.shape, layer.output.shape)
            x = tf.cast(tf.random.normal((batch_size, *big[1:])), dtype)
            w = tf.cast(tf.random.normal(layer.kernel.shape), dtype)  # (k, k, big side's, small side's channels)
            dy = tf.cast(tf.random.normal((batch_size, *small[1:])), dtype)
            flops = layer_flops(layer) * batch_size
            same = dict(strides=(1, *layer.strides, 1), padding=layer.padding.upper())
            conv = lambda x=x, w=w, same=same: tf.nn.conv2d(x, w, **same)
            conv_input_grad = lambda x=x, w=w, dy=dy, same=same: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=w, out_backprop=dy, **same)
            calls = {
                "forward": conv_input_grad if transposed else conv,
                "input_grad": conv if transposed else conv_input_grad,
                "filter_grad": lambda x=x, w=w, dy=dy, same=same: tf.raw_ops.Conv2DBackpropFilter(
                    input=x, filter_sizes=tf.shape(w), out_backprop=dy, **same),
                "filter_grad rewrite": lambda x=x, w=w, dy=dy, layer=layer: filter_gradient(
                    x, dy, w.shape[:2], layer.strides[0]),
            }
            # the trainer's choices (convolutions.rewrites, convolutions.few_channels)
            rewritten = rewrites(layer, layer.input.shape[-1])
            to_image = few_channels(layer, x.shape)  # the direction from the small side to the image's
            filter_uses = 2 if is_d else 1
            uses = {"forward": 2 if is_d else 1, "input_grad": (1 if index == 0 else 3) if is_d else 1,
                    "filter_grad": 0 if rewritten else filter_uses, "filter_grad rewrite": filter_uses if rewritten else 0}
            if to_image:
                direction = "forward" if transposed else "input_grad"
                calls[f"{direction} col2im"] = lambda w=w, dy=dy, x=x, layer=layer: to_few_channels(
                    dy, w, layer.strides[0], x.shape[1:3])
                uses[f"{direction} col2im"], uses[direction] = uses[direction], 0
            if not transposed and convolves_to_few_channels(layer, dy.shape):  # to an image: tfgan's last layer
                stride = layer.strides[0]
                calls["forward sum_taps"] = lambda x=x, w=w, stride=stride: convolve_to_few_channels(x, w, stride)
                calls["filter_grad matmul"] = lambda x=x, w=w, dy=dy, stride=stride: filter_gradient_by_matmul(
                    x, dy, w.shape[:2], stride)
                uses["forward sum_taps"], uses["forward"] = uses["forward"], 0
                matmul = filter_gradient_as_matmul(layer)
                uses["filter_grad matmul"], uses["filter_grad"] = (uses["filter_grad"], 0) if matmul else (0, uses["filter_grad"])
            for op, count in uses.items():
                function = tf.function(lambda call=calls[op]: tf.reduce_sum(tf.cast(call(), tf.float32)), autograph=False)

                def run(steps: int, function=function) -> None:
                    for _ in range(steps):
                        float(function())

                shapes = "->".join("x".join(map(str, shape[1:])) for shape in (layer.input.shape, layer.output.shape))
                ops.append((f"{'D' if is_d else 'G'}{index + 1} {shapes} {op}", count, flops, run))
    return ops


def bench_train(models: list[str], rounds: int) -> None:
    """Images/s of the trainer vs the plain step per model and precision; ratios to plain float32;
    and each model's share of the images/s this CPU's matmul peak allows its training step.

    Every (model, step, precision) and the matmul peaks are built first; then each round times one
    block of each in turn, so all are measured side by side in the same minutes (the first round,
    tracing and warm-up, is not counted).
    """
    from gan_lab.config import Split, compose_config
    from gan_lab.data import load_data
    from gan_lab.precision import resolve_precision

    print(f"Machine: {machine()}")
    images, labels = load_data(data_dir(), Split.test)
    runners = {}
    for model in models:
        for overrides in ([], ["train.precision=float32"]):  # the model's default precision, and float32
            cfg = trainer_config([f"model={model}", *overrides])
            precision = resolve_precision(cfg.train.precision)
            if (model, "trainer", precision) in runners:  # no bfloat16 here: the default is float32
                continue
            runners[model, "trainer", precision] = trainer_step(cfg, images, labels)
            if model in PLAIN_STEP:
                runners[model, "plain", precision] = reference_step(cfg, precision, images, labels)
            if precision == "mixed_bfloat16" and model != "mlp":  # the convolution rewrite's gain, same rounds
                native = trainer_config([f"model={model}", "train.fast_convolutions=false", *overrides])
                runners[model, "trainer-tfconv", precision] = trainer_step(native, images, labels)
    peaks = {dtype: matmul_peak(dtype) for dtype in ("bfloat16", "float32")}
    convolutions = convolution_ops(compose_config(["model=dcgan"]).model, BATCH_SIZE["dcgan"]) if "dcgan" in models else []
    speeds: dict[tuple[str, str, str], list[float]] = {key: [] for key in runners}
    gflops: dict[str, list[float]] = {dtype: [] for dtype in peaks}
    op_seconds: dict[str, list[float]] = {name: [] for name, *_ in convolutions}
    for round_ in range(rounds + 1):
        for key, run in runners.items():
            model = key[0]
            start = time.perf_counter()
            run(STEPS[model])
            if round_:
                speeds[key].append(STEPS[model] * BATCH_SIZE[model] / (time.perf_counter() - start))
        for dtype, (run, flops) in peaks.items():
            start = time.perf_counter()
            run(10)
            if round_:
                gflops[dtype].append(10 * flops / (time.perf_counter() - start) / 1e9)
        for name, _, _, run in convolutions:
            start = time.perf_counter()
            run(5)
            if round_:
                op_seconds[name].append((time.perf_counter() - start) / 5)
    if os.environ.get("GAN_LAB_BENCH_VERBOSE"):
        for key, values in sorted(speeds.items()):
            print(key, [round(v) for v in values])
    median = {key: statistics.median(values) for key, values in sorted(speeds.items())}
    print(f"\nTraining throughput, images/s (median of {rounds} interleaved rounds); ratio to the plain float32 step")
    print("(trainer-tfconv: the trainer with train.fast_convolutions=false, TensorFlow's own convolution gradients)")
    print(f"{'model':8} {'batch':>5} {'step':14} {'precision':15} {'images/s':>9} {'ratio':>6}")
    for (model, impl, precision), value in median.items():
        ratio = f"{value / median[model, 'plain', 'float32']:6.2f}" if model in PLAIN_STEP else "     -"
        print(f"{model:8} {BATCH_SIZE[model]:5d} {impl:14} {precision:15} {value:9.0f} {ratio}")
    default = {model: resolve_precision(compose_config([f"model={model}"]).train.precision) for model in models}
    best = {model: median[model, "trainer", default[model]] for model in models}
    for model in models:
        if model in PLAIN_STEP:
            print(f"{model}: the trainer at its default precision ({default[model]}) runs "
                  f"{best[model] / median[model, 'plain', 'float32']:.2f}x the plain float32 step")
        if (model, "trainer-tfconv", default[model]) in median:
            print(f"{model}: train.fast_convolutions: {best[model] / median[model, 'trainer-tfconv', default[model]]:.2f}x "
                  "the trainer with TensorFlow's convolution gradients")
    if {"dcgan", "cgan"} <= set(models):
        cgan, dcgan = speeds["cgan", "trainer", default["cgan"]], speeds["dcgan", "trainer", default["dcgan"]]
        per_round = [c / d for c, d in zip(cgan, dcgan)]
        print(f"cgan per image: {best['cgan'] / best['dcgan']:.2f} of dcgan's throughput (per round: "
              + ", ".join(f"{r:.2f}" for r in per_round) + ")")

    peak = {dtype: max(values) for dtype, values in gflops.items()}  # the best: it swings 2x between calls here
    print(f"\nThis CPU's matmul peak (2048^3, best of {rounds} rounds): bfloat16 {peak['bfloat16']:.0f} GFLOP/s, "
          f"float32 {peak['float32']:.0f} GFLOP/s ({peak['bfloat16'] / peak['float32']:.2f}x)")
    print("Ceiling: the images/s a training step would reach if all its dense and convolution FLOPs ran at that peak")
    print(f"{'model':8} {'precision':15} {'GFLOP/image':>11} {'ceiling':>8} {'trainer':>8} {'share':>6}")
    from gan_lab.config import compose_config as compose

    for model in models:
        flops = step_flops(compose([f"model={model}"]).model)
        for precision in ("mixed_bfloat16", "float32"):
            if (model, "trainer", precision) not in median:
                continue
            ceiling = peak["bfloat16" if precision == "mixed_bfloat16" else "float32"] * 1e9 / flops
            value = median[model, "trainer", precision]
            target = f"  target >= {TARGET_SHARE[model]:.0%}" if model in TARGET_SHARE and precision == default[model] else ""
            print(f"{model:8} {precision:15} {flops / 1e9:11.3f} {ceiling:8.0f} {value:8.0f} {value / ceiling:6.0%}{target}")
    if convolutions:
        print_convolution_bound(convolutions, op_seconds, peak["bfloat16"], median["dcgan", "trainer", default["dcgan"]])


def print_convolution_bound(convolutions, op_seconds, peak_gflops: float, trainer_speed: float) -> None:
    """dcgan's convolution ops timed alone: their rates against the matmul peak, and the images/s and
    share of the ceiling the step would reach if everything else (dense layers at the peak aside) were free."""
    from gan_lab.config import compose_config

    batch = BATCH_SIZE["dcgan"]
    print(f"\ndcgan's convolutions alone (batch {batch}, each in its layer's dtype: bfloat16, G3 float32; the median of "
          "each op's blocks in the same rounds; share of the bfloat16 peak)")
    print(f"{'op':46} {'uses':>4} {'ms':>6} {'GFLOP/s':>8} {'of peak':>7}")
    seconds = conv_flops = 0.0
    for name, uses, flops, _ in convolutions:
        median = statistics.median(op_seconds[name])
        seconds += uses * median
        conv_flops += uses * flops
        print(f"{name:46} {uses:4d} {median * 1e3:6.1f} {flops / median / 1e9:8.0f} {flops / median / 1e9 / peak_gflops:7.0%}")
    step = step_flops(compose_config(["model=dcgan"]).model) * batch
    seconds += (step - conv_flops) / (peak_gflops * 1e9)  # the dense layers, at the matmul peak
    ceiling = peak_gflops * 1e9 * batch / step
    bound = batch / seconds
    print(f"convolutions {conv_flops / step:.0%} of the step's FLOPs; their ops alone take {seconds * 1e3:.0f} ms per step: "
          f"at most {bound:.0f} images/s = {bound / ceiling:.0%} of the bf16 ceiling ({ceiling:.0f}); "
          f"the trainer ({trainer_speed:.0f}) reaches {trainer_speed / bound:.0%} of that bound")


NO_AMX = "AVX512_CORE_BF16"  # oneDNN's ONEDNN_MAX_CPU_ISA value: AVX512 with bf16 instructions, no AMX


def bench_without_amx(models: list[str], rounds: int) -> None:
    """The ``train`` section in a subprocess whose oneDNN may not use AMX (``ONEDNN_MAX_CPU_ISA``): the speed of
    CPUs with AVX512-BF16 alone, measured on this one, so no rewrite wins on one and loses on the other."""
    from gan_lab.precision import cpu_bf16

    if cpu_bf16() != "AMX-BF16":
        print("train-no-amx: this CPU has no AMX; the train section measures it as it is")
        return
    print(f"\n=== train, ONEDNN_MAX_CPU_ISA={NO_AMX} (AMX off) ===", flush=True)
    subprocess.run([sys.executable, "-m", "gan_lab.bench", "train", "--models", *models, "--rounds", str(rounds)],
                   env={**os.environ, "ONEDNN_MAX_CPU_ISA": NO_AMX}, check=True)


def bench_memory() -> None:
    """Peak RSS of ``python -m gan_lab data.split=test train.epochs=1`` (judge included)."""
    # Linux counts a child's memory before its exec (a view of this process) in its peak RSS, so
    # after the train section this process's own peak would be reported: a small Python process
    # in between runs the training and reports its child's peak.
    report_peak = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    with tempfile.TemporaryDirectory(prefix="gan_lab-bench-") as tmp:
        result = subprocess.run(
            [sys.executable, "-c", report_peak, sys.executable, "-m", "gan_lab", "data.split=test", "train.epochs=1",
             f"data.path={data_dir()}", f"hydra.run.dir={tmp}/run"],
            cwd=tmp, check=True, capture_output=True, text=True,
        )
    peak_gb = int(result.stdout.split()[-1]) / 2**20
    print(f"peak RSS of a one-epoch default run (judge included): {peak_gb:.2f} GB; target <= 2.5 GB")


def bench_judge(n: int = 10_000, repeats: int = 3) -> None:
    """Time every judge metric (forward pass, score, FID, precision/recall, histogram) on n images."""
    import numpy as np

    from gan_lab.config import Split, compose_config
    from gan_lab.data import load_data
    from gan_lab.figures import to_uint8
    from gan_lab.judge import get_judge

    store = tempfile.mkdtemp(prefix="gan_lab-bench-")
    cfg = compose_config([f"data.path={data_dir()}", "data.split=test", f"mlflow.tracking_uri=sqlite:///{store}/mlflow.db"])
    judge = get_judge(cfg)
    images, labels = load_data(data_dir(), Split.test)
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
    sections = ("train", "train-no-amx", "memory", "judge", "cli")
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
        elif name == "train-no-amx":
            bench_without_amx(args.models, args.rounds)
        else:
            {"memory": bench_memory, "judge": bench_judge, "cli": bench_cli}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
