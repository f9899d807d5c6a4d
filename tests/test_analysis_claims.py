"""analysis.claims: calibrated verdicts (noise gives no 'supported', planted truths give the right verdict), the
engine's rules, ties broken evenly, adjusted R^2, and the scorecard's rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import claims
from analysis.claims import (
    CLAIMS, INCONCLUSIVE, NOT_MEASURABLE, NOT_SUPPORTED, SUPPORTED, Claim, Context, Control, scorecard, verdict_counts,
)
from analysis.claims import Test as Margin
from analysis.claims.controls import adjusted_r2, configuration_signal
from analysis.claims.engine import jackknife_interval, judge_claims
from analysis.claims.what_matters import measure_c8
from analysis.planted import FLIPS, calibration, noise_table, planted_table
from analysis.variance import config_cube

IDS = [c.id for c in CLAIMS]


# ------------------------------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("n_seeds", [2, 5, 10])
def test_pure_noise_supports_no_claim(n_seeds):
    """Noise stores (every quantity iid uniform, 4 datasets x 36 configurations): not one 'supported' in two draws
    per seed count (the benchmark, benchmarks/claims_calibration.py, measures the rate over many draws)."""
    for draw in range(2):
        card = scorecard(noise_table(n_seeds, random_state=100 * n_seeds + draw), n_boot=50, random_state=draw)
        assert SUPPORTED not in set(card["verdict"]), card[["claim", "verdict", "reason"]]
        if n_seeds == 2:
            assert set(card["verdict"]) <= {INCONCLUSIVE, NOT_MEASURABLE}
            assert card.loc[card["verdict"] == INCONCLUSIVE, "reason"].str.startswith("too few seeds").all()


def test_every_claim_is_supported_where_it_is_planted_true():
    for draw in range(2):
        card = scorecard(planted_table(None, n_seeds=10, random_state=draw), n_boot=50, random_state=draw)
        wrong = card[card["verdict"] != SUPPORTED]
        assert wrong.empty, wrong[["claim", "verdict", "reason"]].to_string()


@pytest.mark.parametrize("flip", FLIPS)
def test_a_claim_planted_false_is_not_supported_and_its_control_passes(flip):
    card = scorecard(planted_table(flip, n_seeds=10, random_state=0), n_boot=50).set_index("claim")
    assert card.loc[flip, "verdict"] == NOT_SUPPORTED, card.loc[flip, "reason"]
    assert "passed" in card.loc[flip, "control"]
    assert card.loc[flip, "reason"].startswith("not (")



def test_undertrained_models_make_every_claim_inconclusive():
    """A study trained for fewer than MIN_STEPS steps (the smoke preset: 50) decides nothing, even where every claim
    is planted true; at the mini preset's 7,000 steps the same table supports every claim."""
    from analysis.claims.engine import MIN_STEPS
    from training.study.definition import load_study

    smoke, mini = load_study("smoke"), load_study("mini")
    assert smoke.steps < MIN_STEPS <= mini.steps
    table = planted_table(None, n_seeds=10, random_state=0)
    card = scorecard(table, n_boot=50, steps=smoke.steps)
    assert set(card["verdict"]) == {INCONCLUSIVE}
    assert card["reason"].str.startswith(f"undertrained: the models trained {smoke.steps:,} steps").all()
    assert set(scorecard(table, n_boot=50, steps=mini.steps)["verdict"]) == {SUPPORTED}

@pytest.mark.slow
def test_calibration_rates_over_many_draws():
    """The issue's thresholds: on noise at 2, 5 and 10 seeds no claim 'supported' in more than 5 % of (claim, draw)
    pairs; on planted tables at 10 seeds the right verdict in at least 80 % of draws, for every claim, both ways."""
    frame = calibration(draws=10, noise_seeds=[2, 5, 10], seeds=10, n_boot=100)
    noise = frame[[c for c in frame.columns if c.startswith("noise")]]
    assert noise.to_numpy().mean() <= 0.05
    assert (frame[[c for c in frame.columns if not c.startswith("noise")]] >= 0.8).all().all(), frame


