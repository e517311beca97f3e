"""``python -m gan_lab.runs reap [tracking_uri=<uri>]``: mark KILLED the training runs left
RUNNING by a process that died unannounced (kill -9, power loss). Every training run does this
for its own experiment when it starts; this command does it for all experiments of a store.
"""

import sys

USAGE = "usage: python -m gan_lab.runs reap [tracking_uri=<uri>]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = dict(arg.split("=", 1) for arg in argv[1:] if "=" in arg)
    if argv[:1] != ["reap"] or set(options) - {"tracking_uri"} or len(options) != len(argv) - 1:
        print(USAGE, file=sys.stderr)
        return 2

    import mlflow
    from mlflow.entities import ViewType

    from gan_lab import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri(options.get("tracking_uri")))
    experiments = [e.experiment_id for e in mlflow.search_experiments(view_type=ViewType.ALL)]
    reaped = tracking.reap_dead_runs(experiments) if experiments else []
    for run_id in reaped:
        print(f"marked KILLED: {run_id}")
    print(f"{len(reaped)} dead run(s) reaped in {mlflow.get_tracking_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
