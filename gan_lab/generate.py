"""``python -m gan_lab.generate run_id=<id> [n=100] [out=<dir>] [seed=0] [labels=[7]]``

Loads the generator logged by a training run and writes ``<out>/samples.npz`` (``images``:
uint8 N x 28 x 28; for conditional models also ``labels``) and ``<out>/grid.png``.
The same run and seed always give byte-identical files.
"""

import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_lab.config import Noise


@dataclass
class GenerateConfig:
    run_id: str = MISSING
    n: int = 100
    out: Optional[str] = None  # default: samples/<run_id>
    seed: int = 0
    labels: Optional[list[int]] = None  # conditional models: digits to cycle through (default all)
    tracking_uri: Optional[str] = None  # default: sqlite mlflow.db in the current directory


def parse_args(argv: list[str]) -> GenerateConfig:
    """``key=value`` arguments, type-checked against GenerateConfig."""
    cfg = OmegaConf.merge(OmegaConf.structured(GenerateConfig), OmegaConf.from_dotlist(argv))
    if OmegaConf.is_missing(cfg, "run_id"):
        raise ValueError("run_id=<MLflow run id> is required (find run ids with `make ui`)")
    if cfg.n < 1:
        raise ValueError(f"n must be >= 1, got {cfg.n}")
    return OmegaConf.to_object(cfg)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed zip timestamps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)


def generate(cfg: GenerateConfig) -> Path:
    """Write the samples of run ``cfg.run_id``; returns the .npz path."""
    import mlflow

    from gan_lab import figures, tracking
    from gan_lab.models import generate_images, sample_noise

    run = tracking.find_training_run(cfg.run_id, cfg.tracking_uri)
    params = run.data.params
    num_classes = int(params.get("model.num_classes", 0))
    digits = list(range(num_classes)) if cfg.labels is None else cfg.labels
    if num_classes and not all(0 <= d < num_classes for d in digits):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {digits}")
    if not num_classes and cfg.labels is not None:
        raise ValueError(f"run {cfg.run_id} is an unconditional {params['model.name']}; labels= needs a cgan run")

    generator = mlflow.keras.load_model(f"runs:/{cfg.run_id}/generator")
    rng = np.random.default_rng(cfg.seed)
    noise = sample_noise(rng, cfg.n, int(params["model.latent_dim"]), Noise[params["model.noise"]])
    labels = np.resize(np.array(digits, dtype=np.int32), cfg.n) if num_classes else None
    images = generate_images(generator, noise, labels)

    out = Path(cfg.out or f"samples/{cfg.run_id}")
    arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
    save_npz(out / "samples.npz", **arrays)
    grid = figures.image_grid(images[:100]) if labels is None else figures.label_grid(images, labels)
    figures.save_png(grid, out / "grid.png")
    return out / "samples.npz"


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(sys.argv[1:] if argv is None else argv)
        path = generate(cfg)
    except (OmegaConfBaseException, ValueError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_name('grid.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
