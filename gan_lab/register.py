"""python -m gan_lab.register run_id=<id> name=<name> [alias=champion] [checkpoint=best|last|<step>] [mlflow.tracking_uri=<uri>]

Registers the generator a training run logged (checkpoint=: its last, the default; its best judge
evaluation's; or that of a kept checkpoint's training step) as a new version of model <name> in the MLflow
Model Registry and points <alias> at it; then generate or evaluate it with
model_uri=models:/<name>@<alias>. A sweep registers its best job the same way with sweep.register=<name>.
"""

import sys
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from gan_lab.cli import run_command
from gan_lab.config import check_overrides

SHARED = ("mlflow", "plugins")


@dataclass
class RegisterArgs:
    run_id: str = field(default=MISSING, metadata={"help": "the training run whose generator to register (required)"})
    name: str = field(default=MISSING, metadata={"help": "the registered model's name (required)"})
    alias: Optional[str] = field(default=None, metadata={"help": "an alias to point at the new version, e.g. champion"})
    checkpoint: Optional[str] = field(default=None, metadata={
        "help": "which of the run's generators: last (default), best (best judge evaluation) or a training step"})


def _main(args: RegisterArgs, overrides: list[str]) -> None:
    from gan_lab import tracking

    cfg = check_overrides(overrides)
    version = tracking.register_generator(args.run_id, args.name, args.alias, cfg.mlflow.tracking_uri, args.checkpoint)
    uri = f"models:/{args.name}@{args.alias}" if args.alias else f"models:/{args.name}/{version}"
    which = f" (checkpoint={args.checkpoint})" if args.checkpoint not in (None, "last") else ""
    print(f"registered run {args.run_id}'s generator{which} as {args.name} version {version}: model_uri={uri}")


def main(argv: list[str] | None = None) -> int:
    return run_command(__doc__, RegisterArgs, SHARED, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
