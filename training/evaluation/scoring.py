"""Evaluate one trained model: both representations x the nine evaluations, seeded as the reference pipeline seeds them.

``evaluate_model(model, dataset, evaluations=None, protocol=None)`` returns
``{(representation, evaluation): {result key: float}}``; :func:`evaluate_model_records` returns one
:class:`EvaluationRecord` per pair, with the seconds it took and the error of a metric that failed (the other
evaluations still run). Nothing here writes to the results store: the caller (the study driver) does.

Seeds (metrics/REFERENCE.md 3): the reference pipeline draws, from one ``np.random.RandomState(0)`` per model,
``randint(2**32)`` for the post-processing of ``mean`` and ``sampled``, then one seed per (representation, evaluation)
with representations in the order mean, sampled and evaluations in sorted name order. Every evaluation gets a fresh
``np.random.RandomState(seed)`` with its seed (:data:`EVALUATION_SEEDS`), so every model of a dataset is scored on the
same ground-truth samples, and evaluations can run in any order or subset with identical numbers.

Representation noise: ``sampled`` draws fresh noise on every encoder call as in the reference, but - unlike the
reference's unseeded noise - from a generator seeded per evaluation with that evaluation's seed (the function is
obtained as ``model.representation_fn(kind, seed=seed)``), so results are reproducible and do not depend on which
other evaluations ran before.

The ``protocol`` argument is a study file's ``[protocol]`` table (:mod:`training.study.definition`), all keys optional:

* ``scale`` (float > 0, default 1): multiplies every ``num_train`` / ``num_test`` / ``num_eval`` /
  ``num_variance_estimate`` (rounded, at least 1), except the downstream training sizes, which keep their values;
* ``downstream_num_train`` (list of positive ints): the downstream training sizes to run (default 10, 100, 1000,
  10000);
* ``evaluations`` / ``representations``: subsets of the vocabulary (default all); an explicit ``evaluations``
  argument of :func:`evaluate_model` takes precedence;
* ``kind``: ``"reference"`` (default, the study's protocol) or ``"fast"`` (cheaper predictors for DCI and the
  downstream tasks, see :mod:`training.evaluation.metrics.predictors`; other metrics are unchanged).

Unknown keys raise ``ValueError``.

Speed options of :func:`evaluate_model_records` (they never change a number): ``n_jobs`` (pooled classifier fits in
worker processes) and ``code_table`` (encode every factor configuration of a deterministic dataset once and look codes
up; :mod:`training.evaluation.code_table`). The two representations use different seeds in every evaluation (metrics/REFERENCE.md 3), so
they never draw the same images; the code table is what lets them share encodings. The study runner turns the table
on where :func:`use_code_table` finds it cheaper (deterministic dataset, more images to encode than configurations).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from training.vocabulary import EVALUATIONS, REPRESENTATIONS

PROTOCOL_KEYS = ("scale", "downstream_num_train", "evaluations", "representations", "kind", "overrides")
PROTOCOL_KINDS = ("reference", "fast")
SCALED_SIZES = ("num_train", "num_test", "num_eval", "num_variance_estimate")
DOWNSTREAM_EVALUATIONS = ("downstream_task_logistic_regression", "downstream_task_boosted_trees")
#: Evaluations whose classifier fits run in ``n_jobs`` worker processes (numbers independent of ``n_jobs``):
#: evaluation -> (module, function returning ``(fit tasks, finish, n_jobs)`` after sampling).
PARALLEL_EVALUATIONS = ("dci",) + DOWNSTREAM_EVALUATIONS
_PLANNERS = {"dci": ("training.evaluation.metrics.dci", "plan"),
             "downstream_task_logistic_regression": ("training.evaluation.metrics.downstream", "plan_logistic_regression"),
             "downstream_task_boosted_trees": ("training.evaluation.metrics.downstream", "plan_boosted_trees")}
MASTER_SEED = 0


def _reference_seeds() -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    master = np.random.RandomState(MASTER_SEED)
    postprocess = {rep: int(master.randint(2**32)) for rep in sorted(REPRESENTATIONS)}
    evaluation = {}
    for rep in ("mean", "sampled"):
        for name in sorted(EVALUATIONS):
            evaluation[(rep, name)] = int(master.randint(2**32))
    return postprocess, evaluation


#: ``{representation: seed}`` of the reference's post-processing step (unused by both representations there).
#: ``{(representation, evaluation): seed}``: the RandomState seed of every evaluation (metrics/REFERENCE.md 3).
POSTPROCESS_SEEDS, EVALUATION_SEEDS = _reference_seeds()


@dataclass(frozen=True)
class Protocol:
    """A validated ``[protocol]`` table."""
    scale: float = 1.0
    downstream_num_train: tuple[int, ...] | None = None
    evaluations: tuple[str, ...] = EVALUATIONS
    representations: tuple[str, ...] = REPRESENTATIONS
    kind: str = "reference"
    #: ``((evaluation, ((parameter, value), ...)), ...)``: explicit per-evaluation protocol parameters (the
    #: reference's names), applied after ``scale``; e.g. a smaller BetaVAE-score ``batch_size`` for a smoke study.
    overrides: tuple = ()

    @property
    def fast(self) -> bool:
        return self.kind == "fast"


def _names(value, valid: tuple[str, ...], what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"protocol {what} must be a non-empty list of names, got {value!r}")
    unknown = [v for v in value if v not in valid]
    if unknown:
        raise ValueError(f"unknown {what[:-1]} {unknown[0]!r} in protocol; expected some of {', '.join(valid)}")
    return tuple(v for v in valid if v in set(value))  # vocabulary order, no duplicates


def resolve_protocol(protocol: dict | Protocol | None) -> Protocol:
    """Validate a study file's ``[protocol]`` table (or None) into a :class:`Protocol`."""
    if isinstance(protocol, Protocol):
        return protocol
    protocol = dict(protocol or {})
    unknown = sorted(set(protocol) - set(PROTOCOL_KEYS))
    if unknown:
        raise ValueError(f"unknown protocol key(s) {', '.join(unknown)}; accepted: {', '.join(PROTOCOL_KEYS)}")
    scale = protocol.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"protocol scale must be a positive number, got {scale!r}")
    sizes = protocol.get("downstream_num_train")
    if sizes is not None:
        if (isinstance(sizes, str) or not isinstance(sizes, (list, tuple)) or not sizes or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in sizes)):
            raise ValueError(f"protocol downstream_num_train must be a non-empty list of positive integers, "
                             f"got {sizes!r}")
        sizes = tuple(int(v) for v in sizes)
    kind = protocol.get("kind", "reference")
    if kind not in PROTOCOL_KINDS:
        raise ValueError(f"protocol kind must be one of {', '.join(PROTOCOL_KINDS)}, got {kind!r}")
    evaluations = _names(protocol["evaluations"], EVALUATIONS, "evaluations") if "evaluations" in protocol \
        else EVALUATIONS
    representations = (_names(protocol["representations"], REPRESENTATIONS, "representations")
                       if "representations" in protocol else REPRESENTATIONS)
    overrides = _overrides(protocol.get("overrides", {}))
    return Protocol(float(scale), sizes, evaluations, representations, kind, overrides)


