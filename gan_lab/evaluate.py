"""Judge samples and print their figures as JSON.

    python -m gan_lab.evaluate run_id=<id> [n=10000] [seed=0]   # re-evaluate a run, log into it
    python -m gan_lab.evaluate images=<file.npz>                 # judge exported samples

``images=`` takes any .npz with ``images`` (uint8 N x 28 x 28, as written by
``gan_lab.generate``) and optionally the ``labels`` a conditional generator was asked for.
Other ``key=value`` arguments are config overrides choosing the judge (``data.path=…``,
``data.split=test``, ``judge.epochs=…``); with ``run_id=`` the run's own data settings are used
unless ``data.*`` overrides are given.
"""

import json
import sys
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_lab.config import compose_config


@dataclass
class EvaluateArgs:
    run_id: Optional[str] = None
    images: Optional[str] = None
    n: int = 10000
    seed: int = 0


def parse_args(argv: list[str]) -> tuple[EvaluateArgs, list[str]]:
    """Split ``argv`` into this command's arguments (type-checked) and config overrides."""
    own = {f.name for f in fields(EvaluateArgs)}
    mine = [a for a in argv if a.split("=", 1)[0] in own]
    args = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EvaluateArgs), OmegaConf.from_dotlist(mine)))
    if (args.run_id is None) == (args.images is None):
        raise ValueError("give exactly one of run_id=<MLflow run id> or images=<file.npz>")
    if args.n < 1:
        raise ValueError(f"n must be >= 1, got {args.n}")
    return args, [a for a in argv if a not in mine]


def load_samples(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 images N x 28 x 28, labels or None) from an .npz written by ``gan_lab.generate``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            images = data["images"]
            labels = data["labels"] if "labels" in data.files else None
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a samples .npz with an 'images' array ({err})") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{path}: 'images' must be uint8 N x 28 x 28, got {images.dtype} {images.shape}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"{path}: 'labels' must hold one label per image, got shape {labels.shape}")
    return images, labels


def evaluate(args: EvaluateArgs, overrides: list[str]) -> dict:
    """The judged figures, with the real-data ceilings under ``real_*`` names."""
    cfg = compose_config(overrides)
    if args.images is not None:
        images, labels = load_samples(args.images)
        from gan_lab.judge import get_judge

        judge = get_judge(cfg)
        return {**judge.evaluate(images, requested=labels), **judge.ceilings, "judge": judge.info["key"]}

    import mlflow

    from gan_lab import tracking
    from gan_lab.judge import get_judge, judge_generator, log_judgement

    run = tracking.find_training_run(args.run_id, cfg.mlflow.tracking_uri)
    trained = OmegaConf.create(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/config.yaml"))
    data_overrides = OmegaConf.from_dotlist([o for o in overrides if o.startswith("data.")])
    cfg = OmegaConf.merge(cfg, {"data": trained.data, "model": trained.model}, data_overrides)
    judge = get_judge(cfg)
    generator = mlflow.keras.load_model(f"runs:/{args.run_id}/generator")
    result = judge_generator(judge, generator, cfg.model, args.n, args.seed)
    history = mlflow.MlflowClient().get_metric_history(args.run_id, "d_loss")
    log_judgement(args.run_id, judge, result, step=max((m.step for m in history), default=0))
    return {**result, **judge.ceilings, "judge": judge.info["key"]}


def main(argv: list[str] | None = None) -> int:
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        result = evaluate(args, overrides)
    except (OmegaConfBaseException, ValueError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
