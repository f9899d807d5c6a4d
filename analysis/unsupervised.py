"""Unsupervised scores vs disentanglement metrics and vs downstream accuracy (the paper's Section 5.4 and Appendix;
Fig. 4 centre, 16, 24).

Unsupervised scores per model: the training losses ``reconstruction_loss``, ``kl_loss``, ``elbo`` (from the run
frame of ``analysis.load.load_runs``; FactorVAE's missing ELBO is derived as -(reconstruction + KL)) and the Gaussian
total correlation of the sampled and of the mean representation (``tc_sampled``, ``tc_mean``, from the
``unsupervised`` evaluation). Sign convention: raw values, so lower reconstruction / KL / TC and higher ELBO are
"better"; a useful score for model selection would correlate *negatively* (or positively for ELBO) with the
metrics. ``attrs['convention']`` restates this on every result.
"""
from __future__ import annotations

import pandas as pd

from analysis.correlation import spearman_table
from analysis.downstream import DOWNSTREAM_QUANTITIES
from analysis.frames import METRIC_NAMES, as_model_table, datasets_present, missing_columns, with_reason

UNSUPERVISED_SCORES: tuple[str, ...] = ("reconstruction_loss", "kl_loss", "elbo", "tc_sampled", "tc_mean")
CONVENTION = ("raw values: lower reconstruction_loss, kl_loss, tc_sampled, tc_mean and higher elbo are better; "
              "elbo = -(reconstruction_loss + kl_loss)")


def _correlate(scores, dataset, columns, runs, representation, min_models, what):
    table = as_model_table(scores, runs=runs, representation=representation)
    sub = table[table["dataset"] == dataset]
    out = spearman_table(sub, UNSUPERVISED_SCORES, columns, min_models=min_models)
    out.attrs["convention"] = CONVENTION
    out.attrs["n_models"] = int(len(sub))
    if len(sub) == 0:
        present = ", ".join(datasets_present(table)) or "none"
        return with_reason(out, f"dataset {dataset} is not in this store (datasets present: {present})", [dataset])
    lacking = missing_columns(sub, [*UNSUPERVISED_SCORES, *columns])
    if lacking:
        hint = " (training losses come from the run frame: pass runs=load_runs(store))" if runs is None and any(
            c in lacking for c in ("reconstruction_loss", "kl_loss", "elbo")) else ""
        return with_reason(out, f"missing on {dataset}: {', '.join(lacking)}{hint}", lacking)
    return with_reason(out, None)


def unsupervised_correlations(scores: pd.DataFrame, dataset: str, runs: pd.DataFrame | None = None,
                              representation: str = "mean", min_models: int = 3) -> pd.DataFrame:
    """Spearman rho of each unsupervised score (rows, :data:`UNSUPERVISED_SCORES`) with each of the six metrics
    (columns) over all models of ``dataset`` (Fig. 4 centre / 16). NaN rows and ``attrs['reason']`` for what the
    store (or the missing ``runs`` frame) lacks.
    """
    return _correlate(scores, dataset, list(METRIC_NAMES), runs, representation, min_models, "metrics")


def unsupervised_downstream_correlations(scores: pd.DataFrame, dataset: str, runs: pd.DataFrame | None = None,
                                         representation: str = "mean", min_models: int = 3) -> pd.DataFrame:
    """Spearman rho of each unsupervised score with each downstream quantity (LR10 .. GBT10000, Eff(LR), Eff(GBT))
    over all models of ``dataset`` (Fig. 24)."""
    return _correlate(scores, dataset, list(DOWNSTREAM_QUANTITIES), runs, representation, min_models, "downstream")


def unsupervised_correlations_all(scores: pd.DataFrame, runs: pd.DataFrame | None = None,
                                  representation: str = "mean", min_models: int = 3,
                                  against: str = "metrics") -> pd.DataFrame:
    """Long frame of :func:`unsupervised_correlations` (``against='metrics'``) or
    :func:`unsupervised_downstream_correlations` (``against='downstream'``) for every dataset present:
    ``dataset, score, target, rho``."""
    if against not in ("metrics", "downstream"):
        raise ValueError(f"against must be 'metrics' or 'downstream', got {against!r}")
    table = as_model_table(scores, runs=runs, representation=representation)
    fn = unsupervised_correlations if against == "metrics" else unsupervised_downstream_correlations
    parts = []
    for dataset in datasets_present(table):
        rho = fn(table, dataset, runs=None, min_models=min_models)
        long = rho.stack(future_stack=True).rename("rho").reset_index()
        long.columns = ["score", "target", "rho"]
        long.insert(0, "dataset", dataset)
        parts.append(long)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["dataset", "score", "target",
                                                                                  "rho"])
    out.attrs["convention"] = CONVENTION
    return with_reason(out, None if out["rho"].notna().any() else "no unsupervised score could be correlated",
                       [] if out["rho"].notna().any() else ["unsupervised scores"])