# ----------------------------------------------------------------------------------------------- engine rules
def _cube(table):
    return config_cube(table, claims.ALL_COLUMNS)


def _claim(measure, control_measure, tests=(Margin("x", ">", 0.0, "x is positive"),), exact=()):
    control = Control("toy control", "the toy effect", control_measure, (Margin("c", ">", 0.5, "c is large"),),
                      exact=exact)
    return Claim("T1", "x > 0", measure, tests, control)


def test_test_status_needs_the_whole_interval_on_one_side():
    test = Margin("x", ">", 0.3, "x is large")
    assert test.status(0.31, 0.9) == "holds"
    assert test.status(0.1, 0.3) == "fails"
    assert test.status(0.2, 0.4) == "straddles"
    assert test.status(np.nan, 0.4) == "unmeasured"
    below = Margin("x", "<", 0.0, "x is negative")
    assert below.status(-0.5, -0.1) == "holds" and below.status(0.0, 0.2) == "fails"
    with pytest.raises(ValueError, match="side"):
        Margin("x", "=", 0.0, "x")


def test_verdict_rules_and_their_one_line_reasons():
    cube = _cube(planted_table(None, n_seeds=4, random_state=0))
    strong = lambda ctx: {"c": 0.9}                                          # noqa: E731
    weak = lambda ctx: {"c": 0.1}                                            # noqa: E731
    cases = [
        (_claim(lambda ctx: {"x": 1.0}, strong), SUPPORTED, "x is positive: x = 1"),
        (_claim(lambda ctx: {"x": -1.0}, strong), NOT_SUPPORTED, "not (x is positive): x = -1"),
        (_claim(lambda ctx: {"x": 1.0}, weak), INCONCLUSIVE, "positive control failed: this store cannot detect "
                                                             "the toy effect (c = 0.1"),
        (_claim(lambda ctx: {"x": 1.0, "y": np.nan}, strong,
                tests=(Margin("x", ">", 0.0, "x is positive"), Margin("y", ">", 0.0, "y is positive"))),
         INCONCLUSIVE, "part not measurable with this store: y is positive"),
        (_claim(lambda ctx: (_ for _ in ()).throw(claims.NotMeasurable("no x here")), strong), NOT_MEASURABLE,
         "missing: no x here"),
        (_claim(lambda ctx: {"x": 1.0}, lambda ctx: (_ for _ in ()).throw(claims.NotMeasurable("no c"))),
         INCONCLUSIVE, "positive control not measurable: no c"),
    ]
    for claim, verdict, reason in cases:
        judged = judge_claims(cube, (claim,), n_boot=5)[0]
        assert judged.verdict == verdict and judged.reason.startswith(reason), (judged.verdict, judged.reason)
        assert "\n" not in judged.reason


def test_a_statistic_that_moves_with_the_seeds_straddles():
    cube = _cube(planted_table(None, n_seeds=5, random_state=0))
    # x = the mean of one model's seeds: its bootstrap interval straddles a margin at its own value
    claim = _claim(lambda ctx: {"x": float(np.nanmean(ctx.values("MIG")[0, 0])) - 1.3}, lambda ctx: {"c": 0.9})
    point = claim.measure(Context(cube))["x"]
    shifted = Claim("T1", "", lambda ctx: {"x": claim.measure(ctx)["x"] - point}, claim.tests, claim.control)
    judged = judge_claims(cube, (shifted,), n_boot=100)[0]
    assert judged.verdict == INCONCLUSIVE and judged.reason.startswith("interval straddles the margin")
    assert judged.low["x"] < 0 < judged.high["x"]


