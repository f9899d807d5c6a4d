"""``dstudy models`` end to end on a tiny study whose models were trained and saved by the worker's own code path
(training.study.worker.execute_pack with an artifacts folder, in this process): the command writes rotated,
likelihood, UDR and replicate scores through the store, is resumable, lists runs without a model file once, and
refuses bad input with one line and status 2 without touching what is stored."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat

import pytest

from training.cli import main
from training.store import Store
from training.study.definition import parse_study
from training.study.worker import execute_pack

TINY = """
name = "tiny-models"
notes = "two training steps"
datasets = ["dsprites_full"]
seeds = [0, 1]
steps = 2
batch_size = 8
[methods]
beta_vae = [1.0, 4.0]
[protocol]
scale = 0.002
evaluations = ["mig", "sap_score"]
representations = ["mean"]
kind = "fast"
[training]
num_eval_samples = 16
"""
FAST = ["--iwae-observations", "6", "--iwae-samples", "4", "--quiet"]


def _swept(folder):
    """A store with the tiny study's runs trained, evaluated and saved (as ``dstudy sweep --artifacts`` does, without
    the process pool)."""
    store_path, artifacts = folder / "study.sqlite", folder / "art"
    study = parse_study(TINY)
    runs = study.runs()
    with Store(store_path) as store:
        store.save_study(study.name, study.definition(), study.notes)
        store.add_runs(runs)
        for run in runs:
            (outcome,) = execute_pack([{"run_id": run.run_id, "config": run.config}], threads=1,
                                      artifacts_dir=str(artifacts))
            assert outcome.ok, outcome.error
            store.record_outcome(outcome)
    return store_path, artifacts, [r.run_id for r in runs]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _swept(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture()
def study(tiny, tmp_path):
    """A private copy of the swept store and its models."""
    store_path, artifacts, run_ids = tiny
    shutil.copy(store_path, tmp_path / "study.sqlite")
    shutil.copytree(artifacts, tmp_path / "art")
    return tmp_path / "study.sqlite", tmp_path / "art", run_ids


def _rows(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _scores(path):
    return sorted(_rows(path, "SELECT * FROM scores"))


def test_writes_every_analysis_and_is_resumable(study, capsys):
    store_path, artifacts, run_ids = study
    before = _scores(store_path)
    assert main(["models", "--store", str(store_path), "--artifacts", str(artifacts), *FAST]) == 0
    out = capsys.readouterr().out
    assert "rotation: computed for 4 models" in out and "udr: computed for 4 models" in out
    evaluations = _rows(store_path, "SELECT run_id, representation, metric, seconds, error FROM evaluations")
    pairs = {(rep, metric) for _r, rep, metric, _s, _e in evaluations}
    assert {("rotated", "mig"), ("rotated", "sap_score"), ("model", "likelihood"), ("mean", "udr"),
            ("mean~r1", "mig"), ("mean~r2", "sap_score")} <= pairs
    assert all(error is None and seconds >= 0 for *_x, seconds, error in evaluations)
    scores = _scores(store_path)
    assert set(before) <= set(scores)                                   # nothing stored was changed or lost
    keys = {(rep, metric): set() for _r, rep, metric, _k, _v in scores}
    for _r, rep, metric, key, _v in scores:
        keys[(rep, metric)].add(key)
    assert keys[("rotated", "mig")] == keys[("mean", "mig")] == keys[("mean~r1", "mig")]
    assert keys[("rotated", "sap_score")] == keys[("mean", "sap_score")]
    assert {"log_likelihood", "log_likelihood_rotated", "max_abs_difference"} <= keys[("model", "likelihood")]
    assert {"udr", "num_informative_latents", "num_partners"} <= keys[("mean", "udr")]
    for run_id in run_ids:
        lik = dict(_rows(store_path, f"SELECT key, value FROM scores WHERE run_id = '{run_id}' AND metric = "
                                     "'likelihood'"))
        assert lik["log_likelihood_rotated"] == pytest.approx(lik["log_likelihood"], rel=1e-9)
        assert lik["log_likelihood"] < 0 and lik["num_observations"] == 6 and lik["num_samples"] == 4
        partners = _rows(store_path, f"SELECT value FROM scores WHERE run_id = '{run_id}' AND key = 'num_partners'")
        assert partners == [(1.0,)]                                     # the other seed of its configuration
    # the replicates draw other ground-truth samples: some score differs from the stored mean one
    mean = dict(((r, k), v) for r, rep, m, k, v in scores if rep == "mean" and m == "mig")
    rep1 = dict(((r, k), v) for r, rep, m, k, v in scores if rep == "mean~r1" and m == "mig")
    assert mean.keys() == rep1.keys() and any(mean[k] != rep1[k] for k in mean)
    # again: nothing to do, nothing changes
    assert main(["models", "--store", str(store_path), "--artifacts", str(artifacts), *FAST]) == 0
    out = capsys.readouterr().out
    assert "rotation: computed for 0 models, already stored for 4" in out
    assert "udr: computed for 0 models, already stored for 4" in out
    assert _scores(store_path) == scores


def test_the_study_frames_ignore_the_new_representations(study, tmp_path):
    """The notebooks' frames (scores, model table, the report's cache) are those of the study's own scores: the
    pages of the paper's analyses do not change when ``dstudy models`` adds rotated and replicate scores."""
    from analysis.load import load_frames, summarize_store, write_cache

    store_path, artifacts, _ids = study
    scores, _runs, table = load_frames(store_path)
    assert main(["models", "--store", str(store_path), "--artifacts", str(artifacts), *FAST]) == 0
    scores_after, _runs, again = load_frames(store_path)
    assert table[["run_id", "MIG", "SAP"]].equals(again[["run_id", "MIG", "SAP"]])
    assert scores_after.equals(scores) and set(scores_after["representation"].astype(str)) == {"mean"}
    cached, _runs, _table = write_cache(store_path, tmp_path / "cache")
    assert cached.equals(scores)
    summary = summarize_store(store_path)
    assert summary.representations == ["mean"] and set(summary.evaluations) == {"mig", "sap_score"}


