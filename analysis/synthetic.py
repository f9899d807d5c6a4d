"""A synthetic results store with planted structure, for tests and benchmarks (plain sqlite3, no torch).

:func:`build_synthetic_store` writes a file that follows the store contract (:mod:`training.store`), at any size up to the paper
grid (7 datasets x 6 methods x 6 values x 50 seeds = 12,600 runs), with every key of every evaluation of
training/evaluation/metrics/REFERENCE.md on both representations and the engine's training results. The numbers are not a
simulation of training; they are drawn so that the study's findings are *visible* and their direction known:

* each model has a latent quality ``q = method effect + strength effect + seed noise`` with variance shares
  0.40 / 0.25 / 0.35 (so R^2(method) ~ 0.35-0.45 and R^2(method x strength) ~ 0.6, as in Table 5);
* BetaVAE and FactorVAE scores share an extra component, so do MIG and DCI (the tightest pairs of Fig. 2); the
  metrics agree strongly on ``dsprites_full``, ``color_dsprites`` and ``scream_dsprites`` and mildly elsewhere;
  Modularity is nearly independent of the others;
* ``color_dsprites`` reuses ``dsprites_full``'s configuration effects (hyperparameters transfer between them only);
* sampled total correlation falls with regularisation strength, mean total correlation rises (not for DIP-VAE-I);
* downstream accuracy follows the latent quality on the dSprites variants and Shapes3D and barely elsewhere.

Everything is drawn from ``np.random.RandomState(random_state)``: the same arguments give the same file.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from training.store import Store
from training.vocabulary import DATASETS, EVALUATIONS, METHODS, REPRESENTATIONS, model_num

_INSERT_RUN = ("INSERT INTO runs (run_id, study, model_num, dataset, method, hparam_name, hparam_value, seed, config, "
               "status, error, source, train_seconds, eval_seconds, created_at, updated_at) VALUES (" + ", ".join("?" * 16) + ")")


# Number of ground-truth factors per dataset (the datasets' factor counts): downstream keys are per factor.
NUM_FACTORS = {"dsprites_full": 5, "color_dsprites": 5, "noisy_dsprites": 5, "scream_dsprites": 5,
               "smallnorb": 4, "cars3d": 3, "shapes3d": 6}
STRONG_AGREEMENT = ("dsprites_full", "color_dsprites", "scream_dsprites")
DOWNSTREAM_INFORMATIVE = ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "shapes3d")
DOWNSTREAM_SIZES = (10, 100, 1000, 10000)
DEFAULT_NOTES = ("Synthetic store built by analysis.synthetic: numbers drawn with planted structure, "
                 "not trained models.")


def strength_index(method: str, value: float) -> float:
    """Regularisation strength in [0, 1]: the value's index among the method's six, over 5; reversed for
    AnnealedVAE (c_max = 100 -> 0.0, 5 -> 1.0: 1.0 is always the strongest). Values off the grid interpolate by rank."""
    values = np.asarray(METHODS[method][1])
    index = float(np.interp(value, values, np.arange(len(values)))) / (len(values) - 1)
    return 1.0 - index if method == "annealed_vae" else index


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _scale(z, low, high, centre=0.0, spread=1.0):
    """Map a standard-normal-ish ``z`` monotonically into (low, high)."""
    return low + (high - low) * _sigmoid(centre + spread * z)


def _dataset_models(dataset: str, methods: Mapping[str, Iterable[float]], seeds: list[int],
                    rng: np.random.RandomState, shared_effects: dict) -> dict:
    """Arrays (one entry per model of ``dataset``) for the model grid and all planted quantities."""
    method_names = list(METHODS)
    rows = [(m, v, s) for m, vals in methods.items() for v in vals for s in seeds]
    method = np.array([r[0] for r in rows], dtype=object)
    value = np.array([r[1] for r in rows], dtype=float)
    seed = np.array([r[2] for r in rows], dtype=int)
    x = np.array([strength_index(m, v) for m, v, _ in rows])
    midx = np.array([method_names.index(m) for m in method])
    n = len(rows)

    # configuration effects (method and strength), shared between dsprites_full and color_dsprites
    key = "dsprites" if dataset in ("dsprites_full", "color_dsprites") else dataset
    if key not in shared_effects:
        shared_effects[key] = (rng.normal(0, 1, 6), rng.normal(0, 1, 6), rng.normal(0, 1, 6))
    method_effect, slope, curve = shared_effects[key]
    if dataset == "color_dsprites":   # mostly the same effects, a little perturbation
        method_effect = 0.98 * method_effect + 0.15 * rng.normal(0, 1, 6)
        slope = 0.98 * slope + 0.15 * rng.normal(0, 1, 6)
    strength_effect = slope[midx] * (x - 0.5) * 1.6 + curve[midx] * ((x - 0.5) ** 2 - 1 / 12) * 3.0
    q = np.sqrt(0.40) * method_effect[midx] + np.sqrt(0.25) * strength_effect + np.sqrt(0.35) * rng.normal(0, 1, n)
    q = (q - q.mean()) / (q.std() + 1e-12)

    agree = 0.92 if dataset in STRONG_AGREEMENT else 0.6
    noise = np.sqrt(1 - agree ** 2)
    pair_ab, pair_cd = rng.normal(0, 1, n), rng.normal(0, 1, n)
    # each metric's own part: a configuration effect of its own plus model noise, so that on the mildly agreeing
    # datasets the metrics disagree while configurations still explain much of each metric's variance
    _, config_idx = np.unique(np.stack([midx, x]), axis=1, return_inverse=True)
    config_idx = config_idx.ravel()
    n_configs = int(config_idx.max()) + 1

    def own():
        return np.sqrt(0.6) * rng.normal(0, 1, n_configs)[config_idx] + np.sqrt(0.4) * rng.normal(0, 1, n)

    z = {
        "A": agree * (0.8 * q + 0.6 * pair_ab) + noise * own(),
        "B": agree * (0.8 * q + 0.6 * pair_ab) + noise * own(),
        "C": agree * (0.8 * q + 0.6 * pair_cd) + noise * own(),
        "D": agree * (0.8 * q + 0.6 * pair_cd) + noise * own(),
        "E": 0.1 * q + own(),
        "F": agree * q + noise * own(),
    }

    # total correlation: sampled falls with strength, mean rises (DIP-VAE-I stays flat and low)
    sampled_slope = {"beta_vae": -2.5, "beta_tc_vae": -1.8, "factor_vae": 0.0, "dip_vae_i": -1.2,
                     "dip_vae_ii": -1.5, "annealed_vae": -1.0}
    sampled_base = {"beta_vae": -2.3, "beta_tc_vae": -2.2, "factor_vae": -4.0, "dip_vae_i": -4.2,
                    "dip_vae_ii": -4.4, "annealed_vae": -2.5}
    mean_slope = {"beta_vae": 2.2, "beta_tc_vae": 1.9, "factor_vae": 1.0, "dip_vae_i": -0.5,
                  "dip_vae_ii": 2.5, "annealed_vae": 0.8}
    mean_base = {"beta_vae": -2.3, "beta_tc_vae": -2.2, "factor_vae": -3.6, "dip_vae_i": -4.6,
                 "dip_vae_ii": -4.6, "annealed_vae": -0.5}
    tc_sampled = np.exp(np.array([sampled_base[m] for m in method]) + np.array([sampled_slope[m] for m in method]) * x
                        + 0.3 * rng.normal(0, 1, n))
    tc_mean = np.exp(np.array([mean_base[m] for m in method]) + np.array([mean_slope[m] for m in method]) * x
                     + 0.3 * rng.normal(0, 1, n))

    # downstream: accuracy follows q where the dataset is informative
    link = 0.8 if dataset in DOWNSTREAM_INFORMATIVE else 0.15
    weak = np.where((method == "annealed_vae") & np.isin(dataset, ["scream_dsprites", "noisy_dsprites"]), -1.5, 0.0)
    return {"method": method, "value": value, "seed": seed, "x": x, "q": q, "z": z, "tc_sampled": tc_sampled,
            "tc_mean": tc_mean, "link": link, "weak": weak, "n": n}


def _evaluation_keys(dataset: str, evaluation: str, models: dict, representation: str,
                     rng: np.random.RandomState) -> dict[str, np.ndarray]:
    """Every key ``evaluation`` writes (training/evaluation/metrics/REFERENCE.md), as arrays over the dataset's models."""
    n, z, q = models["n"], models["z"], models["q"]
    shift = 0.0 if representation == "mean" else -0.3
    jitter = (lambda: 0.0) if representation == "mean" else (lambda: 0.3 * rng.normal(0, 1, n))
    out: dict[str, np.ndarray] = {}
    if evaluation == "beta_vae_sklearn":
        ev = _scale(z["A"] + shift + jitter(), 0.55, 1.0, 0.8, 0.9)
        out = {"eval_accuracy": ev, "train_accuracy": np.minimum(1.0, ev + np.abs(rng.normal(0.01, 0.01, n)))}
    elif evaluation == "factor_vae_metric":
        ev = _scale(z["B"] + shift + jitter(), 0.4, 1.0, 0.6, 0.9)
        out = {"eval_accuracy": ev, "train_accuracy": np.minimum(1.0, ev + np.abs(rng.normal(0.01, 0.01, n))),
               "num_active_dims": np.full(n, 10.0)}
    elif evaluation == "mig":
        out = {"discrete_mig": _scale(z["C"] + shift + jitter(), 0.0, 0.6, -1.2, 0.9)}
    elif evaluation == "dci":
        dis = _scale(z["D"] + shift + jitter(), 0.0, 0.9, -0.8, 0.9)
        info = _scale(0.5 * q + rng.normal(0, 0.5, n), 0.3, 1.0, 0.5, 1.0)
        out = {"disentanglement": dis, "completeness": np.clip(dis + rng.normal(0.02, 0.04, n), 0, 1),
               "informativeness_train": np.minimum(1.0, info + 0.05), "informativeness_test": info}
    elif evaluation == "modularity_explicitness":
        expl = _scale(0.4 * q + rng.normal(0, 0.5, n), 0.6, 1.0, 0.5, 1.0)
        out = {"modularity_score": _scale(z["E"] + shift + jitter(), 0.6, 1.0, 1.0, 0.7),
               "explicitness_score_train": np.minimum(1.0, expl + 0.02), "explicitness_score_test": expl}
    elif evaluation == "sap_score":
        out = {"SAP_score": _scale(z["F"] + shift + jitter(), 0.0, 0.2, -1.5, 0.9)}
    elif evaluation == "unsupervised":
        tc = models["tc_mean"] if representation == "mean" else models["tc_sampled"]
        wass = tc * np.exp(rng.normal(0.5, 0.2, n))
        out = {"gaussian_total_correlation": tc, "gaussian_wasserstein_correlation": wass,
               "gaussian_wasserstein_correlation_norm": wass / (10.0 * np.exp(rng.normal(0, 0.1, n))),
               "mutual_info_score": 0.02 + 0.3 * tc / (1.0 + tc) + np.abs(rng.normal(0, 0.005, n))}
    elif evaluation.startswith("downstream_task"):
        k = NUM_FACTORS.get(dataset, 5)
        boosted = evaluation.endswith("boosted_trees")
        centres = {10: -1.0, 100: -0.2, 1000: 0.4, 10000: 0.8} if boosted else \
            {10: -1.1, 100: -0.5, 1000: -0.1, 10000: 0.1}
        quality = models["link"] * q + np.sqrt(1 - models["link"] ** 2) * rng.normal(0, 1, n) + models["weak"]
        for size in DOWNSTREAM_SIZES:
            # each training size has its own noise, so accuracies at 100 and 10,000 do not rank models identically
            mean_test = _scale(quality + 0.5 * rng.normal(0, 1, n) + shift + jitter(), 0.05, 1.0, centres[size], 0.5)
            offsets = rng.normal(0, 0.05, (n, k))
            offsets -= offsets.mean(axis=1, keepdims=True)
            test = np.clip(mean_test[:, None] + offsets, 0, 1)
            gap = {10: 0.5, 100: 0.3, 1000: 0.1, 10000: 0.03}[size]
            train = np.clip(test + gap * rng.uniform(0.5, 1.0, (n, k)), 0, 1)
            out[f"{size}:mean_test_accuracy"] = test.mean(axis=1)
            out[f"{size}:mean_train_accuracy"] = train.mean(axis=1)
            out[f"{size}:min_test_accuracy"] = test.min(axis=1)
            out[f"{size}:min_train_accuracy"] = train.min(axis=1)
            for i in range(k):
                out[f"{size}:train_accuracy_factor_{i}"] = train[:, i]
                out[f"{size}:test_accuracy_factor_{i}"] = test[:, i]
    else:
        raise ValueError(f"unknown evaluation {evaluation!r}; expected one of {', '.join(EVALUATIONS)}")
    out["elapsed_time"] = rng.uniform(1.0, 60.0, n)
    return out


