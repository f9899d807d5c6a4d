"""Model tables with known truths, for calibrating the claims scorecard (no store, no torch).

* :func:`noise_table`: every quantity of every model drawn iid uniform on [0, 1]: no claim has any support, and no
  positive control should pass.
* :func:`planted_table`: a paper-like study in which every claim C2-C14 is true and every positive control passes;
  ``flip="C7"`` (say) makes that one claim false while its control still passes.

The paper-like study: each model has a quality ``q = method effect + strength effect + seed noise`` (variance shares
about 0.25 / 0.3 / 0.45); dSprites and Color-dSprites share their configuration effects, the other datasets draw
their own; every strength curve is drawn per (dataset, method) and nudged per metric, so no strength is best
everywhere. The five non-Modularity metrics are ``q`` plus noise (BetaVAE / FactorVAE and MIG / DCI share an extra
part); Modularity has configuration effects of its own. The sampled total correlation falls with strength for
beta-VAE and beta-TCVAE and is low for the DIP-VAEs; the mean one rises for beta-VAE, beta-TCVAE and FactorVAE; the
KL term falls with strength. Downstream accuracies follow ``q`` on the dSprites variants and barely elsewhere.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.frames import (
    DOWNSTREAM_COLUMNS, DOWNSTREAM_PREDICTORS, DOWNSTREAM_SIZES, EFFICIENCY_COLUMNS, METRIC_NAMES, MODEL_TABLE_FLAG,
    TRAIN_COLUMNS, UNSUPERVISED_COLUMNS, strength_index,
)
from training.vocabulary import METHODS

NOISE_DATASETS = ("dsprites_full", "color_dsprites", "noisy_dsprites", "cars3d")
PLANTED_DATASETS = ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "cars3d")
FLIPS = tuple(f"C{i}" for i in range(2, 15))
DSPRITES_VARIANTS = ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites")


def _grid(datasets, n_seeds: int) -> pd.DataFrame:
    rows = [(d, m, float(v), s) for d in datasets for m, (_name, values) in METHODS.items() for v in values
            for s in range(n_seeds)]
    frame = pd.DataFrame(rows, columns=["dataset", "method", "hparam_value", "seed"])
    frame.insert(0, "run_id", [f"p{i:06d}" for i in range(len(frame))])
    frame["config"] = frame["method"] + "(" + frame["hparam_value"].map("{:g}".format) + ")"
    frame["strength"] = _strengths(frame)
    return frame


def _strengths(frame: pd.DataFrame) -> np.ndarray:
    out = np.empty(len(frame))
    for method, rows in frame.groupby("method", sort=False).groups.items():
        out[rows] = strength_index(method, frame.loc[rows, "hparam_value"])
    return out


def _finish(frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    for column in (*METRIC_NAMES, *UNSUPERVISED_COLUMNS, *DOWNSTREAM_COLUMNS, *TRAIN_COLUMNS):
        frame[column] = columns.get(column, np.full(len(frame), np.nan))
    for short in DOWNSTREAM_PREDICTORS:
        frame[f"Eff({short})"] = frame[f"{short}100"] / frame[f"{short}10000"]
    order = ["run_id", "dataset", "method", "hparam_value", "seed", "config", "strength", *METRIC_NAMES,
             *UNSUPERVISED_COLUMNS, *DOWNSTREAM_COLUMNS, *EFFICIENCY_COLUMNS, *TRAIN_COLUMNS]
    frame = frame[order].copy()
    frame.attrs[MODEL_TABLE_FLAG] = {"representation": "mean", "annealed_reversed": True}
    return frame


def noise_table(n_seeds: int, random_state: int = 0, datasets=NOISE_DATASETS) -> pd.DataFrame:
    """A model table (every method x its six values x ``n_seeds`` seeds on each dataset) whose every score, training
    loss and accuracy is drawn iid uniform on [0, 1] from ``np.random.RandomState(random_state)``."""
    rs = np.random.RandomState(random_state)
    frame = _grid(datasets, n_seeds)
    n = len(frame)
    columns = {c: rs.uniform(size=n) for c in (*METRIC_NAMES, *UNSUPERVISED_COLUMNS, *DOWNSTREAM_COLUMNS,
                                               *TRAIN_COLUMNS)}
    return _finish(frame, columns)


def planted_table(flip: str | None = None, n_seeds: int = 10, random_state: int = 0,
                  datasets=PLANTED_DATASETS) -> pd.DataFrame:
    """The paper-like model table (module docstring) with claim ``flip`` (one of :data:`FLIPS`, or None) made false.

    How each claim is made false, its positive control still passing: C2 sampled TC rises with strength and the
    DIP-VAEs' is high; C3 mean TC falls; C4 each metric follows configuration effects of its own; C5 one method is far
    better on every metric; C6 the seed barely matters; C7 the objective explains most of the variance; C8 one
    strength curve for every dataset and metric; C9 reconstruction, KL, ELBO and TC track the quality everywhere;
    C10 every dataset shares dSprites' configuration effects; C11 that, with little seed noise and identical metrics;
    C12 accuracy on the dSprites variants ignores the quality; C13 the efficiency follows the quality; C14 accuracy
    falls with total correlation.
    """
    if flip is not None and flip not in FLIPS:
        raise ValueError(f"flip must be one of {', '.join(FLIPS)} or None, got {flip!r}")
    rs = np.random.RandomState(random_state)          # one stream, drawn in the order of the steps below
    frame = _grid(datasets, n_seeds)
    q, share_seed = _quality(frame, flip, datasets, rs)
    configs = _config_codes(frame, flip)
    cols = _metric_columns(frame, flip, q, share_seed, configs, rs)
    cols.update(_unsupervised_columns(frame, flip, q, rs))
    cols.update(_downstream_columns(frame, flip, q, cols["tc_sampled"], configs, rs))
    return _finish(frame, cols)


def _quality(frame: pd.DataFrame, flip: str | None, datasets, rs: np.random.RandomState) -> tuple[np.ndarray, float]:
    """The models' latent quality q: method, strength-curve and seed effects in the planted variance shares (the
    dSprites variants share their effects), and the seed's share."""
    n = len(frame)
    methods = list(METHODS)
    m_idx = frame["method"].map({m: i for i, m in enumerate(methods)}).to_numpy()
    level = np.rint(frame["strength"].to_numpy() * 5).astype(int)               # strength slot 0..5
    dataset = frame["dataset"].to_numpy()
    share_method, share_strength, share_seed = {"C6": (0.45, 0.53, 0.02), "C7": (0.9, 0.05, 0.05),
                                                "C11": (0.4, 0.55, 0.05)}.get(flip, (0.25, 0.3, 0.45))

    def effects(key_rs):
        return key_rs.normal(size=len(methods)), key_rs.normal(size=(len(methods), 6))

    shared = effects(rs)
    own = {d: effects(rs) for d in datasets}
    everywhere = flip in ("C10", "C11")
    method_eff = np.empty(n)
    strength_eff = np.empty(n)
    for d in datasets:
        rows = dataset == d
        source = shared if (everywhere or d in ("dsprites_full", "color_dsprites")) else own[d]
        if flip == "C8":
            source = (source[0], shared[1])                                     # one curve per method everywhere
        method_eff[rows] = source[0][m_idx[rows]]
        strength_eff[rows] = source[1][m_idx[rows], level[rows]]
    if flip == "C5":
        method_eff = np.where(m_idx == 0, 10.0, method_eff)                    # beta-VAE far ahead
    if flip == "C8":
        strength_eff = np.where(level == 2, 2.5, -0.5)                         # the middle strength best everywhere
    seed = rs.normal(size=n)
    q = np.sqrt(share_method) * method_eff + np.sqrt(share_strength) * strength_eff + np.sqrt(share_seed) * seed
    return q, share_seed


