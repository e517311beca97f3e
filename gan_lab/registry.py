"""The registries of gan_lab's parts: ``gan_lab.MODELS``, ``gan_lab.LOSSES``, ``gan_lab.OPTIMIZERS``.

A registry maps a config name to a builder and registers the builder's config with Hydra, so that
``<group>=<name>`` composes from the config's defaults and its fields are typed and validated. gan_lab's own
parts register here as a user's plugin does (``plugins=[my_parts]``); where gan_lab ships a yaml preset of the
same name (``conf/<group>/<name>.yaml``), that preset gives the values.
"""

import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from hydra.core.config_store import ConfigStore

from gan_lab.config import CONF_DIR

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps config names to builders; ``get`` of an unknown name lists the known ones.

    ``kind``: what it holds, and the config group its names are chosen in (``model=<name>``); ``base``: the
    dataclass every registered config extends; ``default_config``: the config of entries registered without one.
    """

    def __init__(self, kind: str, base: type | None = None, default_config: type | None = None):
        self.kind, self.base, self.default_config = kind, base, default_config
        self._entries: dict[str, T] = {}
        self._configs: dict[str, type] = {}

    def register(self, name: str, config: type | None = None) -> Callable[[T], T]:
        """Decorator: register ``name``'s builder, with ``config`` (a dataclass extending ``base``) as what
        ``<group>=<name>`` composes."""
        config = config or self.default_config
        if config is not None and not (dataclasses.is_dataclass(config) and issubclass(config, self.base)):
            raise TypeError(f"{self.kind} {name!r}: config= must be a dataclass extending "
                            f"gan_lab.{self.base.__name__}, got {config!r}")

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            if config is not None:
                self._configs[name] = config
                if not (CONF_DIR / self.kind / f"{name}.yaml").exists():
                    ConfigStore.instance().store(group=self.kind, name=name, node=config(name=name),
                                                 provider="gan_lab.registry")
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())} "
                             "(your own: register it in a module given with plugins=[...])")
        return self._entries[name]

    def config(self, name: str) -> type | None:
        """The config dataclass registered with ``name``."""
        return self._configs.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)
