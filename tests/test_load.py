"""analysis.load: round trip through a synthetic store, the read-only contract and not-a-store errors."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from analysis import load, synthetic
from training.errors import UserError
from training.vocabulary import DATASETS, METHODS

EVALS = ["mig", "dci", "unsupervised", "downstream_task_logistic_regression"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("load") / "s.sqlite"
    synthetic.build_synthetic_store(path, datasets=["cars3d", "dsprites_full"],
                                    methods={"beta_vae": [1.0, 4.0], "factor_vae": [10.0, 40.0]}, seeds=3,
                                    evaluations=EVALS, failed=2, pending=1, random_state=3)
    return path


def _sql(path, query, *args):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def test_load_scores_round_trip(store):
    scores = load.load_scores(store)
    assert list(scores.columns) == list(load.SCORE_COLUMNS)
    rows = _sql(store, "SELECT s.run_id, s.representation, s.metric, s.key, s.value FROM scores s "
                       "JOIN runs r USING (run_id) WHERE r.status = 'done'")
    assert len(scores) == len(rows) > 0
    # every value comes back exactly, attached to its own (run, representation, metric, key)
    expected = {(r, rep, m, k): v for r, rep, m, k, v in rows}
    got = dict(zip(zip(scores["run_id"].astype(str), scores["representation"].astype(str),
                       scores["metric"].astype(str), scores["key"].astype(str)), scores["value"]))
    assert got == expected
    # run columns are joined from the runs table
    runs = dict((r[0], r[1:]) for r in _sql(store, "SELECT run_id, dataset, method, hparam_value, seed, model_num "
                                                   "FROM runs"))
    for row in scores.sample(50, random_state=0).itertuples():
        dataset, method, value, seed, num = runs[row.run_id]
        assert (row.dataset, row.method, row.hparam_value, row.seed) == (dataset, method, value, seed)
        assert row.model_num == num
    assert scores["value"].dtype == np.float64 and scores["seed"].dtype == np.int64
    assert str(scores["model_num"].dtype) == "Int64"
    assert set(scores["status"].astype(str)) == {"done"}


def test_dataset_and_method_follow_the_study_order(store):
    scores = load.load_scores(store)
    assert list(scores["dataset"].cat.categories) == ["dsprites_full", "cars3d"]   # study order, not alphabetical
    assert list(scores["method"].cat.categories) == ["beta_vae", "factor_vae"]
    assert scores["dataset"].iloc[0] == "cars3d"        # rows in store order (cars3d was written first)


def test_key_counts_per_evaluation(store):
    scores = load.load_scores(store)
    one = scores[(scores["run_id"] == scores["run_id"].iloc[0]) & (scores["representation"] == "mean")]
    per_metric = one.groupby("metric", observed=True)["key"].nunique().to_dict()
    # cars3d has 3 factors: 4 sizes x (4 + 2*3) keys, plus elapsed_time
    assert per_metric == {"mig": 2, "dci": 5, "unsupervised": 5, "downstream_task_logistic_regression": 41}


def test_filters(store):
    mig = load.load_scores(store, metrics=["mig"], representations="mean")
    assert set(mig["metric"].astype(str)) == {"mig"} and set(mig["representation"].astype(str)) == {"mean"}
    assert len(mig) == 2 * 2 * 2 * 3 * 2       # datasets x methods x values x seeds x keys
    assert load.load_scores(store, metrics=[]).empty


def test_status_selection(store):
    done = load.load_runs(store)
    every = load.load_runs(store, status=None)
    assert len(done) == 2 * 2 * 2 * 3
    assert len(every) == len(done) + 3
    assert sorted(every["status"].value_counts().to_dict().items()) == [("done", 24), ("failed", 2), ("pending", 1)]
    assert len(load.load_runs(store, status=["failed", "pending"])) == 3
    with pytest.raises(ValueError):
        load.load_runs(store, status=[])


def test_runs_have_train_results_and_derived_elbo(store):
    runs = load.load_runs(store)
    for column in ("reconstruction_loss", "kl_loss", "regularizer", "loss", "elbo"):
        assert runs[column].notna().all(), column
    factor = runs["method"] == "factor_vae"
    assert runs.loc[factor, "elbo_derived"].all() and not runs.loc[~factor, "elbo_derived"].any()
    np.testing.assert_allclose(runs.loc[factor, "elbo"],
                               -(runs.loc[factor, "reconstruction_loss"] + runs.loc[factor, "kl_loss"]))
    stored = dict(_sql(store, "SELECT run_id, value FROM train_results WHERE key = 'kl_loss'"))
    assert dict(zip(runs["run_id"], runs["kl_loss"])) == {k: v for k, v in stored.items() if k in set(runs["run_id"])}


def test_opened_read_only(store, tmp_path):
    copy = tmp_path / "ro.sqlite"
    copy.write_bytes(store.read_bytes())
    copy.chmod(0o444)
    before = copy.read_bytes()
    assert len(load.load_scores(copy)) > 0
    assert copy.read_bytes() == before
    conn = load._connect(copy)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM runs")
    conn.close()


# The store contract's four tables as another tool would write them (version 1, nothing dstudy adds).
CONTRACT_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs(run_id TEXT PRIMARY KEY, study TEXT NOT NULL, model_num INTEGER, dataset TEXT NOT NULL,
                  method TEXT NOT NULL, hparam_name TEXT NOT NULL, hparam_value REAL NOT NULL, seed INTEGER NOT NULL,
                  config TEXT NOT NULL, status TEXT NOT NULL, error TEXT, source TEXT NOT NULL,
                  train_seconds REAL, eval_seconds REAL, created_at TEXT, updated_at TEXT);
CREATE TABLE train_results(run_id TEXT, key TEXT, value REAL, PRIMARY KEY (run_id, key));
CREATE TABLE scores(run_id TEXT, representation TEXT, metric TEXT, key TEXT, value REAL,
                    PRIMARY KEY (run_id, representation, metric, key));
"""


