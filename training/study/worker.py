"""Executes runs on a worker: get the dataset, train, evaluate, and return plain results (no store access).

The unit of work is a *pack*: a list of compatible runs (same dataset, method, steps and batch size) given as
``{"run_id": ..., "config": {...}}`` dicts (the canonical configs of :mod:`training.study.definition`). A pack of one trains
with :func:`training.engine.train.train_model`; a larger pack uses :func:`training.engine.packed.train_packed` (several models
trained as one computation). Runs whose study sets a mixed ``[training] precision`` always go to ``train_packed``
(packs of one too), the only trainer that has it.
Results are the picklable :class:`training.store.RunOutcome` objects the sweep driver writes into the store; a
failure of one run (training diverged, data missing, a bug) becomes that run's ``error`` and never hides the other
runs of the pack.
"""
from __future__ import annotations

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
    """Set torch's intra-op threads to ``threads`` (the sweep driver decides it for every run); None: unchanged."""
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


_COMMIT: list[str] = []  # per-process cache of source_commit()


def source_commit() -> str:
    """The git commit of the project's source tree, with ``+modified`` when tracked files differ from it; ``unknown``
    when the code does not run from a git checkout."""
    if not _COMMIT:
        import subprocess

        root = Path(__file__).resolve().parent.parent
        try:
            head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10, check=True).stdout.strip()
            _COMMIT.append(head + ("+modified" if dirty else ""))
        except (OSError, subprocess.SubprocessError):
            _COMMIT.append("unknown")
    return _COMMIT[0]


def run_provenance(device: str | None, precision: str, trainer: str) -> dict[str, str]:
    """Where and how this process computes a run (the ``provenance`` keys of :mod:`training.store`)."""
    import platform

    import numpy
    import sklearn
    import torch

    from training.engine.train import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        device_name = f"cuda ({torch.cuda.get_device_name(resolved)})"
    else:
        device_name = str(resolved)
    return {
        "commit": source_commit(),
        "device": device_name,
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
        "precision": precision,
        "trainer": trainer,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


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

    models, seconds, trainer = _train(pack, dataset, device, artifacts_dir)
    precision = first.get("training", {}).get("precision", "fp32")
    provenance = run_provenance(device, precision, trainer)
    outcomes = []
    for item, model in zip(pack, models):
        if isinstance(model, BaseException):
            outcomes.append(RunOutcome(run_id=item["run_id"], error=error_text(model), train_seconds=seconds))
            continue
        outcome = _evaluate(item, model, dataset, seconds, artifacts_dir)
        outcome.provenance = dict(provenance)
        outcomes.append(outcome)
    return outcomes


def _train(pack: Sequence[dict], dataset, device, artifacts_dir: str | None = None) -> tuple[list, float, str]:
    """Trained models (or the exception of each failed run), the wall seconds per run and the trainer used
    (``train_model``, or ``train_packed (K runs)``). With ``artifacts_dir``, single runs checkpoint into
    ``artifacts_dir/<run_id>`` and resume from there (a lost worker's long run)."""
    from training.engine.options import TrainingOptions
    from training.engine.train import train_model

    configs = [item["config"] for item in pack]
    options = TrainingOptions.from_study(configs[0].get("training"))   # a pack shares its [training] options
    start = time.perf_counter()
    # mixed precision exists in the packed trainer only, so such runs go there even alone
    if len(pack) > 1 or options.precision != "fp32":
        from training.engine.packed import train_packed

        c = configs[0]
        try:
            models = list(train_packed(dataset, c["method"], runs=[(cfg["hparams"], cfg["seed"]) for cfg in configs],
                                       steps=c["steps"], batch_size=c["batch_size"], device=device, options=options))
        except Exception as exc:  # noqa: BLE001 - the whole pack failed; every run carries the error
            models = [exc] * len(pack)
        if len(models) != len(pack):
            err = RuntimeError(f"train_packed returned {len(models)} models for {len(pack)} runs")
            models = [err] * len(pack)
        return models, (time.perf_counter() - start) / len(pack), f"train_packed ({len(pack)} runs)"
    models = []
    for item, cfg in zip(pack, configs):
        checkpoint_dir = str(Path(artifacts_dir) / item["run_id"]) if artifacts_dir else None
        try:
            models.append(train_model(dataset, cfg["method"], dict(cfg["hparams"]), cfg["seed"], cfg["steps"],
                                      batch_size=cfg["batch_size"], device=device, checkpoint_dir=checkpoint_dir,
                                      options=options))
        except Exception as exc:  # noqa: BLE001 - e.g. TrainingDivergedError: a failed run with its message
            models.append(exc)
    return models, (time.perf_counter() - start) / len(pack), "train_model"


def _evaluate(item: dict, model, dataset, train_seconds: float, artifacts_dir: str | None) -> RunOutcome:
    from training.evaluation.scoring import evaluate_model_records, use_code_table

    cfg = item["config"]
    protocol = dict(cfg["protocol"])
    outcome = RunOutcome(run_id=item["run_id"], train_seconds=train_seconds,
                         train_results={k: v for k, v in dict(model.train_results).items() if not isinstance(v, str)})
    start = time.perf_counter()
    try:
        evaluations = list(protocol["evaluations"])
        # one encoding per factor configuration instead of millions of images where that is cheaper
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
