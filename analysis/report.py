"""Build the HTML report of a results store: papermill over ``notebooks/``, nbconvert to HTML, an ``index.html``.

:func:`build_report` is what ``dstudy report`` runs:

1. check the store (one-line :class:`training.errors.UserError` if it is not one) and summarise what it holds;
2. read the tidy scores, the runs and the model table once and pickle them into ``<out>/_frames`` (removed at the
   end), so that each notebook loads them in a fraction of a second instead of re-reading the store;
3. execute every notebook of the repository's ``notebooks/`` folder with papermill, ``workers`` at a time in
   separate processes (each notebook gets its own kernel), with a tqdm progress bar. Parameters: ``store_path``,
   ``cache_dir`` and, for the family notebooks that declare them, ``datasets`` / ``metrics`` (what the store holds);
4. export each executed notebook to ``<out>/<notebook stem>.html`` (code hidden unless ``show_code``). A notebook
   that fails is still exported up to the failing cell, with the error at the top, and reported on the index;
5. meanwhile compute the claims scorecard (``analysis.claims.scorecard``) in a thread of this process, then write
   ``index.html``:
   the headline findings, the scorecard, links to every page and what the store contains.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
import multiprocessing

import analysis
from analysis import load
from training.errors import UserError

NOTEBOOK_DIR = Path(analysis.__file__).resolve().parent.parent / "notebooks"
FRAMES_DIR = "_frames"
KERNEL_NAME = "python3"


@dataclass
class Page:
    """One report page: the notebook it came from and how its execution went."""

    notebook: str                 # file name, e.g. "01_total_correlation.ipynb"
    title: str
    html: str | None = None       # file name of the exported page inside the report folder
    ok: bool = False
    error: str | None = None      # one line when the notebook failed
    seconds: float = 0.0


def notebook_paths(notebooks: list[str | os.PathLike] | None = None) -> list[Path]:
    """The notebooks to execute: ``notebooks`` (paths, or names inside :data:`NOTEBOOK_DIR`), else all of that
    folder's ``*.ipynb`` in name order. Raises UserError for a name that does not exist."""
    if notebooks is None:
        found = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if not p.name.startswith("."))
        if not found:
            raise UserError(f"no notebooks found in {NOTEBOOK_DIR}")
        return found
    out = []
    for item in notebooks:
        path = Path(item)
        if not path.is_file():
            path = NOTEBOOK_DIR / Path(item).name
            if path.suffix != ".ipynb":
                path = path.with_suffix(".ipynb")
        if not path.is_file():
            raise UserError(f"notebook not found: {item}")
        out.append(path)
    return out


