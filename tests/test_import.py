"""Import of disentanglement_lib outputs, with fixtures written in the reference's three formats
(disentanglement_lib's output layout): per-model output folders, per-model zip files, the aggregated pandas results.json."""
from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from training.cli import main as cli_main
from training.store.importers.dlib import import_paths, unquote

# (model_num, dataset, model.name, hparam binding, value, seed): model nums follow the sweep's index formula.
MODELS = [
    (0, "dsprites_full", "beta_vae", "vae.beta", 1.0, 0),
    (351, "dsprites_full", "factor_vae", "factor_vae.gamma", 20.0, 1),
    (2400, "color_dsprites", "dip_vae_i", "dip_vae.lambda_od", 1.0, 0),  # 1800 + 50*12
]
EVALS = {
    "mig": {"discrete_mig": 0.125},
    "sap_score": {"SAP_score": 0.0625},
    "downstream_task_logistic_regression": {"10:mean_test_accuracy": 0.5, "10:test_accuracy_factor_4": None},
}


def _gin(value) -> str:
    """A value as gin prints it into {step}_config.json: strings quoted, numbers as text."""
    return repr(value) if isinstance(value, str) else str(value)


def _record(num, dataset, name, binding, value, seed, rep, metric) -> dict:
    """One results/aggregate/evaluation.json of the reference (flat, namespaced)."""
    rec = {
        "train_config.dataset.name": _gin(dataset), "train_config.model.name": _gin(name),
        "train_config.model.model": "@vae()", f"train_config.{binding}": _gin(value),
        "train_config.model.random_seed": _gin(seed), "train_config.model.training_steps": "300000",
        "train_config.model.batch_size": "64", "train_config.encoder.num_latent": "10",
        "train_config.encoder.encoder_fn": "@conv_encoder",
        "train_results.reconstruction_loss": 30.0 + num, "train_results.kl_loss": 20.0,
        "train_results.elbo": -(50.0 + num), "train_results.loss": 51.0, "train_results.regularizer": 21.0,
        "train_results.global_step": 300000, "train_results.elapsed_time": 3600.5, "train_results.uuid": "u-1",
        "postprocess_config.postprocess.name": _gin(rep), "postprocess_config.postprocess.random_seed": "2357136044",
        "postprocess_results.elapsed_time": 1.5, "postprocess_results.uuid": "u-2",
        "evaluation_config.evaluation.name": _gin(metric), "evaluation_config.evaluation.random_seed": "3638918503",
        "evaluation_results.elapsed_time": 12.25, "evaluation_results.uuid": "u-3",
    }
    if name == "dip_vae_i":
        rec["train_config.dip_vae.dip_type"] = "'i'"
    for key, v in EVALS[metric].items():
        rec[f"evaluation_results.{key}"] = (v + 0.001 * num) if v is not None else None
    return rec


def _write_outputs(root: Path, models=MODELS) -> list[Path]:
    """output/unsupervised_study_v1/{model_num}/... folders as dlib_reproduce writes them."""
    folders = []
    for num, dataset, name, binding, value, seed in models:
        folder = root / "unsupervised_study_v1" / str(num)
        for rep in ("mean", "sampled"):
            for metric in EVALS:
                f = folder / "metrics" / rep / metric / "results" / "aggregate" / "evaluation.json"
                f.parent.mkdir(parents=True)
                f.write_text(json.dumps(_record(num, dataset, name, binding, value, seed, rep, metric), indent=2))
        train = folder / "model" / "results" / "aggregate" / "train.json"
        train.parent.mkdir(parents=True)
        rec = _record(num, dataset, name, binding, value, seed, "mean", "mig")
        train.write_text(json.dumps({k: v for k, v in rec.items() if k.startswith("train_")}, indent=2))
        folders.append(folder)
    return folders


def _write_zips(root: Path, target: Path) -> list[Path]:
    zips = []
    for folder in _write_outputs(root):
        z = target / f"{folder.name}.zip"
        with zipfile.ZipFile(z, "w") as archive:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    archive.write(f, f.relative_to(folder.parent).as_posix())
        zips.append(z)
    return zips


def _write_aggregated(root: Path, path: Path) -> Path:
    """dlib_aggregate_results: glob, add `path`, DataFrame, to_json() with pandas defaults (orient columns)."""
    rows = []
    for f in sorted(root.glob("*/*/metrics/*/*/results/aggregate/evaluation.json")):
        rec = json.loads(f.read_text())
        rec["path"] = str(f)
        rows.append(rec)
    pd.DataFrame(rows).to_json(path)
    return path


def _contents(store: Path) -> dict:
    conn = sqlite3.connect(store)
    out = {
        "runs": sorted(conn.execute("SELECT run_id, model_num, dataset, method, hparam_name, hparam_value, seed,"
                                    " status, source FROM runs")),
        "scores": sorted(conn.execute("SELECT * FROM scores")),
        "train": sorted(conn.execute("SELECT * FROM train_results")),
        "evals": sorted(conn.execute("SELECT run_id, representation, metric, seconds FROM evaluations")),
    }
    conn.close()
    return out


def test_unquote_gin_values():
    assert unquote("'dsprites_full'") == "dsprites_full"
    assert unquote("10000") == 10000 and unquote("0.05") == 0.05
    assert unquote("[10, 100, 1000, 10000]") == [10, 100, 1000, 10000]
    assert unquote("@mig") == "@mig" and unquote(3.5) == 3.5


