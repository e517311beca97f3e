"""python -m gan_lab.generate run_id=<id> | model_uri=models:/<name>@<alias> [n=100] [out=<dir>] [seed=0] [labels=[7]] [truncation=0.8] [rejection=80] [checkpoint=best|last|<step>] [mlflow.tracking_uri=<uri>]

Loads the generator of a training run (or of a registered model) and writes <out>/samples.npz
(`images`: uint8 N x 28 x 28; for conditional models also `labels`) and <out>/grid.png. A run's
checkpoint= picks its last generator (default), its best judge evaluation's, or a kept checkpoint's step.
The same generator and seed always give byte-identical files.
"""

import io
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from gan_lab.cli import run_command
from gan_lab.config import check_overrides

SHARED = ("seed", "mlflow", "plugins")


@dataclass
class GenerateArgs:
    run_id: Optional[str] = field(default=None, metadata={"help": "the training run whose generator to use"})
    model_uri: Optional[str] = field(default=None, metadata={"help": "or a model: models:/<name>@<alias>, runs:/<id>/generator"})
    n: int = field(default=100, metadata={"help": "number of samples"})
    out: Optional[str] = field(default=None, metadata={"help": "output folder (default samples/<run id>)"})
    labels: Optional[list[int]] = field(default=None, metadata={"help": "conditional models: class labels to cycle through (default all)"})
    truncation: Optional[float] = field(default=None, metadata={"help": "noise truncated to |z| <= this (default: plain)"})
    rejection: Optional[float] = field(default=None, metadata={
        "help": "keep the samples D accepts: rejection sampling at this percentile (default: all)"})
    checkpoint: Optional[str] = field(default=None, metadata={
        "help": "a run's generator: last (default), best (best judge evaluation) or a kept checkpoint's training step"})


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed zip timestamps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)


def generate(args: GenerateArgs, seed: int = 0, tracking_uri: str | None = None) -> Path:
    """Write the samples of ``args``'s generator; returns the .npz path."""
    from gan_lab import figures, tracking
    from gan_lab.config import ConfigError
    from gan_lab.sampling import draw

    if args.n < 1:
        raise ConfigError(f"n={args.n}: must be >= 1")
    run, model_uri = tracking.generator_source(args.run_id, args.model_uri, tracking_uri)
    model_cfg = tracking.run_config(run).model
    num_classes = model_cfg.get("num_classes", 0)
    if num_classes and args.labels is not None and not all(0 <= d < num_classes for d in args.labels):
        raise ConfigError(f"labels={args.labels}: must lie in 0..{num_classes - 1}")
    if not num_classes and args.labels is not None:
        raise ConfigError(f"labels={args.labels}: run {run.info.run_id} is an unconditional {model_cfg.name}; "
                          "labels= needs a cgan run")

    if args.truncation is not None and not args.truncation > 0:
        raise ConfigError(f"truncation={args.truncation}: must be > 0 (|z| <= truncation)")
    if args.rejection is not None and not 0 <= args.rejection <= 100:
        raise ConfigError(f"rejection={args.rejection}: a percentile in [0, 100] (higher: D rejects more)")
    generator, _ = tracking.load_generator(run, model_uri, args.checkpoint)
    discriminator = None if args.rejection is None else tracking.load_discriminator(run, model_cfg)
    images, labels, _ = draw(generator, model_cfg, args.n, seed, args.truncation, discriminator, args.rejection,
                             args.labels)

    out = Path(args.out or f"samples/{run.info.run_id}")
    save_npz(out / "samples.npz", **({"images": images} if labels is None else {"images": images, "labels": labels}))
    figures.save_png(figures.sample_grid(images, labels), out / "grid.png")
    return out / "samples.npz"


def _main(args: GenerateArgs, overrides: list[str]) -> None:
    cfg = check_overrides(overrides)
    path = generate(args, cfg.seed, cfg.mlflow.tracking_uri)
    print(f"wrote {path} and {path.with_name('grid.png')}")


def main(argv: list[str] | None = None) -> int:
    return run_command(__doc__, GenerateArgs, SHARED, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