@pytest.mark.parametrize("kind", ["missing", "folder", "text", "empty_sqlite", "no_scores", "lacks_column"])
def test_not_a_store_is_a_one_line_user_error(tmp_path, kind):
    path = tmp_path / "x.sqlite"
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello, this is not a database\n" * 100)
    elif kind != "missing":
        conn = sqlite3.connect(path)
        if kind == "no_scores":
            conn.execute("CREATE TABLE runs(run_id TEXT)")
        elif kind == "lacks_column":
            conn.executescript(CONTRACT_V1.replace("hparam_value REAL NOT NULL,", ""))
        elif kind == "empty_sqlite":
            conn.execute("CREATE TABLE other(x)")
        conn.commit()
        conn.close()
    for fn in (load.load_scores, load.load_runs, load.summarize_store, load.check_store):
        with pytest.raises(UserError) as info:
            fn(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        if kind == "lacks_column":
            assert "hparam_value" in message
        if kind == "no_scores":
            assert "scores" in message and "train_results" in message


def test_store_by_another_tool_without_meta_is_readable(tmp_path):
    """The contract's three data tables are enough; extra columns are ignored."""
    path = tmp_path / "other.sqlite"
    schema = CONTRACT_V1.replace("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);", "")
    schema = schema.replace("updated_at TEXT);", "updated_at TEXT, extra TEXT);")
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    conn.execute("INSERT INTO runs VALUES ('r1','s',NULL,'dsprites_full','beta_vae','beta',2.0,7,'{}','done',NULL,"
                 "'imported:x',NULL,NULL,NULL,NULL,'e')")
    conn.execute("INSERT INTO scores VALUES ('r1','mean','mig','discrete_mig',0.25)")
    conn.commit()
    conn.close()
    scores = load.load_scores(path)
    assert scores[["run_id", "seed", "metric", "value"]].values.tolist() == [["r1", 7, "mig", 0.25]]
    assert pd.isna(scores["model_num"].iloc[0])
    assert load.load_meta(path) == {}
    summary = load.summarize_store(path)
    assert summary.data_sources == {"dsprites_full: not recorded": 1} and summary.sources == {"imported:x": 1}


def test_summary(store):
    s = load.summarize_store(store)
    assert s.runs_by_status == {"done": 24, "failed": 2, "pending": 1}
    assert s.datasets == ["dsprites_full", "cars3d"] and s.methods == ["beta_vae", "factor_vae"]
    assert s.seeds == [0, 1, 2] and s.configs == 4
    assert s.evaluations == {e: 24 for e in EVALS}
    assert s.representations == ["mean", "sampled"]
    assert s.notes == [synthetic.DEFAULT_NOTES]
    assert s.data_sources == {"dsprites_full: synthetic": 12, "cars3d: synthetic": 12}
    assert s.procedural_datasets == []


@pytest.mark.parametrize("config, label", [
    ({"data_source": {"kind": "procedural", "generator": "g", "version": 1}}, "procedural"),
    ({"data_source": {"kind": "file", "path": "/x", "sha256": "ab", "scream": "substitute"}}, "file, scream: substitute"),
    ({"source": "imported:dlib"}, "imported:dlib"),
    ({"data": {"source": "procedural"}}, "procedural"),
    ({"dataset": "dsprites_full"}, None),
    ("not json", None),
])
def test_data_source_labels(config, label):
    text = config if isinstance(config, str) else json.dumps(config)
    assert load.data_source(text) == label


def test_procedural_and_notes_from_studies_table(tmp_path):
    path = tmp_path / "p.sqlite"
    synthetic.build_synthetic_store(path, datasets=["shapes3d"], methods=["beta_vae"], seeds=1,
                                    evaluations=["mig"], data_source="procedural", notes=None)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO studies VALUES ('smoke', '{}', 'models are undertrained', NULL)")
    conn.commit()
    conn.close()
    s = load.summarize_store(path)
    assert s.procedural_datasets == ["shapes3d"]
    assert s.notes == ["smoke: models are undertrained"]


def test_key_filter_keeps_the_analysis_keys(store):
    every = load.load_scores(store)
    some = load.load_scores(store, keys=load.ANALYSIS_KEYS)
    assert set(some["key"].astype(str)) == set(load.ANALYSIS_KEYS) & set(every["key"].astype(str))
    expected = every[every["key"].astype(str).isin(load.ANALYSIS_KEYS)].reset_index(drop=True)
    assert some["value"].tolist() == expected["value"].tolist()
    assert "10:mean_test_accuracy" in set(some["key"]) and "10:min_test_accuracy" not in set(some["key"])


def test_scores_of_runs_outside_the_selection_are_dropped(store, tmp_path):
    path = tmp_path / "orphan.sqlite"
    path.write_bytes(store.read_bytes())
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO scores VALUES ('no-such-run', 'mean', 'mig', 'discrete_mig', 0.5)")
    failed = conn.execute("SELECT run_id FROM runs WHERE status = 'failed' LIMIT 1").fetchone()[0]
    conn.execute("INSERT INTO scores VALUES (?, 'mean', 'mig', 'discrete_mig', 0.25)", (failed,))
    conn.commit()
    conn.close()
    assert len(load.load_scores(path)) == len(load.load_scores(store))
    every = load.load_scores(path, status=None)
    assert every.loc[every["run_id"] == failed, "value"].tolist() == [0.25]
    assert "no-such-run" not in set(every["run_id"].astype(str))


def test_cache_round_trip(store, tmp_path):
    scores, runs, table = load.write_cache(store, tmp_path / "cache")
    pd.testing.assert_frame_equal(scores, load.load_scores(store, keys=load.ANALYSIS_KEYS))
    cached = load.load_frames(store, tmp_path / "cache")
    pd.testing.assert_frame_equal(cached[0], scores)
    pd.testing.assert_frame_equal(cached[1], runs)
    direct = load.load_frames(store)
    pd.testing.assert_frame_equal(direct[0], scores)
    if table is not None:
        pd.testing.assert_frame_equal(cached[2], table)
        assert len(table) == len(runs)


def test_synthetic_grid_and_model_nums(tmp_path):
    path = synthetic.build_synthetic_store(tmp_path / "g.sqlite", datasets=["color_dsprites"],
                                           methods=["annealed_vae"], seeds=2, evaluations=["sap_score"])
    runs = load.load_runs(path)
    values = METHODS["annealed_vae"][1]
    assert sorted(zip(runs["hparam_value"], runs["seed"])) == sorted((v, s) for v in values for s in (0, 1))
    # model_num = 1800*dataset_idx + 50*config_idx + seed; annealed_vae is config block 30..35
    expected = {1800 * DATASETS.index("color_dsprites") + 50 * (30 + values.index(v)) + s
                for v in values for s in (0, 1)}
    assert set(runs["model_num"].astype(int)) == expected
    with pytest.raises(FileExistsError):
        synthetic.build_synthetic_store(path, datasets=["color_dsprites"])
    with pytest.raises(ValueError):
        synthetic.build_synthetic_store(tmp_path / "bad.sqlite", datasets=["mnist"])
