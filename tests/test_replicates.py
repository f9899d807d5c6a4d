"""Evaluation-noise replicates: their seeds (training.evaluation.replicates) and the nested decomposition of a
metric's variance into configurations, seeds and evaluations (analysis.replicates): planted components are
recovered, a seed effect is claimed only when there is one, and the page's sentence follows the test."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.plots.captions import describe_variance_components
from analysis.replicates import (MIN_CONFIGURATIONS, nested_anova, replicate_scores, training_share_interval,
                                 variance_components)
from helpers.grid_data import GridData
from helpers.grids import run_grid, to_tidy
from training.evaluation.replicates import (replicate_index, replicate_name, replicate_seeds, run_seeded)
from training.evaluation.scoring import EVALUATION_SEEDS
from training.vocabulary import EVALUATIONS


def test_replicate_names_and_seeds():
    assert replicate_name(1) == "mean~r1" and replicate_index("mean~r12") == 12
    assert replicate_index("mean") == 0 and replicate_index("rotated") is None and replicate_index("mean~r0") is None
    with pytest.raises(ValueError):
        replicate_name(0)
    one, two = replicate_seeds(1), replicate_seeds(2)
    assert set(one) == set(EVALUATIONS) and one == replicate_seeds(1)              # deterministic
    master = np.random.RandomState(1001)
    assert one == {name: int(master.randint(2**32)) for name in sorted(EVALUATIONS)}
    reference = {EVALUATION_SEEDS[("mean", n)] for n in EVALUATIONS}
    assert not (set(one.values()) & set(two.values())) and not (set(one.values()) & reference)


class Identity:
    def representation_fn(self, kind, seed=0, batch_size=256):
        return lambda observations: np.asarray(observations, dtype=np.float32)


def test_run_seeded_uses_the_seed_and_the_protocol():
    data = GridData((5, 6))
    fn = Identity().representation_fn("mean")
    a = run_seeded(fn, data, ["mig", "sap_score"], {"mig": 1, "sap_score": 2}, {"scale": 0.01}, "mean~r1")
    again = run_seeded(fn, data, ["mig", "sap_score"], {"mig": 1, "sap_score": 2}, {"scale": 0.01}, "mean~r1")
    other = run_seeded(fn, data, ["mig"], {"mig": 3}, {"scale": 0.01}, "mean~r2")
    assert [r.representation for r in a] == ["mean~r1", "mean~r1"] and all(r.error is None for r in a)
    assert a[0].scores == again[0].scores and a[0].scores != other[0].scores
    failed = run_seeded(fn, data, ["mig"], {"mig": 1}, {"scale": 0.01, "overrides": {"mig": {"num_train": 1}}},
                        "mean~r1")[0]
    assert failed.error is not None and failed.scores == {}                    # one point cannot be binned


def planted(n_config=60, n_seed=4, n_rep=3, sd=(1.0, 0.5, 0.25), random_state=0, drop=0.0) -> np.ndarray:
    """(C, S, R) scores of the nested model with the given standard deviations (config, seed, evaluation); a share
    ``drop`` of the replicates after the first set to NaN (an unbalanced design)."""
    rs = np.random.RandomState(random_state)
    y = (rs.normal(0, sd[0], (n_config, 1, 1)) + rs.normal(0, sd[1], (n_config, n_seed, 1))
         + rs.normal(0, sd[2], (n_config, n_seed, n_rep)))
    if drop:
        gone = rs.uniform(size=y.shape) < drop
        gone[..., 0] = False
        y[gone] = np.nan
    return y


def _fit(y: np.ndarray) -> dict:
    c, s, r = np.meshgrid(*[np.arange(n) for n in y.shape], indexing="ij")
    ok = ~np.isnan(y)
    return nested_anova(y[ok], c[ok], (c * y.shape[1] + s)[ok])


def test_balanced_mean_squares_by_hand():
    y = np.array([[[1.0, 3.0], [5.0, 7.0]], [[2.0, 2.0], [6.0, 10.0]]])      # 2 configurations x 2 seeds x 2
    fit = _fit(y)
    # model means 2, 6 | 2, 8; configuration means 4, 5; grand mean 4.5
    assert fit["ms_eval"] == pytest.approx((2 + 2 + 0 + 8) / 4)
    assert fit["ms_seed"] == pytest.approx(2 * ((2 - 4) ** 2 + (6 - 4) ** 2 + (2 - 5) ** 2 + (8 - 5) ** 2) / 2)
    assert fit["ms_config"] == pytest.approx(4 * ((4 - 4.5) ** 2 + (5 - 4.5) ** 2) / 1)
    assert (fit["k1"], fit["k2"], fit["k3"]) == (2, 2, 4)
    assert fit["var_seed"] == pytest.approx((fit["ms_seed"] - fit["ms_eval"]) / 2)
    assert fit["var_config"] == 0.0                                          # negative estimate, reported as 0


@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_planted_components_are_recovered(drop):
    # 400 configurations x 4 seeds x 3 evaluations; truth 1, 0.25, 0.0625. Tolerance: the standard error of a
    # method-of-moments estimate is ~ sqrt(2 / df) of the mean square behind it: ~7 % for var_config (399 df), ~5 %
    # for var_seed, ~3 % for var_eval; 4 standard errors allowed
    fit = _fit(planted(n_config=400, drop=drop, random_state=1))
    assert fit["var_config"] == pytest.approx(1.0, rel=0.3)
    assert fit["var_seed"] == pytest.approx(0.25, rel=0.25)
    assert fit["var_eval"] == pytest.approx(0.0625, rel=0.15)
    assert fit["training_share"] == pytest.approx(0.8, abs=0.06)
    assert fit["p_seed"] < 1e-6 and fit["p_config"] < 1e-6


def test_the_seed_test_has_its_level_under_no_seed_effect():
    p = [_fit(planted(n_config=20, sd=(1.0, 0.0, 0.5), random_state=k))["p_seed"] for k in range(300)]
    assert 0.025 <= np.mean(np.array(p) < 0.05) <= 0.08                    # 5 % with binomial sd 1.3 %


def test_the_training_share_interval_has_its_coverage():
    # balanced normal designs of 3 configurations (too few for any bootstrap) x 4 seeds x 3 evaluations; truth:
    # var_seed 0.25, var_eval 0.0625, training share 0.8. The F interval is exact here: 95 % coverage, binomial sd
    # 1.5 % over 200 draws
    covered = []
    for k in range(200):
        low, high = training_share_interval(_fit(planted(n_config=3, random_state=k)))
        covered.append(low <= 0.8 <= high)
    assert 0.91 <= np.mean(covered) <= 0.99
    fit = _fit(planted(n_config=3, random_state=0))
    low, high = training_share_interval(fit)
    assert low <= fit["training_share"] <= high
    assert training_share_interval(fit, alpha=0.5)[0] >= low                  # a lower level, a narrower interval


def _store(sd_seed: float, random_state: int, n_rep: int = 3) -> pd.DataFrame:
    """A tidy frame of 2 datasets x 3 methods x 3 values x 3 seeds with ``n_rep`` evaluations of every headline
    metric (``mean`` and ``mean~r1`` ...), configuration sd 1, seed sd ``sd_seed``, evaluation sd 0.3."""
    rs = np.random.RandomState(random_state)
    runs = run_grid(datasets=("dsprites_full", "cars3d"), methods=("beta_vae", "factor_vae", "dip_vae_i"),
                    n_seeds=3, values_per_method=3)
    config = pd.factorize(runs[["dataset", "method", "hparam_value"]].apply(tuple, axis=1))[0]
    parts = []
    base = {m: rs.normal(size=config.max() + 1)[config] + rs.normal(0, sd_seed, len(runs)) for m in
            ("MIG", "SAP", "DCI Disentanglement")}
    for r in range(n_rep):
        columns = {m: v + rs.normal(0, 0.3, len(runs)) for m, v in base.items()}
        parts.append(to_tidy(runs, columns, representation="mean" if r == 0 else f"mean~r{r}"))
    return pd.concat(parts, ignore_index=True)


def test_variance_components_of_a_store():
    frame = variance_components(_store(0.8, 0), n_boot=200)
    assert set(frame["dataset"]) == {"dsprites_full", "cars3d"} and len(frame) == 6
    row = frame.iloc[0]
    assert row["models"] == 27 and row["configurations"] == 9 and row["replicates"] == 3
    assert abs(row[["share_config", "share_seed", "share_eval"]].sum() - 1) < 1e-12
    assert row["share_seed_low"] <= row["share_seed"] <= row["share_seed_high"]
    assert (frame["p_seed_holm"] < 0.05).all()
    text = describe_variance_components(frame)
    assert "differ beyond the metric's evaluation noise for 6 of 6 metrics" in text


def test_few_configurations_get_no_bootstrap_interval():
    tidy = _store(0.8, 0)
    few = tidy[tidy["hparam_value"] == 1.0]                  # beta_vae(1) and dip_vae_i(1): 2 configurations
    frame = variance_components(few, n_boot=50)
    assert len(frame) == 6 and (frame["configurations"] == 2).all() and 2 < MIN_CONFIGURATIONS
    assert frame[["share_config_low", "share_seed_high", "share_eval_low"]].isna().all().all()
    assert frame["training_share_low"].notna().all()                        # the F interval needs no bootstrap
    assert "evaluation noise is more than half" not in describe_variance_components(frame)


def test_no_seed_effect_is_claimed_on_evaluation_noise_alone():
    claims = 0
    for k in range(20):
        frame = variance_components(_store(0.0, 100 + k), n_boot=50, random_state=k)
        claims += "differ beyond" in describe_variance_components(frame)
    assert claims <= 3                         # Holm over 6 metrics: ~5 % of tables claim, 3 of 20 allows 2.2 sd


def test_without_replicates_the_page_gets_a_reason():
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae",), n_seeds=2, values_per_method=2)
    tidy = to_tidy(runs, {"MIG": np.arange(len(runs), dtype=float)})
    frame = variance_components(tidy)
    assert frame.empty and "dstudy models" in frame.attrs["reason"]
    assert set(replicate_scores(tidy)["replicate"]) == {0}