def _train_results(models: dict, rng: np.random.RandomState) -> dict[str, np.ndarray]:
    """Training results (the engine's keys): reconstruction rises and KL falls with strength; no elbo for FactorVAE."""
    n, x = models["n"], models["x"]
    rec = 30.0 + 25.0 * x + np.abs(rng.normal(0, 3, n))
    kl = 30.0 - 18.0 * x + np.abs(rng.normal(0, 2, n))
    reg = kl * (1.0 + 3.0 * x)
    elbo = -(rec + kl)
    elbo = np.where(models["method"] == "factor_vae", np.nan, elbo)
    return {"reconstruction_loss": rec, "kl_loss": kl, "regularizer": reg, "loss": rec + reg, "elbo": elbo,
            "elapsed_time": rng.uniform(100.0, 200.0, n)}


def build_synthetic_store(path: str | os.PathLike, datasets: Iterable[str] = DATASETS,
                          methods: Mapping[str, Iterable[float]] | Iterable[str] | None = None,
                          seeds: int | Iterable[int] = 50, evaluations: Iterable[str] = EVALUATIONS,
                          representations: Iterable[str] = REPRESENTATIONS, random_state: int = 0,
                          study: str = "synthetic", notes: str | None = DEFAULT_NOTES,
                          data_source: str = "synthetic", failed: int = 0, pending: int = 0,
                          overwrite: bool = False) -> Path:
    """Write a synthetic store to ``path`` and return it.

    ``methods``: names (all six values each) or a mapping method -> values; default the whole paper grid.
    ``seeds``: a count (``0..seeds-1``) or a list. ``evaluations`` / ``representations``: which scores to write
    (drop the downstream tasks to get a store that lacks them). ``failed`` / ``pending``: that many extra runs of
    the first dataset, seeds beyond the done ones, with that status and no scores. ``notes`` goes into ``meta``
    (key ``notes``); ``data_source`` into each run's config. Refuses to overwrite an existing file unless
    ``overwrite``. Scale: the paper grid writes ~3.5 million score rows (~40 s, ~300 MB).
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        path.unlink()
    datasets = list(datasets)
    for d in datasets:
        if d not in DATASETS:
            raise ValueError(f"unknown dataset {d!r}; expected one of {', '.join(DATASETS)}")
    if methods is None:
        methods = {m: METHODS[m][1] for m in METHODS}
    elif not isinstance(methods, Mapping):
        methods = {m: METHODS[m][1] for m in methods}
    methods = {m: [float(v) for v in vals] for m, vals in methods.items()}
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {', '.join(METHODS)}")
    seeds = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    evaluations, representations = list(evaluations), list(representations)
    rng = np.random.RandomState(random_state)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")

    path.parent.mkdir(parents=True, exist_ok=True)
    Store(path).close()                      # the store's own schema; the rows then go in through plain SQL
    conn = sqlite3.connect(path)
    try:
        meta = {"generator": "analysis.synthetic", "random_state": str(random_state)}
        if notes:
            meta["notes"] = notes
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
        shared: dict = {}
        for dataset in datasets if seeds and methods else []:
            models = _dataset_models(dataset, methods, seeds, rng, shared)
            run_ids = []
            run_rows = []
            for m, v, s in zip(models["method"], models["value"], models["seed"]):
                run_id, row = _run_row(study, dataset, m, float(v), int(s), "done", data_source, now)
                run_ids.append(run_id)
                run_rows.append(row)
            conn.executemany(_INSERT_RUN, run_rows)
            train = _train_results(models, rng)
            conn.executemany("INSERT INTO train_results VALUES (?, ?, ?)", (
                (rid, key, float(val)) for key, vals in train.items() for rid, val in zip(run_ids, vals)
                if np.isfinite(val)))
            for representation in representations:
                for evaluation in evaluations:
                    keys = _evaluation_keys(dataset, evaluation, models, representation, rng)
                    conn.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)", (
                        (rid, representation, evaluation, key, val)
                        for key, vals in keys.items() for rid, val in zip(run_ids, vals.tolist())))
        extra_seed = (max(seeds) + 1) if seeds else 0
        first_method = next(iter(methods))
        for i, status in enumerate(["failed"] * failed + ["pending"] * pending):
            _, row = _run_row(study, datasets[0], first_method, methods[first_method][0], extra_seed + i, status,
                              data_source, now)
            conn.execute(_INSERT_RUN, row)
        conn.commit()
    finally:
        conn.close()
    return path


def _run_row(study, dataset, method, value, seed, status, data_source, now):
    hname = METHODS[method][0]
    config = {"batch_size": 64, "data_source": {"kind": data_source}, "dataset": dataset, "hparams": {hname: value},
              "method": method, "seed": seed, "steps": 300000}
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    run_id = hashlib.sha256(text.encode()).hexdigest()[:16]
    done = status == "done"
    return run_id, (run_id, study, model_num(dataset, method, value, seed), dataset, method, hname, value, seed,
                    text, status, "synthetic failure" if status == "failed" else None, "synthetic",
                    1000.0 if done else None, 100.0 if done else None, now, now)
