"""The trainer's step with named parts of a gan_lab module as they are now against those of another commit, in one
process, timed in alternation (the machine is noisy: compare within one run).

    python experiments/ab_commit.py model=dcgan --module gan_lab.models --names FastDropout [--commit HEAD]

The second trainer is built with each name of ``--module`` taken from ``--commit``'s version of that module's file.
"""

import argparse
import importlib
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from ab_fast_layers import compare_swapped  # this directory's: the script's own is first on sys.path


def module_at(commit: str, name: str):
    """The module ``name`` as its file was at ``commit``, loaded under another name beside today's."""
    path = Path(importlib.import_module(name).__file__).resolve()
    root = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], cwd=path.parent, text=True).strip())
    source = subprocess.check_output(["git", "show", f"{commit}:{path.relative_to(root)}"], cwd=root, text=True)
    file = Path(tempfile.mkdtemp()) / path.name
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_at_{commit}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--module", required=True, help="e.g. gan_lab.models")
    parser.add_argument("--names", nargs="+", required=True, help="its functions or classes to take from --commit")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args(argv)
    other = module_at(args.commit, args.module)
    compare_swapped(args.overrides, importlib.import_module(args.module),
                    {name: getattr(other, name) for name in args.names}, args.commit, args.rounds, args.steps)


if __name__ == "__main__":
    main(sys.argv[1:])
