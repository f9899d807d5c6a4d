"""What the store holds, as Python values: a run as a study expands it (:class:`RunRecord`), what a worker returns
for it (:class:`RunOutcome`), and the canonical JSON of a run's configuration (hashed into its id)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

def utc_now() -> str:
    """Current UTC time as ISO 8601 text with seconds (the format of ``created_at`` / ``updated_at``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def as_real(value: Any) -> float | None:
    """A finite float, or None for anything else (NaN, inf, complex, strings, None); booleans become 0.0/1.0."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    return None


@dataclass
class RunRecord:
    """One run as the ``runs`` table holds it (what a study expansion or an importer produces)."""

    run_id: str
    study: str
    dataset: str
    method: str
    hparam_name: str
    hparam_value: float
    seed: int
    config: dict
    model_num: int | None = None
    source: str = "trained"


@dataclass
class RunOutcome:
    """What a worker returns for one run; the driver turns it into one transaction.

    ``scores`` maps (representation, evaluation) to {key: value}; ``evaluations`` maps the same pairs to
    (seconds, error or None). ``provenance`` maps keys of the ``provenance`` table to text. ``error`` set means the
    run failed (training diverged, data missing, a bug).
    """

    run_id: str
    train_results: dict[str, float] = field(default_factory=dict)
    scores: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    evaluations: dict[tuple[str, str], tuple[float | None, str | None]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    train_seconds: float | None = None
    eval_seconds: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def canonical_json(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces) — the form hashed into run ids and stored in ``runs.config``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