def test_model_folders_import_into_the_vocabulary(tmp_path):
    _write_outputs(tmp_path / "output")
    store = tmp_path / "s.sqlite"
    report = import_paths([tmp_path / "output"], store)
    assert not report.errors and report.new_runs == 3
    got = _contents(store)
    runs = {r[1]: r for r in got["runs"]}
    assert set(runs) == {0, 351, 2400}
    assert runs[351][2:] == ("dsprites_full", "factor_vae", "gamma", 20.0, 1, "done", "imported:disentanglement_lib")
    assert runs[2400][2:5] == ("color_dsprites", "dip_vae_i", "lambda_od")
    rid = runs[0][0]
    scores = {(r, m, k): v for run, r, m, k, v in got["scores"] if run == rid}
    assert scores[("mean", "mig", "discrete_mig")] == 0.125
    assert scores[("sampled", "sap_score", "SAP_score")] == 0.0625
    assert scores[("mean", "downstream_task_logistic_regression", "10:test_accuracy_factor_4")] is None
    assert not any(k in ("uuid", "elapsed_time") for (_, _, k) in scores)
    assert len(scores) == 2 * 4
    train = {k: v for run, k, v in got["train"] if run == rid}
    assert train["elbo"] == -50.0 and train["reconstruction_loss"] == 30.0 and train["global_step"] == 300000
    assert "uuid" not in train
    assert {s for run, _, _, s in got["evals"] if run == rid} == {12.25}
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT train_seconds, eval_seconds FROM runs WHERE run_id=?", (rid,)).fetchone() == (
        3600.5, 6 * 12.25)
    # Idempotent: a second import adds and changes nothing.
    again = import_paths([tmp_path / "output"], store)
    assert again.new_runs == 0 and not again.errors and _contents(store) == got


def test_the_three_formats_give_the_same_store(tmp_path):
    folders_store, zip_store, agg_store = (tmp_path / f"{n}.sqlite" for n in ("folders", "zips", "agg"))
    import_paths([tmp_path / "a"], folders_store) if _write_outputs(tmp_path / "a") else None
    zdir = tmp_path / "zips"
    zdir.mkdir()
    zips = _write_zips(tmp_path / "b", zdir)
    assert not import_paths(zips, zip_store).errors
    results = _write_aggregated(tmp_path / "a", tmp_path / "results.json")
    assert "train_config.dataset.name" in json.loads(results.read_text())  # orient columns
    report = import_paths([results], agg_store)
    assert not report.errors and report.new_runs == 3
    reference = _contents(folders_store)
    assert _contents(zip_store) == reference
    agg = _contents(agg_store)
    assert agg["runs"] == reference["runs"]
    # The aggregated table cannot tell a null score from a column of another evaluation: nulls are dropped there.
    expected = [s for s in reference["scores"] if s[4] is not None]
    assert [s[:4] for s in agg["scores"]] == [s[:4] for s in expected]
    # ... and pandas rounds floats to 10 decimals (to_json's double_precision default).
    assert [s[4] for s in agg["scores"]] == pytest.approx([s[4] for s in expected], abs=1e-10, rel=0)
    # Importing the same models from another format merges into the same runs.
    assert import_paths([results], folders_store).new_runs == 0
    assert _contents(folders_store)["runs"] == reference["runs"]


def test_model_num_comes_from_the_path(tmp_path):
    # A folder named 5 whose config says seed 0 of beta_vae beta=1 (grid index 0): the path wins.
    (_, *rest), = MODELS[:1]
    folder = _write_outputs(tmp_path / "out", [(5, *rest)])[0]
    store = tmp_path / "s.sqlite"
    import_paths([folder], store)
    assert [r[1] for r in _contents(store)["runs"]] == [5]


def test_corrupt_and_foreign_files_import_nothing_from_them(tmp_path):
    store = tmp_path / "s.sqlite"
    good = _write_aggregated(tmp_path / "out", tmp_path / "results.json") if _write_outputs(tmp_path / "out") else None
    corrupt = tmp_path / "corrupt.json"
    text = good.read_text()
    corrupt.write_text(text[: len(text) // 2])
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"a": {"0": 1}}))
    badzip = tmp_path / "7.zip"
    badzip.write_bytes(b"PK\x03\x04 this is not really a zip")
    # A results.json whose second row has an unknown dataset: the whole file is rejected.
    data = json.loads(text)
    data["train_config.dataset.name"]["1"] = "'mnist'"
    partly = tmp_path / "partly.json"
    partly.write_text(json.dumps(data))
    report = import_paths([corrupt, foreign, badzip, partly], store)
    assert set(report.errors) == {str(corrupt), str(foreign), str(badzip), str(partly)}
    assert all("\n" not in e for e in report.errors.values())
    assert "mnist" in report.errors[str(partly)] and "JSON" in report.errors[str(corrupt)]
    assert not store.exists()  # an import that failed throughout creates no store
    # The CLI: one line, non-zero exit; a good file next to a bad one is still imported.
    assert cli_main(["import-dlib", str(foreign), "--store", str(store)]) == 2
    assert not store.exists()
    assert cli_main(["import-dlib", str(good), str(badzip), "--store", str(store)]) == 2
    assert len(_contents(store)["runs"]) == 3
    assert cli_main(["import-dlib", str(good), "--store", str(store)]) == 0
    assert cli_main(["import-dlib", str(tmp_path / "absent"), "--store", str(store)]) == 2
