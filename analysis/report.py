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
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
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
    """Convert an executed notebook to a standalone HTML page (figures embedded).

    Code cells' inputs and prompts, papermill's injected-parameters cell and warnings on stderr are hidden unless
    ``show_code``. A link back to ``index.html`` goes on top, and ``error`` (a failed execution) right below it.
    """
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
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
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


def _scorecard(scores, runs):
    """The claims scorecard frame, or ``(None, why)`` when ``analysis.claims`` is absent or fails."""
    try:
        from analysis import claims
    except ImportError as exc:
        return None, f"the claims scorecard is not available (analysis.claims could not be imported: {exc})"
    try:
        try:
            card = claims.scorecard(scores, runs=runs)
        except TypeError:
            card = claims.scorecard(scores)
        return card, None
    except Exception as exc:
        return None, f"the claims scorecard could not be computed: {_one_line(exc)}"


def build_report(store_path: str | os.PathLike, out_dir: str | os.PathLike, show_code: bool = False,
                 notebooks: list[str | os.PathLike] | None = None, progress: bool = True, workers: int = 2,
                 timeout: int | None = 900) -> Path:
    """Execute the notebooks on ``store_path``, export them as HTML into ``out_dir`` and write its ``index.html``.

    ``notebooks``: a subset (names or paths); default every notebook in :data:`NOTEBOOK_DIR`. ``workers``: notebooks
    executed at once (each in its own kernel). ``timeout``: seconds allowed per cell. Returns the index path. Raises
    UserError when the store is not a store, when it has no ``done`` run, or when ``out_dir`` is a file.
    """
    store = Path(store_path).expanduser()
    summary = load.summarize_store(store)          # UserError if not a store
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
        scores, runs, table = load.write_cache(store, frames_dir)
        bar.update(1)
        parameters = {
            "store_path": str(store.resolve()),
            "cache_dir": str(frames_dir.resolve()),
            "datasets": list(summary.datasets),
            "metrics": _metrics_present(scores),
        }
        pages: list[Page] = []
        context = multiprocessing.get_context("spawn")
        card, card_missing = None, None
        with ProcessPoolExecutor(max_workers=max(1, int(workers)), mp_context=context) as pool, \
                ThreadPoolExecutor(max_workers=1) as thread:
            futures = [pool.submit(execute_page, str(p), str(out), parameters, show_code, timeout) for p in paths]
            # the scorecard runs here (a thread of this process) while the workers execute the notebooks
            card_future = thread.submit(_scorecard, table if table is not None else scores, runs)
            bar.set_description("pages + scorecard")
            for future in as_completed(futures + [card_future]):
                if future is card_future:
                    card, card_missing = future.result()
                    bar.update(1)
                    continue
                page = future.result()
                pages.append(page)
                bar.update(1)
                if not page.ok:
                    bar.write(f"page {page.notebook} failed: {page.error}")
        order = {p.name: i for i, p in enumerate(paths)}
        pages.sort(key=lambda pg: order.get(pg.notebook, len(order)))
        index = write_index(out, summary, pages, card, card_missing, seconds=time.perf_counter() - started)
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
.ok{color:#1a7f37;font-weight:600}.bad{color:#b00020;font-weight:600}.na{color:#777}
.verdict-supported{background:#e6f4ea}.verdict-not{background:#fdecea}.verdict-na{background:#f4f4f4}
.tag{display:inline-block;min-width:7.5em;padding:0 6px;border-radius:3px;font-size:.85em;text-align:center}
ul.findings{list-style:none;padding-left:0}ul.findings li{margin:.3em 0}
td.small{font-size:.85em;color:#444}
ul.pages li{margin:.25em 0}
code{background:#f4f4f4;padding:0 3px}
"""


def _verdict_class(verdict: str) -> str:
    text = str(verdict).lower()
    if "not measurable" in text or "n/a" in text or "missing" in text:
        return "verdict-na"
    if text.startswith("not") or "contradict" in text or "fail" in text:
        return "verdict-not"
    if "support" in text or "holds" in text:
        return "verdict-supported"
    return ""


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
                     "criterion": "Criterion", "detail": "Detail"}


def _scorecard_frame(card):
    """The scorecard's displayable columns (those of :data:`SCORECARD_COLUMNS` it has; else all of them)."""
    frame = card.reset_index() if card.index.name else card
    shown = [c for c in SCORECARD_COLUMNS if c in frame.columns]
    return frame[shown] if shown else frame


def scorecard_html(card) -> str:
    """The scorecard frame as an HTML table, one row per claim coloured by verdict: claim (and the paper's
    evidence), what the paper says, the paper's number, this store's, the verdict, and how it is judged (criterion
    and detail, in small print). Columns the frame lacks are left out."""
    frame = _scorecard_frame(card)
    main = [c for c in ("claim", "statement", "paper", "store", "verdict") if c in frame.columns]
    small = [c for c in ("criterion", "detail") if c in frame.columns]
    if not main:
        main = list(frame.columns)
    head = "".join(f"<th>{html.escape(SCORECARD_COLUMNS.get(str(c), str(c)))}</th>" for c in main)
    if small:
        head += "<th>How it is judged</th>"
    rows = []
    for _, row in frame.iterrows():
        css = _verdict_class(row["verdict"]) if "verdict" in frame.columns else ""
        cells = []
        for c in main:
            text = _cell(row[c])
            if c == "claim" and "evidence" in frame.columns and _cell(row["evidence"]):
                text += f"<br><span class='na' style='font-size:.8em'>{_cell(row['evidence'])}</span>"
            cells.append(f"<td>{text}</td>")
        if small:
            cells.append("<td class='small'>" + "<br>".join(_cell(row[c]) for c in small if _cell(row[c])) + "</td>")
        rows.append(f"<tr class='{css}'>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def headline_findings(card) -> list[str]:
    """HTML sentences for the top of the index, from the scorecard: how many claims hold, then one short line per
    measurable claim (verdict, id, the claim); the numbers are in the scorecard table below."""
    if card is None or len(card) == 0:
        return []
    frame = _scorecard_frame(card)
    if "verdict" not in frame.columns:
        return []
    classes = frame["verdict"].astype(str).map(_verdict_class)
    n_sup, n_not, n_na = (int((classes == c).sum()) for c in ("verdict-supported", "verdict-not", "verdict-na"))
    out = [f"Of the {len(frame)} checkable claims of the paper, <b>{n_sup}</b> are supported by this store, "
           f"<b>{n_not}</b> are not, and <b>{n_na}</b> cannot be measured with what the store holds."]
    for css in ("verdict-not", "verdict-supported"):
        for _, row in frame[classes == css].iterrows():
            claim = f"<b>{html.escape(str(row['claim']))}</b> " if "claim" in frame.columns else ""
            text = html.escape(str(row["statement"])) if "statement" in frame.columns else ""
            out.append(f"<span class='tag {css}'>{html.escape(str(row['verdict']))}</span> {claim}{text}")
    if n_na and "claim" in frame.columns:
        ids = ", ".join(html.escape(str(c)) for c in frame.loc[classes == "verdict-na", "claim"])
        out.append(f"<span class='tag verdict-na'>not measurable</span> {ids}: see the scorecard for what is missing.")
    return out


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


def write_index(out_dir: Path, summary: load.StoreSummary, pages: list[Page], card=None,
                card_missing: str | None = None, seconds: float | None = None) -> Path:
    """Write ``<out_dir>/index.html`` and return its path."""
    out_dir = Path(out_dir)
    name = Path(summary.path).name
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dstudy report: {html.escape(name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>dstudy report: {html.escape(name)}</h1>",
             f"<p class='sub'>The findings of Locatello et al. (ICML 2019) recomputed from the results store "
             f"<code>{html.escape(summary.path)}</code> ({summary.done} finished runs). Generated {when}"
             + (f" in {seconds:.0f} s" if seconds is not None else "") + ".</p>"]
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
        parts.append("<p>Each checkable claim of the paper (spec/analysis.md section 2): the paper's number as the "
                     "paper printed it, this store's number with its confidence interval, and whether the claim "
                     "holds here.</p>")
        parts.append(scorecard_html(card))
    else:
        parts.append(f"<p class='na'>{html.escape(card_missing or 'The scorecard is empty.')}</p>")

    parts.append("<h2>What this store contains</h2><table>")
    parts.extend(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _contents_rows(summary))
    parts.append("</table>")
    parts.append(f"<p class='na'>dstudy {html.escape(_version())}; Python {sys.version.split()[0]}.</p>")
    parts.append("</body></html>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    (out_dir / "pages.json").write_text(json.dumps([page.__dict__ for page in pages], indent=1), encoding="utf-8")
    return index


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dstudy")
    except Exception:
        return "unknown version"