def test_a_run_without_a_model_file_is_listed_once_and_udr_follows_the_models(study, capsys):
    store_path, artifacts, run_ids = study
    (artifacts / run_ids[0] / "model.pt").unlink()
    assert main(["models", "--store", str(store_path), "--artifacts", str(artifacts), "--analyses", "udr",
                 *FAST]) == 0
    out = capsys.readouterr().out
    assert out.count(run_ids[0]) == 1 and "1 runs have no model file" in out
    assert _rows(store_path, f"SELECT COUNT(*) FROM scores WHERE run_id = '{run_ids[0]}' AND metric = 'udr'") == [(0,)]
    # the first configuration had one model with a file: no partner, so no UDR value (NULL) but a record
    assert _rows(store_path, f"SELECT value FROM scores WHERE run_id = '{run_ids[1]}' AND key = 'udr'") == [(None,)]
    assert not _rows(store_path, "SELECT * FROM scores WHERE representation IN ('rotated', 'mean~r1')")
    # the model comes back: that configuration is recomputed with both models, the other one is kept
    shutil.copy(artifacts / run_ids[1] / "model.pt", artifacts / run_ids[0] / "model.pt")
    assert main(["models", "--store", str(store_path), "--artifacts", str(artifacts), "--analyses", "udr",
                 *FAST]) == 0
    assert "udr: computed for 2 models, already stored for 2" in capsys.readouterr().out
    udr = dict(_rows(store_path, f"SELECT key, value FROM scores WHERE run_id = '{run_ids[1]}' AND metric = 'udr'"))
    assert udr["num_partners"] == 1 and 0 <= udr["udr"] <= 1


def test_an_unreadable_model_is_that_runs_error(study, capsys):
    store_path, artifacts, run_ids = study
    (artifacts / run_ids[2] / "model.pt").write_bytes(b"not a model")
    code = main(["models", "--store", str(store_path), "--artifacts", str(artifacts), "--analyses", "rotation",
                 *FAST])
    out = capsys.readouterr().out
    assert code == 1 and f"error: {run_ids[2]}" in out and "rotation: computed for 3 models" in out


@pytest.mark.parametrize("args, message", [
    (["--analyses", "rotation,bogus"], "unknown analysis 'bogus'"),
    (["--replicates", "0"], "--replicates must be at least 1"),
    (["--iwae-samples", "0"], "--iwae-samples must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--study", "nope"], "no done runs of study 'nope'"),
    (["--artifacts-missing"], "no model folder at"),
    (["--store-missing"], "no results store at"),
    (["--store-readonly"], "read-only"),
])
def test_bad_input_is_one_line_and_status_2(study, capsys, args, message):
    store_path, artifacts, _ids = study
    before = _scores(store_path)
    store, folder = str(store_path), str(artifacts)
    if args == ["--artifacts-missing"]:
        folder, args = str(artifacts / "nowhere"), []
    elif args == ["--store-missing"]:
        store, args = str(store_path.parent / "nowhere.sqlite"), []
    elif args == ["--store-readonly"]:
        if os.geteuid() == 0:
            pytest.skip("root can write a read-only file")
        os.chmod(store_path, stat.S_IRUSR)
        args = []
    assert main(["models", "--store", store, "--artifacts", folder, *FAST, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    os.chmod(store_path, stat.S_IRUSR | stat.S_IWUSR)
    assert _scores(store_path) == before


@pytest.mark.slow
def test_dstudy_sweep_with_artifacts_then_models(tmp_path, capsys):
    """The real path: ``dstudy sweep --artifacts`` (a local worker process) saves the models, ``dstudy models``
    reads them."""
    study_file = tmp_path / "tiny.toml"
    study_file.write_text(TINY)
    store, artifacts = tmp_path / "s.sqlite", tmp_path / "art"
    assert main(["sweep", str(study_file), "--store", str(store), "--artifacts", str(artifacts), "--workers", "1",
                 "--threads", "1", "--quiet"]) == 0
    assert main(["models", "--store", str(store), "--artifacts", str(artifacts), *FAST]) == 0
    assert "replicates: computed for 4 models" in capsys.readouterr().out
    assert _rows(store, "SELECT COUNT(DISTINCT run_id) FROM scores WHERE representation = 'rotated'") == [(4,)]


def test_threads_limit_the_pools_while_it_runs_and_are_restored(study, capsys, monkeypatch):
    import threadpoolctl
    import torch

    from training.cli import models

    store_path, artifacts, _ids = study
    seen = []
    original = models.run_models

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(),
                     {info["user_api"]: info["num_threads"] for info in threadpoolctl.threadpool_info()}))
        return original(*args, **kwargs)

    monkeypatch.setattr(models, "run_models", spy)
    before = torch.get_num_threads()
    assert main(["models", "--store", str(store_path), "--artifacts", str(artifacts), "--analyses", "udr",
                 "--threads", "1", *FAST]) == 0
    assert seen[0][0] == 1 and set(seen[0][1].values()) <= {1}
    assert torch.get_num_threads() == before
    assert "udr: computed for 4 models" in capsys.readouterr().out
