"""The published mini study (reports/mini/): its committed report says what its committed store gives today.

The fast test recomputes the scorecard and the sanity checks from the store (no training, no notebooks) and compares
every claim's verdict and numbers, and every check's outcome, with the committed index.html; the slow test rebuilds
the whole report with `dstudy report` and compares the two index pages' scorecards and checks."""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from analysis.claims import scorecard
from analysis.load import load_frames, resolve_study, summarize_store
from analysis.sanity import sanity_checks
from analysis.unsupervised import UNSUPERVISED_SCORES
from analysis.within import seed_selection

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "reports" / "mini" / "study.sqlite"
INDEX = ROOT / "reports" / "mini" / "index.html"


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def scorecard_rows(page: str) -> dict[str, tuple[str, str]]:
    """claim -> (this store's numbers, verdict) as the index page prints them."""
    section = page.split("<h2>Claims scorecard</h2>", 1)[1].split("<h2>", 1)[0]
    out = {}
    for row in re.findall(r"<tr class='[^']*'>(.*?)</tr>", section, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        claim = _text(cells[0]).split()[0]
        verdict = _text(re.search(r"<b>(.*?)</b>", cells[4], re.S).group(1))
        out[claim] = (_text(cells[3]), verdict)
    return out


def sanity_rows(page: str) -> dict[tuple[str, str], str]:
    section = page.split("<h2>Sanity checks</h2>", 1)[1].split("<h2>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr class='[^']*'>(.*?)</tr>", section, re.S):
        cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        rows[(cells[0], cells[1])] = cells[-1]
    return rows


def test_the_committed_report_shows_the_committed_store():
    page = INDEX.read_text(encoding="utf-8")
    scores, runs, table = load_frames(STORE)
    summary = summarize_store(STORE, resolve_study(STORE))
    card = scorecard(table, runs=runs, steps=summary.protocol.get("steps"))
    published = scorecard_rows(page)
    assert set(published) == set(card["claim"])
    for row in card.itertuples():
        numbers, verdict = published[row.claim]
        assert verdict == row.verdict, (row.claim, verdict, row.verdict)
        assert numbers == _text(html.escape(row.store)), row.claim
    from analysis.plots.style import label
    checks = sanity_checks(table, runs=runs)
    assert sanity_rows(page) == {(r.quantity, label(r.method)): r.outcome for r in checks.itertuples()}
    # the findings the README states
    verdicts = dict(zip(card["claim"], card["verdict"]))
    assert verdicts["C2"] == "supported" and verdicts["C3"] == "not supported"
    assert verdicts["C12"] == "supported" and verdicts["C14"] == "supported"
    assert (checks.loc[checks["quantity"] != "MIG", "outcome"] == "as expected").all()
    selection = seed_selection(table)
    dci_sap = selection[(selection["selector"] == "DCI Disentanglement") & (selection["target"] == "SAP")].iloc[0]
    assert (round(100 * dci_sap["concordance"]), dci_sap["pairs"]) == (93, 27) and dci_sap["p_holm"] < 0.005
    by_score = selection[selection["selector"].isin(UNSUPERVISED_SCORES)]
    assert (by_score["p_holm"] >= 0.05).all()


def test_the_model_analyses_the_readme_states():
    """Pages 12-14 on the nine beta-VAE models trained again with their files kept: the likelihood is unchanged by
    the rotation, no metric is shown to fall, UDR chooses beta = 16 in every seed slot and beats no random model, and
    training noise dominates the within-configuration variance of every metric."""
    from analysis.model_scores import load_model_scores
    from analysis.replicates import variance_components
    from analysis.rotation import likelihood_summary, likelihood_table, rotation_effects, rotation_pairs
    from analysis.udr import udr_selection, udr_table

    _scores, runs, table = load_frames(STORE)
    scores = load_model_scores(STORE, runs)
    likelihood = likelihood_summary(likelihood_table(scores))
    assert likelihood["models"] == 9 and likelihood["equal"] and likelihood["max_abs_difference"] < 1e-12
    effects = rotation_effects(rotation_pairs(scores))
    assert len(effects) == 6 and (effects["p_holm"] >= 0.05).all()
    with_udr = udr_table(scores, table)
    chosen = with_udr.dropna(subset=["UDR"]).sort_values("UDR").groupby("seed").tail(1)
    assert len(chosen) == 3 and set(chosen["hparam_value"]) == {16.0}
    assert (udr_selection(with_udr, n_perm=500, n_boot=200)["p_holm"] >= 0.05).all()
    noise = variance_components(scores, n_boot=50)
    assert len(noise) == 6 and (noise["p_seed_holm"] < 0.001).all()
    assert (round(100 * noise["training_share"].min()), round(100 * noise["training_share"].max())) == (79, 98)


@pytest.mark.slow
def test_dstudy_report_rebuilds_the_published_report(tmp_path):
    from training.cli import main

    assert main(["report", "--store", str(STORE), "--out", str(tmp_path / "mini")]) == 0
    rebuilt = (tmp_path / "mini" / "index.html").read_text(encoding="utf-8")
    page = INDEX.read_text(encoding="utf-8")
    assert scorecard_rows(rebuilt) == scorecard_rows(page)
    assert sanity_rows(rebuilt) == sanity_rows(page)
    published_pages = sorted(p.name for p in INDEX.parent.glob("*.html"))
    assert sorted(p.name for p in (tmp_path / "mini").glob("*.html")) == published_pages
