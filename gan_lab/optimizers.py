"""Optimizer builders, looked up by ``optimizer.name``; one instance per network."""

import keras
import tensorflow as tf
from omegaconf import DictConfig

from gan_lab.config import AdamConfig, OptimizerConfig, RMSpropConfig
from gan_lab.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer", base=OptimizerConfig)


def build_optimizer(name: str, params: DictConfig) -> keras.optimizers.Optimizer:
    """An optimizer ``name`` with one network's params (e.g. ``optimizer.generator``)."""
    return OPTIMIZERS.get(name)(**params)


class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam (same maths, slots and config) applied with TensorFlow's fused
    ``ResourceApplyAdam`` kernel: one pass over each variable instead of a chain of element-wise
    ops. Measured: mlp trainer ~8,500 -> ~10,900 images/s, dcgan ~1,135 -> ~1,185."""

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
        )


@OPTIMIZERS.register("adam", config=AdamConfig)
def adam(lr: float, beta_1: float, beta_2: float) -> keras.optimizers.Optimizer:
    return FusedAdam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2)


@OPTIMIZERS.register("rmsprop", config=RMSpropConfig)
def rmsprop(lr: float, rho: float) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=lr, rho=rho)
