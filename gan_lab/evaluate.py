"""python -m gan_lab.evaluate run_id=<id> | model_uri=models:/<name>@<alias> | images=<file.npz> [n=10000] [seed=0] [checkpoint=best|last|<step>] [checkpoints=all] [data.*] [judge.*] [mlflow.*]

Judges samples and prints their figures (with the real-data ceilings as real_*) as one JSON object
on stdout; everything else goes to stderr.
- run_id= / model_uri=: generate n samples from that generator, judge them and log the figures into
  its training run. The run's own data settings choose the judge unless data.* overrides are given.
- checkpoint= (with run_id=): the run's last generator (default), its best judge evaluation's, or that
  of a kept checkpoint's training step. checkpoints=all: judge every checkpoint the run keeps and log
  the curve into the run as eval/<metric> by training step (for runs trained with the judge off too).
- images=: judge an .npz holding `images` (N x 28 x 28, N x 28 x 28 x 1 or N x 784; uint8 0-255, or
  float in 0-1 or -1-1) and optionally the `labels` a conditional generator was asked for.
"""

import contextlib
import json
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from gan_lab.cli import run_command
from gan_lab.config import ConfigError, as_override, check_overrides

SHARED = ("seed", "mlflow", "data", "judge", "plugins")


@dataclass
class EvaluateArgs:
    run_id: Optional[str] = field(default=None, metadata={"help": "judge this training run's generator, log into the run"})
    model_uri: Optional[str] = field(default=None, metadata={"help": "or a model: models:/<name>@<alias>, runs:/<id>/generator"})
    images: Optional[str] = field(default=None, metadata={"help": "or an .npz of images (and labels)"})
    n: int = field(default=10000, metadata={"help": "samples generated from a run or model"})
    truncation: Optional[float] = field(default=None, metadata={
        "help": "also judge samples of noise truncated to |z| <= this (logged as truncation_<t>/<metric>)"})
    rejection: Optional[float] = field(default=None, metadata={
        "help": "also judge samples D accepts, rejection sampling at this percentile (drs_<p>/<metric>)"})
    checkpoint: Optional[str] = field(default=None, metadata={
        "help": "a run's generator: last (default), best (best judge evaluation) or a kept checkpoint's training step"})
    checkpoints: Optional[str] = field(default=None, metadata={
        "help": "all: judge every checkpoint the run keeps, logged as eval/<metric> by training step"})


