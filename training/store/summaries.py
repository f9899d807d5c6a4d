"""Summaries of a store for ``dstudy status`` (:class:`Summaries`, mixed into :class:`training.store.Store`)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any


class Summaries:
    """Counts and throughput of a :class:`training.store.Store` (uses its ``conn``)."""

    def status_table(self) -> list[tuple[str, str, str, int]]:
        """(dataset, method, status, count) rows."""
        return self.conn.execute("SELECT dataset, method, status, COUNT(*) FROM runs GROUP BY dataset, method,"
                                 " status ORDER BY dataset, method, status").fetchall()

    def progress(self, window_hours: float = 1.0) -> dict[str, Any]:
        """Throughput of trained runs: runs/hour over the last ``window_hours`` (or, when none finished in that
        window, over the span of all finished ones), mean seconds per run, and a few failed runs with errors."""
        done = self.conn.execute("SELECT updated_at, train_seconds, eval_seconds FROM runs WHERE status = 'done'"
                                 " AND source = 'trained'").fetchall()
        out: dict[str, Any] = {"runs_per_hour": None, "rate_basis": None, "mean_run_seconds": None,
                               "mean_train_seconds": None, "mean_eval_seconds": None}
        if done:
            train = [t or 0.0 for _, t, _ in done]
            ev = [e or 0.0 for _, _, e in done]
            out["mean_train_seconds"] = sum(train) / len(done)
            out["mean_eval_seconds"] = sum(ev) / len(done)
            out["mean_run_seconds"] = out["mean_train_seconds"] + out["mean_eval_seconds"]
            stamps = sorted(datetime.fromisoformat(u).timestamp() for u, _, _ in done if u)
            now = time.time()
            recent = [s for s in stamps if now - s <= window_hours * 3600]
            if len(recent) >= 2:
                span = max(now - recent[0], 1.0)
                out["runs_per_hour"] = len(recent) / span * 3600
                out["rate_basis"] = f"{len(recent)} runs finished in the last {_hours(now - recent[0])}"
            elif len(stamps) >= 2 and stamps[-1] > stamps[0]:
                out["runs_per_hour"] = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 3600
                out["rate_basis"] = f"{len(stamps)} runs finished over {_hours(stamps[-1] - stamps[0])}"
        out["failed_examples"] = self.conn.execute(
            "SELECT run_id, error FROM runs WHERE status = 'failed' ORDER BY updated_at DESC LIMIT 5").fetchall()
        return out


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