def notebook_title(path: Path) -> str:
    """The first Markdown heading of the notebook at ``path``, else its file stem."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.lstrip().startswith("#"):
                    return line.lstrip("# ").strip()
    return path.stem


def notebook_parameters(path: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters``-tagged cell."""
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def _one_line(exc: BaseException) -> str:
    """A one-line description of a notebook failure (papermill's ename: evalue when there is one)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    return " ".join(str(text).split())[:400]


def export_html(executed_ipynb: Path, html_path: Path, title: str, show_code: bool = False,
                error: str | None = None) -> None:
    """Convert an executed notebook to a standalone HTML page that works offline.

    Figures are embedded as data URIs and the page makes no network request: nbconvert's lab template without its
    require.js, MathJax, Mermaid and widget scripts from the CDN (the pages use no LaTeX, no widgets), its CSS
    inlined, and a final pass that removes any ``<script src>``, ``<link href>`` or CSS ``@import`` still pointing at
    http(s) or a protocol-relative address. The content is at most 1,140 px wide (the figures are drawn for it).

    Code cells' inputs and prompts, papermill's injected-parameters cell and warnings on stderr are hidden unless
    ``show_code``. A link back to ``index.html`` goes on top, and ``error`` (a failed execution) right below it.
    """
    import re

    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed_ipynb, as_version=4)
    cells = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if not show_code and ("injected-parameters" in tags or "parameters" in tags):
            continue
        if cell.cell_type == "code" and not show_code:
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        cells.append(cell)
    header = "[&larr; back to the report index](index.html)"
    if error:
        header += ("\n\n<div style='border:2px solid #b00;padding:8px;background:#fee'><b>This page failed to "
                   f"execute.</b> {html.escape(error)}<br>What follows is the notebook up to the failing cell.</div>")
    nb.cells = [nbformat.v4.new_markdown_cell(header)] + cells
    nb.metadata["title"] = title
    nb.metadata.pop("widgets", None)
    offline = ("{%- extends 'index.html.j2' -%}\n"
               "{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}\n"
               "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
               "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
               "{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}\n"
               "{%- block extra_css -%}<style type='text/css'>"
               "body.jp-Notebook{max-width:1140px;margin:0 auto;}"
               ".jp-OutputArea-output img{max-width:100%;height:auto;}"
               "</style>{%- endblock extra_css -%}\n")
    exporter = HTMLExporter(template_name="lab", template_file="dstudy_offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"dstudy_offline.html.j2": offline})])
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    external = r"(?:https?:)?//"
    body = re.sub(rf"<script[^>]*\ssrc=[\"']{external}[^>]*>\s*</script>", "", body, flags=re.I)
    body = re.sub(rf"<link[^>]*\shref=[\"']{external}[^>]*>", "", body, flags=re.I)
    body = re.sub(rf"@import\s+(?:url\()?[\"']?{external}[^;]*;", "", body, flags=re.I)
    html_path.write_text(body, encoding="utf-8")


def execute_page(notebook: str, out_dir: str, parameters: dict, show_code: bool = False,
                 timeout: int | None = 900) -> Page:
    """Execute ``notebook`` with papermill into ``out_dir`` and export it; never raises (failures go in the Page).

    Runs in a worker process. The executed ``.ipynb`` is written to ``<out_dir>/_frames/`` (removed with it).
    """
    import papermill

    nb_path, out = Path(notebook), Path(out_dir)
    start = time.perf_counter()
    _quiet_stderr(out / FRAMES_DIR / f"{nb_path.stem}.log")
    page = Page(notebook=nb_path.name, title=nb_path.stem)
    try:
        page.title = notebook_title(nb_path)
        wanted = notebook_parameters(nb_path)
        params = {k: v for k, v in parameters.items() if k in wanted}
        executed = out / FRAMES_DIR / nb_path.name
        html_path = out / f"{nb_path.stem}.html"
        error = None
        try:
            papermill.execute_notebook(str(nb_path), str(executed), parameters=params, kernel_name=KERNEL_NAME,
                                       progress_bar=False, log_output=False, cwd=str(out / FRAMES_DIR),
                                       execution_timeout=timeout)
        except Exception as exc:  # a failing notebook is reported; the others still render
            error = _one_line(exc)
        if executed.is_file():
            export_html(executed, html_path, page.title, show_code=show_code, error=error)
            page.html = html_path.name
        page.ok, page.error = error is None, error
    except Exception as exc:
        page.ok, page.error = False, _one_line(exc)
    page.seconds = time.perf_counter() - start
    return page


def _quiet_stderr(log_path: Path) -> None:
    """Send this worker's stderr (and so its kernels' start-up chatter) to ``log_path`` instead of the terminal."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "ab")
        os.dup2(handle.fileno(), 2)
    except OSError:
        pass


def _scorecard(scores, runs, steps):
    """``(scorecard, why it is missing, sanity checks)``: the claims scorecard frame (or None and why) and the sanity
    checks (an empty frame when the store has nothing to check)."""
    from analysis import claims
    from analysis.sanity import COLUMNS, sanity_checks

    try:
        checks = sanity_checks(scores, runs=runs)
    except Exception:  # noqa: BLE001 - the checks are shown when they can be computed
        import pandas as pd
        checks = pd.DataFrame(columns=COLUMNS)
    try:
        return claims.scorecard(scores, runs=runs, steps=steps), None, checks
    except Exception as exc:
        return None, f"the claims scorecard could not be computed: {_one_line(exc)}", checks