def _overrides(raw) -> tuple:
    """Validate ``{evaluation: {parameter: value}}`` against each evaluation's default protocol."""
    from training.evaluation.metrics.registry import default_protocol
    if not isinstance(raw, dict):
        raise ValueError(f"protocol overrides must be a table of evaluation -> {{parameter: value}}, got {raw!r}")
    resolved = []
    for evaluation in sorted(raw):
        params = raw[evaluation]
        if evaluation not in EVALUATIONS:
            raise ValueError(f"unknown evaluation {evaluation!r} in protocol overrides; expected some of "
                             f"{', '.join(EVALUATIONS)}")
        if not isinstance(params, dict):
            raise ValueError(f"protocol overrides for {evaluation} must be a table of parameter = value")
        defaults = default_protocol(evaluation)
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {evaluation}; accepted: "
                             f"{', '.join(sorted(defaults))}")
        resolved.append((evaluation, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                                  for k, v in params.items()))))
    return tuple(resolved)


def evaluation_overrides(evaluation: str, protocol: dict | Protocol | None = None) -> dict:
    """The protocol overrides that :func:`training.evaluation.metrics.run_metric` gets for ``evaluation`` under ``protocol``
    (only the parameters that differ from the study's defaults)."""
    from training.evaluation.metrics.registry import default_protocol
    p = resolve_protocol(protocol)
    defaults = default_protocol(evaluation)
    overrides: dict = {}
    if p.scale != 1.0:
        for key in SCALED_SIZES:
            if key not in defaults:
                continue
            if evaluation in DOWNSTREAM_EVALUATIONS and key == "num_train":
                continue  # downstream training sizes keep their nominal values
            overrides[key] = max(1, int(round(defaults[key] * p.scale)))
    if evaluation in DOWNSTREAM_EVALUATIONS and p.downstream_num_train is not None:
        overrides["num_train"] = list(p.downstream_num_train)
    for name, params in p.overrides:
        if name == evaluation:
            overrides.update({k: list(v) if isinstance(v, tuple) else v for k, v in params})
    return overrides


