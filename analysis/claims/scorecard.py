"""The claims scorecard: every checkable headline claim of the paper (C2-C14), judged on one store.

One row per claim: the claim in a sentence, the paper's evidence and number as the paper printed them
(``analysis/data/paper_numbers.json``), this store's statistics with 95 % intervals, the verdict with its reason in
one line, the operational criterion, and the positive control with its outcome. How verdicts are reached:
:mod:`analysis.claims.engine`.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims.agreement import C4
from analysis.claims.downstream import C12, C13, C14
from analysis.claims.engine import NOT_MEASURABLE, Claim, Judgement, judge_claims
from analysis.claims.representations import C2, C3
from analysis.claims.selection import C9, C10, C11, UNSUPERVISED_SCORES
from analysis.claims.what_matters import C5, C6, C7, C8
from analysis.downstream import DOWNSTREAM_QUANTITIES
from analysis.frames import METRIC_NAMES, as_model_table
from analysis.variance import config_cube

PAPER_NUMBERS_PATH = Path(__file__).resolve().parent.parent / "data" / "paper_numbers.json"
CLAIMS: tuple[Claim, ...] = (C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14)
#: Every model-table column a claim or control reads.
ALL_COLUMNS = list(dict.fromkeys([*METRIC_NAMES, *UNSUPERVISED_SCORES, *DOWNSTREAM_QUANTITIES]))
#: Seed-bootstrap replicates: with 200 the ends of a 95 % percentile interval move by about 0.01 between bootstrap
#: draws on the paper-scale synthetic store (benchmarks/claims_calibration.py --stability).
N_BOOT = 200
SCORECARD_COLUMNS = ("claim", "statement", "evidence", "paper", "store", "value", "ci_low", "ci_high", "values",
                     "verdict", "reason", "criterion", "control")


@lru_cache(maxsize=1)
def paper_numbers() -> dict:
    """The paper's numbers and claim sentences (``analysis/data/paper_numbers.json``)."""
    with open(PAPER_NUMBERS_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def _fmt(value: float, low: float, high: float, percent: bool) -> str:
    if math.isnan(value):
        return "n/a"
    scale, unit, digits = (100.0, " %", 1) if percent else (1.0, "", 3)
    text = f"{value * scale:.{digits}f}"
    if not (math.isnan(low) or math.isnan(high)) and not (low == high == value):
        text += f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
    return text + unit


def _row(j: Judgement, texts: dict) -> dict:
    claim = j.claim
    text = texts[claim.id]
    primary = claim.tests[0].key
    shown = [k for k in j.values if not k.startswith("chance ")]
    store = "; ".join(f"{k} {_fmt(j.values[k], j.low.get(k, np.nan), j.high.get(k, np.nan), k in claim.percent)}"
                      for k in shown)
    control = claim.control
    control_text = f"{control.says()} ({control.text()})"
    if j.control_values:
        outcome = {"holds": "passed", "fails": "failed", "straddles": "failed (interval straddles its margin)",
                   "unmeasured": "not measurable"}[j.control_status]
        shown = ", ".join(f"{t.key} {_fmt(j.control_values[t.key], j.control_low.get(t.key, np.nan), j.control_high.get(t.key, np.nan), False)}"
                          for t in control.tests if t.key in j.control_values)
        control_text += f": {shown} - {outcome}"
    return {"claim": claim.id, "statement": text["claim"], "evidence": text["evidence"], "paper": text["paper"],
            "store": store if j.values else "n/a", "value": j.values.get(primary, np.nan),
            "ci_low": j.low.get(primary, np.nan), "ci_high": j.high.get(primary, np.nan), "values": dict(j.values),
            "verdict": j.verdict, "reason": j.reason, "criterion": claim.criterion, "control": control_text}


def scorecard(scores: pd.DataFrame, runs: pd.DataFrame | None = None, n_boot: int = N_BOOT, alpha: float = 0.05,
              random_state: int = 0, claims: tuple[Claim, ...] = CLAIMS, steps: int | None = None) -> pd.DataFrame:
    """One row per claim of ``claims`` (default C2-C14) judged on this store.

    ``scores``: tidy score frame or model table of ONE study; ``runs``: optional run frame (training losses, for the
    KL control and the unsupervised scores). ``n_boot``: seed-bootstrap replicates; ``alpha``: 1 - interval coverage;
    ``random_state`` seeds the bootstrap; ``steps``: the models' training steps (below
    :data:`analysis.claims.engine.MIN_STEPS` every verdict is inconclusive: undertrained; None: not known, not
    checked). Columns: :data:`SCORECARD_COLUMNS` (``value`` / ``ci_low`` / ``ci_high``:
    the first test's statistic; ``values``: every statistic; ``verdict``: one of
    :data:`analysis.claims.engine.VERDICTS`; ``reason``: why, in one line).
    """
    table = as_model_table(scores, runs=runs)
    texts = paper_numbers()["claims"]
    judged = judge_claims(config_cube(table, ALL_COLUMNS), claims, n_boot=n_boot, alpha=alpha,
                          random_state=random_state, steps=steps)
    return pd.DataFrame([_row(j, texts) for j in judged], columns=list(SCORECARD_COLUMNS))


def verdict_counts(card: pd.DataFrame) -> dict[str, int]:
    """How many claims of ``card`` got each verdict (every verdict present as a key)."""
    from analysis.claims.engine import VERDICTS

    counts = card["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


__all__ = ["ALL_COLUMNS", "CLAIMS", "N_BOOT", "NOT_MEASURABLE", "SCORECARD_COLUMNS", "paper_numbers", "scorecard",
           "verdict_counts"]
