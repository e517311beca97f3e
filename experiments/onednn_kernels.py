"""Which oneDNN implementation runs each primitive of the trainer's step, and how often per step: the trainer
(``gan_lab.bench.trainer_step``) run in a subprocess with ``ONEDNN_VERBOSE=1``, its log aggregated.

    python experiments/onednn_kernels.py model=dcgan [--steps 8] [--top 40]

On an AMX CPU a convolution whose implementation does not end in ``_amx`` runs without AMX (the lead for an op
far below the matmul rate); with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` set, the ones a CPU without AMX runs.
The milliseconds are oneDNN's own per primitive, with verbose logging on, which slows the step: read them as
shares of oneDNN's time, not as the step's speed (``experiments/profile_step.py`` measures that).
"""

import argparse
import collections
import os
import subprocess
import sys

START, END = "=== measured steps ===", "=== end ==="


def run_steps(overrides: list[str], steps: int) -> None:
    """The child: trace and warm up the trainer, then run ``steps`` steps between the markers."""
    from gan_lab.bench import data_dir, trainer_config, trainer_step
    from gan_lab.config import Split
    from gan_lab.data import load_data

    cfg = trainer_config(overrides)
    images, labels = load_data(data_dir(), Split.test)
    run = trainer_step(cfg, images, labels)
    run(steps)
    print(START, flush=True)
    run(steps)
    print(END, flush=True)


def primitives(log: str, steps: int) -> list[tuple[float, float, tuple[str, ...]]]:
    """(ms per step, calls per step, (primitive, implementation, propagation, problem)) of the measured steps'
    ``onednn_verbose,v1,primitive,exec,cpu,...`` lines, most time first."""
    totals: dict[tuple[str, ...], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for line in log.split(START, 1)[1].split(END, 1)[0].splitlines():
        fields = line.split(",")
        if fields[:4] != ["onednn_verbose", "v1", "primitive", "exec"]:
            continue
        key = (fields[5], fields[6], fields[7], fields[-2])
        totals[key][0] += float(fields[-1])
        totals[key][1] += 1
    return sorted(((ms / steps, calls / steps, key) for key, (ms, calls) in totals.items()), reverse=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=8, help="a multiple of train.steps_per_execution")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_steps(args.overrides, args.steps)
    child = subprocess.run([sys.executable, __file__, "--child", "--steps", str(args.steps), *args.overrides],
                           env={**os.environ, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True)
    if child.returncode or START not in child.stdout:
        sys.exit(f"the trainer's run failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
    rows = primitives(child.stdout, args.steps)
    total = sum(ms for ms, _, _ in rows)
    isa = next((line.split("isa:", 1)[1] for line in child.stdout.splitlines() if ",isa:" in line), "unknown")
    print(f"oneDNN primitives per step ({args.steps} steps; ISA: {isa}); {total:.1f} ms logged per step")
    print(f"{'ms':>7} {'share':>6} {'calls':>5}  primitive / implementation / propagation / problem")
    for ms, calls, (primitive, implementation, propagation, problem) in rows[: args.top]:
        print(f"{ms:7.2f} {ms / total:6.1%} {calls:5.1f}  {primitive} {implementation} {propagation} {problem}")


if __name__ == "__main__":
    main(sys.argv[1:])