def expected_encodings(evaluation: str, params: dict) -> int:
    """Number of images ONE representation's run of ``evaluation`` encodes, given its full protocol parameters
    ``params`` (the defaults of :func:`training.evaluation.metrics.registry.default_protocol` with the overrides applied)."""
    if evaluation == "beta_vae_sklearn":  # a pair of batches per point
        return 2 * params["batch_size"] * (params["num_train"] + params["num_eval"])
    if evaluation == "factor_vae_metric":  # the variance estimate, then one batch per vote
        return params["num_variance_estimate"] + params["batch_size"] * (params["num_train"] + params["num_eval"])
    if evaluation in DOWNSTREAM_EVALUATIONS:  # a training set and a test set per training size
        sizes = params["num_train"]
        sizes = [sizes] if isinstance(sizes, int) else list(sizes)
        return int(sum(sizes)) + len(sizes) * params["num_test"]
    if evaluation not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {evaluation!r}")
    return params["num_train"] + params.get("num_test", 0)


def use_code_table(dataset, protocol=None, evaluations: Iterable[str] | None = None) -> bool:
    """Whether :func:`evaluate_model_records` should run on a code table (``code_table=True``): the dataset's images
    are a deterministic function of the factors, and the planned evaluations of all planned representations would
    encode more images than the dataset has configurations (one table encodes each configuration once).

    At the study's protocol sizes on dsprites_full that is ~6.1M images against 737,280 (True); at ``scale`` 0.1
    about 0.6M (False). The choice moves the numbers by the encoder's float32 rounding at most.
    """
    from training.evaluation.metrics.registry import default_protocol
    if not getattr(dataset, "deterministic_render", False) or not hasattr(dataset, "num_configurations"):
        return False
    p = resolve_protocol(protocol)
    names = p.evaluations if evaluations is None else _names(list(evaluations), EVALUATIONS, "evaluations")
    total = 0
    for name in names:
        params = dict(default_protocol(name), **evaluation_overrides(name, p))
        total += expected_encodings(name, params) * len(p.representations)
    return total > int(dataset.num_configurations)


@dataclass
class EvaluationRecord:
    """One (representation, evaluation) of one model: its scores (empty if it failed), wall-clock seconds, and the
    error as ``"ExceptionType: message"`` or None."""
    representation: str
    evaluation: str
    scores: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def _plan(evaluations: Iterable[str] | None, p: Protocol) -> list[tuple[str, str]]:
    names = p.evaluations if evaluations is None else _names(list(evaluations), EVALUATIONS, "evaluations")
    return [(rep, name) for rep in p.representations for name in names]


