"""dstudy.analysis: everything that reads the results store, in the order of the report (never imports torch).

    store --> load (frames) --> analyses (statistics, claims) --> plots --> notebooks --> report

* :mod:`analysis.load`: :func:`load_frames` gives one study's tidy scores, runs and model table (one row per model:
  identity, regularisation strength in [0, 1], the six metrics, unsupervised scores, downstream accuracies, training
  losses); :func:`load_scores` / :func:`load_runs` the raw frames; :func:`summarize_store` what a store holds.
* the analyses of the paper, pure functions of those frames: :mod:`analysis.correlation` (rank agreement, Fig. 2 and
  4), :mod:`analysis.variance` (what matters, Fig. 3, Table 5), :mod:`analysis.transfer` (Table 1),
  :mod:`analysis.downstream` (Fig. 5, 6), :mod:`analysis.total_correlation` (Fig. 1), :mod:`analysis.unsupervised`,
  and their intervals (:mod:`analysis.bootstrap`, a seed bootstrap); the supplementary figures
  (:mod:`analysis.supplement`) and, beyond the paper, :mod:`analysis.within` (:func:`seed_selection`: does a score
  pick the better seed of one configuration?).
* the analyses of the saved models (scores ``dstudy models`` adds; :func:`load_model_scores` reads them):
  :mod:`analysis.rotation` (Theorem 1: rotated metrics and likelihoods), :mod:`analysis.udr` (selection by UDR in
  Table 1's framework), :mod:`analysis.replicates` (:func:`variance_components`: configurations, training noise and
  evaluation noise).
* :mod:`analysis.claims`: :func:`scorecard`, every checkable claim judged on one store with calibrated verdicts.
* :mod:`analysis.plots`: figures and the sentences under them; :mod:`analysis.report`: :func:`build_report`, the
  notebooks executed and published as HTML.
* :mod:`analysis.synthetic` and :mod:`analysis.planted`: stores and model tables with known truths, for tests.

Correlations are Spearman fractions in [-1, 1], shares and accuracies fractions in [0, 1]. The names below are
imported lazily.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_frames": "analysis.load", "load_scores": "analysis.load", "load_runs": "analysis.load",
    "summarize_store": "analysis.load", "resolve_study": "analysis.load",
    "model_table": "analysis.frames",
    "scorecard": "analysis.claims",
    "transfer_win_rates": "analysis.transfer", "transfer_intervals": "analysis.transfer",
    "seed_selection": "analysis.within",
    "load_model_scores": "analysis.model_scores",
    "rotation_pairs": "analysis.rotation", "rotation_effects": "analysis.rotation",
    "likelihood_table": "analysis.rotation",
    "udr_table": "analysis.udr", "udr_selection": "analysis.udr",
    "variance_components": "analysis.replicates",
    "build_report": "analysis.report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
