"""dstudy.training: everything that fills the results store, in the order of the pipeline.

    data --> models --> engine --> evaluation --> study (driver + workers) --> store      (cli drives them all)

* :mod:`training.data`: the seven ground-truth datasets behind one interface; :func:`get_dataset` by name.
  Observations are float32 ``(n, 64, 64, C)`` in [0, 1]; factors integer ``(n, K)``.
* :mod:`training.models`: the study's network (encoder, decoder, FactorVAE discriminator) and the six objectives.
* :mod:`training.engine`: :func:`train_model` (one model) and :func:`train_packed` (several as one computation);
  :mod:`training.kernels` holds the fast paths they opt into.
* :mod:`training.evaluation`: :func:`evaluate_model` scores a model with the nine evaluations on the ``mean`` and
  ``sampled`` representations; the metrics themselves in :mod:`training.evaluation.metrics`.
* :mod:`training.study`: :func:`load_study` (TOML files, presets ``smoke`` / ``mini`` / ``paper`` / ``gpu``) and
  :func:`sweep`, the resumable driver on a local pool or a Dask cluster.
* :mod:`training.store`: :class:`Store`, the SQLite results store (imports no torch; the analysis side reads it).
* :mod:`training.cli`: the ``dstudy`` command.

The names below are imported lazily (``training.train_model`` loads torch, ``training.Store`` does not)::

    from training import train_model, evaluate_model, load_study, sweep, Store
    model = train_model("dsprites_full", "beta_vae", {"beta": 4.0}, seed=0, steps=7000)
    scores = evaluate_model(model, "dsprites_full", ["mig"], protocol={"scale": 0.1})
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "get_dataset": "training.data",
    "train_model": "training.engine", "train_packed": "training.engine", "TrainedModel": "training.engine",
    "TrainingDivergedError": "training.engine",
    "evaluate_model": "training.evaluation", "evaluate_model_records": "training.evaluation",
    "EvaluationError": "training.evaluation",
    "Study": "training.study", "load_study": "training.study", "parse_study": "training.study",
    "sweep": "training.study",
    "Store": "training.store", "RunRecord": "training.store", "RunOutcome": "training.store",
    "DEFAULT_STORE": "training.store",
    "UserError": "training.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