def _config_codes(frame: pd.DataFrame, flip: str | None) -> np.ndarray:
    """Codes of the configurations that share a metric's own configuration effects: Color-dSprites shares
    dSprites', and every dataset shares them where hyperparameters are planted to transfer everywhere."""
    key = np.where(frame["dataset"] == "color_dsprites", "dsprites_full", frame["dataset"])
    if flip in ("C10", "C11"):
        key = np.full(len(frame), "all")
    return pd.factorize(pd.Series(key) + frame["config"].to_numpy())[0]


def _metric_columns(frame: pd.DataFrame, flip: str | None, q: np.ndarray, share_seed: float, configs: np.ndarray,
                    rs: np.random.RandomState) -> dict[str, np.ndarray]:
    """The six metrics: q plus a pair effect (BetaVAE/FactorVAE, MIG/DCI), configuration effects of their own and
    noise; Modularity follows its own configuration effects only."""
    n = len(frame)

    def own_config():
        return rs.normal(size=configs.max() + 1)[configs]

    pair_ab, pair_cd = rs.normal(size=n), rs.normal(size=n)
    cols: dict[str, np.ndarray] = {}
    no_pair = np.zeros(n)
    for name, pair in zip(METRIC_NAMES, (pair_ab, pair_ab, pair_cd, pair_cd, no_pair, no_pair)):
        if name == "Modularity":
            cols[name] = own_config() + rs.normal(size=n)
        elif flip == "C4":
            cols[name] = own_config() + np.sqrt(share_seed) * rs.normal(size=n)
        elif flip == "C11":
            cols[name] = q + 0.05 * rs.normal(size=n)
        else:
            # the metric's own nudge of the strength curve keeps the best strength from being shared by all metrics
            k_pair, k_own, k_noise = (0.05, 0.05, 0.05) if flip in ("C6", "C7") else (0.35, 0.35, 0.45)
            if flip == "C8":
                k_own = 0.0
            cols[name] = q + k_pair * pair + k_own * own_config() + k_noise * rs.normal(size=n)
    return cols


