"""The tidy-frame builders of tests/helpers/grids.py: the paper grid's indices, an exact round trip through the
model table, a complete paper-scale frame."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.frames import model_table
from helpers.grids import paper_scale_scores, run_grid, to_tidy


def test_run_grid_matches_paper_grid_index():
    runs = run_grid(n_seeds=50)
    assert len(runs) == 12600
    assert runs["model_num"].tolist() == list(range(12600))


def test_to_tidy_round_trips_through_model_table():
    runs = run_grid(datasets=("dsprites_full", "cars3d"), n_seeds=3)
    rs = np.random.RandomState(1)
    cols = {c: rs.uniform(size=len(runs)) for c in ("MIG", "SAP", "tc_sampled", "LR100", "LR10000")}
    cols["SAP"][4] = np.nan
    table = model_table(to_tidy(runs, cols))
    table = table.set_index("run_id").loc[runs["run_id"]]
    for c, v in cols.items():
        np.testing.assert_array_equal(table[c].to_numpy(), v)
    np.testing.assert_allclose(table["Eff(LR)"].to_numpy(), cols["LR100"] / cols["LR10000"])
    assert table["DCI Disentanglement"].isna().all()


@pytest.mark.slow
def test_paper_scale_frame_has_every_run():
    frame = paper_scale_scores(n_seeds=50)
    assert frame["run_id"].nunique() == 12600
    assert set(frame["representation"]) == {"mean", "sampled"}
