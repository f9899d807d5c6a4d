"""Claims C12-C14 (Section 5.5, Fig. 5, Fig. 6, Fig. 24): do disentanglement or unsupervised scores predict downstream
accuracy and sample efficiency?"""
from __future__ import annotations

from analysis.claims.agreement import AGREE_RHO, NON_MODULARITY
from analysis.claims.controls import ACCURACIES_DIFFER
from analysis.claims.engine import Claim, Context, Test, nanmean, need
from analysis.frames import DOWNSTREAM_COLUMNS, EFFICIENCY_COLUMNS

DSPRITES_VARIANTS = ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites")
#: C14: rho(TC, accuracy) at or below -0.3 would mean lower total correlation helps (a moderate correlation).
HELPS_RHO = -0.3


def _mean_rho(ctx: Context, datasets, rows, cols) -> float:
    return nanmean([nanmean(ctx.rho(d, rows, cols)) for d in datasets])


def _accuracies(ctx: Context) -> list[str]:
    columns = [c for c in DOWNSTREAM_COLUMNS if c in ctx.present]
    need(columns, "no downstream accuracies (downstream_task_* evaluations)")
    return columns


def measure_c12(ctx: Context) -> dict[str, float]:
    """Mean Spearman of the metrics with the downstream accuracies (every training size, LR and GBT) over each
    dataset's models: ``rho_dsprites`` (non-Modularity metrics, the dSprites variants), ``modularity_gap``
    (Modularity's minus that), ``rho_other_datasets`` (reported)."""
    accuracies = _accuracies(ctx)
    variants = [d for d in ctx.datasets if d in DSPRITES_VARIANTS]
    need(variants, "needs a dSprites variant (dsprites_full, color_dsprites, noisy_dsprites or scream_dsprites)")
    metrics = [m for m in NON_MODULARITY if m in ctx.present]
    need(metrics, "no metric other than Modularity")
    ds = _mean_rho(ctx, variants, metrics, accuracies)
    need(ds == ds, "no downstream accuracies on the dSprites variants")
    modularity = _mean_rho(ctx, variants, ["Modularity"], accuracies) if "Modularity" in ctx.present else float("nan")
    others = [d for d in ctx.datasets if d not in variants]
    return {"rho_dsprites": ds, "modularity_gap": modularity - ds,
            "rho_other_datasets": _mean_rho(ctx, others, metrics, accuracies) if others else float("nan")}


def measure_c13(ctx: Context) -> dict[str, float]:
    """``rho_efficiency``: mean Spearman of the non-Modularity metrics with the sample efficiencies (accuracy at 100
    over accuracy at 10,000 training points, LR and GBT) over each dataset's models, averaged over datasets."""
    efficiency = [c for c in EFFICIENCY_COLUMNS if c in ctx.present]
    need(efficiency, "no sample efficiencies (downstream accuracy at 100 and 10,000 training points)")
    metrics = [m for m in NON_MODULARITY if m in ctx.present]
    need(metrics, "no metric other than Modularity")
    value = _mean_rho(ctx, ctx.datasets, metrics, efficiency)
    need(value == value, "no dataset has both metric scores and sample efficiencies")
    return {"rho_efficiency": value}


def measure_c14(ctx: Context) -> dict[str, float]:
    """``tc_accuracy_rho``: mean Spearman of the sampled and mean total correlation with the downstream accuracies
    over each dataset's models, averaged over datasets."""
    accuracies = _accuracies(ctx)
    tcs = [c for c in ("tc_sampled", "tc_mean") if c in ctx.present]
    need(tcs, "no total correlation scores (evaluation 'unsupervised')")
    value = _mean_rho(ctx, ctx.datasets, tcs, accuracies)
    need(value == value, "no dataset has both total correlation and downstream accuracies")
    return {"tc_accuracy_rho": value}


C12 = Claim(
    "C12",
    f"rho_dsprites > {AGREE_RHO}: on the dSprites variants the metrics other than Modularity correlate at least "
    f"moderately (mean Spearman {AGREE_RHO}) with the downstream accuracies (LR and GBT, every training size), and "
    "modularity_gap < 0: Modularity less; also reported: the same on the other datasets",
    measure_c12,
    (Test("rho_dsprites", ">", AGREE_RHO, "the metrics track downstream accuracy on the dSprites variants"),
     Test("modularity_gap", "<", 0.0, "Modularity tracks it less")),
    ACCURACIES_DIFFER)

C13 = Claim(
    "C13",
    f"rho_efficiency < {AGREE_RHO}: the metrics other than Modularity correlate with the sample efficiency (accuracy "
    f"at 100 / accuracy at 10,000 training points) less than moderately (mean Spearman below {AGREE_RHO})",
    measure_c13, (Test("rho_efficiency", "<", AGREE_RHO, "higher scores do not reliably mean higher efficiency"),),
    ACCURACIES_DIFFER)

C14 = Claim(
    "C14",
    f"tc_accuracy_rho > {HELPS_RHO}: the total correlation (sampled and mean) does not correlate moderately "
    f"negatively (mean Spearman above {HELPS_RHO}) with downstream accuracy: lower TC does not help",
    measure_c14, (Test("tc_accuracy_rho", ">", HELPS_RHO, "lower total correlation does not help"),),
    ACCURACIES_DIFFER)
