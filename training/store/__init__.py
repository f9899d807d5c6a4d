"""The results store: one SQLite file holding every run of every study, its training results, scores and
provenance, and the importer of disentanglement_lib results (:mod:`training.store.importers`).

* :mod:`training.store.schema`: the contract's tables (other tools read them with plain SQL) and
  :func:`connect_store`, which opens a file and checks that it is an undamaged store;
* :mod:`training.store.records`: a run and its outcome as Python values;
* :mod:`training.store.store`: :class:`Store`, the driver's transactions (with :mod:`~training.store.drivers` and
  :mod:`~training.store.summaries`).

Imports no torch: the analysis side reads stores through it too.
"""
from training.store.records import RunOutcome, RunRecord, as_real, canonical_json, utc_now
from training.store.schema import (
    DEFAULT_STORE, RUN_STATUSES, SCHEMA_VERSION, connect_store, database_error, not_writable_reason,
)
from training.store.store import Store

__all__ = ["DEFAULT_STORE", "RUN_STATUSES", "SCHEMA_VERSION", "RunOutcome", "RunRecord", "Store", "as_real",
           "canonical_json", "connect_store", "database_error", "not_writable_reason", "utc_now"]
