"""The ``dstudy`` command line.

Each command family is a module of this package with a ``register(subparsers)`` function that adds its sub-commands
and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit status): ``study``
(run, sweep, status, import-dlib), ``report``, ``data`` (info, preview) and ``estimate``. This module assembles them
and turns user errors into one-line messages with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys

from training.errors import UserError
from training.store import DEFAULT_STORE, database_error

# Modules that contribute sub-commands, in the order their commands appear in ``dstudy --help``.
COMMAND_MODULES = (
    "training.cli.study",     # run, sweep, status, import-dlib
    "training.cli.report",    # report
    "training.cli.data",      # data info / data preview
    "training.cli.estimate",  # estimate (projected wall time of a study)
    "training.cli.models",    # models (analyses of the saved models: rotation, UDR, replicates)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dstudy",
        description="Train, evaluate and analyse the disentanglement study (Locatello et al., 2019).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from training.engine.allocator import retain_freed_memory  # here: the engine package imports torch

    retain_freed_memory()  # CPU training and evaluation reuse freed tensor memory
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"dstudy: error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # met after the open-time check (a page damaged since, a full disk)
        store = getattr(args, "store", None) or DEFAULT_STORE
        print(f"dstudy: error: {database_error(store, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dstudy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
