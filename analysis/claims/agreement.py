"""Claim C4 (Section 5.2, Fig. 2): the disentanglement metrics other than Modularity agree; BetaVAE / FactorVAE and
MIG / DCI are the tightest pairs. Also the control "the metrics agree" of the claims that say something does NOT
correlate with the metrics (a store in which not even the metrics correlate cannot show a missing correlation)."""
from __future__ import annotations

import numpy as np

from analysis.claims.controls import CONFIGURATIONS_DIFFER
from analysis.claims.engine import Claim, Context, Control, Test, nanmean, need
from analysis.frames import METRIC_NAMES

#: A "moderate" rank correlation: two metrics below it order the same models too differently to be called agreeing
#: (at 0.3 a model in one metric's top half is in the other's top half about 60 % of the time).
AGREE_RHO = 0.3
NON_MODULARITY = tuple(m for m in METRIC_NAMES if m != "Modularity")
TIGHT_PAIRS = (("BetaVAE Score", "FactorVAE Score"), ("MIG", "DCI Disentanglement"))


def _pairs(names):
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def measure_c4(ctx: Context) -> dict[str, float]:
    """Per dataset, Spearman over its models, then averaged over datasets: ``rho_non_modularity`` (mean over the pairs
    of non-Modularity metrics), ``modularity_gap`` (Modularity's mean rho with them minus that mean) and
    ``tight_pairs_gap`` (the two tight pairs' mean rho minus the other non-Modularity pairs')."""
    others = [m for m in NON_MODULARITY if m in ctx.present]
    need(len(others) >= 3, f"needs three or more of {', '.join(NON_MODULARITY)}")
    agree, gap, tight = [], [], []
    pairs = _pairs(others)
    loose = [p for p in pairs if p not in TIGHT_PAIRS]
    for dataset in ctx.datasets:
        r = ctx.rho(dataset, list(METRIC_NAMES), list(METRIC_NAMES))
        at = {(a, b): r[METRIC_NAMES.index(a), METRIC_NAMES.index(b)] for a in METRIC_NAMES for b in METRIC_NAMES}
        mean_others = nanmean([at[p] for p in pairs])
        agree.append(mean_others)
        if "Modularity" in ctx.present:
            gap.append(nanmean([at[("Modularity", m)] for m in others]) - mean_others)
        if all(a in others and b in others for a, b in TIGHT_PAIRS):
            tight.append(nanmean([at[p] for p in TIGHT_PAIRS]) - nanmean([at[p] for p in loose]))
    need(not np.isnan(nanmean(agree)), "no dataset has enough models to correlate the metrics")
    return {"rho_non_modularity": nanmean(agree), "modularity_gap": nanmean(gap), "tight_pairs_gap": nanmean(tight)}


def _metrics_agree(ctx: Context) -> dict[str, float]:
    return {"rho_non_modularity": measure_c4(ctx)["rho_non_modularity"]}


METRICS_AGREE = Control(
    "metrics agree", "a correlation where one is expected (the metrics do not agree with each other)",
    _metrics_agree, (Test("rho_non_modularity", ">", AGREE_RHO, "the metrics other than Modularity agree"),))

C4 = Claim(
    "C4",
    f"rho_non_modularity > {AGREE_RHO}: the mean Spearman correlation among BetaVAE, FactorVAE, MIG, DCI and SAP "
    f"(over each dataset's models, averaged over datasets) is at least moderate ({AGREE_RHO}); modularity_gap < 0: "
    "Modularity agrees with them less than they agree with each other; tight_pairs_gap > 0: BetaVAE-FactorVAE and "
    "MIG-DCI agree more than the other pairs",
    measure_c4,
    (Test("rho_non_modularity", ">", AGREE_RHO, "the metrics other than Modularity agree"),
     Test("modularity_gap", "<", 0.0, "Modularity agrees less"),
     Test("tight_pairs_gap", ">", 0.0, "BetaVAE-FactorVAE and MIG-DCI are the tightest pairs")),
    CONFIGURATIONS_DIFFER)
