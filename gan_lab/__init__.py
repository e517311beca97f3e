"""gan_lab: config-driven GAN experiments (Hydra configs, Keras 3 models, MLflow tracking).

Quiet by default: TensorFlow's C++ start-up notices and MLflow's artifact progress bars are off
unless the user's environment sets ``TF_CPP_MIN_LOG_LEVEL`` / ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``.
"""

import os
import re
import sys
import tempfile

# Warnings and notices off, before anything imports TensorFlow, unless the user chose a level; marked as
# gan_lab's choice so that worker processes (parallel sweep jobs) inheriting it still quiet the start-up.
if "TF_CPP_MIN_LOG_LEVEL" not in os.environ or os.environ.get("GAN_LAB_QUIET_TENSORFLOW") == "1":
    os.environ.update(TF_CPP_MIN_LOG_LEVEL="2", GAN_LAB_QUIET_TENSORFLOW="1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# What TensorFlow 2.21 prints at start-up before its log level applies (absl's logging is not set up yet),
# and the failed CUDA probe on a machine without a GPU driver.
START_UP_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog\(\)|port\.cc:\d+\] oneDNN custom operations|cudart_stub\.cc"
    r"|cpu_feature_guard\.cc|To enable the following instructions|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cuda_executor\.cc|cuda_diagnostics\.cc"
)


def start_tensorflow() -> None:
    """Import TensorFlow and start its runtime with its start-up notices (``START_UP_NOTICES``) held back
    from stderr; anything else it prints passes. A user who sets ``TF_CPP_MIN_LOG_LEVEL`` sees everything."""
    if "tensorflow" in sys.modules or os.environ.get("GAN_LAB_QUIET_TENSORFLOW") != "1":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not START_UP_NOTICES.search(line):
                    sys.stderr.write(line)


# The public API for extending gan_lab (README: Extending gan_lab), imported on first use so that
# ``import gan_lab`` stays light: gan_lab.MODELS.register("mine", config=MyConfig), ...
PUBLIC = {
    "MODELS": "gan_lab.models", "LOSSES": "gan_lab.losses", "OPTIMIZERS": "gan_lab.optimizers",
    "GANLoss": "gan_lab.losses", "ModelConfig": "gan_lab.config", "LossConfig": "gan_lab.config",
    "OptimizerConfig": "gan_lab.config", "IMAGE_SHAPE": "gan_lab.models",
}
__all__ = [*PUBLIC, "start_tensorflow"]


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'gan_lab' has no attribute {name!r}")
    import importlib

    if PUBLIC[name] != "gan_lab.config":
        start_tensorflow()
    return getattr(importlib.import_module(PUBLIC[name]), name)
