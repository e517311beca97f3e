"""``plugins=[my_parts, other.module]``: the user's modules, imported before the command line is validated, so
that what they register (``gan_lab.MODELS``, ``LOSSES``, ``OPTIMIZERS``) composes and trains like gan_lab's own.

The launch folder is importable (a ``my_parts.py`` beside the data needs no packaging), in this process and in
the processes it starts (sweep jobs). A run records where each plugin was imported from (tag
``gan_lab.plugins``), so ``generate``/``evaluate`` on it find the plugin again from any folder. Light to import.
"""

import importlib
import json
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from gan_lab.config import ConfigError

PLUGINS_TAG = "gan_lab.plugins"


def import_plugins(names: Iterable[str], roots: dict[str, str] | None = None, context: str = "plugins") -> None:
    """Import each module of ``names`` with the launch folder importable (and ``roots[name]``, the folder a run
    imported it from, as a fallback). A module that is missing or fails to import: ConfigError naming it and
    its traceback's last line, prefixed by ``context``."""
    names = [name for name in names if name not in sys.modules]
    if not names:
        return
    from gan_lab import start_tensorflow

    start_tensorflow()  # plugins import TensorFlow: its start-up notices held back as for gan_lab's own imports
    launch = os.getcwd()
    _importable(launch)
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            root = (roots or {}).get(name)
            if err.name != name.split(".")[0] or not root or not Path(root).is_dir():
                raise _import_error(name, err, context, launch, root) from None
            _importable(root)
            try:
                importlib.import_module(name)
            except Exception as again:  # noqa: BLE001  (whatever the user's module raises, named)
                raise _import_error(name, again, context, launch, root) from None
        except Exception as err:  # noqa: BLE001
            raise _import_error(name, err, context, launch, None) from None


def _importable(folder: str) -> None:
    """``folder`` on this process's import path and on ``$PYTHONPATH`` for the processes it starts."""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *paths])


def _import_error(name: str, err: BaseException, context: str, launch: str, root: str | None) -> ConfigError:
    last = traceback.format_exception_only(err)[-1].strip()
    where = f"the launch folder {launch}" + (f", {root}" if root else "") + " and the installed packages"
    return ConfigError(f"{context}: cannot import plugin {name!r} ({last}); searched {where}. Run from the folder "
                       f"that holds {name.split('.')[0]}.py (or its package), install it, or fix the error")


def plugin_roots(names: Iterable[str]) -> dict[str, str]:
    """For each imported plugin, the folder its import starts from (``a.b`` in ``/x/a/b.py``: ``/x``)."""
    roots = {}
    for name in names:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            path = Path(file).resolve()
            roots[name] = str(path.parents[name.count(".") + (path.name == "__init__.py")])
    return roots


def run_plugins(tags: dict[str, str]) -> dict[str, str]:
    """The plugins a run recorded (``PLUGINS_TAG``): {module: folder}."""
    return json.loads(tags.get(PLUGINS_TAG, "{}"))
