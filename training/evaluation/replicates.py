"""Evaluation-noise replicates: the same model scored again by the same metric on other ground-truth draws.

A metric score is itself an estimate: it depends on which ground-truth samples its evaluation seed draws (and, for
the classifier-based metrics, on their fits). Scoring every model again with other seeds separates that *evaluation
noise* from the *training noise* between seeds of one configuration (:mod:`analysis.replicates`).

* Replicate r = 1, 2, ... of the ``mean`` representation is stored as representation ``"mean~r<r>"``
  (:func:`replicate_name`), with the same metric and key names as ``mean``; the stored ``mean`` scores are replicate
  0. Representation names are free text in the store's ``scores`` table; the analyses' model table reads only
  ``mean`` / ``sampled``, so replicates never enter the paper's analyses.
* Seeds (:func:`replicate_seeds`): derived as the reference derives :data:`~training.evaluation.scoring.EVALUATION_SEEDS`
  from ``np.random.RandomState(0)``, but from ``np.random.RandomState(1000 + r)``: one ``randint(2**32)`` per
  evaluation, in sorted evaluation-name order. So replicate r of an evaluation has one seed for every model (every
  model of a dataset is scored on the same draws, as the reference scores them), different from the reference seed
  and from the other replicates' (checked).
* :func:`run_seeded` runs evaluations of one representation function with explicit seeds, under a study's protocol
  (scale, kind, overrides), one :class:`~training.evaluation.scoring.EvaluationRecord` each; the rotated scores of
  Theorem 1 use it with the reference seeds of ``mean``.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from training.evaluation.scoring import EVALUATION_SEEDS, EvaluationRecord, resolve_protocol, run_evaluation
from training.vocabulary import EVALUATIONS

REPLICATE_PREFIX = "mean~r"
REPLICATE_MASTER = 1000


def replicate_name(r: int) -> str:
    """The store's representation name of replicate ``r`` >= 1: ``mean~r<r>``."""
    if int(r) < 1:
        raise ValueError(f"replicates are numbered from 1 (0 is the stored mean scores), got {r}")
    return f"{REPLICATE_PREFIX}{int(r)}"


def replicate_index(representation: str) -> int | None:
    """r of a replicate's representation name (``mean`` -> 0), None for any other name."""
    if representation == "mean":
        return 0
    if representation.startswith(REPLICATE_PREFIX) and representation[len(REPLICATE_PREFIX):].isdigit():
        return int(representation[len(REPLICATE_PREFIX):]) or None
    return None


def replicate_seeds(r: int) -> dict[str, int]:
    """``{evaluation: seed}`` of replicate ``r`` >= 1 (see the module docstring)."""
    replicate_name(r)
    master = np.random.RandomState(REPLICATE_MASTER + int(r))
    seeds = {name: int(master.randint(2**32)) for name in sorted(EVALUATIONS)}
    clash = [n for n in seeds if seeds[n] in (EVALUATION_SEEDS[("mean", n)], EVALUATION_SEEDS[("sampled", n)])]
    if clash:  # never happens for the first thousands of replicates; a guard against an accidental equal draw
        raise ValueError(f"replicate {r} would reuse a reference seed for {clash[0]}")
    return seeds


def run_seeded(representation_fn, dataset, evaluations: Iterable[str], seeds: Mapping[str, int], protocol,
               representation: str) -> list[EvaluationRecord]:
    """Run each evaluation on ``representation_fn`` with ``np.random.RandomState(seeds[name])`` under ``protocol``
    (a study's ``[protocol]`` table: its scale, kind and overrides apply as in the study); records are labelled
    ``representation``. A failing evaluation gets its error and the others still run
    (:func:`training.evaluation.scoring.run_evaluation`)."""
    p = resolve_protocol(protocol)
    return [run_evaluation(representation, name, dataset, representation_fn, seeds[name], p)
            for name in evaluations]
