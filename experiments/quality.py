"""The quality study of experiments/quality.md: recipes trained for a wall-clock budget on the MNIST
test split, judged, and tabulated with a sample grid per row.

    python experiments/quality.py run screen --budget 180 --samples 2000 --seeds 0 [--recipes a b ...]
    python experiments/quality.py run confirm --budget 600 --samples 10000 --seeds 0 1 --recipes a b
    python experiments/quality.py table screen          # markdown rows for quality.md, grids to experiments/quality/
    python experiments/quality.py bars validate         # both judges' precision and recall as shares of real, pixels

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

from gan_lab.sweep import SUMMARY_METRICS

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "quality"
STORE = f"sqlite:///{OUT / 'mlflow.db'}"
GRIDS = ROOT / "experiments" / "quality"

DCGAN = ["model=dcgan"]  # the TensorFlow tutorial's DCGAN: the default before this study
FAST = ["loss=lsgan", "model.dropout=0", "optimizer.lr=4e-4"]  # what experiment=dcgan_fast changes
SELFCOND = ["model=infogan", "model.self_conditioned=true", *FAST]  # model=selfcond's recipe, its code size apart


def cgan(conditional_bn: bool = False, mode_seeking: float = 0, *more: str) -> list[str]:
    """model=cgan with both settings its default recipe changes given (False, 0: cgan as first built)."""
    return ["model=cgan", f"model.conditional_bn={str(conditional_bn).lower()}", f"loss.mode_seeking={mode_seeking}",
            *more]


RECIPES = {
    # unconditional: every piece alone on the former default, then combinations
    "default": DCGAN,
    "hinge": [*DCGAN, "loss=hinge"],
    "wgan_gp": [*DCGAN, "loss=wgan_gp", "train.d_steps=5", "model.dropout=0", "optimizer.beta_1=0",
                "optimizer.beta_2=0.9"],
    "r1": [*DCGAN, "loss.r1_gamma=1"],
    "spectral_norm": [*DCGAN, "model.spectral_norm=true"],
    "minibatch_std": [*DCGAN, "model.minibatch_std=true"],
    "translation": [*DCGAN, "train.augment=translation"],
    "translation_cutout": [*DCGAN, "train.augment='translation,cutout'"],
    "tfgan_mnist": ["experiment=tfgan_mnist"],
    "dcgan_fast": ["experiment=dcgan_fast"],
    "infogan": ["model=infogan"],
    "infogan_fast": ["model=infogan", *FAST],
    "infogan_fast_mbstd": ["model=infogan", *FAST, "model.minibatch_std=true"],
    "selfcond_fast": SELFCOND,
    "selfcond_fast_k20": [*SELFCOND, "model.code_dim=20"],
    "selfcond_balanced": ["model=infogan", "model.self_conditioned=true"],
    "selfcond_balanced_fast": SELFCOND,
    "selfcond_balanced_fast_mbstd": [*SELFCOND, "model.minibatch_std=true"],
    "selfcond_balanced_fast_mi2": [*SELFCOND, "loss.mutual_information=2"],
    "selfcond_balanced_k20": ["model=infogan", "model.self_conditioned=true", "model.code_dim=20"],
    "selfcond_balanced_k20_lsgan": ["model=infogan", "model.self_conditioned=true", "model.code_dim=20", "loss=lsgan"],
    "selfcond_balanced_fast_k20": [*SELFCOND, "model.code_dim=20"],
    "selfcond_balanced_fast_k30": [*SELFCOND, "model.code_dim=30"],
    "selfcond_balanced_fast_k50": [*SELFCOND, "model.code_dim=50"],
    "selfcond_balanced_fast_k20_ms0.3": [*SELFCOND, "model.code_dim=20", "loss.mode_seeking=0.3"],
    "selfcond_balanced_fast_k20_ms1": [*SELFCOND, "model.code_dim=20", "loss.mode_seeking=1"],
    "selfcond_balanced_fast_k20_mi0.5": [*SELFCOND, "model.code_dim=20", "loss.mutual_information=0.5"],
    "selfcond_balanced_fast_k20_mi0.25": [*SELFCOND, "model.code_dim=20", "loss.mutual_information=0.25"],
    "selfcond_balanced_fast_k20_mbstd": [*SELFCOND, "model.code_dim=20", "model.minibatch_std=true"],
    "selfcond_balanced_fast_k20_gmi0.1": [*SELFCOND, "model.code_dim=20", "loss.generator_mutual_information=0.1"],
    "selfcond_balanced_fast_k20_gmi0": [*SELFCOND, "model.code_dim=20", "loss.generator_mutual_information=0"],
    "selfcond_balanced_fast_k30_gmi0.1": [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.1"],
    "selfcond_balanced_fast_k30_gmi0.15": [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.15"],
    "selfcond_balanced_fast_k30_gmi0.15_tfconv": [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.15",
                                                   "train.fast_convolutions=false"],  # the speed check's control
    "selfcond_balanced_fast_k30_gmi0.15_ema0.9995": [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.15",
                                                      "train.ema=0.9995"],
    "selfcond_balanced_fast_k30_gmi0.15_b128": [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.15",
                                                 "train.batch_size=128"],
    "selfcond_balanced_fast_k30_gmi0.25": [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.25"],
    "selfcond_balanced_fast_k50_gmi0.25": [*SELFCOND, "model.code_dim=50", "loss.generator_mutual_information=0.25"],
    # conditional: every piece alone on cgan as first built, then combinations
    "cgan": cgan(),
    "cgan_ms": cgan(False, 1),
    "cgan_ms0.1": cgan(False, 0.1),
    "cgan_ms0.3": cgan(False, 0.3),
    "cgan_cbn": cgan(True),
    "cgan_cbn_ms": cgan(True, 1),
    "cgan_cbn_ms0.3": cgan(True, 0.3),
    "cgan_fast_ms": cgan(False, 1, *FAST),
    "cgan_cbn_ms0.3_fast": cgan(True, 0.3, *FAST),  # the default's training (selfcond's) on cgan's recipe
}
# Rows measured with code that has changed since: the recipe's overrides now train something else.
EARLIER = {"selfcond_fast": "at 85f833e, before D's guesses were balanced",
           "selfcond_fast_k20": "at 85f833e, before D's guesses were balanced"}
# Variants tried on a patched copy of the package and not kept (experiments/quality.md says what each patch did).
PATCHED = {
    "selfcond_prior_fast_k20": ([*SELFCOND, "model.code_dim=20"], "patched: G draws codes as often as D guesses them"),
    "selfcond_balanced_fast_k20_cbn": ([*SELFCOND, "model.code_dim=20"], "patched: G's batch norms conditioned on the code"),
    "selfcond_moving_fast_k30": ([*SELFCOND, "model.code_dim=30"], "patched: guesses balanced by a moving average"),
    "selfcond_moving_fast_k30_gmi0.25": ([*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.25"],
                                         "patched: guesses balanced by a moving average"),
    "selfcond_balanced_fast_k30_gmi0.15_q512": (
        [*SELFCOND, "model.code_dim=30", "loss.generator_mutual_information=0.15", "model.assignment_queue=512"],
        "patched: guesses balanced over the batch and the 512 real images before it"),
}
COLUMNS = SUMMARY_METRICS  # what a sweep's summary shows


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
    """Markdown rows, one per recipe and seed, in RECIPES then PATCHED order; each row's final grid copied beside quality.md."""
    (GRIDS / stage).mkdir(parents=True, exist_ok=True)
    print("| recipe | overrides | seed | steps | " + " | ".join(COLUMNS) + " | per-class recall | grid |")
    print("|---|---|---|---|" + "---|" * len(COLUMNS) + "---|---|")
    shown_overrides = {recipe: " ".join(overrides) + (f" ({EARLIER[recipe]})" if recipe in EARLIER else "")
                       for recipe, overrides in RECIPES.items()}
    shown_overrides |= {recipe: f"{' '.join(overrides)} ({note})" for recipe, (overrides, note) in PATCHED.items()}
    for recipe, shown in shown_overrides.items():
        for run_dir in sorted((OUT / stage / recipe).glob("seed*")):
            found = finished_run(run_dir)
            if found is None:
                continue
            metrics = found.data.metrics
            grid = GRIDS / stage / f"{recipe}_{run_dir.name}.png"
            shutil.copyfile(run_dir / "grid.png", grid)
            per_class = _per_class_recall(found)
            values = " | ".join(f"{metrics[c]:.3g}" if c in metrics else "" for c in COLUMNS)
            print(f"| {recipe} | `{shown}` | {run_dir.name[4:]} | {int(metrics['train_steps'])} | {values} | "
                  f"{per_class} | ![]({grid.relative_to(ROOT / 'experiments')}) |")


