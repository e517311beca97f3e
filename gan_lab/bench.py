"""``python -m gan_lab.bench [section ...]``: benchmarks that print timings (not tests).

Sections: ``judge`` (all judge metrics for 10,000 samples), ``cli`` (start-up of
``--help`` / ``--cfg job``). Data: ``$GAN_LAB_DATA_DIR``, else ``../shared/data/mnist``.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> str:
    return os.environ.get("GAN_LAB_DATA_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")


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


SECTIONS = {"judge": bench_judge, "cli": bench_cli}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in SECTIONS]
    if unknown:
        print(f"error: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    for name in argv or SECTIONS:
        SECTIONS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
