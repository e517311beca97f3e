"""``python -m gan_lab [overrides]``: compose the config with Hydra and train.

Kept thin and light: ``--help`` and ``--cfg job`` never import TensorFlow or MLflow.
"""

import sys

import hydra
from omegaconf import DictConfig

import gan_lab.config  # noqa: F401  (registers the schemas)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_lab.config import ConfigError, validate

    try:
        validate(cfg)
    except ConfigError as err:  # bad values: say which and stop before TensorFlow or MLflow start
        sys.exit(f"error: {err}")

    from gan_lab.checkpoints import CheckpointError, locate_run, resume_config
    from gan_lab.data import DataError
    from gan_lab.trainer import TrainingDiverged, train

    hydra_cfg = HydraConfig.get()
    tags = {"output_dir": hydra_cfg.runtime.output_dir}
    if hydra_cfg.mode == RunMode.MULTIRUN:
        tags |= {"sweep": hydra_cfg.sweep.dir, "sweep_job": str(hydra_cfg.job.num)}
    try:
        if cfg.resume:
            run_id, uri, folder = locate_run(cfg.resume, cfg.mlflow.tracking_uri)
            resumed = resume_config(folder, cfg, list(hydra_cfg.overrides.task))
            resumed.mlflow.tracking_uri = uri
            train(resumed, output_dir=folder, tags={"gan_lab.resumed_by": hydra_cfg.runtime.output_dir}, run_id=run_id)
        else:
            train(cfg, output_dir=hydra_cfg.runtime.output_dir, tags=tags)
    except (ConfigError, DataError, CheckpointError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt as interrupt:
        sys.exit(f"interrupted: {interrupt}")


if __name__ == "__main__":
    main()