def build_report(store_path: str | os.PathLike, out_dir: str | os.PathLike, show_code: bool = False,
                 notebooks: list[str | os.PathLike] | None = None, progress: bool = True, workers: int = 2,
                 timeout: int | None = 900, study: str | None = None) -> Path:
    """Execute the notebooks on one study of ``store_path``, export them as HTML into ``out_dir`` and write its
    ``index.html``.

    ``study``: the study to report on (default: the store's only one). ``notebooks``: a subset (names or paths);
    default every notebook in :data:`NOTEBOOK_DIR`. ``workers``: notebooks executed at once (each in its own kernel).
    ``timeout``: seconds allowed per cell. Returns the index path. Raises UserError when the store is not a store,
    when the study is ambiguous, unknown or mixes protocols (:func:`analysis.load.resolve_study`), when it has no
    ``done`` run, or when ``out_dir`` cannot be written.
    """
    store = Path(store_path).expanduser()
    study = load.resolve_study(store, study)       # UserError if not a store, or no single comparable study
    summary = load.summarize_store(store, study)
    if summary.done == 0:
        counts = ", ".join(f"{n} {s}" for s, n in summary.runs_by_status.items()) or "no runs at all"
        raise UserError(f"{store} has no finished (done) runs to report on ({counts})")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"report folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    paths = notebook_paths(notebooks)
    frames_dir = out / FRAMES_DIR
    if frames_dir.exists():
        shutil.rmtree(frames_dir)
    started = time.perf_counter()
    bar = _progress(len(paths) + 2, progress)
    try:
        bar.set_description("reading store")
        scores, runs, table = load.write_cache(store, frames_dir, study=study)
        bar.update(1)
        parameters = {
            "store_path": str(store.resolve()),
            "cache_dir": str(frames_dir.resolve()),
            "datasets": list(summary.datasets),
            "metrics": _metrics_present(scores),
        }
        pages: list[Page] = []
        context = multiprocessing.get_context("spawn")
        card, card_missing, checks = None, None, None
        with ProcessPoolExecutor(max_workers=max(1, int(workers)), mp_context=context) as pool, \
                ThreadPoolExecutor(max_workers=1) as thread:
            futures = [pool.submit(execute_page, str(p), str(out), parameters, show_code, timeout) for p in paths]
            # the scorecard runs here (a thread of this process) while the workers execute the notebooks
            steps = summary.protocol.get("steps")
            card_future = thread.submit(_scorecard, table if table is not None else scores, runs,
                                        steps if isinstance(steps, int) else None)
            bar.set_description("pages + scorecard")
            for future in as_completed(futures + [card_future]):
                if future is card_future:
                    card, card_missing, checks = future.result()
                    bar.update(1)
                    continue
                page = future.result()
                pages.append(page)
                bar.update(1)
                if not page.ok:
                    bar.write(f"page {page.notebook} failed: {page.error}")
        order = {p.name: i for i, p in enumerate(paths)}
        pages.sort(key=lambda pg: order.get(pg.notebook, len(order)))
        index = write_index(out, summary, pages, card, card_missing, seconds=time.perf_counter() - started,
                            checks=checks)
    finally:
        bar.close()
        shutil.rmtree(frames_dir, ignore_errors=True)
    return index


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", file=sys.stderr, leave=True)


def _metrics_present(scores) -> list[str]:
    """The paper names of the headline metrics the tidy frame has (mean representation), in the paper's order."""
    from training.vocabulary import METRIC_KEYS

    present = set(zip(scores["metric"].astype(str), scores["key"].astype(str)))
    return [name for name, pair in METRIC_KEYS.items() if pair in present]


