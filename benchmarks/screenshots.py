"""Screenshots of every page of a report, as a reader sees them: headless Chromium at 1400 px width, full page.

Builds the report of ``--store`` with :func:`analysis.report.build_report` (or takes an already built report with
``--report``) and writes one PNG per HTML page into ``--shots`` (default: ``<report>/../<report name>-shots``;
keep them out of git). A page taller than ``--chunk`` pixels is cut into several PNGs ``<page>-1.png``,
``<page>-2.png``, ... (Chromium renders one screenshot per window, and very tall windows fail).

Chromium runs with no network services, a fresh profile and no GPU; the pages are opened from disk, so a page that
asks the network for anything (a CDN script, a font) shows it as a broken element or a console error. Each page's
height comes from a first headless pass that dumps the DOM of a copy of the page with a one-line script recording
``document.documentElement.scrollHeight``.

    python3 benchmarks/screenshots.py --store reports/mini/study.sqlite --out /tmp/rep-mini
    python3 benchmarks/screenshots.py --report /tmp/rep-mini --shots /tmp/rep-mini-shots

Needs ``/usr/bin/chromium`` (Debian: ``apt-get install -y chromium``) or ``--chromium PATH``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-extensions", "--mute-audio")
HEIGHT_SCRIPT = ("<script>window.addEventListener('load',function(){document.body.setAttribute('data-shot-height',"
                 "Math.ceil(document.documentElement.scrollHeight))});</script>")


def _chromium(binary: str, profile: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run Chromium once with a fresh ``profile`` folder and the flags above."""
    if profile.exists():
        shutil.rmtree(profile)
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)


def _with_head(html: str, extra: str) -> str:
    """``html`` with ``extra`` inserted right before ``</body>`` (or at the end)."""
    at = html.rfind("</body>")
    return html + extra if at < 0 else html[:at] + extra + html[at:]


def page_height(binary: str, page: Path, width: int, work: Path) -> int:
    """Rendered height in pixels of ``page`` at ``width`` (scrollHeight after the load event)."""
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(_with_head(page.read_text(encoding="utf-8"), HEIGHT_SCRIPT), encoding="utf-8")
    try:
        done = _chromium(binary, work / "profile-probe", f"--window-size={width},900", "--virtual-time-budget=5000",
                         "--dump-dom", probe.as_uri())
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'data-shot-height="(\d+)"', done.stdout)
    if not found:
        raise RuntimeError(f"could not measure the height of {page.name}: {done.stderr.strip()[-300:]}")
    return int(found.group(1))


def screenshot_page(binary: str, page: Path, shots: Path, width: int = 1400, chunk: int = 16000) -> list[Path]:
    """Full-page PNG(s) of ``page`` at ``width`` into ``shots``; returns their paths."""
    with tempfile.TemporaryDirectory(prefix="shots-") as tmp:
        work = Path(tmp)
        height = max(200, page_height(binary, page, width, work))
        parts = max(1, -(-height // chunk))
        out = []
        for k in range(parts):
            target = shots / (f"{page.stem}.png" if parts == 1 else f"{page.stem}-{k + 1}.png")
            source = page
            if k:
                # shift the page up by k chunks: the layout (and so the width) is unchanged
                source = page.with_name(f".chunk-{page.name}")
                source.write_text(_with_head(page.read_text(encoding="utf-8"),
                                             f"<style>body{{position:relative;top:-{k * chunk}px}}</style>"),
                                  encoding="utf-8")
            size = min(chunk, height - k * chunk)
            try:
                done = _chromium(binary, work / f"profile-{k}", f"--window-size={width},{size}",
                                 "--virtual-time-budget=5000", f"--screenshot={target}", source.as_uri())
            finally:
                if source != page:
                    source.unlink(missing_ok=True)
            if not target.is_file():
                raise RuntimeError(f"no screenshot of {page.name}: {done.stderr.strip()[-300:]}")
            out.append(target)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="results store to build the report of")
    parser.add_argument("--out", type=Path, help="report folder to build into (with --store)")
    parser.add_argument("--report", type=Path, help="an already built report folder (instead of --store)")
    parser.add_argument("--shots", type=Path, help="folder for the PNGs (default: <report>-shots)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--chunk", type=int, default=16000, help="tallest single screenshot in pixels")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--pages", nargs="*", help="only these page stems (e.g. 02_metric_agreement)")
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        parser.error(f"no Chromium at {args.chromium} (apt-get install -y chromium, or --chromium PATH)")
    if args.report is None:
        if args.store is None:
            parser.error("give --store (and --out) to build a report, or --report for a built one")
        from analysis.report import build_report

        out = args.out or Path(tempfile.mkdtemp(prefix="report-"))
        start = time.perf_counter()
        build_report(args.store, out)
        print(f"built the report of {args.store} into {out} in {time.perf_counter() - start:.1f} s")
        report = out
    else:
        report = args.report
    report = Path(report).resolve()
    shots = args.shots or report.with_name(report.name + "-shots")
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(report.glob("*.html"))
    if args.pages:
        pages = [p for p in pages if p.stem in set(args.pages)]
    for page in pages:
        start = time.perf_counter()
        made = screenshot_page(args.chromium, page, shots, args.width, args.chunk)
        print(f"{page.name}: {', '.join(p.name for p in made)} ({time.perf_counter() - start:.1f} s)")
    print(f"screenshots in {shots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
