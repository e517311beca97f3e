"""Plot judge score against training wall time for MLflow runs (each run needs judge.every=1).

    python experiments/score_vs_time.py --store sqlite:///mlflow.db --out experiments/score_vs_time.png \
        RUN_ID[=label] [RUN_ID[=label] ...]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow import MlflowClient  # noqa: E402


def curve(client: MlflowClient, run_id: str) -> tuple[list[float], list[float]]:
    seconds = {m.step: m.value for m in client.get_metric_history(run_id, "train_seconds")}
    scores = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "score"))
    return [seconds[step] for step, _ in scores], [value for _, value in scores]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="RUN_ID or RUN_ID=label")
    parser.add_argument("--store", default="sqlite:///mlflow.db")
    parser.add_argument("--out", default="experiments/score_vs_time.png")
    args = parser.parse_args()
    client = MlflowClient(args.store)
    fig, ax = plt.subplots(figsize=(7, 4))
    real = None
    for spec in args.runs:
        run_id, _, label = spec.partition("=")
        x, y = curve(client, run_id)
        ax.plot(x, y, marker=".", label=label or run_id[:8])
        real = client.get_run(run_id).data.metrics.get("real_score", real)
        for seconds, score in zip(x, y):
            if score >= 9.0:
                print(f"{label or run_id}: score {score:.2f} >= 9 after {seconds:.0f} s of training")
                break
        else:
            print(f"{label or run_id}: best score {max(y):.2f}; final {y[-1]:.2f} after {x[-1]:.0f} s")
    if real is not None:
        ax.axhline(real, color="black", linestyle=":", label=f"real digits ({real:.2f})")
    ax.axvline(300, color="gray", linestyle="--", linewidth=1, label="5 minutes")
    ax.set(xlabel="training time (s, without evaluation)", ylabel="judge score (max 10)", ylim=(0, 10),
           title="Judge score against training time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
