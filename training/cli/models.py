"""``dstudy models``: the analyses that need the trained models themselves, for every done run of a study whose
model file ``DIR/<run_id>/model.pt`` exists (``dstudy run|sweep ... --artifacts DIR`` saves them):

    dstudy models --artifacts DIR [--store results/study.sqlite] [--study NAME]
                  [--analyses rotation,udr,replicates] [--replicates 2] [--device D] [--threads T] [--quiet]

* ``rotation`` - Theorem 1: the six headline metrics of the rotated mean representation (``rotated``) and the IWAE
  log-likelihood of the model and of its rotated twin (``model`` / ``likelihood``);
* ``udr`` - UDR against the other seeds of the same configuration (``mean`` / ``udr``);
* ``replicates`` - the headline metrics of ``mean`` again with R other evaluation seeds (``mean~r1`` ... ``mean~rR``).

What is stored and how each number is computed: :mod:`training.evaluation.model_analyses`. Every metric runs under
the study's own protocol (each run's stored ``[protocol]``: scale, kind, overrides), so rotated and replicate scores
are comparable with the stored ``mean`` ones. Resumable: what the store already holds without an error is skipped
(an evaluation stored with an error is tried again); a configuration's UDR is recomputed when its number of models
with a file changed since it was stored. Each model's results are written as they finish, one transaction per
analysis, through the store's own writer; nothing already stored is removed. A run without a model file is listed
once in the summary. Exit status 0, or 1 when an analysis failed on some model (its error is stored and printed);
bad input is one line and status 2.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from training.errors import UserError
from training.evaluation.likelihood import NUM_OBSERVATIONS, NUM_SAMPLES
from training.store import DEFAULT_STORE, RunOutcome

ANALYSES = ("rotation", "udr", "replicates")
DEFAULT_REPLICATES = 2
MODEL_FILE = "model.pt"


def register(subparsers) -> None:
    """Add ``dstudy models``."""
    p = subparsers.add_parser(
        "models", help="rotated scores (Theorem 1), likelihoods, UDR and evaluation replicates from saved models",
        description="For every done run of a study with a saved model (dstudy run/sweep --artifacts DIR), compute "
                    "what the store lacks: Theorem 1's rotated metrics and likelihoods, UDR, evaluation replicates.")
    p.add_argument("--store", default=str(DEFAULT_STORE), help=f"results store (default {DEFAULT_STORE})")
    p.add_argument("--artifacts", required=True, metavar="DIR",
                   help="the folder of saved models, DIR/<run_id>/model.pt (dstudy run/sweep --artifacts DIR)")
    p.add_argument("--study", default=None, help="the study (default: the store's only study)")
    p.add_argument("--analyses", default=",".join(ANALYSES),
                   help=f"comma-separated, some of {', '.join(ANALYSES)} (default: all)")
    p.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES,
                   help=f"evaluation replicates per model (default {DEFAULT_REPLICATES})")
    p.add_argument("--iwae-observations", type=int, default=NUM_OBSERVATIONS,
                   help=f"observations of the likelihood estimate (default {NUM_OBSERVATIONS})")
    p.add_argument("--iwae-samples", type=int, default=NUM_SAMPLES,
                   help=f"importance samples per observation (default {NUM_SAMPLES})")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch, OpenMP and BLAS threads (default: the libraries' own, all cores); 1 beside a sweep's "
                        "workers, where threads that wait for busy cores slow every fit")
    p.add_argument("--quiet", action="store_true", help="no line per model")
    p.set_defaults(func=_cmd_models)


def parse_analyses(text: str) -> tuple[str, ...]:
    """The analyses named in ``text`` (comma-separated), in :data:`ANALYSES` order; ValueError for an unknown one."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [n for n in names if n not in ANALYSES] or ([] if names else [str(text)])
    if bad:
        raise ValueError(f"unknown analysis {bad[0]!r} in --analyses; expected some of {', '.join(ANALYSES)}")
    return tuple(a for a in ANALYSES if a in names)


@dataclass
class ModelsSummary:
    """What one ``dstudy models`` call did: per analysis, models computed / already stored, and the errors."""
    study: str
    runs: int = 0
    without_model: list[str] = field(default_factory=list)
    computed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        out = [f"study {self.study}: {self.runs} done runs, {self.runs - len(self.without_model)} with a model file"]
        for name in sorted(set(self.computed) | set(self.stored)):
            out.append(f"{name}: computed for {self.computed.get(name, 0)} models, already stored for "
                       f"{self.stored.get(name, 0)}")
        if self.without_model:
            out.append(f"{len(self.without_model)} runs have no model file (nothing computed for them): "
                       + ", ".join(self.without_model))
        out.extend(f"error: {e}" for e in self.errors)
        return out


