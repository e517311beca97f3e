"""python -m gan_lab.runs reap | ui [port=5000] [host=127.0.0.1] [mlflow.tracking_uri=<uri>]

reap: mark KILLED the training and sweep runs left RUNNING by a process that died unannounced
  (kill -9, power loss). Every training run does this for its own experiment when it starts; this
  command does it for all experiments of a store.
ui: print the address of each experiment's runs table (with gan_lab's metrics as columns), then
  serve the MLflow UI over the store (what `make ui` runs).
"""

import os
import sys
from dataclasses import dataclass, field

from gan_lab.cli import run_command
from gan_lab.config import ConfigError, check_overrides

SHARED = ("mlflow", "plugins")
ACTIONS = ("reap", "ui")


@dataclass
class RunsArgs:
    action: str = field(default="", metadata={"help": "reap or ui (also as the first word: runs reap)"})
    port: int = field(default=5000, metadata={"help": "ui: the port to serve on"})
    host: str = field(default="127.0.0.1", metadata={"help": "ui: the address to serve on"})


def _main(args: RunsArgs, overrides: list[str]) -> None:
    if args.action not in ACTIONS:
        raise ConfigError(f"action={args.action}: unknown; one of {', '.join(ACTIONS)} (python -m gan_lab.runs reap)")
    cfg = check_overrides(overrides)

    import mlflow
    from mlflow.entities import ViewType

    from gan_lab import tracking

    uri = tracking.tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_tracking_uri(uri)
    experiments = mlflow.search_experiments(view_type=ViewType.ACTIVE_ONLY if args.action == "ui" else ViewType.ALL)
    if args.action == "reap":
        reaped = tracking.reap_dead_runs([e.experiment_id for e in experiments]) if experiments else []
        for run_id in reaped:
            print(f"marked KILLED: {run_id}")
        print(f"{len(reaped)} dead run(s) reaped in {uri}")
        return
    if uri.startswith("http"):
        raise ConfigError(f"mlflow.tracking_uri={uri}: already a server; open it in a browser")
    base = f"http://{args.host}:{args.port}"
    shown = sorted((e for e in experiments if e.name != "Default"), key=lambda e: e.name == cfg.judge.experiment)
    print(f"MLflow UI on {base} over {uri}. " + ("Runs tables:" if shown else "No runs yet: train with python -m gan_lab"))
    for experiment in shown:
        print(f"  {experiment.name}: {tracking.ui_address(base, experiment.experiment_id)}")
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                              "--host", args.host, "--port", str(args.port), "--workers", "1"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and "=" not in argv[0] and not argv[0].startswith("-"):
        argv = [f"action={argv[0]}", *argv[1:]]
    return run_command(__doc__, RunsArgs, SHARED, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
