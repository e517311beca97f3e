"""Where a training step's time goes, op by op: the trainer ``make bench`` times, traced with ``tf.profiler``.

    python experiments/profile_step.py model=dcgan [more overrides] [--steps 24] [--top 40]

Prints TensorFlow's own per-op table (self time on the host, summed over the traced steps, per step),
grouped by op type and then by op, so a rewrite changes what the profile names (issue 23).
"""

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

from gan_lab.bench import data_dir, trainer_config, trainer_step
from gan_lab.config import Split
from gan_lab.data import load_data


def op_stats(logdir: str) -> list[dict]:
    """The rows of the profiler's ``framework_op_stats`` table (TensorBoard's "TensorFlow stats") for the trace
    in ``logdir``, as dicts keyed by column id (``type``, ``operation``, ``total_self_time`` in us, ...)."""
    xspaces = [str(path) for path in Path(logdir).rglob("*.xplane.pb")]
    data, ok = _pywrap_profiler_plugin.xspace_to_tools_data(xspaces, "framework_op_stats", {})
    if not ok:
        raise RuntimeError(data.decode())
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    ids = [col["id"] for col in table["cols"]]
    return [{key: cell["v"] if cell else None for key, cell in zip(ids, row["c"])} for row in table["rows"]]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--types", nargs="*", default=[], help="list every op of these types")
    parser.add_argument("--serial", action="store_true",
                        help="one op at a time (inter-op threads 1), so self times add up to the step")
    args = parser.parse_args(argv)
    if args.serial:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = trainer_config(args.overrides)
    images, labels = load_data(data_dir(), Split.test)
    run = trainer_step(cfg, images, labels)
    run(args.steps)  # trace and warm up
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    run(args.steps)
    wall = (time.perf_counter() - start) / args.steps * 1e3
    tf.profiler.experimental.stop()
    rows = [row for row in op_stats(logdir)
            if row["host_or_device"] == "Host" and row["eager"] != "Eager" and row["type"] != "IDLE"]
    by_type: dict[str, float] = collections.Counter()
    for row in rows:
        by_type[row["type"]] += row["total_self_time"] / args.steps / 1e3
    total = sum(by_type.values())
    print(f"{cfg.model.name}, batch {cfg.train.batch_size}: {wall:.0f} ms per step (traced), {total:.0f} ms of op "
          "self time (ops run side by side on the cores)")
    for name, ms in sorted(by_type.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {name:40} {ms:7.1f} ms {ms / total:6.1%}")
    print("by op:")
    rows.sort(key=lambda row: -row["total_self_time"])
    for row in rows[: args.top] + [row for row in rows[args.top:] if row["type"] in args.types]:
        ms = row["total_self_time"] / args.steps / 1e3
        print(f"  {row['type']:28} {ms:7.2f} ms  {row['operation'].split('StatefulPartitionedCall/', 1)[-1][-100:]}")


if __name__ == "__main__":
    main(sys.argv[1:])
