"""analysis.report and `dstudy report`: index page, HTML export, error handling, and one real papermill build."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from analysis import load, report, synthetic
from training import cli
from training.errors import UserError
from training.cli.report import default_out

SIX = ["beta_vae_sklearn", "factor_vae_metric", "mig", "dci", "modularity_explicitness", "sap_score"]


@pytest.fixture(scope="module")
def no_downstream_store(tmp_path_factory):
    """A tiny store without the two downstream evaluations."""
    path = tmp_path_factory.mktemp("rep") / "nodown.sqlite"
    synthetic.build_synthetic_store(path, datasets=["dsprites_full"], methods={"beta_vae": [1.0, 4.0],
                                    "factor_vae": [10.0, 40.0]}, seeds=3, evaluations=SIX + ["unsupervised"],
                                    data_source="procedural", failed=1)
    return path


def fake_scorecard():
    return pd.DataFrame({
        "claim": ["C4", "C7", "C12"],
        "statement": ["Metrics correlate.", "Objective explains 37 %.", "Metrics track downstream accuracy."],
        "evidence": ["Fig. 2", "Table 5", "Fig. 5"],
        "paper": ["rho 0.80", "37 % / 59 %", "rho 0.94"],
        "store": ["0.71 [0.65, 0.77]", "21 % [18, 24]", "n/a"],
        "value": [0.71, 0.21, float("nan")],
        "verdict": ["supported", "not supported", "not measurable with this store"],
        "reason": ["the metrics agree: rho = 0.71 [0.65, 0.77]", "not (objective explains under half): r2 = 0.21",
                   "missing: no downstream accuracies in this store"],
        "criterion": ["mean rho > 0.3", "within 15 points", "rho > 0.3"],
        "control": ["configurations differ - passed", "configurations differ - passed", "accuracies differ"],
    })


def test_index_page(no_downstream_store, tmp_path):
    summary = load.summarize_store(no_downstream_store)
    pages = [report.Page("00_overview.ipynb", "Runs & MIG", "00_overview.html", True, None, 3.0),
             report.Page("08_downstream.ipynb", "Downstream", "08_downstream.html", False, "ZeroDivisionError: x", 1.0)]
    index = report.write_index(tmp_path, summary, pages, fake_scorecard(), seconds=12.0)
    text = index.read_text()
    assert "<a href='00_overview.html'>Runs &amp; MIG</a>" in text
    assert "failed</span>: ZeroDivisionError: x" in text and "1 of 2 pages failed" in text
    assert ("this store <b>supports 1</b>, <b>does not support 1</b>, is <b>inconclusive on 0</b>, and <b>cannot "
            "measure 1</b>") in text
    assert "<i>Inconclusive</i> means" in text                         # explained in one sentence
    assert "no downstream accuracies in this store" in text           # the verdict's reason
    assert "configurations differ - passed" in text                   # the positive control
    # what the study holds, even without notes
    assert "<b>12 trained models</b>" in text and "trained <b>300,000 steps</b>" in text
    assert "21 % [18, 24]" in text and "37 % / 59 %" in text
    # what the store contains
    assert "12 done, 1 failed" in text and "dsprites_full" in text and "3 (0&ndash;2)" in text
    assert "missing:</span> downstream_task_logistic_regression, downstream_task_boosted_trees" in text
    assert "procedural substitutes" in text and synthetic.DEFAULT_NOTES in text
    assert json.loads((tmp_path / "pages.json").read_text())[1]["error"] == "ZeroDivisionError: x"


def test_index_without_scorecard(no_downstream_store, tmp_path):
    summary = load.summarize_store(no_downstream_store)
    text = report.write_index(tmp_path, summary, [], None, "analysis.claims could not be imported").read_text()
    assert text.count("analysis.claims could not be imported") == 2     # headline findings and scorecard sections


def test_headline_findings_order_and_counts():
    lines = report.headline_findings(fake_scorecard())
    assert lines[0].startswith("Of the 3 checkable claims")
    assert "C7" in lines[1] and "not supported" in lines[1]            # unsupported claims come first
    assert "C4" in lines[2] and "C12" in lines[3] and "not measurable" in lines[3]
    card = fake_scorecard()
    card.loc[0, "verdict"] = "inconclusive"
    lines = report.headline_findings(card)
    assert "is <b>inconclusive on 1</b>" in lines[0]
    assert any("inconclusive</span> C4" in line for line in lines)
    assert report.headline_findings(None) == []


def test_export_html_hides_code_unless_asked(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("store_path = 'x'")
    params.metadata["tags"] = ["parameters"]
    code = nbformat.v4.new_code_cell("print('visible result'); secret_variable_name = 1")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="visible result\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="noisy warning\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), params, code]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    report.export_html(path, tmp_path / "hidden.html", "T")
    hidden = (tmp_path / "hidden.html").read_text()
    assert "visible result" in hidden and "secret_variable_name" not in hidden and "noisy warning" not in hidden
    assert "store_path" not in hidden and "index.html" in hidden
    report.export_html(path, tmp_path / "shown.html", "T", show_code=True, error="ValueError: boom")
    shown = (tmp_path / "shown.html").read_text()
    assert "secret_variable_name" in shown and "ValueError: boom" in shown and "failed to execute" in shown


def test_cli_bad_inputs(tmp_path, capsys):
    assert cli.main(["report", "--store", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dstudy: error: no results store at") and "\n" not in err
    text = tmp_path / "t.sqlite"
    text.write_text("not sqlite")
    assert cli.main(["report", "--store", str(text), "--out", str(tmp_path / "r")]) == 2
    assert "not a dstudy results store" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert cli.main(["report", "--store", str(tmp_path / "nope.sqlite")]) == 2          # no --out: same message
    assert capsys.readouterr().err.startswith("dstudy: error: no results store at")


def test_default_report_folder_is_the_study_name(no_downstream_store):
    from analysis.load import resolve_study

    assert default_out(no_downstream_store) == Path("reports") / resolve_study(no_downstream_store)
    with pytest.raises(UserError, match="no study 'other'"):
        default_out(no_downstream_store, "other")


def test_build_report_refuses_store_without_done_runs(tmp_path):
    path = synthetic.build_synthetic_store(tmp_path / "e.sqlite", datasets=["cars3d"], methods=["beta_vae"],
                                           seeds=[], failed=2, evaluations=["mig"])
    with pytest.raises(UserError, match="no finished"):
        report.build_report(path, tmp_path / "out", progress=False)
    out_file = tmp_path / "file"
    out_file.write_text("x")
    good = synthetic.build_synthetic_store(tmp_path / "g.sqlite", datasets=["cars3d"], methods=["beta_vae"],
                                           seeds=1, evaluations=["mig"])
    with pytest.raises(UserError, match="not a folder"):
        report.build_report(good, out_file, progress=False)
    with pytest.raises(UserError, match="notebook not found"):
        report.build_report(good, tmp_path / "out", notebooks=["no_such_page"], progress=False)


def test_report_on_store_without_downstream(no_downstream_store, tmp_path):
    """Real papermill + nbconvert on two pages plus a broken notebook: the broken one is reported, the others
    render, and the downstream page says what is missing instead of crashing."""
    broken = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("store_path = ''")
    params.metadata["tags"] = ["parameters"]
    broken.cells = [nbformat.v4.new_markdown_cell("# A broken page"), params, nbformat.v4.new_code_cell("1 / 0")]
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(broken, tmp_path / "99_broken.ipynb")
    out = tmp_path / "report"
    index = report.build_report(no_downstream_store, out, progress=False, workers=2,
                                notebooks=["00_overview", "08_downstream", tmp_path / "99_broken.ipynb"])
    pages = {p["notebook"]: p for p in json.loads((out / "pages.json").read_text())}
    assert pages["00_overview.ipynb"]["ok"] and pages["08_downstream.ipynb"]["ok"]
    assert not pages["99_broken.ipynb"]["ok"] and "ZeroDivisionError" in pages["99_broken.ipynb"]["error"]
    overview = (out / "00_overview.html").read_text()
    assert "On this store:</b> 12 finished runs" in overview
    assert "data:image/png;base64" in overview                       # the seaborn figure is embedded
    assert "load_frames" not in overview                             # code hidden by default
    downstream = (out / "08_downstream.html").read_text()
    assert "Not shown:</b>" in downstream and "no downstream accuracies" in downstream
    assert "failed to execute" in (out / "99_broken.html").read_text()
    text = index.read_text()
    assert "A broken page</a> &mdash; <span class='bad'>failed" in text and "00_overview.html" in text
    assert not (out / report.FRAMES_DIR).exists()                   # cached frames removed


@pytest.mark.slow
def test_full_report_every_page_renders(no_downstream_store, tmp_path):
    out = tmp_path / "full"
    report.build_report(no_downstream_store, out, progress=False, workers=2)
    pages = json.loads((out / "pages.json").read_text())
    assert len(pages) == len(report.notebook_paths()) >= 11
    assert all(p["ok"] for p in pages), [p for p in pages if not p["ok"]]
    for page in pages:
        html = (out / page["html"]).read_text()
        assert "On this store:</b>" in html or "Not shown:</b>" in html, page["notebook"]
    assert "Not shown:</b>" in (out / "10_unsupervised_downstream.html").read_text() or \
        "Not shown:</b>" in (out / "09_sample_efficiency.html").read_text()


def test_report_side_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, analysis.load, analysis.report, analysis.plots, analysis.synthetic, training.cli.report; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
