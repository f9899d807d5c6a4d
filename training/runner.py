"""Executes runs on a worker: get the dataset, train, evaluate, and return plain results (no store access).

The unit of work is a *pack*: a list of compatible runs (same dataset, method, steps and batch size) given as
``{"run_id": ..., "config": {...}}`` dicts (the canonical configs of :mod:`training.study`). A pack of one trains
with :func:`training.train.train_model`; a larger pack uses :func:`training.packed.train_packed` when that module
exists (several models trained as one computation), else trains its runs one by one. Runs whose study sets a
mixed ``[training] precision`` always go to ``train_packed`` (packs of one too), the only trainer that has it.
Results are the picklable :class:`training.store.RunOutcome` objects the sweep driver writes into the store; a
failure of one run (training diverged, data missing, a bug) becomes that run's ``error`` and never hides the other
runs of the pack.
"""
from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from training.store import RunOutcome

_DATASETS: dict[str, Any] = {}  # per-process cache: a worker loads each dataset once


def error_text(exc: BaseException) -> str:
    """One-line description of an exception for ``runs.error`` (type, message, innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" [{Path(frames[-1].filename).name}:{frames[-1].lineno}]" if frames else ""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"


def load_dataset(name: str):
    """``training.data.get_dataset(name)``, cached per process."""
    if name not in _DATASETS:
        from training.data import get_dataset

        _DATASETS[name] = get_dataset(name)
    return _DATASETS[name]


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads. None inside a Dask worker: the machine's cores divided by the worker's threads
    (the nanny sets OMP_NUM_THREADS=1, which would leave a CPU worker on one core); None elsewhere: unchanged."""
    if threads is None:
        try:
            from distributed import get_worker

            worker = get_worker()
            threads = max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
        except (ImportError, ValueError):
            return
    import torch

    if torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


def execute_pack(pack: Sequence[dict], device: str | None = None, threads: int | None = None,
                 artifacts_dir: str | None = None) -> list[RunOutcome]:
    """Train and evaluate every run of ``pack``; returns one :class:`RunOutcome` per run, in order.

    ``device``: torch device for training (None: CUDA when present, else CPU). ``threads``: see
    :func:`set_threads`. ``artifacts_dir``: when set, each trained model is saved to
    ``artifacts_dir/<run_id>/model.pt`` (and single runs checkpoint there while training).
    """
    set_threads(threads)
    if not pack:
        return []
    first = pack[0]["config"]
    try:
        dataset = load_dataset(first["dataset"])
    except Exception as exc:  # noqa: BLE001 - reported per run
        return [RunOutcome(run_id=item["run_id"], error=error_text(exc)) for item in pack]

    models, seconds = _train(pack, dataset, device, artifacts_dir)
    outcomes = []
    for item, model in zip(pack, models):
        if isinstance(model, BaseException):
            outcomes.append(RunOutcome(run_id=item["run_id"], error=error_text(model), train_seconds=seconds))
            continue
        outcomes.append(_evaluate(item, model, dataset, seconds, artifacts_dir))
    return outcomes


def _train(pack: Sequence[dict], dataset, device, artifacts_dir: str | None = None) -> tuple[list, float]:
    """Trained models (or the exception of each failed run) and the wall seconds per run. With ``artifacts_dir``,
    single runs checkpoint into ``artifacts_dir/<run_id>`` and resume from there (a lost worker's long run)."""
    from training.train import train_model

    configs = [item["config"] for item in pack]
    start = time.perf_counter()
    # mixed precision exists in the packed trainer only, so such runs go there even alone
    if len(pack) > 1 or configs[0].get("training", {}).get("precision", "fp32") != "fp32":
        try:
            from training.packed import train_packed
        except ModuleNotFoundError as exc:
            if exc.name != "training.packed":
                raise
            train_packed = None
        if train_packed is not None:
            c = configs[0]
            try:
                models = list(train_packed(dataset, c["method"], runs=[(cfg["hparams"], cfg["seed"]) for cfg in configs],
                                           steps=c["steps"], batch_size=c["batch_size"], device=device,
                                           **c.get("training", {})))
            except Exception as exc:  # noqa: BLE001 - the whole pack failed; every run carries the error
                models = [exc] * len(pack)
            if len(models) != len(pack):
                err = RuntimeError(f"train_packed returned {len(models)} models for {len(pack)} runs")
                models = [err] * len(pack)
            return models, (time.perf_counter() - start) / len(pack)
    models = []
    for item, cfg in zip(pack, configs):
        checkpoint_dir = str(Path(artifacts_dir) / item["run_id"]) if artifacts_dir else None
        try:
            models.append(train_model(dataset, cfg["method"], dict(cfg["hparams"]), cfg["seed"], cfg["steps"],
                                      batch_size=cfg["batch_size"], device=device, checkpoint_dir=checkpoint_dir,
                                      **_single_run_options(cfg)))
        except Exception as exc:  # noqa: BLE001 - e.g. TrainingDivergedError: a failed run with its message
            models.append(exc)
    return models, (time.perf_counter() - start) / len(pack)


def _single_run_options(config: dict) -> dict:
    """The study's [training] options as ``train_model`` takes them: an explicit ``precision = "fp32"`` is its
    only precision, so that key is dropped (other precisions never reach this trainer)."""
    options = dict(config.get("training", {}))
    if options.get("precision") == "fp32":
        del options["precision"]
    return options


def _evaluate(item: dict, model, dataset, train_seconds: float, artifacts_dir: str | None) -> RunOutcome:
    from training.evaluate import evaluate_model_records, use_code_table

    cfg = item["config"]
    protocol = dict(cfg["protocol"])
    outcome = RunOutcome(run_id=item["run_id"], train_seconds=train_seconds,
                         train_results={k: v for k, v in dict(model.train_results).items() if not isinstance(v, str)})
    start = time.perf_counter()
    try:
        evaluations = list(protocol["evaluations"])
        # one encoding per factor configuration instead of millions of images where that is cheaper; same numbers
        table = use_code_table(dataset, protocol, evaluations) and callable(getattr(model, "code_table", None))
        records = evaluate_model_records(model, dataset, evaluations=evaluations, protocol=protocol, code_table=table)
        for record in records:
            key = (record.representation, record.evaluation)
            outcome.scores[key] = dict(record.scores or {})
            outcome.evaluations[key] = (record.seconds, record.error)
        if artifacts_dir:
            model.save(Path(artifacts_dir) / item["run_id"] / "model.pt")
    except Exception as exc:  # noqa: BLE001 - the run failed during evaluation
        outcome.error = error_text(exc)
    outcome.eval_seconds = time.perf_counter() - start
    return outcome
