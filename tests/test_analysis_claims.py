"""analysis.claims: scorecard verdicts on planted stores, paper numbers as data, missing data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import claims
from analysis.claims import ALL_COLUMNS, CLAIMS, Context, NotMeasurable, paper_numbers, scorecard
from analysis.frames import DOWNSTREAM_COLUMNS, METRIC_NAMES, model_table
from analysis.transfer import transfer_win_rates
from analysis.variance import config_cube
from test_analysis_helpers import run_grid, to_tidy

DATASETS = ("dsprites_full", "color_dsprites", "noisy_dsprites", "cars3d")


def _ctx(table: pd.DataFrame) -> Context:
    return Context(config_cube(table, ALL_COLUMNS))


def _strength(runs):
    rank = runs.groupby(["dataset", "method"])["hparam_value"].rank(method="dense").to_numpy() - 1
    return np.where(runs["method"] == "annealed_vae", 5 - rank, rank) / 5


def supportive_store(n_seeds=6, seed=0) -> pd.DataFrame:
    """A store built so that C2-C4, C6, C7, C9, C10 and C12-C14 hold."""
    runs = run_grid(datasets=DATASETS, n_seeds=n_seeds)
    rs = np.random.RandomState(seed)
    n = len(runs)
    s = _strength(runs)
    method = runs["method"].to_numpy()
    config = pd.factorize(runs["method"] + runs["hparam_value"].astype(str))[0]
    shared = rs.normal(size=config.max() + 1)                     # config effects shared by dSprites and Color
    own = {d: rs.normal(size=config.max() + 1) for d in DATASETS}
    effect = np.array([shared[c] if d in ("dsprites_full", "color_dsprites") else own[d][c]
                       for d, c in zip(runs["dataset"], config)])
    q = effect + 1.2 * rs.normal(size=n)                          # seed matters
    u, v = q + 0.5 * rs.normal(size=n), q + 0.5 * rs.normal(size=n)
    cols = {"BetaVAE Score": u + 0.1 * rs.normal(size=n), "FactorVAE Score": u + 0.1 * rs.normal(size=n),
            "MIG": v + 0.1 * rs.normal(size=n), "DCI Disentanglement": v + 0.1 * rs.normal(size=n),
            "SAP": q + 0.8 * rs.normal(size=n), "Modularity": rs.normal(size=n)}
    sampled = np.where(np.isin(method, ["dip_vae_i", "dip_vae_ii"]), 0.01, np.exp(-3 * s))
    cols["tc_sampled"] = sampled * (1 + 0.05 * rs.uniform(size=n))
    cols["tc_mean"] = np.where(method == "dip_vae_i", 0.01, 0.1 + s) * (1 + 0.05 * rs.uniform(size=n))
    dsprites = runs["dataset"].isin(DATASETS[:3]).to_numpy()
    for column in DOWNSTREAM_COLUMNS:
        signal = np.where(dsprites, q, rs.normal(size=n))
        cols[column] = 0.5 + 0.05 * signal + 0.01 * rs.normal(size=n)
    return model_table(to_tidy(runs, cols))


def contrary_store(n_seeds=4, seed=1) -> pd.DataFrame:
    """A store where the objective decides everything, effects transfer everywhere and TC trends go the other way."""
    runs = run_grid(datasets=DATASETS, n_seeds=n_seeds)
    rs = np.random.RandomState(seed)
    n = len(runs)
    s = _strength(runs)
    order = {"beta_vae": 0, "factor_vae": 1, "dip_vae_i": 2, "dip_vae_ii": 3, "beta_tc_vae": 4, "annealed_vae": 5}
    y = 10.0 * runs["method"].map(order).to_numpy() + s + 0.001 * rs.normal(size=n)
    cols = {m: y for m in METRIC_NAMES}
    cols["tc_sampled"] = 0.1 + s + 0.001 * rs.uniform(size=n)       # rises with strength
    cols["tc_mean"] = 1.1 - s + 0.001 * rs.uniform(size=n)          # falls with strength
    return model_table(to_tidy(runs, cols))


@pytest.fixture(scope="module")
def supportive_card():
    return scorecard(supportive_store(), n_boot=10).set_index("claim")


def test_scorecard_rows_and_columns(supportive_card):
    card = supportive_card
    assert list(card.index) == [f"C{i}" for i in range(2, 15)]
    for column in ("statement", "evidence", "paper", "store", "value", "ci_low", "ci_high", "verdict", "criterion",
                   "detail"):
        assert column in card.columns
    assert set(card["verdict"]) <= set(claims.VERDICTS)
    assert "80.7 %" in card.loc["C11", "paper"] and "54.9 %" in card.loc["C11", "paper"]
    assert "37 %" in card.loc["C7", "paper"]


@pytest.mark.parametrize("claim", ["C2", "C3", "C4", "C6", "C7", "C9", "C10", "C12", "C13", "C14"])
def test_supportive_store_supports(supportive_card, claim):
    row = supportive_card.loc[claim]
    assert row["verdict"] == "supported", (claim, row["store"], row["detail"])
    assert row["ci_low"] <= row["ci_high"]


def test_contrary_store_refutes():
    card = scorecard(contrary_store(), n_boot=0).set_index("claim")
    for claim in ("C2", "C3", "C5", "C6", "C7", "C8", "C10", "C11"):
        assert card.loc[claim, "verdict"] == "not supported", (claim, card.loc[claim, "store"])
    assert card.loc["C7", "values"]["r2_method"] > 0.95
    assert card.loc["C5", "values"]["top_winner_share"] == 1.0
    assert np.isnan(card.loc["C7", "ci_low"])                     # no bootstrap asked for


def test_metric_agreement_and_downstream_claims_refuted_on_independent_scores():
    runs = run_grid(datasets=DATASETS[:2] + ("cars3d",), n_seeds=4)
    rs = np.random.RandomState(3)
    n = len(runs)
    a = rs.normal(size=n)
    cols = {m: rs.normal(size=n) for m in METRIC_NAMES}
    cols["BetaVAE Score"] = a
    cols["tc_sampled"], cols["tc_mean"] = a, a                       # TC tracks one metric everywhere (C9)
    for column in DOWNSTREAM_COLUMNS:
        cols[column] = 3.0 - a + 0.01 * rs.normal(size=n)           # lower TC <-> higher accuracy (C14)
    ctx = _ctx(model_table(to_tidy(runs, cols)))
    judge = {c.id: c for c in CLAIMS}
    for claim_id in ("C4", "C9", "C14"):
        ok, _key, _threshold = judge[claim_id].judge(judge[claim_id].measure(ctx))
        assert not ok, claim_id
    c12 = claims.measure_c12(ctx)
    assert abs(c12["rho_dsprites_variants"]) < 0.3 and not judge["C12"].judge(c12)[0]


def test_efficiency_tracking_refutes_c13():
    runs = run_grid(datasets=("dsprites_full", "cars3d"), n_seeds=3)
    z = np.random.RandomState(4).uniform(size=len(runs))
    cols = {m: z for m in METRIC_NAMES}
    cols.update({"LR100": z, "GBT100": z, "LR10000": np.ones_like(z), "GBT10000": np.ones_like(z)})
    values = claims.measure_c13(_ctx(model_table(to_tidy(runs, cols))))
    assert values["share_efficiency_rho_strong"] == 1.0


def test_transfer_claim_on_noise_is_supported_and_matches_transfer_module():
    runs = run_grid(datasets=DATASETS[:2], n_seeds=5)
    rs = np.random.RandomState(0)
    table = model_table(to_tidy(runs, {m: rs.normal(size=len(runs)) for m in METRIC_NAMES}))
    values = claims.measure_c11(_ctx(table), n_draws=4000, random_state=0)
    rates = transfer_win_rates(table, n_draws=4000, random_state=0)
    for row in rates.index:
        for col in rates.columns:
            assert values[f"{row}/{col}"] == rates.loc[row, col]     # the scorecard and the page agree
    assert claims._judge_c11(values)[0]


def test_store_without_downstream_or_tc_says_what_is_missing():
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae", "factor_vae"), n_seeds=3)
    rs = np.random.RandomState(0)
    table = to_tidy(runs, {m: rs.normal(size=len(runs)) for m in METRIC_NAMES})
    card = scorecard(table, n_boot=5).set_index("claim")
    for claim in ("C2", "C3", "C12", "C13", "C14"):
        assert card.loc[claim, "verdict"] == "not measurable with this store"
        assert card.loc[claim, "detail"].startswith("missing:")
    assert "downstream" in card.loc["C12", "detail"]
    assert "sampled" in card.loc["C2", "detail"]
    assert "two datasets" in card.loc["C9", "detail"] or "unsupervised" in card.loc["C9", "detail"]
    assert "dsprites_full and color_dsprites" in card.loc["C10", "detail"]
    assert card.loc["C7", "verdict"] in ("supported", "not supported")


def test_empty_store_does_not_crash():
    runs = run_grid(datasets=("cars3d",), methods=("beta_vae",), n_seeds=1, values_per_method=1)
    card = scorecard(to_tidy(runs, {"MIG": np.array([0.3])}), n_boot=3)
    assert len(card) == 13 and set(card["verdict"]) == {"not measurable with this store"}


def test_measures_raise_not_measurable_with_reason():
    runs = run_grid(datasets=("cars3d",), methods=("beta_vae",), n_seeds=2)
    ctx = _ctx(model_table(to_tidy(runs, {"MIG": np.arange(len(runs), dtype=float)})))
    with pytest.raises(NotMeasurable, match="two methods"):
        claims.measure_c5(ctx)
    with pytest.raises(NotMeasurable, match="metric\\(s\\) missing"):
        claims.measure_c4(ctx)


def test_paper_numbers_are_consistent():
    numbers = paper_numbers()
    assert set(numbers["claims"]) == {f"C{i}" for i in range(2, 15)}
    t5 = numbers["table5"]
    assert np.mean(t5["method_percent"]) == pytest.approx(36.95, abs=0.01)
    assert np.mean(t5["method_x_hparam_percent"]) == pytest.approx(58.71, abs=0.01)
    fig2 = np.asarray(numbers["fig2_noisy_dsprites"]["rho_x100"])
    assert (fig2 == fig2.T).all() and (np.diag(fig2) == 100).all()
    assert numbers["table1"]["percent"]["other_metric"]["other_dataset"] == 54.9
    nm = [0, 1, 2, 3, 5]
    block = fig2[np.ix_(nm, nm)]
    mean_off = (block.sum() - 500) / 20 / 100
    assert numbers["claims"]["C4"]["paper_values"]["mean_rho_non_modularity"] == pytest.approx(mean_off)
    assert np.asarray(numbers["fig5_dsprites"]["rho_x100"]).shape == (6, 10)


def test_paper_numbers_pass_the_criteria_they_motivate():
    """The paper's own matrices, run through the same summaries, satisfy C4 and C12 (and Table 1 satisfies C11)."""
    numbers = paper_numbers()
    r = np.asarray(numbers["fig2_noisy_dsprites"]["rho_x100"], dtype=float) / 100
    off = ~np.eye(6, dtype=bool)
    nm = [0, 1, 2, 3, 5]
    row_means = np.where(off, r, np.nan)
    row_means = np.nanmean(row_means, axis=1)
    iu = np.triu_indices(6, 1)
    top3 = set(np.argsort(-r[iu], kind="stable")[:3])
    pos = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(*iu))}
    c4 = {"mean_rho_non_modularity": r[np.ix_(nm, nm)][~np.eye(5, dtype=bool)].mean(),
          "modularity_lowest": float(np.argmin(row_means) == 4),
          "tight_pairs_top3": float(pos[(0, 1)] in top3 and pos[(2, 3)] in top3), "noisy_abs_diff_points": 0.0}
    assert claims._judge_c4(c4)[0]
    f5 = np.asarray(numbers["fig5_dsprites"]["rho_x100"], dtype=float)[:, :8] / 100
    c12 = {"rho_dsprites_variants": f5[nm].mean(), "rho_other_datasets": np.nan,
           "rho_modularity_dsprites": f5[4].mean(), "fig5_abs_diff_points": 0.0}
    assert claims._judge_c12(c12)[0]
    t1 = numbers["table1"]["percent"]
    c11 = {f"{row}/{col}": t1[row][col] / 100 for row in t1 for col in t1[row]}
    c11.update({f"chance {k}": 0.5 for k in list(c11)})
    assert claims._judge_c11(c11)[0]
    c7 = {"r2_method": 0.37, "r2_method_x_hparam": 0.59, "seed_share": 0.41}
    assert claims._judge_c7(c7)[0]