SAMPLED_TC_SLOPE = {"beta_vae": -2.5, "beta_tc_vae": -1.8, "factor_vae": -0.5, "dip_vae_i": -0.5,
                    "dip_vae_ii": -0.5, "annealed_vae": -1.0}
SAMPLED_TC_BASE = {"beta_vae": -2.0, "beta_tc_vae": -2.0, "factor_vae": -3.5, "dip_vae_i": -5.0,
                   "dip_vae_ii": -5.0, "annealed_vae": -2.5}
MEAN_TC_SLOPE = {"beta_vae": 2.2, "beta_tc_vae": 1.9, "factor_vae": 1.5, "dip_vae_i": -0.5, "dip_vae_ii": 2.5,
                 "annealed_vae": 0.8}


def _unsupervised_columns(frame: pd.DataFrame, flip: str | None, q: np.ndarray,
                          rs: np.random.RandomState) -> dict[str, np.ndarray]:
    """Total correlations (log-linear in strength per method, Fig. 1's shapes), reconstruction worsening and KL
    falling with strength, and the losses derived from them."""
    n = len(frame)
    x = frame["strength"].to_numpy()
    method = frame["method"].to_numpy()
    s_slope = np.array([SAMPLED_TC_SLOPE[m] for m in method])
    s_base = np.array([SAMPLED_TC_BASE[m] for m in method])
    if flip == "C2":
        s_slope, s_base = -s_slope, np.where(np.isin(method, ["dip_vae_i", "dip_vae_ii"]), 0.0, s_base)
    m_slope = np.array([MEAN_TC_SLOPE[m] for m in method])
    if flip == "C3":
        m_slope = -m_slope
    tc_sampled = np.exp(s_base + s_slope * x + 0.3 * rs.normal(size=n))
    tc_mean = np.exp(-2.5 + m_slope * x + 0.3 * rs.normal(size=n))
    reconstruction = 30.0 + 25.0 * x + 3.0 * rs.normal(size=n)
    kl = 30.0 - 18.0 * x + 2.0 * rs.normal(size=n)
    if flip == "C9":
        reconstruction = 40.0 - 6.0 * q + 0.5 * rs.normal(size=n)
        tc_sampled = np.exp(-2.0 - 0.8 * q + 0.1 * rs.normal(size=n))
        tc_mean = np.exp(-2.0 - 0.8 * q + 0.1 * rs.normal(size=n))
    cols = {"tc_sampled": tc_sampled, "tc_mean": tc_mean, "reconstruction_loss": reconstruction, "kl_loss": kl,
            "regularizer": kl * (1.0 + 3.0 * x)}
    cols["loss"] = reconstruction + cols["regularizer"]
    cols["elbo"] = -(reconstruction + kl)
    for short in ("wasserstein", "wasserstein_norm", "mi"):
        for rep in ("mean", "sampled"):
            cols[f"{short}_{rep}"] = cols[f"tc_{rep}"] * np.exp(0.2 * rs.normal(size=n))
    return cols