def _cmd_models(args) -> int:
    analyses = parse_analyses(args.analyses)
    for option in ("replicates", "iwae_observations", "iwae_samples", "threads"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise UserError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    with _thread_limit(args.threads):
        summary = run_models(args.store, args.artifacts, study=args.study, analyses=analyses,
                             replicates=args.replicates, iwae=(args.iwae_observations, args.iwae_samples),
                             device=args.device, log=log)
    for line in summary.lines():
        print(line)
    return 0 if summary.ok else 1


@contextmanager
def _thread_limit(threads: int | None):
    """torch's intra-op threads and the OpenMP / BLAS pools (scikit-learn's histogram trees, NumPy) set to
    ``threads`` while the block runs; None: unchanged."""
    if threads is None:
        yield
        return
    import threadpoolctl
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        with threadpoolctl.threadpool_limits(limits=int(threads)):
            yield
    finally:
        torch.set_num_threads(before)


def _resolve_study(store, study: str | None) -> str:
    done = defaultdict(int)
    for (name, count) in store.conn.execute("SELECT study, COUNT(*) FROM runs WHERE status = 'done' GROUP BY study"):
        done[name] = count
    listing = ", ".join(f"{n} ({c} done)" for n, c in sorted(done.items())) or "none"
    if study is None:
        if len(done) != 1:
            raise UserError(f"{store.path} holds {len(done)} studies with done runs ({listing}); choose one with "
                            f"--study NAME" if done else f"{store.path} has no done runs")
        return next(iter(done))
    if study not in done:
        raise UserError(f"no done runs of study {study!r} in {store.path}; its studies: {listing}")
    return study


def _stored(store, run_ids: list[str]) -> tuple[dict[str, set], dict[str, float]]:
    """run_id -> {(representation, metric)} stored without an error; run_id -> the stored UDR ``num_partners``."""
    ok: dict[str, set] = defaultdict(set)
    partners: dict[str, float] = {}
    wanted = set(run_ids)
    for run_id, rep, metric in store.conn.execute(
            "SELECT run_id, representation, metric FROM evaluations WHERE error IS NULL"):
        if run_id in wanted:
            ok[run_id].add((rep, metric))
    for run_id, value in store.conn.execute(
            "SELECT run_id, value FROM scores WHERE representation = 'mean' AND metric = 'udr'"
            " AND key = 'num_partners'"):
        if run_id in wanted:
            partners[run_id] = value
    return ok, partners


def _write(store, run_id: str, records) -> None:
    """One transaction: the records' scores and evaluations rows of ``run_id`` (added or replaced; nothing else of
    the run is touched: :meth:`training.store.Store.add_results`)."""
    outcome = RunOutcome(run_id=run_id)
    for r in records:
        outcome.scores[(r.representation, r.evaluation)] = dict(r.scores or {})
        outcome.evaluations[(r.representation, r.evaluation)] = (r.seconds, r.error)
    store.add_results(outcome)


def run_models(store_path, artifacts, study: str | None = None, analyses=ANALYSES,
               replicates: int = DEFAULT_REPLICATES, iwae: tuple[int, int] = (NUM_OBSERVATIONS, NUM_SAMPLES),
               device=None, log: Callable[[str], None] = lambda message: None) -> ModelsSummary:
    """Compute and store what ``analyses`` lack for every done run of ``study`` with a model file under
    ``artifacts``; returns the :class:`ModelsSummary`. ``iwae``: observations and importance samples of the
    likelihood. Bad input raises :class:`UserError` / ValueError (one line) before anything is written."""
    from training.store import Store

    analyses = tuple(analyses)
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {unknown[0]!r}; expected some of {', '.join(ANALYSES)}")
    folder = Path(artifacts).expanduser()
    if not folder.is_dir():
        raise UserError(f"no model folder at {folder} (--artifacts: the DIR that dstudy run/sweep --artifacts "
                        f"saved the models into)")
    with Store(store_path, create=False) as store:
        study = _resolve_study(store, study)
        runs = store.runs(status="done", study=study)
        summary = ModelsSummary(study=study, runs=len(runs))
        with_model = []
        for run in runs:
            (with_model if (folder / run["run_id"] / MODEL_FILE).is_file() else summary.without_model).append(run)
        summary.without_model = [r["run_id"] for r in summary.without_model]
        if not with_model:
            return summary
        from training.engine.train import resolve_device

        device = resolve_device(device)
        ok, partners = _stored(store, [r["run_id"] for r in with_model])
        context = _Context(folder, device, summary, log, iwae)
        for k, run in enumerate(with_model, 1):
            _per_model(store, run, analyses, replicates, ok[run["run_id"]], context, f"{k}/{len(with_model)}")
        if "udr" in analyses:
            _udr(store, with_model, partners, context)
    return summary


class _Context:
    """What the per-model steps share: the model folder, device, summary, log and a cache of datasets."""

    def __init__(self, folder: Path, device, summary: ModelsSummary, log, iwae: tuple[int, int]):
        self.folder, self.device, self.summary, self.log, self.iwae = folder, device, summary, log, iwae
        self._datasets: dict[str, object] = {}

    def dataset(self, name: str):
        if name not in self._datasets:
            from training.data import get_dataset

            self._datasets[name] = get_dataset(name)
        return self._datasets[name]

    def load(self, run_id: str):
        from training.engine.train import TrainedModel

        return TrainedModel.load(self.folder / run_id / MODEL_FILE, device=self.device)

    def record(self, run_id: str, records) -> None:
        for r in records:
            if r.error:
                self.summary.errors.append(f"{run_id} {r.representation}/{r.evaluation}: {r.error}")


def _per_model(store, run: dict, analyses, replicates: int, ok: set, ctx: _Context, position: str) -> None:
    """Rotation (metrics + likelihood) and replicates of one model: what is missing, computed and written."""
    from training.evaluation import model_analyses as ma
    from training.evaluation.replicates import replicate_name

    run_id, config = run["run_id"], run["config"]
    protocol = config.get("protocol", {})
    names = ma.headline_evaluations(protocol)
    steps = []   # (analysis, label, compute(model, dataset) -> records)
    if "rotation" in analyses:
        rotated = [n for n in names if (ma.ROTATED, n) not in ok]
        if rotated:
            steps.append(("rotation", "rotated metrics",
                          lambda m, d, todo=rotated: ma.rotation_records(m, d, protocol, evaluations=todo)))
        else:
            ctx.summary.stored["rotation"] += 1
        if (ma.MODEL, ma.LIKELIHOOD) not in ok:
            steps.append(("likelihood", "likelihood", lambda m, d: [ma.likelihood_record(
                m, d, num_observations=ctx.iwae[0], num_samples=ctx.iwae[1])]))
        else:
            ctx.summary.stored["likelihood"] += 1
    if "replicates" in analyses:
        todo_any = False
        for r in range(1, replicates + 1):
            todo = [n for n in names if (replicate_name(r), n) not in ok]
            if todo:
                todo_any = True
                steps.append(("replicates", f"replicate {r}",
                              lambda m, d, r=r, todo=todo: ma.replicate_records(m, d, protocol, r, evaluations=todo)))
        if not todo_any:
            ctx.summary.stored["replicates"] += 1
    if not steps:
        return
    try:
        model = ctx.load(run_id)
        dataset = ctx.dataset(config["dataset"])
    except Exception as exc:  # noqa: BLE001 - an unreadable model file: this run's error, the others go on
        ctx.summary.errors.append(f"{run_id}: {type(exc).__name__}: {exc}")
        return
    for analysis, label, compute in steps:
        ctx.log(f"[{position}] {run_id} ({config.get('method')} {config.get('hparams')} seed {config.get('seed')}): "
                f"{label}")
        records = compute(model, dataset)
        _write(store, run_id, records)
        ctx.record(run_id, records)
    for analysis in dict.fromkeys(a for a, _, _ in steps):
        ctx.summary.computed[analysis] += 1


def _udr(store, runs: list[dict], partners: dict[str, float], ctx: _Context) -> None:
    """UDR of every configuration (dataset, method, hyperparameter value) whose stored scores are missing or were
    computed on another number of models."""
    from training.evaluation.model_analyses import udr_records

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["method"], float(run["hparam_value"]))].append(run)
    for (dataset_name, method, value), members in sorted(groups.items()):
        if all(partners.get(r["run_id"]) == len(members) - 1 for r in members):
            ctx.summary.stored["udr"] += len(members)
            continue
        ctx.log(f"udr: {dataset_name} {method} {value:g} ({len(members)} models)")
        try:
            models = [ctx.load(r["run_id"]) for r in members]
            dataset = ctx.dataset(dataset_name)
        except Exception as exc:  # noqa: BLE001
            ctx.summary.errors.append(f"udr {dataset_name} {method} {value:g}: {type(exc).__name__}: {exc}")
            continue
        for run, record in zip(members, udr_records(models, dataset)):
            _write(store, run["run_id"], [record])
            ctx.record(run["run_id"], [record])
            ctx.summary.computed["udr"] += 1
