"""``dstudy report``: execute the notebooks on a results store and publish them as HTML (analysis.report).

    dstudy report [--store results/study.sqlite] [--out reports/<study name>] [--study NAME] [--show-code]
                  [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.errors import UserError
from training.store import DEFAULT_STORE


def default_out(store: Path, study: str | None = None) -> Path:
    """``reports/<study name>`` (``study``, else the store's only study), the report folder when ``--out`` is not
    given: the folder ``dstudy run`` writes to, and where a published study lives (``reports/mini/`` holds the mini
    study's store, so ``dstudy report --store reports/mini/study.sqlite`` rebuilds its report in place)."""
    from analysis.load import resolve_study

    return Path("reports") / resolve_study(store, study)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="build the HTML report (notebooks + index with the claims scorecard) from a results store",
        description="Execute every notebook in notebooks/ on a results store with papermill, export them as HTML "
                    "and write index.html with the headline findings, the claims scorecard and links to the pages.")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE,
                        help=f"results store to read (default: {DEFAULT_STORE})")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: reports/<study name>)")
    parser.add_argument("--show-code", action="store_true", help="show the notebooks' code cells in the pages")
    parser.add_argument("--workers", type=int, default=2, help="notebooks executed at once (default: 2)")
    parser.add_argument("--study", default=None,
                        help="the study to report on (default: the store's only study; a store with several "
                             "needs it)")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``dstudy report``: prints the index path; exit status 1 when a page failed to execute (the
    others are still written); bad input raises UserError."""
    from analysis.report import build_report

    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    store = Path(args.store)
    out = Path(args.out) if args.out is not None else default_out(store, args.study)
    index = build_report(store, out, show_code=args.show_code, workers=args.workers, study=args.study)
    print(f"report: {index}")
    failed = [p for p in json.loads((index.parent / "pages.json").read_text()) if not p["ok"]]
    for page in failed:
        print(f"dstudy: page {page['notebook']} failed: {page['error']}", file=sys.stderr)
    return 1 if failed else 0
