"""The results store: one SQLite file holding every run of every study, its training results, scores and
provenance (schema and guarantees: :mod:`training.store.store`), and the importer of disentanglement_lib results
(:mod:`training.store.importers`). Imports no torch: the analysis side reads stores through it too."""
from training.store.store import (
    DEFAULT_STORE, RUN_STATUSES, SCHEMA_VERSION, RunOutcome, RunRecord, Store, as_real, canonical_json,
    connect_store, database_error, not_writable_reason, utc_now,
)

__all__ = ["DEFAULT_STORE", "RUN_STATUSES", "SCHEMA_VERSION", "RunOutcome", "RunRecord", "Store", "as_real",
           "canonical_json", "connect_store", "database_error", "not_writable_reason", "utc_now"]
