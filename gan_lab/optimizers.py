"""Optimizer builders, looked up by ``optimizer.name``; one instance per network."""

import keras
from omegaconf import DictConfig

from gan_lab.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")


def build_optimizer(name: str, params: DictConfig) -> keras.optimizers.Optimizer:
    """An optimizer ``name`` with one network's params (e.g. ``optimizer.generator``)."""
    return OPTIMIZERS.get(name)(**params)


@OPTIMIZERS.register("adam")
def adam(lr: float, beta_1: float, beta_2: float) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2)


@OPTIMIZERS.register("rmsprop")
def rmsprop(lr: float, rho: float) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=lr, rho=rho)
