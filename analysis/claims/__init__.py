"""The claims scorecard: the paper's checkable claims (C2-C14) judged on one store with calibrated verdicts.

* :func:`scorecard` (``analysis.claims.scorecard``): one row per claim with this store's statistics, 95 % intervals,
  a verdict (``supported``, ``not supported``, ``inconclusive``, ``not measurable with this store``) and its reason.
* :mod:`analysis.claims.engine`: how a verdict is reached (intervals, margins, positive controls).
* the claims, each measure beside its tests: :mod:`~analysis.claims.representations` (C2, C3),
  :mod:`~analysis.claims.agreement` (C4), :mod:`~analysis.claims.what_matters` (C5-C8),
  :mod:`~analysis.claims.selection` (C9-C11), :mod:`~analysis.claims.downstream` (C12-C14); the shared positive
  controls: :mod:`~analysis.claims.controls`.
"""
from analysis.claims.engine import (
    INCONCLUSIVE, MIN_SEEDS, MIN_STEPS, NOT_MEASURABLE, NOT_SUPPORTED, SUPPORTED, VERDICTS, Claim, Context, Control,
    NotMeasurable, Test, judge_claims,
)
from analysis.claims.scorecard import ALL_COLUMNS, CLAIMS, N_BOOT, paper_numbers, scorecard, verdict_counts

__all__ = ["ALL_COLUMNS", "CLAIMS", "Claim", "Context", "Control", "INCONCLUSIVE", "MIN_SEEDS", "MIN_STEPS", "N_BOOT",
           "NOT_MEASURABLE", "NOT_SUPPORTED", "NotMeasurable", "SUPPORTED", "Test", "VERDICTS", "judge_claims",
           "paper_numbers", "scorecard", "verdict_counts"]
