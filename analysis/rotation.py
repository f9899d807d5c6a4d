"""Theorem 1 shown on the store's own models (the paper's Section 3): a rotated model keeps its likelihood and loses
its disentanglement.

``dstudy models`` rotates every saved model's latent space by one fixed Haar-random rotation R
(:mod:`training.evaluation.rotation`) and stores (i) the six headline metrics of the rotated mean representation
``x -> R mu(x)``, evaluated with the same seeds as the stored ``mean`` scores, and (ii) the IWAE estimate of log p(x)
of the trained and of the rotated model on the same observations with the same importance noise.

* :func:`rotation_pairs`: one row per (model, metric) with its ``mean`` and ``rotated`` score;
* :func:`rotation_effects`: per metric, the median change, its interval (percentile bootstrap of the models, which
  are the independent units here), the share of models whose score falls, and the two-sided Wilcoxon signed-rank
  p-value of "no change" (exact below 50 models), Holm-adjusted over the metrics;
* :func:`likelihood_table` / :func:`likelihood_summary`: the two likelihoods per model and whether they agree within
  :data:`LIKELIHOOD_RTOL` (float rounding; :mod:`training.evaluation.likelihood` says why they can differ at all);
* :func:`reference_rotation`: the scale of the effect when there is disentanglement to lose: three of the metrics
  (MIG, Modularity, SAP: those whose array core on codes and factors costs well under a second; DCI's trees take
  tens of seconds) on a perfectly disentangled code - the ground-truth factors themselves - before and after the
  same rotation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.frames import METRIC_NAMES, with_reason
from analysis.model_scores import HOW_TO, LIKELIHOOD_KEYS, headline_long, run_values
from analysis.significance import holm
from training.randomness import check_random_state

#: The rotated model's log-likelihood counts as equal to the trained one's when every per-observation difference is
#: at most this fraction of |log p(x)|: float64 latent arithmetic leaves ~1e-12, a float32 decoder input that rounds
#: the other way ~1e-7 (measured on trained models: 0).
LIKELIHOOD_RTOL = 1e-6
N_BOOT = 2000
#: dSprites' factor sizes (shape, scale, orientation, x, y): the factors of :func:`reference_rotation`'s code.
DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)
PAIR_COLUMNS = ["run_id", "dataset", "method", "hparam_value", "seed", "metric", "mean", "rotated"]


def rotation_pairs(scores: pd.DataFrame) -> pd.DataFrame:
    """Every (model, headline metric) with both a ``mean`` and a ``rotated`` score: :data:`PAIR_COLUMNS`, plus
    ``change`` = rotated - mean. ``attrs['reason']`` says what is missing when the frame is empty."""
    long = headline_long(scores)
    long = long[long["representation"].isin(["mean", "rotated"])]
    if not (long["representation"] == "rotated").any():
        return with_reason(pd.DataFrame(columns=PAIR_COLUMNS + ["change"]),
                           f"the store has no rotated scores (Theorem 1); {HOW_TO}.")
    wide = long.pivot_table(index=["run_id", "dataset", "method", "hparam_value", "seed", "metric"],
                            columns="representation", values="value", aggfunc="first", observed=True)
    wide = wide.dropna(subset=[c for c in ("mean", "rotated") if c in wide.columns])
    out = wide.reset_index()
    out.columns.name = None
    out = out[PAIR_COLUMNS]
    out["change"] = out["rotated"] - out["mean"]
    return with_reason(out.reset_index(drop=True), None)


def rotation_effects(pairs: pd.DataFrame, n_boot: int = N_BOOT, alpha: float = 0.05,
                     random_state: int = 0) -> pd.DataFrame:
    """Per headline metric: ``metric, models, mean_median, rotated_median, change_median, ci_low, ci_high`` (the
    ``1 - alpha`` bootstrap interval of the median change), ``falls`` (share of models whose score fell), ``p``
    (Wilcoxon signed-rank, two-sided; NaN with fewer than 2 nonzero changes) and ``p_holm``."""
    columns = ["metric", "models", "mean_median", "rotated_median", "change_median", "ci_low", "ci_high", "falls",
               "p", "p_holm"]
    if pairs is None or pairs.empty:
        return with_reason(pd.DataFrame(columns=columns), (pairs.attrs.get("reason") if pairs is not None else None)
                           or f"the store has no rotated scores; {HOW_TO}.")
    rs = check_random_state(random_state)
    rows = []
    for metric in [m for m in METRIC_NAMES if m in set(pairs["metric"].astype(str))]:
        part = pairs[pairs["metric"].astype(str) == metric]
        change = part["change"].to_numpy(dtype=float)
        drawn = rs.randint(0, len(change), size=(n_boot, len(change)))
        low, high = np.quantile(np.median(change[drawn], axis=1), [alpha / 2, 1 - alpha / 2])
        nonzero = change[change != 0]
        p = float(stats.wilcoxon(nonzero).pvalue) if nonzero.size >= 2 else float("nan")
        rows.append((metric, len(part), float(part["mean"].median()), float(part["rotated"].median()),
                     float(np.median(change)), float(low), float(high), float(np.mean(change < 0)), p))
    out = pd.DataFrame(rows, columns=columns[:-1])
    out["p_holm"] = holm(out["p"].to_numpy())
    return with_reason(out, None)


def likelihood_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per model with a stored likelihood: ``run_id, dataset, method, hparam_value, seed, trained,
    rotated`` (IWAE log p(x), nats per observation), ``difference`` (rotated - trained) and ``max_abs_difference``
    (the largest per-observation |difference|)."""
    values = run_values(scores, "model", "likelihood", LIKELIHOOD_KEYS)
    out = values.rename(columns={"log_likelihood": "trained", "log_likelihood_rotated": "rotated"})
    out["difference"] = out["rotated"] - out["trained"]
    out = out[["run_id", "dataset", "method", "hparam_value", "seed", "trained", "rotated", "difference",
               "max_abs_difference"]]
    return with_reason(out, None if len(out) else f"the store has no likelihoods of the saved models; {HOW_TO}.")


