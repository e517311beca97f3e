"""The results tables of experiments/README.md: markdown rows for the jobs of equal-time sweeps, each with
its final sample grid copied to experiments/results/.

    python experiments/results.py <sweep dir> [<sweep dir> ...]

A sweep dir is a multirun's folder (hydra.sweep.dir): its sweep.json names the MLflow parent run and store.
"""

import json
import shutil
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from gan_lab.sweep import JOB_OVERRIDES_TAG, SWEEP_FILE, SWEPT_TAG, sweep_children, swept_keys

EXPERIMENTS = Path(__file__).resolve().parent
COLUMNS = ("score", "fid", "precision", "recall", "min_share", "max_share", "cond_acc")


def rows(sweep_dir: Path) -> list[str]:
    record = json.loads((sweep_dir / SWEEP_FILE).read_text())
    client = MlflowClient(record["tracking_uri"])
    parent = client.get_run(record["parent_run_id"])
    keys = swept_keys(parent.data.tags[SWEPT_TAG].split("; "))
    out = []
    for run in sweep_children(client, parent):
        overrides = json.loads(run.data.tags[JOB_OVERRIDES_TAG])
        swept = (" ".join(o for o in overrides if o.split("=")[0].lstrip("+") in keys)  # else its group choices
                 or " ".join(o for o in overrides if "." not in o.split("=")[0]))
        job_dir = next(sweep_dir.glob(f"{run.data.tags['sweep_job']}_*"))
        grid = EXPERIMENTS / "results" / f"{sweep_dir.name}_{job_dir.name}.png"
        shutil.copyfile(job_dir / "grid.png", grid)
        m = run.data.metrics
        values = " | ".join(f"{m[c]:.3g}" if c in m else "" for c in COLUMNS)
        out.append(f"| `{swept}` | {run.data.tags['mlflow.runName']} | {int(m['train_steps'])} | {m['train_seconds']:.0f} | "
                   f"{values} | ![]({grid.relative_to(EXPERIMENTS)}) |")
    return out


def main(argv: list[str]) -> int:
    print("| job | run | steps | train s | " + " | ".join(COLUMNS) + " | grid |")
    print("|---|---|---|---|" + "---|" * len(COLUMNS) + "---|")
    for sweep_dir in argv:
        print("\n".join(rows(Path(sweep_dir))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
