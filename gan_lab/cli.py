"""The dialect of the side commands (``generate``, ``evaluate``, ``register``, ``runs``, ``judge``):
``key=value`` arguments, the same key names as training for the same things (``seed=``,
``mlflow.tracking_uri=``, ``data.*``, ``judge.*``, composed and validated by Hydra as training's are),
``--help``, and exit 2 with the key named when an argument is bad. Light to import.
"""

import dataclasses
import difflib
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from gan_lab import start_tensorflow
from gan_lab.config import Config, ConfigError
from gan_lab.data import DataError


def parse_command(argv: list[str], own: type, shared: tuple[str, ...]) -> tuple[Any, list[str]]:
    """Split ``argv`` into the command's own arguments, typed by the dataclass ``own``, and overrides of
    the training config's keys under ``shared`` (checked when composed: ``config.check_overrides``)."""
    own_keys = [f.name for f in dataclasses.fields(own)]
    mine, overrides = [], []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"{arg}: arguments are key=value; keys: {', '.join(_keys(own, shared))}")
        key = arg.split("=", 1)[0].lstrip("+~")
        top = key.split(".")[0].split("/")[0]
        if top in own_keys:
            mine.append(arg)
        elif top in shared:
            overrides.append(arg)
        else:
            raise ConfigError(_unknown_key(key, own, shared))
    try:
        args = OmegaConf.merge(OmegaConf.structured(own), OmegaConf.from_dotlist(mine))
        return OmegaConf.to_object(args), overrides
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key}: required; give {err.full_key}=<value>") from None
    except OmegaConfBaseException as err:
        key = f"{err.full_key}: " if err.full_key else ""
        raise ConfigError(f"{key}{err.msg.splitlines()[0]}") from None


def _keys(own: type, shared: tuple[str, ...]) -> list[str]:
    return [f.name for f in dataclasses.fields(own)] + [_shared_key(k) for k in shared]


def _shared_key(key: str) -> str:
    """``mlflow.*`` for a group of training keys, ``seed`` or ``plugins`` for one key."""
    schema = {f.name: f.type for f in dataclasses.fields(Config)}[key]
    return f"{key}.*" if dataclasses.is_dataclass(schema) else key


def _unknown_key(key: str, own: type, shared: tuple[str, ...]) -> str:
    """``<key>: no such key``, with the keys whose last part is nearest (``tracking_uri`` -> ``mlflow.tracking_uri``)."""
    schemas = {f.name: f.type for f in dataclasses.fields(Config)}
    full = [f.name for f in dataclasses.fields(own)] + [
        f"{k}.{f.name}" if dataclasses.is_dataclass(schemas[k]) else k
        for k in shared for f in (dataclasses.fields(schemas[k]) if dataclasses.is_dataclass(schemas[k]) else [None])]
    leaf = key.rsplit(".", 1)[-1]
    near = [k for k in full if difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], cutoff=0.6)][:3]
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    return f"{key}: no such key; {hint}valid keys: {', '.join(_keys(own, shared))}"


def command_help(doc: str, own: type, shared: tuple[str, ...]) -> str:
    """``--help``: the command's docstring, its own keys with defaults, and the training keys it shares."""
    lines = [doc.strip(), "", "Keys:"]
    for f in dataclasses.fields(own):
        default = "" if f.default in (None, dataclasses.MISSING, "???") else f.default  # "???": OmegaConf's MISSING
        lines.append(f"  {f.name + '=' + str(default):<24} {f.metadata.get('help', '')}".rstrip())
    if shared:
        shown = ", ".join(_shared_key(k) for k in shared)
        lines.append(f"  {shown}: as in training (`python -m gan_lab --cfg job` lists them)")
    return "\n".join(lines)


def run_command(doc: str, own: type, shared: tuple[str, ...], body: Callable[[Any, list[str]], int | None],
                argv: list[str] | None = None) -> int:
    """Run a side command: ``--help``, then ``body(arguments, shared overrides)``. A bad argument, an
    unknown run or model: ``error: ...`` on stderr and exit 2; unreadable data: exit 1."""
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(command_help(doc, own, shared))
        return 0
    try:
        arguments = parse_command(argv, own, shared)
        start_tensorflow()
        return body(*arguments) or 0
    except (ConfigError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