def likelihood_summary(table: pd.DataFrame, rtol: float = LIKELIHOOD_RTOL) -> dict:
    """``models``, ``median`` (median trained log-likelihood), ``max_abs_difference`` (over models and
    observations), ``relative`` (that over the smallest |log p| of a model) and ``equal`` (every model within
    ``rtol``); ``models`` 0 when the table is empty."""
    ok = table.dropna(subset=["trained", "rotated"]) if len(table) else table
    if not len(ok):
        return {"models": 0, "median": float("nan"), "max_abs_difference": float("nan"), "relative": float("nan"),
                "equal": False}
    per_model = ok["max_abs_difference"].fillna(ok["difference"].abs()).to_numpy(dtype=float)
    relative = float(np.max(per_model / np.abs(ok["trained"].to_numpy(dtype=float))))
    return {"models": int(len(ok)), "median": float(ok["trained"].median()),
            "max_abs_difference": float(per_model.max()), "relative": relative, "equal": bool(relative <= rtol)}


def reference_code(factor_sizes=DSPRITES_FACTOR_SIZES, num_points: int = 1000, num_latent: int = 10,
                   random_state=0) -> tuple[np.ndarray, np.ndarray]:
    """A perfectly disentangled code and its factors: ``(codes (num_latent, N), factors (K, N))``. The factors are
    drawn uniformly from their grids (integer values); latent k < K is factor k standardised to mean 0 and variance
    1 over its grid, the other latents are independent standard normal noise (the uninformative latents of a trained
    VAE)."""
    sizes = np.asarray(factor_sizes, dtype=int)
    if num_latent < len(sizes):
        raise ValueError(f"num_latent ({num_latent}) must be at least the number of factors ({len(sizes)})")
    rs = check_random_state(random_state)
    factors = np.stack([rs.randint(0, size, size=num_points) for size in sizes])
    centre, spread = (sizes - 1) / 2.0, np.sqrt((sizes ** 2 - 1) / 12.0)        # the discrete uniform's moments
    informative = (factors - centre[:, None]) / spread[:, None]
    noise = rs.standard_normal((num_latent - len(sizes), num_points))
    return np.concatenate([informative, noise]), factors


def reference_rotation(rotation: np.ndarray | None = None, factor_sizes=DSPRITES_FACTOR_SIZES,
                       num_train: int = 1000, num_test: int = 500, random_state=0) -> pd.DataFrame:
    """MIG, Modularity and SAP of :func:`reference_code` (``num_train`` points; ``num_test`` more for SAP's and
    Modularity's test set) and of the same code rotated by ``rotation`` (default: the study's,
    :func:`training.evaluation.rotation.study_rotation`): one row per metric, ``metric, code, rotated``. Pure NumPy /
    scikit-learn."""
    from training.evaluation.metrics import mig, modularity, sap
    from training.evaluation.rotation import check_rotation, study_rotation

    rs = check_random_state(random_state)
    codes, factors = reference_code(factor_sizes, num_train + num_test, random_state=rs)
    num_latent = codes.shape[0]
    rotation = study_rotation(num_latent) if rotation is None else check_rotation(rotation, num_latent)
    rows = {"MIG": [], "Modularity": [], "SAP": []}
    for code in (codes, rotation @ codes):
        train, test = code[:, :num_train], code[:, num_train:]
        y_train, y_test = factors[:, :num_train], factors[:, num_train:]
        rows["MIG"].append(mig.compute_mig(train, y_train)["discrete_mig"])
        rows["Modularity"].append(
            modularity.compute_modularity_explicitness(train, y_train, test, y_test)["modularity_score"])
        rows["SAP"].append(sap.compute_sap(train, y_train, test, y_test)["SAP_score"])
    return pd.DataFrame([(metric, float(a), float(b)) for metric, (a, b) in rows.items()],
                        columns=["metric", "code", "rotated"])
