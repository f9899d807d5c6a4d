"""analysis.frames: model table pivot, strength index, metric names, run attachment."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.frames import (
    METRIC_NAMES, as_model_table, check_scores, is_model_table, metric_name, missing_columns, model_table,
    strength_index,
)
from helpers.grids import run_grid, to_tidy


def test_strength_index_paper_grid_and_annealed_direction():
    np.testing.assert_allclose(strength_index("beta_vae", [1, 2, 4, 6, 8, 16]), [0, .2, .4, .6, .8, 1])
    np.testing.assert_allclose(strength_index("factor_vae", [100, 10]), [1.0, 0.0])
    # AnnealedVAE: larger c_max is weaker; default maps c_max=100 -> 0 (weakest), 5 -> 1 (strongest)
    np.testing.assert_allclose(strength_index("annealed_vae", [5, 100]), [1.0, 0.0])
    np.testing.assert_allclose(strength_index("annealed_vae", [5, 100], annealed_reversed=False), [0.0, 1.0])


def test_strength_index_off_grid_uses_dense_rank():
    np.testing.assert_allclose(strength_index("beta_vae", [3.0, 0.5, 3.0, 7.0]), [0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(strength_index("beta_vae", [3.0, 3.0]), [0.0, 0.0])


def test_metric_name_resolution():
    assert metric_name("mig") == "MIG"
    assert metric_name("C") == "MIG"
    assert metric_name("DCI Disentanglement") == "DCI Disentanglement"
    assert metric_name("factor_vae_metric") == "FactorVAE Score"
    with pytest.raises(ValueError, match="unknown metric"):
        metric_name("accuracy")


def test_check_scores_names_missing_columns():
    with pytest.raises(ValueError, match="lacks column\\(s\\) metric, key"):
        check_scores(pd.DataFrame(columns=["run_id", "dataset", "method", "hparam_value", "seed",
                                           "representation", "value"]))


def test_model_table_reads_representation_and_categoricals():
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae", "annealed_vae"), n_seeds=2)
    values = np.arange(len(runs), dtype=float)
    mean = to_tidy(runs, {"MIG": values, "tc_mean": values + 0.5, "tc_sampled": values + 0.25})
    sampled = to_tidy(runs, {"MIG": -values}, representation="sampled")
    tidy = pd.concat([mean, sampled], ignore_index=True)
    for column in ("dataset", "method", "representation", "metric", "key", "run_id"):
        tidy[column] = tidy[column].astype("category")
    table = model_table(tidy).set_index("run_id").loc[runs["run_id"]]
    np.testing.assert_array_equal(table["MIG"], values)
    np.testing.assert_array_equal(table["tc_sampled"], values + 0.25)
    on_sampled = model_table(tidy, representation="sampled").set_index("run_id").loc[runs["run_id"]]
    np.testing.assert_array_equal(on_sampled["MIG"], -values)
    assert is_model_table(table.reset_index()) and not is_model_table(tidy)
    # the annealed runs' strength is reversed: c_max = 5 is the strongest
    ann = table[table["method"] == "annealed_vae"]
    assert ann.loc[ann["hparam_value"] == 5.0, "strength"].eq(1.0).all()
    assert missing_columns(table, METRIC_NAMES) == [m for m in METRIC_NAMES if m != "MIG"]


def test_runs_supply_training_losses_and_factor_vae_elbo():
    runs = run_grid(datasets=("cars3d",), methods=("beta_vae", "factor_vae"), n_seeds=1, values_per_method=1)
    tidy = to_tidy(runs, {"MIG": np.array([0.1, 0.2])})
    run_frame = runs.assign(reconstruction_loss=[10.0, 20.0], kl_loss=[1.0, 2.0], elbo=[-11.5, np.nan])
    table = model_table(tidy, runs=run_frame).set_index("method")
    assert table.loc["beta_vae", "elbo"] == -11.5          # stored value kept
    assert table.loc["factor_vae", "elbo"] == -22.0        # derived: -(rec + kl)
    # a model table built without runs gets them attached on request
    plain = model_table(tidy)
    assert plain["elbo"].isna().all()
    assert as_model_table(plain, runs=run_frame)["kl_loss"].tolist() == [1.0, 2.0]


def test_duplicate_keys_are_averaged_not_duplicated():
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae",), n_seeds=1, values_per_method=1)
    tidy = pd.concat([to_tidy(runs, {"SAP": np.array([0.2])}), to_tidy(runs, {"SAP": np.array([0.4])})])
    table = model_table(tidy)
    assert len(table) == 1 and table["SAP"].iloc[0] == pytest.approx(0.3)