def _downstream_columns(frame: pd.DataFrame, flip: str | None, q: np.ndarray, tc_sampled: np.ndarray,
                        configs: np.ndarray, rs: np.random.RandomState) -> dict[str, np.ndarray]:
    """Downstream accuracies: logistic in a quality that follows q on the dSprites variants (weakly elsewhere),
    rising with the training size."""
    n = len(frame)
    informative = np.isin(frame["dataset"].to_numpy(), DSPRITES_VARIANTS)
    link = np.where(informative, 0.8, 0.15)
    if flip == "C12":
        link = np.where(informative, 0.0, link)
    own = 0.8 * rs.normal(size=configs.max() + 1)[configs]
    quality = link * q + np.sqrt(1 - link ** 2) * (own + 0.6 * rs.normal(size=n))
    if flip == "C14":
        quality = -np.log(tc_sampled) + 0.3 * rs.normal(size=n)
    centres = {10: -1.1, 100: -0.5, 1000: -0.1, 10000: 0.1}
    cols = {}
    for short in DOWNSTREAM_PREDICTORS:
        for size in DOWNSTREAM_SIZES:
            z = quality + 0.5 * rs.normal(size=n)
            if flip == "C13" and size == 10000:
                z = 3.0 + 0.05 * rs.normal(size=n)                              # saturated: efficiency = acc@100
            if flip == "C13" and size == 100:
                z = q + 0.2 * rs.normal(size=n)
            cols[f"{short}{size}"] = 0.05 + 0.95 / (1.0 + np.exp(-(centres[size] + 0.5 * z)))
    return cols


def calibration(draws: int, noise_seeds: list[int], seeds: int = 10, n_boot: int = 200) -> pd.DataFrame:
    """One row per claim: the share of ``draws`` noise tables (per seed count of ``noise_seeds``) on which the claim
    comes out ``supported``, and, at ``seeds`` seeds, the share of planted tables with the right verdict when the
    claim is planted true (``supported``) and when it is planted false (``not supported``)."""
    from analysis.claims import CLAIMS, NOT_SUPPORTED, SUPPORTED, scorecard

    def verdicts(table, draw):
        card = scorecard(table, n_boot=n_boot, random_state=draw)
        return dict(zip(card["claim"], card["verdict"]))

    ids = [c.id for c in CLAIMS]
    rows = {claim: {} for claim in ids}
    for s in noise_seeds:
        hits = dict.fromkeys(ids, 0)
        for draw in range(draws):
            for claim, verdict in verdicts(noise_table(s, random_state=1000 * s + draw), draw).items():
                hits[claim] += verdict == SUPPORTED
        for claim in ids:
            rows[claim][f"noise {s} seeds: supported"] = hits[claim] / draws
    true_hits, false_hits = dict.fromkeys(ids, 0), dict.fromkeys(ids, 0)
    for draw in range(draws):
        for claim, verdict in verdicts(planted_table(None, seeds, random_state=draw), draw).items():
            true_hits[claim] += verdict == SUPPORTED
        for flip in FLIPS:
            false_hits[flip] += verdicts(planted_table(flip, seeds, random_state=draw), draw)[flip] == NOT_SUPPORTED
    for claim in ids:
        rows[claim][f"true ({seeds} seeds): supported"] = true_hits[claim] / draws
        rows[claim][f"false ({seeds} seeds): not supported"] = false_hits[claim] / draws
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("claim")
