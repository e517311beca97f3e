"""``python -m gan_lab [overrides]``: compose the config with Hydra and train; ``-m``: a sweep.

Kept thin and light: ``--help`` and ``--cfg job`` never import TensorFlow or MLflow. The command
line is composed and validated once before Hydra runs it, so a bad key or value is an error naming
it (exit 2) before anything is built or logged.
"""

import sys

import hydra
from omegaconf import DictConfig

import gan_lab
import gan_lab.config  # noqa: F401  (registers the schemas)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    gan_lab.start_tensorflow()
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        from gan_lab.sweep import run_job

        return run_job(cfg)  # a failed job does not stop the sweep; the sweep callback reports it at the end

    from gan_lab.callbacks import TrainingDiverged
    from gan_lab.checkpoints import CheckpointError, locate_run, resume_config
    from gan_lab.config import ConfigError
    from gan_lab.data import DataError
    from gan_lab.trainer import train

    hydra_cfg = HydraConfig.get()
    try:
        if cfg.resume:
            run_id, uri, folder = locate_run(cfg.resume, cfg.mlflow.tracking_uri)
            resumed = resume_config(folder, cfg, list(hydra_cfg.overrides.task))
            resumed.mlflow.tracking_uri = uri
            train(resumed, output_dir=folder, tags={"gan_lab.resumed_by": hydra_cfg.runtime.output_dir}, run_id=run_id)
        else:
            train(cfg, output_dir=hydra_cfg.runtime.output_dir)
    except ConfigError as err:
        sys.exit(_usage_error(err))
    except (DataError, CheckpointError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt as interrupt:
        sys.exit(f"interrupted: {interrupt}")
    return None


def _usage_error(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def check_command_line(argv: list[str]) -> None:
    """Exit 2 with the problem named if the overrides of ``argv`` do not compose or validate."""
    from hydra._internal.utils import get_args_parser

    from gan_lab.config import ConfigError, check_overrides

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_name or args.config_path \
            or args.config_dir:
        return  # Hydra's own output, or another config than conf/config.yaml
    try:
        check_overrides(args.overrides, multirun=args.multirun or args.cfg is not None)  # --cfg: a sweep may be shown
    except ConfigError as err:
        sys.exit(_usage_error(err))


if __name__ == "__main__":
    check_command_line(sys.argv[1:])
    main()
