"""dstudy estimate: the projection arithmetic on analytic calibration numbers, the table, and the command line on a
tiny study (calibration on CPU, evaluation skipped)."""
from __future__ import annotations

import math

import pytest

from training.study.estimate import Row, format_duration, format_table, project
from training.study.definition import parse_study

STUDY = """
name = "tiny"
datasets = ["dsprites_full", "color_dsprites"]
seeds = [0, 1, 2]
steps = 1000
batch_size = 16
[methods]
beta_vae = [1.0, 4.0]
factor_vae = [10.0]
"""


def test_projection_is_runs_times_steps_times_rate():
    study = parse_study(STUDY)
    rates = {("dsprites_full", "beta_vae"): 0.002, ("dsprites_full", "factor_vae"): 0.004,
             ("color_dsprites", "beta_vae"): 0.003, ("color_dsprites", "factor_vae"): None}
    evals = {"dsprites_full": 10.0, "color_dsprites": 20.0}
    rows = project(study, rates, evals, workers=2)
    by = {(r.dataset, r.method): r for r in rows}
    assert [(r.dataset, r.method) for r in rows] == [("dsprites_full", "beta_vae"), ("dsprites_full", "factor_vae"),
                                                      ("color_dsprites", "beta_vae"), ("color_dsprites", "factor_vae")]
    r = by[("dsprites_full", "beta_vae")]
    assert r.runs == 6 and r.model_steps == 6000
    assert math.isclose(r.train_seconds, 6000 * 0.002 / 2) and math.isclose(r.eval_seconds, 6 * 10.0 / 2)
    assert by[("dsprites_full", "factor_vae")].runs == 3
    assert math.isclose(by[("dsprites_full", "factor_vae")].train_seconds, 3000 * 0.004 / 2)
    assert by[("color_dsprites", "factor_vae")].train_seconds is None
    assert math.isclose(by[("color_dsprites", "factor_vae")].eval_seconds, 3 * 20.0 / 2)
    assert sum(r.runs for r in rows) == study.num_runs
    with pytest.raises(ValueError, match="workers"):
        project(study, rates, evals, workers=0)


def test_table_totals_and_missing_rows():
    rows = [Row("a", "beta_vae", 2, 200, 0.01, 2.0, 5.0, 10.0), Row("b", "beta_vae", 2, 200, None, None, None, None,
                                                                     "DataMissingError: no files")]
    text = format_table(rows, "header line")
    lines = text.splitlines()
    assert lines[0] == "header line"
    assert "DataMissingError" in text
    total = [line for line in lines if line.startswith("total")][0]
    assert ">= 2 s" in total and ">= 10 s" in total   # partial sums when a row cannot be measured
    full = format_table(rows[:1])
    assert "training + evaluation: 12 s" in full


@pytest.mark.parametrize("seconds, text", [(None, "n/a"), (45, "45 s"), (750, "12.5 min"), (3.2 * 3600, "3.2 h"),
                                           (4.1 * 86400, "4.1 d"), (2.5 * 365 * 86400, "2.50 y")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_command_line_on_a_tiny_study(tmp_path, capsys):
    from training.cli import main

    path = tmp_path / "tiny.toml"
    path.write_text(STUDY.replace('"dsprites_full", "color_dsprites"', '"dsprites_full"')
                    .replace("factor_vae = [10.0]\n", ""))
    assert main(["estimate", str(path), "--device", "cpu", "--calibration-steps", "1", "--no-eval",
                 "--pack", "2"]) == 0
    out = capsys.readouterr().out
    assert "study tiny: 6 runs x 1000 steps" in out and "pack 2" in out
    row = [line for line in out.splitlines() if line.startswith("dsprites_full")][0]
    assert "beta_vae" in row and "6,000" in row
    assert main(["estimate", str(tmp_path / "missing.toml")]) == 2


def test_table_calibration_times_the_build_and_gives_a_look_up_table_of_real_encodings(tmp_path, monkeypatch):
    import numpy as np
    import torch

    from training.data import get_dataset
    from training.study.estimate import table_calibration
    from training.models.architecture import GaussianVAE

    class Model:
        vae = GaussianVAE(1)
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path))
    dataset = get_dataset("dsprites_full")
    # render instead of building the 737,280-image disk cache (the same images, tests/test_data_interface.py)
    monkeypatch.setattr(type(dataset), "render_configurations",
                        lambda self, a, b: self.render_all_factors(self.all_factors_of(np.arange(a, b))))
    seconds, table = table_calibration(Model(), dataset, sample=128)
    assert 0 < seconds < 1
    assert table.mean.shape == (dataset.num_configurations, 10)
    assert np.array_equal(table.mean[:128], table.mean[128:256])  # 128 real encodings, repeated
    # row j holds the encoding of configuration first + (j % 128), a consecutive block as the build encodes it
    first = int(np.random.RandomState(0).randint(0, dataset.num_configurations - 128 + 1))
    images = dataset.render_all_factors(dataset.all_factors_of(np.arange(first, first + 64)))
    with torch.inference_mode():
        expected = Model.vae.encoder(torch.from_numpy(images).permute(0, 3, 1, 2))[0].numpy()
    assert np.allclose(table.mean[:64], expected, atol=1e-6)


def test_evaluation_calibration_projects_the_code_table_where_the_runner_uses_one(tmp_path, monkeypatch):
    import training.evaluation.scoring
    from training.study import estimate
    from training.data import get_dataset
    from training.models.architecture import GaussianVAE

    class Model:
        vae = GaussianVAE(1)
    dataset = get_dataset("dsprites_full")
    seen = []

    def records(model, ds, protocol=None):
        seen.append(model)
        return [training.evaluation.scoring.EvaluationRecord("mean", "beta_vae_sklearn", {}, 2.0 * protocol["scale"], None)]
    monkeypatch.setattr(training.evaluation.scoring, "evaluate_model_records", records)

    class Table:
        dataset = "TABLE DATA"
    monkeypatch.setattr(estimate, "table_calibration", lambda model, ds: (1e-4, Table()))
    study = {"evaluations": ["beta_vae_sklearn"], "representations": ["mean"]}  # 1.92M images at scale 1
    total = estimate.calibrate_evaluation(Model(), dataset, study, scale=0.01)
    assert all(isinstance(m, Table) for m in seen) and len(seen) == 2
    assert total == pytest.approx(1e-4 * 737280 + 2.0)  # table build + the look-up evaluation extrapolated to 1
    seen.clear()
    total = estimate.calibrate_evaluation(Model(), dataset, {**study, "scale": 0.1}, scale=0.01)  # 0.19M: direct
    assert all(isinstance(m, Model) for m in seen) and total == pytest.approx(0.2)
