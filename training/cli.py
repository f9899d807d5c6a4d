"""The ``dstudy`` command line.

Each command family lives next to the code it drives and contributes a ``register(subparsers)`` function that adds
its sub-commands and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit status).
This module only assembles them and turns user errors into one-line messages with a non-zero exit.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from training.allocator import retain_freed_memory
from training.errors import UserError

# Modules that contribute sub-commands, in the order their commands appear in ``dstudy --help``.
COMMAND_MODULES = (
    "training.study_cli",     # run, sweep, status, import-dlib
    "training.report_cli",    # report
    "training.data.cli",      # data info / data preview
    "training.estimate",      # estimate (projected wall time of a study)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dstudy",
        description="Train, evaluate and analyse the disentanglement study (Locatello et al., 2019).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command family not built yet must not break the others
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    retain_freed_memory()  # CPU training and evaluation reuse freed tensor memory (training.allocator)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"dstudy: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dstudy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
