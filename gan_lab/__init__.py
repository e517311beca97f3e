"""gan_lab: config-driven GAN experiments (Hydra configs, Keras 3 models, MLflow tracking).

Quiet by default: TensorFlow's C++ start-up notices and MLflow's artifact progress bars are off
unless the user's environment sets ``TF_CPP_MIN_LOG_LEVEL`` / ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only; before anything imports TensorFlow
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
