"""Hydra callback that prepares a sweep. Light to import: Hydra loads it for every run."""

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class PrepareSweep(Callback):
    """Before a sweep's jobs start, possibly in parallel (joblib launcher), set up once what they
    share: the MLflow store (parallel jobs creating a new sqlite store's tables corrupt it), the
    experiment and the judge (else each job trains the same one)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from gan_lab.config import ConfigError, validate
        from gan_lab.data import DataError
        from gan_lab.tracking import tracking_uri, use_experiment

        use_experiment(tracking_uri(config.mlflow.tracking_uri), config.mlflow.experiment)
        if config.judge.enabled:
            from gan_lab.judge import get_judge

            try:
                validate(config)
                get_judge(config)
            except (ConfigError, DataError):
                pass  # each job reports it