def test_too_few_seeds_is_inconclusive_whatever_the_numbers():
    card = scorecard(planted_table(None, n_seeds=2, random_state=0), n_boot=20)
    measurable = card[card["verdict"] != NOT_MEASURABLE]
    assert (measurable["verdict"] == INCONCLUSIVE).all()
    assert measurable["reason"].str.contains(r"too few seeds for a seed bootstrap \(n = 2").all()


def test_jackknife_interval_known_values():
    low, high = jackknife_interval(1.0, [0.9, 1.0, 1.1], alpha=0.05)
    se = np.sqrt(2 / 3 * 0.02)
    assert (low, high) == pytest.approx((1 - 4.302653 * se, 1 + 4.302653 * se), rel=1e-5)
    assert np.isnan(jackknife_interval(1.0, [1.0, np.nan], 0.05)[0])


# ----------------------------------------------------------------------------------------- statistics, ties
def test_adjusted_r2_is_zero_on_average_under_no_effect_and_one_for_pure_effects():
    rs = np.random.RandomState(0)
    codes = np.repeat(np.arange(12), 3)                                      # 12 groups x 3 members
    noise = adjusted_r2(rs.normal(size=(2000, 36)), codes, 12)
    assert abs(noise.mean()) < 0.01                                          # raw R^2 would average 11/35 = 0.31
    pure = adjusted_r2(codes[None, :].astype(float), codes, 12)
    assert pure[0] == pytest.approx(1.0)
    assert np.isnan(adjusted_r2(np.ones((1, 36)), codes, 12)[0])


def test_configuration_signal_p_value_under_shuffles():
    table = noise_table(3, random_state=1)
    stat, p = configuration_signal(Context(_cube(table)), ["MIG", "SAP"], n_permutations=99)
    assert p > 0.05 and abs(stat) < 0.1
    stat, p = configuration_signal(Context(_cube(planted_table(None, 3, random_state=1))), ["MIG", "SAP"],
                                   n_permutations=99)
    assert p == pytest.approx(0.01) and stat > 0.3


def test_a_tie_for_the_best_strength_is_split_evenly():
    table = planted_table(None, n_seeds=3, random_state=0)
    for metric in claims.ALL_COLUMNS[:6]:
        table[metric] = 1.0                                                  # every strength ties in every cell
    # each cell spreads one vote over six strengths; every strength ties for the recipe: share 1/6
    assert measure_c8(Context(_cube(table)))["recipe_share"] == pytest.approx(1 / 6)


# ----------------------------------------------------------------------------------------------- scorecard
def test_scorecard_rows_columns_and_paper_numbers():
    card = scorecard(planted_table(None, n_seeds=4, random_state=3), n_boot=20)
    assert list(card["claim"]) == IDS
    for column in claims.scorecard.__globals__["SCORECARD_COLUMNS"]:
        assert column in card.columns
    assert set(card["verdict"]) <= set(claims.VERDICTS)
    c11 = card.set_index("claim").loc["C11"]
    assert "80.7 %" in c11["paper"] and "54.9 %" in c11["paper"]
    assert verdict_counts(card) == {v: int((card["verdict"] == v).sum()) for v in claims.VERDICTS}
    assert (card["reason"].str.len() > 0).all() and not card["reason"].str.contains("\n").any()


def test_scorecard_is_deterministic_and_a_store_without_downstream_leaves_those_claims_unmeasurable():
    table = planted_table(None, n_seeds=4, random_state=5)
    a = scorecard(table, n_boot=20, random_state=1)
    pd.testing.assert_frame_equal(a, scorecard(table, n_boot=20, random_state=1))
    for column in [c for c in table.columns if c.startswith(("LR", "GBT", "Eff"))]:
        table[column] = np.nan
    card = scorecard(table, n_boot=10).set_index("claim")
    for claim in ("C12", "C13", "C14"):
        assert card.loc[claim, "verdict"] == NOT_MEASURABLE
        assert "downstream" in card.loc[claim, "reason"] or "efficienc" in card.loc[claim, "reason"]
