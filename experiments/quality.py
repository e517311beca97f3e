"""The quality study of experiments/quality.md: recipes trained for a wall-clock budget on the MNIST
test split, judged, and tabulated with a sample grid per row.

    python experiments/quality.py run screen --budget 180 --samples 2000 --seeds 0 [--recipes a b ...]
    python experiments/quality.py run confirm --budget 600 --samples 10000 --seeds 0 1 --recipes a b
    python experiments/quality.py table screen          # markdown rows for quality.md, grids to experiments/quality/

Each run is `python -m gan_lab <recipe overrides> data.split=test train.max_time=<budget> ...` into the
store outputs/quality/mlflow.db, its folder outputs/quality/<stage>/<recipe>/seed<k>; a run already
finished there is not run again. Run from the repository root, with GAN_LAB_DATA_DIR set.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "quality"
STORE = f"sqlite:///{OUT / 'mlflow.db'}"
GRIDS = ROOT / "experiments" / "quality"

FAST = ["loss=lsgan", "model.dropout=0", "optimizer.lr=4e-4"]  # experiment=dcgan_fast
RECIPES = {
    # unconditional: every piece alone on the default, then combinations
    "default": [],
    "dcgan_fast": ["experiment=dcgan_fast"],
    "hinge": ["loss=hinge"],
    "wgan_gp": ["loss=wgan_gp", "train.d_steps=5", "model.dropout=0", "optimizer.beta_1=0", "optimizer.beta_2=0.9"],
    "r1": ["loss.r1_gamma=1"],
    "spectral_norm": ["model.spectral_norm=true"],
    "minibatch_std": ["model.minibatch_std=true"],
    "translation": ["train.augment=translation"],
    "translation_cutout": ["train.augment='translation,cutout'"],
    "tfgan_mnist": ["experiment=tfgan_mnist"],
    "infogan": ["model=infogan"],
    "infogan_fast": ["model=infogan", *FAST],
    "infogan_fast_translation": ["model=infogan", *FAST, "train.augment=translation"],
    "infogan_fast_sn_hinge": ["model=infogan", "model.dropout=0", "optimizer.lr=4e-4", "loss=hinge",
                              "model.spectral_norm=true"],
    "infogan_fast_mbstd": ["model=infogan", *FAST, "model.minibatch_std=true"],
    "selfcond_fast": ["model=infogan", "model.self_conditioned=true", *FAST],
    "selfcond_fast_ms0.1": ["model=infogan", "model.self_conditioned=true", *FAST, "loss.mode_seeking=0.1"],
    "selfcond_fast_mbstd": ["model=infogan", "model.self_conditioned=true", *FAST, "model.minibatch_std=true"],
    "fast_translation": [*FAST, "train.augment=translation"],
    "fast_mbstd": [*FAST, "model.minibatch_std=true"],
    "infogan_fast_mbstd_mi2": ["model=infogan", *FAST, "model.minibatch_std=true", "loss.mutual_information=2"],
    "infogan_paper_noise": ["model=infogan", *FAST, "model.minibatch_std=true", "model.latent_dim=62"],
    "infogan_fast_mbstd_b32": ["model=infogan", *FAST, "model.minibatch_std=true", "train.batch_size=32",
                               "optimizer.lr=2e-4"],
    # conditional
    "cgan": ["model=cgan"],
    "cgan_fast": ["model=cgan", *FAST],
    "cgan_ms": ["model=cgan", "loss.mode_seeking=1"],
    "cgan_cbn": ["model=cgan", "model.conditional_bn=true"],
    "cgan_cbn_ms": ["model=cgan", "model.conditional_bn=true", "loss.mode_seeking=1"],
    "cgan_translation": ["model=cgan", "train.augment=translation"],
    "cgan_mbstd": ["model=cgan", "model.minibatch_std=true"],
    "cgan_fast_ms": ["model=cgan", *FAST, "loss.mode_seeking=1"],
    "cgan_fast_ms0.1": ["model=cgan", *FAST, "loss.mode_seeking=0.1"],
    "cgan_fast_ms0.3": ["model=cgan", *FAST, "loss.mode_seeking=0.3"],
    "cgan_fast_cbn": ["model=cgan", *FAST, "model.conditional_bn=true"],
}
COLUMNS = ("score", "fid", "precision", "recall", "min_share", "max_share", "cond_acc", "min_class_recall")


def folder(stage: str, recipe: str, seed: int) -> Path:
    return OUT / stage / recipe / f"seed{seed}"


def finished_run(run_dir: Path):
    from mlflow.tracking import MlflowClient

    if not (run_dir / "run.json").is_file():
        return None
    run = MlflowClient(STORE).get_run(json.loads((run_dir / "run.json").read_text())["run_id"])
    return run if run.info.status == "FINISHED" else None


def run(stage: str, recipes: list[str], seeds: list[int], budget: float, samples: int) -> None:
    for recipe in recipes:
        for seed in seeds:
            run_dir = folder(stage, recipe, seed)
            if finished_run(run_dir):
                continue
            shutil.rmtree(run_dir, ignore_errors=True)
            command = [sys.executable, "-m", "gan_lab", *RECIPES[recipe], "data.split=test", "train.epochs=100000",
                       f"train.max_time={budget}", f"judge.samples={samples}", "judge.every=100000", f"seed={seed}",
                       f"mlflow.tracking_uri={STORE}", f"mlflow.experiment=quality-{stage}", f"hydra.run.dir={run_dir}"]
            print(" ".join(command[1:]), flush=True)
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            status = "ok" if result.returncode == 0 else f"FAILED: {result.stderr[-500:]}"
            print(f"  {recipe} seed {seed}: {status}", flush=True)


def table(stage: str) -> None:
    """Markdown rows, one per recipe and seed, in RECIPES order; each row's final grid copied beside quality.md."""
    (GRIDS / stage).mkdir(parents=True, exist_ok=True)
    print("| recipe | seed | steps | " + " | ".join(COLUMNS) + " | per-class recall | grid |")
    print("|---|---|---|" + "---|" * len(COLUMNS) + "---|---|")
    for recipe in RECIPES:
        for run_dir in sorted((OUT / stage / recipe).glob("seed*")):
            found = finished_run(run_dir)
            if found is None:
                continue
            metrics = found.data.metrics
            grid = GRIDS / stage / f"{recipe}_{run_dir.name}.png"
            shutil.copyfile(run_dir / "grid.png", grid)
            per_class = _per_class_recall(found)
            values = " | ".join(f"{metrics[c]:.3g}" if c in metrics else "" for c in COLUMNS)
            print(f"| {recipe} | {run_dir.name[4:]} | {int(metrics['train_steps'])} | {values} | {per_class} | "
                  f"![]({grid.relative_to(ROOT / 'experiments')}) |")


def _per_class_recall(run) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    judged = sorted(a.path for a in MlflowClient(STORE).list_artifacts(run.info.run_id, "judge") if a.path.endswith(".json"))
    if not judged:
        return ""
    record = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{judged[-1]}")
    return " ".join(f"{value:.2f}" for value in record.get("per_class_recall", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "table"])
    parser.add_argument("stage")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget", type=float, default=180)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    if args.action == "run":
        run(args.stage, args.recipes, args.seeds, args.budget, args.samples)
    else:
        table(args.stage)


if __name__ == "__main__":
    main()