def evaluate_model_records(model, dataset, evaluations: Iterable[str] | None = None, protocol=None, *,
                           n_jobs: int = 1, code_table: bool = False,
                           on_record: Callable[[EvaluationRecord], None] | None = None) -> list[EvaluationRecord]:
    """Run the planned evaluations of ``model`` and return one record each, in plan order (representations outer,
    evaluations in vocabulary order).

    ``model`` is anything with ``.representation_fn(kind, seed=...)`` returning ``fn((n, 64, 64, C) float32) ->
    (n, D)``; ``dataset`` is a vocabulary name (as :func:`training.engine.train.train_model` takes it) or an object with
    the dataset interface. ``on_record`` is called after every evaluation (e.g. progress). A failing evaluation is
    recorded with its error; the others still run. Bad arguments raise ``ValueError``.

    ``n_jobs > 1``: the classifier fits of DCI and both downstream tasks, for both representations, go into ONE pool
    of ``n_jobs`` worker processes (largest first), which works in the background while the other evaluations run
    here, with one torch and one BLAS thread; the numbers are those of ``n_jobs=1`` up to the encoder's float32
    rounding (see :mod:`training.evaluation.code_table`). Their records' ``seconds`` are then the sampling/encoding time
    plus the summed fit times measured in the workers (compute seconds, not wall-clock).

    ``code_table=True`` (default False): first encode every factor configuration of ``dataset`` once
    (``model.code_table(dataset)``, :mod:`training.evaluation.code_table`), then run every evaluation of both representations
    on look-ups instead of rendering and encoding images. Only for a dataset whose images are a deterministic
    function of the factors (``dataset.deterministic_render``; ValueError otherwise). The random draws, the
    ``sampled`` noise and the encoder's batches are kept, so the numbers equal ``code_table=False``'s up to the
    encoder's float32 rounding (:mod:`training.evaluation.code_table` says what that can move); it pays off at the study's
    sizes (dsprites_full: 737,280 encodings instead of ~6.1M), not at small scales.
    """
    from training.engine.train import resolve_dataset

    p = resolve_protocol(protocol)
    n_jobs = int(n_jobs)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs}")
    if not callable(getattr(model, "representation_fn", None)):
        raise ValueError(f"model must have a representation_fn(kind, seed) method (e.g. a TrainedModel); "
                         f"{type(model).__name__} has none")
    dataset, _ = resolve_dataset(dataset)
    plan = _plan(evaluations, p)
    overrides = {name: evaluation_overrides(name, p) for name in {name for _, name in plan}}
    if code_table:
        from training.evaluation.code_table import check_deterministic
        check_deterministic(dataset)
        if not callable(getattr(model, "code_table", None)):
            raise ValueError("code_table=True needs a model with a code_table(dataset) method (e.g. TrainedModel)")
        table = model.code_table(dataset)
        model, dataset = table, table.dataset  # the table is model-like; its dataset yields configuration indices

    def emit(record):
        if on_record is not None:
            on_record(record)
        return record

    if n_jobs == 1:
        return [emit(_run_one(model, dataset, rep, name, p, overrides[name])) for rep, name in plan]
    return _run_pooled(model, dataset, plan, p, overrides, n_jobs, emit)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_evaluation(representation: str, name: str, dataset, representation_fn, seed: int, protocol=None,
                   overrides: dict | None = None) -> EvaluationRecord:
    """One evaluation as a record labelled ``representation``: ``name`` run on ``representation_fn`` with
    ``np.random.RandomState(seed)`` under ``protocol``'s kind and ``overrides`` (default: the protocol's own for
    ``name``). An exception becomes the record's error (a failing metric must not lose the others); the record
    keeps the seconds spent either way."""
    from training.evaluation.metrics import run_metric

    p = resolve_protocol(protocol)
    overrides = evaluation_overrides(name, p) if overrides is None else overrides
    start = time.perf_counter()
    try:
        scores = run_metric(name, dataset, representation_fn, np.random.RandomState(int(seed)), fast=p.fast,
                            **overrides)
        return EvaluationRecord(representation, name, dict(scores), time.perf_counter() - start, None)
    except Exception as exc:  # noqa: BLE001
        return EvaluationRecord(representation, name, {}, time.perf_counter() - start, _error(exc))


def _run_one(model, dataset, rep, name, p: Protocol, overrides: dict) -> EvaluationRecord:
    seed = EVALUATION_SEEDS[(rep, name)]
    start = time.perf_counter()
    try:
        representation_fn = model.representation_fn(rep, seed=seed)
    except Exception as exc:  # noqa: BLE001 - this evaluation's error; the others still run
        return EvaluationRecord(rep, name, {}, time.perf_counter() - start, _error(exc))
    return run_evaluation(rep, name, dataset, representation_fn, seed, p, overrides)


