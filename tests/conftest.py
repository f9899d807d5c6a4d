"""Session set-up shared by every test module (pytest loads this file before any of them).

Without CUDA, impl "triton"'s kernels run in Triton's interpreter. ``TRITON_INTERPRET=1`` must be in the environment
before the first import of ``triton`` anywhere in the session (not only before the kernels are defined): torch
imports it too, e.g. with ``torch.utils.flop_counter``, and a triton imported without the variable leaves the
kernels' helper functions uncallable from the interpreter."""
import os
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# the packed engine's comparison baselines live outside the package, in benchmarks/packed_baselines.py: importable
# as ``benchmarks.packed_baselines`` with the repository root on the path (appended: the installed packages win)
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.append(ROOT)


@pytest.fixture
def shown(monkeypatch):
    """Everything the report's page sections display, in order: their ``_display`` calls collected instead of
    rendered (read the texts with ``helpers.display.displayed_texts``)."""
    from analysis.plots import pages, style

    out = []
    monkeypatch.setattr(style, "_display", out.append)
    monkeypatch.setattr(pages, "_display", out.append)
    return out
