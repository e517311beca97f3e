"""The trainer's step with gan_lab's fast training layers against Keras' stock ones, in one process, timed in
alternation (the machine is noisy: compare within one run).

    python experiments/ab_fast_layers.py model=cgan --layers FastEmbedding FastMultiply [--rounds 10]

Each named layer of ``gan_lab.models`` is swapped for the Keras layer it subclasses in the second trainer.
``compare_swapped`` is the same A/B for any replacement (``ab_commit.py``: parts of another commit).
"""

import argparse
import sys
import time
from types import ModuleType

import gan_lab.models as models
from gan_lab.bench import data_dir, trainer_config, trainer_step
from gan_lab.config import Split
from gan_lab.data import load_data


def compare_swapped(overrides: list[str], module: ModuleType, replacements: dict, label: str, rounds: int,
                    steps: int) -> None:
    """Print the best and median ms per step of the trainer for ``overrides`` as it is ("now") and built with
    ``module``'s names set to ``replacements`` (``label``), the two timed in alternation."""
    cfg = trainer_config(overrides)
    images, labels = load_data(data_dir(), Split.test)
    runs = {"now": trainer_step(cfg, images, labels)}
    saved = {name: getattr(module, name) for name in replacements}
    for name, value in replacements.items():
        setattr(module, name, value)
    try:
        runs[label] = trainer_step(cfg, images, labels)
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(steps)  # trace and warm up
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    for name, values in times.items():
        print(f"{cfg.model.name} {name} ({' '.join(replacements)}): best {min(values):.1f} ms per step, "
              f"median {sorted(values)[len(values) // 2]:.1f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--layers", nargs="+", required=True, help="gan_lab.models layers to swap for Keras'")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args(argv)
    stock = {name: getattr(models, name).__bases__[0] for name in args.layers}
    compare_swapped(args.overrides, models, stock, "stock", args.rounds, args.steps)


if __name__ == "__main__":
    main(sys.argv[1:])
