"""Exported report pages work offline: no script, stylesheet, font or image is requested from the network."""
from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import report  # noqa: E402

EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)     # http://, https://, //host, ftp://, ...


class References(HTMLParser):
    """Every src= / href= / srcset= attribute value of a page, and the text of its <style> elements."""

    def __init__(self):
        super().__init__()
        self.values, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self.values += [(tag, name, value or "") for name, value in attrs if name in ("src", "href", "srcset")]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _notebook(path):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode()
    table = pd.DataFrame({"MIG": [0.1, 0.2]}, index=["a", "b"]).style.format(precision=2).to_html()
    code = nbformat.v4.new_code_cell("plots.show_figure(fig)")
    code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
                    nbformat.v4.new_output("display_data", data={"text/html": table, "text/plain": "table"})]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A page\n\nWith a *table* and a figure; ρ = 0.5."), code]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_exported_page_makes_no_external_request(tmp_path):
    _notebook(tmp_path / "page.ipynb")
    for show_code, error in ((False, None), (True, "ValueError: boom")):
        out = tmp_path / f"page-{show_code}.html"
        report.export_html(tmp_path / "page.ipynb", out, "A page", show_code=show_code, error=error)
        text = out.read_text(encoding="utf-8")
        parser = References()
        parser.feed(text)
        assert ("img", "src") in {(t, n) for t, n, v in parser.values if v.startswith("data:image/png;base64,")}
        assert any("<table" in t for t in [text])
        external = [(t, n, v[:80]) for t, n, v in parser.values if EXTERNAL.match(v)]
        assert external == [], external
        assert not re.search(r"<script[^>]*\bsrc=", text, re.I)            # no script is loaded at all
        for css in parser.styles:
            urls = re.findall(r"url\(\s*['\"]?([^)'\"]*)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)
            assert [u for u in urls if EXTERNAL.match(u)] == []
        assert "index.html" in [v for _t, n, v in parser.values if n == "href"]
        assert "max-width:1140px" in text
