"""Figures in the paper's style and the sentences under them, for the report's notebooks (no torch).

The package is split by role:

* :mod:`~analysis.plots.style`: display labels, method colours, the figure style (:func:`setup`) and the notebook
  display helpers (:func:`show_figure`, :func:`show_table`, :func:`note`, :func:`missing`, :func:`key`, :func:`md`);
* :mod:`~analysis.plots.figures`: matplotlib figure builders, frames in, a ``Figure`` out (no kernel needed);
* :mod:`~analysis.plots.captions`: ``describe_*`` functions, numbers in, one sentence out (a directional word only
  when its test is significant, :mod:`analysis.significance`);
* :mod:`~analysis.plots.pages`: the ``show_*`` page sections the notebooks call (figure + sentence, or one line
  saying what the store lacks).

Every public name of the four modules is importable from ``analysis.plots`` (:data:`__all__`).
"""
from __future__ import annotations

from analysis.plots import captions, figures, pages, style
from analysis.plots.captions import *  # noqa: F401,F403
from analysis.plots.figures import *  # noqa: F401,F403
from analysis.plots.pages import *  # noqa: F401,F403
from analysis.plots.style import *  # noqa: F401,F403

__all__ = [*style.__all__, *figures.__all__, *captions.__all__, *pages.__all__]
