"""The trainer's step with gan_lab's fast training layers against Keras' stock ones, in one process, timed in
alternation (the machine is noisy: compare within one run).

    python experiments/ab_fast_layers.py model=cgan --layers FastEmbedding FastMultiply [--rounds 10]

Each named layer of ``gan_lab.models`` is swapped for the Keras layer it subclasses in the second trainer.
"""

import argparse
import sys
import time

import gan_lab.models as models
from gan_lab.bench import data_dir, trainer_config, trainer_step
from gan_lab.config import Split
from gan_lab.data import load_data


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--layers", nargs="+", required=True, help="gan_lab.models layers to swap for Keras'")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args(argv)
    cfg = trainer_config(args.overrides)
    images, labels = load_data(data_dir(), Split.test)
    fast = trainer_step(cfg, images, labels)
    saved = {name: getattr(models, name) for name in args.layers}
    for name, layer in saved.items():
        setattr(models, name, layer.__bases__[0])
    try:
        stock = trainer_step(cfg, images, labels)
    finally:
        for name, layer in saved.items():
            setattr(models, name, layer)
    runs = {"fast": fast, "stock": stock}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(args.steps)  # trace and warm up
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    for name, values in times.items():
        print(f"{cfg.model.name} {name} ({' '.join(args.layers)}): best {min(values):.1f} ms per step, "
              f"median {sorted(values)[len(values) // 2]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