# ---- index.html -------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.note{border-left:4px solid #e0a800;background:#fff8e1;padding:.5em 1em;margin:1em 0}
.warn{border-left:4px solid #b00020;background:#fdecea;padding:.5em 1em;margin:1em 0}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b00020;font-weight:600}.na{color:#777}
.verdict-supported{background:#e6f4ea}.verdict-not{background:#fdecea}.verdict-open{background:#fff4d6}
.verdict-na{background:#f4f4f4}
.tag{display:inline-block;min-width:7.5em;padding:0 6px;border-radius:3px;font-size:.85em;text-align:center}
ul.findings{list-style:none;padding-left:0}ul.findings li{margin:.3em 0}
td.small{font-size:.85em;color:#444}
ul.pages li{margin:.25em 0}
code{background:#f4f4f4;padding:0 3px}
"""

VERDICT_CLASSES = {"supported": "verdict-supported", "not supported": "verdict-not",
                   "inconclusive": "verdict-open", "not measurable with this store": "verdict-na"}
INCONCLUSIVE_MEANS = ("<i>Inconclusive</i> means the store cannot decide the claim: its positive control failed "
                      "(the store does not even show an effect it must show for the claim's numbers to mean "
                      "anything), the 95 % interval straddles the claim's margin, or the models are too few or "
                      "too undertrained; the reason is in the scorecard.")
PAPER_STEPS = 300_000


def _verdict_class(verdict: str) -> str:
    return VERDICT_CLASSES.get(str(verdict), "")


def _cell(value) -> str:
    if value is None:
        return ""
    try:
        import math

        if isinstance(value, float) and math.isnan(value):
            return ""
    except TypeError:
        pass
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


SCORECARD_COLUMNS = {"claim": "Claim", "statement": "What the paper says", "evidence": "Paper evidence",
                     "paper": "Paper's number", "store": "This store (95 % interval)", "verdict": "Verdict",
                     "reason": "Why", "criterion": "Criterion", "control": "Positive control"}


def _scorecard_frame(card):
    """The scorecard's displayable columns (those of :data:`SCORECARD_COLUMNS` it has; else all of them)."""
    frame = card.reset_index() if card.index.name else card
    shown = [c for c in SCORECARD_COLUMNS if c in frame.columns]
    return frame[shown] if shown else frame


def scorecard_html(card) -> str:
    """The scorecard frame as an HTML table, one row per claim coloured by verdict: claim (and the paper's
    evidence), what the paper says, the paper's number, this store's, the verdict with its reason, and how it is
    judged (criterion and positive control, in small print). Columns the frame lacks are left out."""
    frame = _scorecard_frame(card)
    main = [c for c in ("claim", "statement", "paper", "store", "verdict") if c in frame.columns]
    small = [c for c in ("criterion", "control") if c in frame.columns]
    head = "".join(f"<th>{SCORECARD_COLUMNS[c]}</th>" for c in main)
    if small:
        head += "<th>How it is judged</th>"
    rows = []
    for _, row in frame.iterrows():
        css = _verdict_class(row["verdict"]) if "verdict" in frame.columns else ""
        cells = []
        for column in main:
            text = _cell(row[column])
            if column == "claim" and "evidence" in frame.columns:
                text += f"<br><span class='na' style='font-size:.8em'>{_cell(row['evidence'])}</span>"
            if column == "verdict" and "reason" in frame.columns and _cell(row["reason"]):
                text = f"<b>{text}</b><br><span style='font-size:.85em'>{_cell(row['reason'])}</span>"
            cells.append(f"<td>{text}</td>")
        if small:
            cells.append("<td class='small'>" + "<br>".join(
                f"<b>{SCORECARD_COLUMNS[c]}:</b> {_cell(row[c])}" for c in small if _cell(row[c])) + "</td>")
        rows.append(f"<tr class='{css}'>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def headline_findings(card) -> list[str]:
    """HTML sentences for the top of the index, from the scorecard: how many claims got each of the four verdicts
    and what "inconclusive" means, then one short line per decided claim (verdict, id, the claim)."""
    if card is None or len(card) == 0:
        return []
    frame = _scorecard_frame(card)
    if "verdict" not in frame.columns:
        return []
    counts = {v: int((frame["verdict"] == v).sum()) for v in VERDICT_CLASSES}
    out = [f"Of the {len(frame)} checkable claims of the paper, this store <b>supports {counts['supported']}</b>, "
           f"<b>does not support {counts['not supported']}</b>, is <b>inconclusive on {counts['inconclusive']}</b>, "
           f"and <b>cannot measure {counts['not measurable with this store']}</b>. {INCONCLUSIVE_MEANS}"]
    for verdict in ("not supported", "supported"):
        for _, row in frame[frame["verdict"] == verdict].iterrows():
            claim = f"<b>{html.escape(str(row['claim']))}</b> " if "claim" in frame.columns else ""
            text = html.escape(str(row["statement"])) if "statement" in frame.columns else ""
            out.append(f"<span class='tag {VERDICT_CLASSES[verdict]}'>{html.escape(verdict)}</span> {claim}{text}")
    for verdict, label in (("inconclusive", "inconclusive"), ("not measurable with this store", "not measurable")):
        ids = frame.loc[frame["verdict"] == verdict, "claim"] if "claim" in frame.columns else []
        if len(ids):
            out.append(f"<span class='tag {VERDICT_CLASSES[verdict]}'>{label}</span> "
                       f"{html.escape(', '.join(map(str, ids)))}: see the scorecard for why.")
    return out


def study_sentence(summary: load.StoreSummary) -> str:
    """What the study holds, in one HTML paragraph: models, training length against the paper's, protocol, seeds."""
    p = summary.protocol
    steps, batch = p.get("steps"), p.get("batch_size")
    protocol = p.get("protocol") or {}
    parts = [f"<b>{summary.done} trained models</b>"]
    parts.append(f"on {len(summary.datasets)} dataset{'s' * (len(summary.datasets) != 1)} "
                 f"({html.escape(', '.join(summary.datasets))}), {len(summary.methods)} method"
                 f"{'s' * (len(summary.methods) != 1)} x {summary.configs} configurations, "
                 f"{len(summary.seeds)} seed{'s' * (len(summary.seeds) != 1)} each")
    if isinstance(steps, int):
        parts.append(f"trained <b>{steps:,} steps</b>" + (f" of batch {batch}" if batch else "")
                     + f" ({100 * steps / PAPER_STEPS:.1f} % of the paper's {PAPER_STEPS:,})")
    if protocol:
        scale = protocol.get("scale", 1.0)
        kind = protocol.get("kind", "reference")
        parts.append(f"scored at <b>{100 * float(scale):g} % of the paper's protocol sizes</b> with the "
                     f"<b>{html.escape(str(kind))}</b> predictors")
    study = f"Study <b>{html.escape(summary.study)}</b>: " if summary.study else ""
    return f"<p>{study}" + ", ".join(parts) + ".</p>"


def provenance_rows(summary: load.StoreSummary) -> list[tuple[str, str]]:
    """Where and how the study's runs were computed (from the store's provenance table) and how long they took."""
    rows = []
    prov = summary.provenance

    def counted(key, fmt=str):
        values = prov.get(key, {})
        return ", ".join(f"{html.escape(fmt(v))} ({n} runs)" for v, n in sorted(values.items()))

    if prov:
        machine = []
        for cpu, n in sorted(prov.get("cpu", {}).items()):
            machine.append(f"{html.escape(cpu)} ({n} runs)")
        rows.append(("Machine", "; ".join(machine) or "not recorded"))
        rows.append(("CPU kernel family (torch)", counted("cpu_capability")))
        rows.append(("Device", counted("device")))
        rows.append(("Torch threads per run", counted("threads")))
        rows.append(("Precision", counted("precision")))
        rows.append(("Versions", "; ".join(f"{k} {counted(k)}" for k in ("torch", "numpy", "sklearn", "python")
                                           if k in prov)))
        rows.append(("Project commit", counted("commit")))
    if summary.unrecorded:
        rows.append(("Runs without provenance", f"{summary.unrecorded} (computed before the store recorded it)"))
    total_t, mean_t = summary.train_seconds
    total_e, mean_e = summary.eval_seconds
    if total_t == total_t:
        rows.append(("Wall time per model", f"training {mean_t / 60:.1f} min, evaluation {mean_e / 60:.1f} min "
                                            "(mean over trained runs)"))
        rows.append(("Wall time in total", f"training {total_t / 3600:.2f} h, evaluation {total_e / 3600:.2f} h "
                                           "(summed over runs; runs in parallel overlap)"))
    return rows


def _contents_rows(summary: load.StoreSummary) -> list[tuple[str, str]]:
    from training.vocabulary import EVALUATIONS

    runs = ", ".join(f"{n} {s}" for s, n in sorted(summary.runs_by_status.items(), key=lambda kv: kv[0] != "done"))
    seeds = summary.seeds
    seed_text = (f"{len(seeds)} ({seeds[0]}&ndash;{seeds[-1]})" if seeds and seeds == list(range(seeds[0], seeds[-1] + 1))
                 else f"{len(seeds)}: {', '.join(map(str, seeds))}")
    evals = [f"{html.escape(e)} ({summary.evaluations[e]} runs)" for e in summary.evaluations]
    lacking = [e for e in EVALUATIONS if e not in summary.evaluations]
    eval_text = ", ".join(evals) or "none"
    if lacking:
        eval_text += f"<br><span class='bad'>missing:</span> {html.escape(', '.join(lacking))}"
    procedural = summary.procedural_datasets
    if procedural:
        proc_text = ("<b>yes</b> &mdash; procedural substitutes, not the original data files, for: "
                     + html.escape(", ".join(procedural)))
    else:
        proc_text = "no (as recorded in the runs' data sources)"
    return [
        ("Store", f"<code>{html.escape(summary.path)}</code>"),
        ("Runs", html.escape(runs)),
        ("Studies", html.escape(", ".join(summary.studies)) or "none"),
        ("Datasets", html.escape(", ".join(summary.datasets)) or "none"),
        ("Methods", html.escape(", ".join(summary.methods)) or "none"),
        ("Configurations (method x hyperparameter)", str(summary.configs)),
        ("Seeds", seed_text),
        ("Evaluations", eval_text),
        ("Representations", html.escape(", ".join(summary.representations)) or "none"),
        ("Run sources", html.escape(", ".join(f"{k} ({v})" for k, v in summary.sources.items())) or "none"),
        ("Data sources", _data_sources_text(summary.data_sources)),
        ("Procedural substitute datasets", proc_text),
    ]


def _data_sources_text(data_sources: dict[str, int]) -> str:
    """One line per dataset (``dataset: source (n runs)``), or a single line when every dataset has the same one."""
    if not data_sources:
        return "none"
    sources = {label.partition(": ")[2] for label in data_sources}
    if len(sources) == 1 and len(data_sources) > 1:
        return html.escape(f"{sources.pop()} for all {len(data_sources)} datasets "
                           f"({sum(data_sources.values())} runs)")
    return "<br>".join(html.escape(f"{k} ({v} runs)") for k, v in data_sources.items())


def sanity_html(checks) -> str:
    """The sanity checks (:func:`analysis.sanity.sanity_checks`) as an HTML table with one sentence on top."""
    from analysis.plots.style import label

    if checks is None or len(checks) == 0:
        return "<p class='na'>Nothing to check: the store has no method with two or more strengths.</p>"
    css = {"as expected": "verdict-supported", "opposite": "verdict-not", "no clear trend": "verdict-open",
           "rises": "", "falls": ""}
    rows = "".join(
        f"<tr class='{css.get(r.outcome, '')}'><td>{html.escape(r.quantity)}</td><td>{html.escape(label(r.method))}</td>"
        f"<td>{html.escape(r.expected)}</td><td>{r.rho:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]</td><td>{r.p:.3f}</td>"
        f"<td>{r.n_models}</td><td><b>{html.escape(r.outcome)}</b></td></tr>" for r in checks.itertuples())
    failed = checks[checks["outcome"] == "opposite"]
    lead = ("Every expected direction holds or is unclear." if failed.empty else
            f"<span class='bad'>{len(failed)} check(s) go the opposite way</span>: a bug or an unusual store; read "
            f"the findings with care.")
    return (f"<p>Does regularisation do what the objectives make it do? Spearman correlation of each quantity with "
            f"regularisation strength over every model of a method (95 % interval; p: permutation p-value in the "
            f"direction found). {lead}</p><table><thead><tr><th>Quantity</th><th>Method</th><th>Expected</th>"
            f"<th>rho [95 %]</th><th>p</th><th>Models</th><th>Outcome</th></tr></thead><tbody>{rows}</tbody></table>")


def write_index(out_dir: Path, summary: load.StoreSummary, pages: list[Page], card=None,
                card_missing: str | None = None, seconds: float | None = None, checks=None) -> Path:
    """Write ``<out_dir>/index.html`` and return its path."""
    out_dir = Path(out_dir)
    name = Path(summary.path).name
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dstudy report: {html.escape(name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>dstudy report: {html.escape(name)}</h1>",
             f"<p class='sub'>The findings of Locatello et al. (ICML 2019) recomputed from the results store "
             f"<code>{html.escape(summary.path)}</code> ({summary.done} finished runs). Generated {when}"
             + (f" in {seconds:.0f} s" if seconds is not None else "") + ".</p>",
             study_sentence(summary)]
    steps = summary.protocol.get("steps")
    if isinstance(steps, int) and steps < _min_steps():
        parts.append(f"<div class='warn'><b>Undertrained models.</b> They trained {steps:,} steps; disentanglement "
                     f"first shows after about {_min_steps():,} (the paper trained {PAPER_STEPS:,}). Every claim is "
                     "therefore inconclusive: the numbers below show the pipeline working, not the paper's "
                     "findings.</div>")
    for note in summary.notes:
        parts.append(f"<div class='note'><b>Note on this store:</b> {html.escape(note)}</div>")
    if summary.procedural_datasets:
        parts.append("<div class='note'><b>Data:</b> " + html.escape(", ".join(summary.procedural_datasets))
                     + " came from procedural substitutes, not the original dataset files; numbers on them are "
                       "not directly comparable with the paper's.</div>")

    parts.append("<h2>Headline findings</h2>")
    findings = headline_findings(card)
    if findings:
        parts.append("<ul class='findings'>" + "".join(f"<li>{f}</li>" for f in findings) + "</ul>")
    else:
        parts.append(f"<p class='na'>{html.escape(card_missing or 'No claim could be checked on this store.')}</p>")
    failed = [p for p in pages if not p.ok]
    if failed:
        parts.append(f"<p class='bad'>{len(failed)} of {len(pages)} pages failed to execute; see the list of "
                     "pages below.</p>")

    parts.append("<h2>Sanity checks</h2>")
    parts.append(sanity_html(checks))

    parts.append("<h2>Pages</h2><ul class='pages'>")
    for page in pages:
        status = ("<span class='ok'>ok</span>" if page.ok else
                  f"<span class='bad'>failed</span>: {html.escape(page.error or 'unknown error')}")
        link = (f"<a href='{html.escape(page.html)}'>{html.escape(page.title)}</a>" if page.html
                else html.escape(page.title))
        parts.append(f"<li>{link} &mdash; {status} <span class='na'>({page.seconds:.0f} s)</span></li>")
    parts.append("</ul>")

    parts.append("<h2>Claims scorecard</h2>")
    if card is not None and len(card):
        parts.append("<p>Each checkable claim of the paper: the paper's number as the paper printed it, this store's "
                     "statistics with 95 % intervals (a bootstrap of the models within their configurations; of the seeds "
                     "for the transfer rates), and the verdict. A claim is <i>supported</i> "
                     "only when the whole interval of each of its statistics lies on the claim's side of its margin "
                     "and its positive control passes in this store, <i>not supported</i> when an interval lies "
                     f"wholly on the other side (control passing), and otherwise inconclusive. {INCONCLUSIVE_MEANS} "
                     "How often the engine says <i>supported</i> on pure noise and how often it finds planted "
                     "truths is measured in <code>benchmarks/claims_calibration.py</code> (README, "
                     "\"Trusting the verdicts\").</p>")
        parts.append(scorecard_html(card))
    else:
        parts.append(f"<p class='na'>{html.escape(card_missing or 'The scorecard is empty.')}</p>")

    parts.append("<h2>What this store contains</h2><table>")
    parts.extend(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _contents_rows(summary))
    parts.append("</table>")
    prov = provenance_rows(summary)
    if prov:
        parts.append("<h2>Provenance</h2><table>")
        parts.extend(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in prov)
        parts.append("</table>")
    parts.append(f"<p class='na'>dstudy {html.escape(_version())}; Python {sys.version.split()[0]}.</p>")
    parts.append("</body></html>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    (out_dir / "pages.json").write_text(json.dumps([page.__dict__ for page in pages], indent=1), encoding="utf-8")
    return index


def _min_steps() -> int:
    from analysis.claims import MIN_STEPS

    return MIN_STEPS


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dstudy")
    except Exception:
        return "unknown version"