def load_samples(path: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(images for the judge, labels or None, the pixel range assumed) from an .npz of samples."""
    try:
        with np.load(path, allow_pickle=False) as data:
            images = data["images"]
            labels = data["labels"] if "labels" in data.files else None
    except (OSError, KeyError, ValueError) as err:
        raise ConfigError(f"images={path}: not an .npz with an 'images' array ({err})") from None
    if images.ndim < 2 or images.shape[1:] not in ((28, 28), (28, 28, 1), (784,)):
        raise ConfigError(f"images={path}: 'images' must be N x 28 x 28, N x 28 x 28 x 1 or N x 784, got {images.shape}")
    images = images.reshape(len(images), 28, 28)
    if labels is not None and labels.shape != (len(images),):
        raise ConfigError(f"images={path}: 'labels' must hold one label per image, got shape {labels.shape}")
    if images.dtype == np.uint8:
        return images, labels, "uint8 0-255"
    if not np.issubdtype(images.dtype, np.floating):
        raise ConfigError(f"images={path}: 'images' must be uint8 (0-255) or float (0-1 or -1-1), got {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if not (np.isfinite(low) and np.isfinite(high) and -1 <= low and high <= 1):
        raise ConfigError(f"images={path}: float images must lie in 0-1 or -1-1, found {low:.3g} to {high:.3g}")
    scaled = images if low < 0 else images * 2.0 - 1.0
    return scaled.astype(np.float32)[..., None], labels, "float -1-1" if low < 0 else "float 0-1"


def evaluate(args: EvaluateArgs, overrides: list[str]) -> dict:
    """The judged figures, with the real-data ceilings under ``real_*`` names."""
    from gan_lab.judge import get_judge

    if sum(x is not None for x in (args.run_id, args.model_uri, args.images)) != 1:
        raise ConfigError("give one of run_id=<MLflow run id>, model_uri=models:/<name>@<alias> or images=<file.npz>")
    if args.n < 1:
        raise ConfigError(f"n={args.n}: must be >= 1")
    cfg = check_overrides(overrides)
    if args.truncation is not None and not args.truncation > 0:
        raise ConfigError(f"truncation={args.truncation}: must be > 0 (|z| <= truncation)")
    if args.rejection is not None and not 0 <= args.rejection <= 100:
        raise ConfigError(f"rejection={args.rejection}: a percentile in [0, 100] (higher: D rejects more)")
    if args.images is not None:
        if args.truncation is not None or args.rejection is not None:
            raise ConfigError("truncation= and rejection= sample a generator: give run_id= or model_uri=, not images=")
        images, labels, assumed = load_samples(args.images)
        print(f"images={args.images}: {len(images)} images, pixel range assumed {assumed}", file=sys.stderr)
        judge = get_judge(cfg)
        return {**judge.evaluate(images, requested=labels), **judge.ceilings, "judge": judge.info["key"],
                "assumed_range": assumed}

    import mlflow

    from gan_lab import tracking
    from gan_lab.judge import judge_generator, log_judgement

    if args.checkpoints not in (None, "all"):
        raise ConfigError(f"checkpoints={args.checkpoints}: only checkpoints=all (every kept checkpoint) is known")
    if args.checkpoints and (args.run_id is None or args.checkpoint or args.truncation or args.rejection):
        raise ConfigError("checkpoints=all judges every checkpoint of one run: give run_id=, without checkpoint=, "
                          "truncation= or rejection=")
    if args.checkpoint is not None and args.run_id is None:
        raise ConfigError(f"checkpoint={args.checkpoint} picks one of a training run's generators: give run_id=")
    run, model_uri = tracking.generator_source(args.run_id, args.model_uri, cfg.mlflow.tracking_uri)
    trained = tracking.run_config(run)
    data = [as_override(f"data.{key}", value) for key, value in trained.data.items() if key != "name"]
    cfg = check_overrides([f"data={trained.data.name}", *data, *overrides])  # the user's data.* last, so they win
    judge = get_judge(cfg)
    if args.checkpoints:
        return evaluate_checkpoints(run, trained, judge, args.n, cfg.seed)
    generator, source = tracking.load_generator(run, model_uri, args.checkpoint)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "d_loss")
    step = max((m.step for m in history), default=0)
    result = judge_generator(judge, generator, trained.model, args.n, cfg.seed, cas=True)  # CAS: conditional only
    # the run's figures; another checkpoint's go beside them, as checkpoint_<best|step>/<metric>
    log_judgement(run.info.run_id, judge, result, step, "" if args.checkpoint in (None, "last") else f"checkpoint_{args.checkpoint}")
    summary = {**result, **judge.ceilings, "judge": judge.info["key"], "run_id": run.info.run_id, "generator": source}
    if args.truncation is not None or args.rejection is not None:  # beside the plain figures, never in their place
        discriminator = None if args.rejection is None else tracking.load_discriminator(run, trained.model)
        sampled = judge_generator(judge, generator, trained.model, args.n, cfg.seed, args.truncation, discriminator,
                                  args.rejection)
        prefix = sampling_prefix(args.truncation, args.rejection)
        log_judgement(run.info.run_id, judge, sampled, step, prefix)
        summary |= {f"{prefix}/{name}": value for name, value in sampled.items()}
    return summary


def evaluate_checkpoints(run, trained, judge, n: int, seed: int) -> dict:
    """Judge the generator of every checkpoint ``run`` keeps and log each scalar as ``eval/<metric>`` at its
    training step; returns ``{"checkpoints": {step: figures}, "best_step": ...}`` by ``sweep.objective``."""
    from mlflow import MlflowClient

    from gan_lab import tracking
    from gan_lab.judge import judge_generator
    from gan_lab.metrics import SCALARS
    from gan_lab.trainer import checkpoint_generator

    folder, kept = tracking.run_checkpoints(run)
    if not kept:
        raise ConfigError(f"checkpoints=all: run {run.info.run_id} keeps no checkpoints on this machine ({folder})")
    client, scored = MlflowClient(), {}
    for step, path in kept.items():
        result = judge_generator(judge, checkpoint_generator(trained, path), trained.model, n, seed)
        scored[step] = {name: result[name] for name in SCALARS if name in result}
        for name, value in scored[step].items():
            client.log_metric(run.info.run_id, f"eval/{name}", value, step=step)
        print(f"step {step}: " + ", ".join(f"{name} {scored[step][name]:.3g}" for name in ("score", "fid", "precision",
              "recall") if name in scored[step]), file=sys.stderr)
    objective, maximise = trained.sweep.objective, trained.sweep.direction.name == "maximize"
    judged = [step for step in scored if np.isfinite(scored[step].get(objective, np.nan))]
    best = (max if maximise else min)(judged, key=lambda step: scored[step][objective]) if judged else None
    print(f"logged into run {run.info.run_id} as eval/<metric> by training step; best {objective}: step {best} "
          f"(pick it with checkpoint={best})", file=sys.stderr)
    return {"checkpoints": scored, "best_step": best, "objective": objective, **judge.ceilings,
            "judge": judge.info["key"], "run_id": run.info.run_id}


def sampling_prefix(truncation: float | None, rejection: float | None) -> str:
    """``truncation_0.8``, ``drs_80`` or ``truncation_0.8_drs_80``: where a sampling option's figures are logged."""
    parts = ([f"truncation_{truncation:g}"] if truncation is not None else []) + (
        [f"drs_{rejection:g}"] if rejection is not None else [])
    return "_".join(parts)


def _main(args: EvaluateArgs, overrides: list[str]) -> None:
    with contextlib.redirect_stdout(sys.stderr):  # judge training, Keras and MLflow messages: stdout holds the JSON only
        result = evaluate(args, overrides)
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> int:
    return run_command(__doc__, EvaluateArgs, SHARED, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
