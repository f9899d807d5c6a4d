"""Sub-commands ``run``, ``sweep``, ``status`` and ``import-dlib`` of the ``dstudy`` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.errors import UserError
from training.store import DEFAULT_STORE


def register(subparsers) -> None:
    store_help = f"results store (default {DEFAULT_STORE})"

    p = subparsers.add_parser("run", help="sweep a preset, then build its report")
    p.add_argument("--preset", required=True, help="smoke, mini, gpu, paper, or the path of a study TOML file")
    p.add_argument("--store", default=str(DEFAULT_STORE), help=store_help)
    p.add_argument("--out", default=None, help="report folder (default reports/<study name>)")
    _sweep_options(p)
    p.set_defaults(func=_cmd_run)

    p = subparsers.add_parser("sweep", help="compute a study's missing runs (locally or on a Dask cluster)")
    p.add_argument("study", metavar="STUDY_OR_PRESET", help="smoke, mini, gpu, paper, or the path of a study TOML file")
    p.add_argument("--store", default=str(DEFAULT_STORE), help=store_help)
    _sweep_options(p)
    p.set_defaults(func=_cmd_sweep)

    p = subparsers.add_parser("status", help="runs by status per dataset and method, throughput and ETA")
    p.add_argument("--store", default=str(DEFAULT_STORE), help=store_help)
    p.set_defaults(func=_cmd_status)

    p = subparsers.add_parser("import-dlib", help="import disentanglement_lib results (results.json, output "
                                                  "folders or per-model zip files)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--store", default=str(DEFAULT_STORE), help=store_help)
    p.set_defaults(func=_cmd_import)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _sweep_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, default=None,
                       help="local worker processes (default: CPU cores, at most 4)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="an existing Dask scheduler, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--retries", type=_non_negative, default=2, help="retries of a failing run (default 2)")
    p.add_argument("--model-num", type=_non_negative, default=None, help="only the run with this paper-grid index")
    p.add_argument("--pack", type=_positive, default=None,
                   help="runs trained together as one stacked computation (same dataset/method/steps/batch size); "
                        "default: 64 on CUDA, 1 on CPU")
    p.add_argument("--device", default=None, help="torch device for training, e.g. cuda or cpu")
    p.add_argument("--threads", type=_positive, default=None,
                   help="torch threads per run (default: cores // workers locally, 1 with --scheduler)")
    p.add_argument("--artifacts", default=None, metavar="DIR",
                   help="save trained models under DIR/<run_id> (default: not saved)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _do_sweep(study_name: str, args):
    """Sweep and print the summary; returns (study, exit status)."""
    from training.study.driver import sweep
    from training.study.definition import load_study

    study = load_study(study_name)
    summary = sweep(study, args.store, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                    model_num=args.model_num, pack=args.pack, device=args.device, threads=args.threads,
                    artifacts_dir=args.artifacts, progress=not args.quiet)
    for line in summary.lines():
        print(line)
    return study, (0 if summary.ok else 1)


def _cmd_sweep(args) -> int:
    return _do_sweep(args.study, args)[1]


def _cmd_run(args) -> int:
    study, code = _do_sweep(args.preset, args)
    out = args.out or str(Path("reports") / study.name)
    from analysis.report import build_report  # lazy: the report side is heavy and not needed by sweeps

    index = build_report(args.store, out, show_code=False)
    print(f"report: {index}")
    return code


def _cmd_status(args) -> int:
    for line in status_lines(args.store):
        print(line)
    return 0


def status_lines(store_path) -> list[str]:
    """The ``dstudy status`` text: a table of runs by status per dataset/method, totals, throughput and ETA."""
    from training.store import RUN_STATUSES, Store

    path = Path(store_path)
    with Store(path, readonly=True) as store:
        rows = store.status_table()
        progress = store.progress()
        per_study = store.conn.execute("SELECT study, source, COUNT(*), SUM(status = 'done') FROM runs"
                                       " GROUP BY study, source ORDER BY study").fetchall()
    if not rows:
        return [f"{path}: no runs yet"]
    table: dict[tuple[str, str], dict[str, int]] = {}
    for dataset, method, status, count in rows:
        table.setdefault((dataset, method), {})[status] = count
    head = f"{'dataset':<16} {'method':<14}" + "".join(f"{s:>9}" for s in RUN_STATUSES) + f"{'total':>9}"
    lines = [f"store {path}"]
    lines.extend(f"study {name} ({source}): {done}/{total} runs done" for name, source, total, done in per_study)
    lines.extend([head, "-" * len(head)])
    totals = dict.fromkeys(RUN_STATUSES, 0)
    for (dataset, method), counts in sorted(table.items()):
        for s in RUN_STATUSES:
            totals[s] += counts.get(s, 0)
        lines.append(f"{dataset:<16} {method:<14}" + "".join(f"{counts.get(s, 0):>9}" for s in RUN_STATUSES)
                     + f"{sum(counts.values()):>9}")
    lines.append("-" * len(head))
    lines.append(f"{'all':<31}" + "".join(f"{totals[s]:>9}" for s in RUN_STATUSES) + f"{sum(totals.values()):>9}")
    remaining = totals["pending"] + totals["running"]
    rate = progress["runs_per_hour"]
    if progress["mean_run_seconds"] is not None:
        lines.append(f"compute per trained run: {progress['mean_run_seconds']:.1f} s on average"
                     f" (train {progress['mean_train_seconds']:.1f} s + evaluation {progress['mean_eval_seconds']:.1f} s)")
    if rate:
        lines.append(f"throughput: {rate:.1f} runs/hour ({progress['rate_basis']})")
        if remaining:
            lines.append(f"ETA: {_duration(remaining / rate * 3600)} for {remaining} remaining runs at that rate")
    elif remaining:
        lines.append(f"throughput: unknown (no trained run finished yet); {remaining} runs remaining")
    if totals["failed"]:
        lines.append(f"{totals['failed']} failed runs; errors:")
        lines.extend(f"  {rid}: {err}" for rid, err in progress["failed_examples"])
    return lines


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def _cmd_import(args) -> int:
    from training.store.importers.dlib import import_paths

    report = import_paths(args.paths, args.store)
    if report.errors and len(report.errors) == 1 and not report.files:
        path, error = next(iter(report.errors.items()))
        raise UserError(f"{path}: {error}")
    for line in report.lines():
        print(line)
    for path, error in report.errors.items():
        print(f"dstudy: error: {path}: {error}", file=sys.stderr)
    return 2 if report.errors else 0