def _run_pooled(model, dataset, plan, p: Protocol, overrides, n_jobs: int, emit) -> list[EvaluationRecord]:
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    import threadpoolctl
    import torch

    from training.evaluation.metrics import predictors
    records: dict[tuple[str, str], EvaluationRecord] = {}
    pending = []  # (key, tasks, finish, sampling seconds)
    for rep, name in plan:  # sampling + encoding of the pooled evaluations, in plan order
        if name not in _PLANNERS:
            continue
        seed = EVALUATION_SEEDS[(rep, name)]
        start = time.perf_counter()
        try:
            module, function = _PLANNERS[name]
            planner = getattr(importlib.import_module(module), function)
            tasks, finish, _ = planner(dataset, model.representation_fn(rep, seed=seed), np.random.RandomState(seed),
                                       fast=p.fast, **overrides[name])
            pending.append(((rep, name), tasks, finish, time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001
            records[(rep, name)] = emit(EvaluationRecord(rep, name, {}, time.perf_counter() - start, _error(exc)))
    all_tasks = [task for _, tasks, _, _ in pending for task in tasks]
    with ThreadPoolExecutor(max_workers=1) as background:
        future = background.submit(predictors.fit_tasks, all_tasks, n_jobs, True)
        # everything else runs here meanwhile, with ONE BLAS thread: the n_jobs workers already occupy the cores
        # (joblib gives each one BLAS thread), and a multi-threaded OpenBLAS in this process then spin-waits for
        # cores (measured: the logistic regressions here ran ~3x slower on a loaded 2-core machine). BLAS threads
        # split the output of matrix products, not their sums, so the numbers are the same (tests/test_evaluate.py).
        # the same for torch's intra-op threads: with two busy workers, a second OpenMP thread is rarely scheduled
        # and every parallel region waits for it (measured: the sampled BetaVAE score's noise took 7.0 instead of
        # 1.3 s at scale 0.3). The thread counts are fixed here, so a run's numbers stay reproducible; they may
        # differ in the last bits from n_jobs=1's (oneDNN picks its kernels by thread count on some CPUs)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
                for rep, name in plan:
                    if name not in _PLANNERS:
                        records[(rep, name)] = emit(_run_one(model, dataset, rep, name, p, overrides[name]))
        finally:
            torch.set_num_threads(torch_threads)
        try:
            results = future.result()
            pool_error = None
        except Exception as exc:  # noqa: BLE001 - e.g. a worker process died
            results, pool_error = None, _error(exc)
    pos = 0
    for (rep, name), tasks, finish, sampling in pending:
        if results is None:
            records[(rep, name)] = emit(EvaluationRecord(rep, name, {}, sampling, pool_error))
            continue
        chunk = results[pos:pos + len(tasks)]
        pos += len(tasks)
        seconds = sampling + sum(r.seconds for r in chunk)
        errors = [r.error for r in chunk if r.error]
        if errors:
            records[(rep, name)] = emit(EvaluationRecord(rep, name, {}, seconds, errors[0]))
            continue
        try:
            scores = {str(k): float(v) for k, v in finish(chunk).items()}
            records[(rep, name)] = emit(EvaluationRecord(rep, name, scores, seconds, None))
        except Exception as exc:  # noqa: BLE001
            records[(rep, name)] = emit(EvaluationRecord(rep, name, {}, seconds, _error(exc)))
    return [records[key] for key in plan]


def evaluate_model(model, dataset, evaluations: Iterable[str] | None = None, protocol=None, *,
                   n_jobs: int = 1, code_table: bool = False) -> dict[tuple[str, str], dict[str, float]]:
    """``{(representation, evaluation): {result key: float}}`` for every planned evaluation.

    ``dataset``: a vocabulary name or an object with the dataset interface. Raises :class:`EvaluationError` (with
    every failed evaluation and its error) when any planned evaluation fails; use :func:`evaluate_model_records` to
    keep the evaluations that succeeded beside the errors, as the study runner does.
    """
    records = evaluate_model_records(model, dataset, evaluations, protocol, n_jobs=n_jobs, code_table=code_table)
    failed = [r for r in records if r.error is not None]
    if failed:
        raise EvaluationError(failed)
    return {(r.representation, r.evaluation): r.scores for r in records}


class EvaluationError(RuntimeError):
    """One or more evaluations of a model failed; ``records`` holds their :class:`EvaluationRecord` objects."""

    def __init__(self, records: list[EvaluationRecord]):
        self.records = records
        first = records[0]
        more = f" (and {len(records) - 1} more)" if len(records) > 1 else ""
        super().__init__(f"evaluation {first.evaluation} ({first.representation}) failed: {first.error}{more}")