# The rule of quality.md: better only if both judges and the pixels agree; these bars on both judges (share of real).
BARS = {"precision": 0.90, "recall": 0.85}


def bars(stage: str) -> None:
    """Markdown rows: per recipe and seed, precision and recall on both judges as shares of their real ceilings,
    cond_acc, and the pixel diagnostics beside their real values; ``meets`` says whether every bar holds."""
    judged = [f"{prefix}{name}" for prefix in ("", "val_") for name in BARS]
    pixels = ["ink_ks", "stroke_ks", "class_ink_ks", "pixel_coverage"]
    print("| recipe | seed | steps | " + " | ".join(f"{m} / real" for m in judged) + " | cond_acc | val_cond_acc | "
          + " | ".join(f"{m} (real)" for m in pixels) + " | meets bars |")
    print("|---|---|---|" + "---|" * (len(judged) + len(pixels) + 3))
    for recipe in RECIPES:
        for run_dir in sorted((OUT / stage / recipe).glob("seed*")):
            found = finished_run(run_dir)
            if found is None:
                continue
            m = found.data.metrics
            shares = {name: m[name] / m[f"real_{name}"] for name in judged}
            # cond_acc on the judge (the validation judge's real digits reach 0.970, below the bar)
            meets = all(shares[name] >= BARS[name.removeprefix("val_")] for name in judged) and m.get("cond_acc", 1) >= 0.98
            shown = [f"{m[name]:.3f} / {m[f'real_{name}']:.3f} = **{shares[name]:.2f}**" for name in judged]
            conditional = [f"{m[name]:.3f}" if name in m else "" for name in ("cond_acc", "val_cond_acc")]
            pixel = [f"{m[name]:.3f} ({m[f'real_{name}']:.3f})" if name in m else "" for name in pixels]
            print(f"| {recipe} | {run_dir.name[4:]} | {int(m['train_steps'])} | " + " | ".join(shown + conditional + pixel)
                  + f" | {'yes' if meets else 'no'} |")


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
    parser.add_argument("action", choices=["run", "table", "bars"])
    parser.add_argument("stage")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget", type=float, default=180)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    if args.action == "run":
        run(args.stage, args.recipes, args.seeds, args.budget, args.samples)
    else:
        {"table": table, "bars": bars}[args.action](args.stage)


if __name__ == "__main__":
    main()
