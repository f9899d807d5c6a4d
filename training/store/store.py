"""An open results store (:class:`Store`): the study driver's writes, one transaction each, and the reads of the
command line. The schema and how a file is opened: :mod:`training.store.schema`.

Only the study driver writes. Every write is one transaction, so a crash leaves either the whole run or nothing.
Scores and training results that are not finite numbers (NaN, complex) are stored as NULL. Imports no torch.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from training.errors import UserError
from training.store.drivers import DriverRegistry
from training.store.records import RunOutcome, RunRecord, as_real, canonical_json, utc_now
from training.store.schema import (
    REQUIRED_COLUMNS, SCHEMA_V1, SCHEMA_V2_TABLES, SCHEMA_V3_TABLES, V2_RUN_COLUMNS, SCHEMA_VERSION,
    check_contract, table_columns, connect_store, database_error, statements,
)
from training.store.summaries import Summaries


class Store(DriverRegistry, Summaries):
    """An open results store. Use as a context manager, or call :meth:`close`.

    Opening a path that does not exist creates a new store (unless ``create`` is False or ``readonly``); opening an
    older schema version migrates it (in one transaction); opening anything that is not an undamaged, accessible
    dstudy store raises :class:`UserError` with a one-line message (:func:`connect_store`) and leaves the file
    untouched.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.conn = connect_store(self.path, readonly=readonly, create=create)
        try:
            self._check_and_migrate()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise database_error(self.path, exc) from None
        except BaseException:
            self._close_quietly()
            raise

    # -- opening -------------------------------------------------------------------------------------------------
    def _close_quietly(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - already failing; the original error is what matters
            pass

    def _check_and_migrate(self) -> None:
        tables = table_columns(self.conn)
        if not tables:  # a new (or empty) file: connect_store checked the rest
            if self.readonly:
                raise UserError(f"{self.path} is an empty SQLite file, not a dstudy results store")
            self._create()
            return
        check_contract(self.path, tables, required=tuple(REQUIRED_COLUMNS))
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            version = int(row[0]) if row else 1
        except (TypeError, ValueError):
            raise UserError(f"{self.path}: unreadable schema_version {row[0]!r}") from None
        if version > SCHEMA_VERSION:
            raise UserError(f"{self.path} has schema version {version}, newer than this dstudy ({SCHEMA_VERSION});"
                            " upgrade dstudy")
        if not self.readonly:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            if version < SCHEMA_VERSION:
                with self.transaction():
                    self._migrate(version)

    def _create(self) -> None:
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        with self.transaction() as cur:
            cur.executescript_statements(SCHEMA_V1)
            self._migrate(1)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (utc_now(),))

    def _migrate(self, version: int) -> None:
        """Bring a store of schema ``version`` up to :data:`SCHEMA_VERSION` (inside the caller's transaction)."""
        if version < 2:
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info('runs')")}
            for name, decl in V2_RUN_COLUMNS:
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
            for statement in statements(SCHEMA_V2_TABLES):
                self.conn.execute(statement)
        if version < 3:
            for statement in statements(SCHEMA_V3_TABLES):
                self.conn.execute(statement)
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def transaction(self) -> Iterator["_Cursor"]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; any exception (Ctrl-C included) rolls the whole block back."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield _Cursor(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- meta and studies ----------------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 1

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def save_study(self, name: str, definition: Mapping, notes: str | None) -> None:
        """Record (or update) a study's canonical definition and its notes."""
        with self.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?)",
                        (name, canonical_json(definition), notes, utc_now()))

    def studies(self) -> list[dict]:
        rows = self.conn.execute("SELECT name, definition, notes, updated_at FROM studies ORDER BY name").fetchall()
        return [{"name": n, "definition": json.loads(d), "notes": t, "updated_at": u} for n, d, t, u in rows]

    def provenance(self) -> dict[str, dict[str, str]]:
        """run_id -> {key: value} of the ``provenance`` table (runs computed before schema version 3 are absent)."""
        out: dict[str, dict[str, str]] = {}
        for run_id, key, value in self.conn.execute("SELECT run_id, key, value FROM provenance"):
            out.setdefault(run_id, {})[key] = value
        return out

    # -- runs ----------------------------------------------------------------------------------------------------
    def add_runs(self, runs: Iterable[RunRecord]) -> int:
        """Insert runs as ``pending`` unless their run_id is already stored; returns how many were new. One
        transaction. A run already stored keeps its status and results (stable run ids make sweeps resumable)."""
        now = utc_now()
        rows = [(r.run_id, r.study, r.model_num, r.dataset, r.method, r.hparam_name, float(r.hparam_value),
                 int(r.seed), canonical_json(r.config), "pending", None, r.source, None, None, now, now)
                for r in runs]
        with self.transaction() as cur:
            before = self.conn.total_changes
            cur.executemany("INSERT OR IGNORE INTO runs (run_id, study, model_num, dataset, method, hparam_name,"
                            " hparam_value, seed, config, status, error, source, train_seconds, eval_seconds,"
                            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            return self.conn.total_changes - before

    def run_status(self, run_ids: Sequence[str]) -> dict[str, str]:
        """run_id -> status for the given ids that are stored."""
        out: dict[str, str] = {}
        ids = list(run_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", chunk))
        return out

    def runs(self, status: str | None = None, study: str | None = None) -> list[dict]:
        """Runs as dicts (config parsed), optionally filtered by status and/or study, ordered by model_num, run_id."""
        sql, args = "SELECT * FROM runs", []
        where = []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if study is not None:
            where.append("study = ?")
            args.append(study)
        if where:
            sql += " WHERE " + " AND ".join(where)
        cur = self.conn.execute(sql + " ORDER BY model_num, run_id", args)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur:
            item = dict(zip(names, row))
            item["config"] = json.loads(item["config"])
            out.append(item)
        return out

    def mark_running(self, run_ids: Sequence[str], driver_id: str) -> None:
        """Mark runs ``running`` under ``driver_id`` (one transaction)."""
        now = utc_now()
        with self.transaction() as cur:
            cur.executemany("UPDATE runs SET status = 'running', driver = ?, error = NULL, updated_at = ?"
                            " WHERE run_id = ?", [(driver_id, now, r) for r in run_ids])

    def release(self, run_ids: Sequence[str]) -> None:
        """Put runs that were ``running`` back to ``pending`` (an interrupted sweep hands its work back)."""
        now = utc_now()
        with self.transaction() as cur:
            cur.executemany("UPDATE runs SET status = 'pending', driver = NULL, updated_at = ?"
                            " WHERE run_id = ? AND status = 'running'", [(now, r) for r in run_ids])

    def release_driver(self, driver_id: str) -> int:
        """Put every run still ``running`` under ``driver_id`` back to ``pending``; returns how many."""
        with self.transaction() as cur:
            cur.execute("UPDATE runs SET status = 'pending', driver = NULL, updated_at = ? WHERE status = 'running'"
                        " AND driver = ?", (utc_now(), driver_id))
            return cur.rowcount

    def record_outcome(self, outcome: RunOutcome) -> None:
        """Store a finished run in one transaction: replaces its train_results, scores and evaluations and sets
        ``done``; or, for a failed outcome, sets ``failed`` with the error (earlier results are kept)."""
        now = utc_now()
        with self.transaction() as cur:
            if not outcome.ok:
                cur.execute("UPDATE runs SET status = 'failed', error = ?, attempts = attempts + 1, driver = NULL,"
                            " updated_at = ? WHERE run_id = ?", (outcome.error, now, outcome.run_id))
                return
            self._write_results(cur, outcome, replace=True)
            cur.execute("UPDATE runs SET status = 'done', error = NULL, driver = NULL, train_seconds = ?,"
                        " eval_seconds = ?, updated_at = ? WHERE run_id = ?",
                        (as_real(outcome.train_seconds), as_real(outcome.eval_seconds), now, outcome.run_id))

    def add_results(self, outcome: RunOutcome) -> None:
        """Add (or replace, key by key) ``outcome``'s scores, evaluations, train_results and provenance rows of a
        stored run in one transaction; nothing else of the run (its status, its other results) changes. For results
        computed after the run, e.g. by ``dstudy models``."""
        with self.transaction() as cur:
            self._write_results(cur, outcome, replace=False)

    def count_attempt(self, run_id: str, error: str) -> int:
        """Note a failed attempt that will be retried (status stays ``running``); returns the attempts so far."""
        with self.transaction() as cur:
            cur.execute("UPDATE runs SET attempts = attempts + 1, error = ?, updated_at = ? WHERE run_id = ?",
                        (error, utc_now(), run_id))
        return self.conn.execute("SELECT attempts FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]

    def _write_results(self, cur: "_Cursor", outcome: RunOutcome, replace: bool) -> None:
        rid = outcome.run_id
        if replace:
            for table in ("train_results", "scores", "evaluations", "provenance"):
                cur.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
        cur.executemany("INSERT OR REPLACE INTO train_results VALUES (?, ?, ?)",
                        [(rid, str(k), as_real(v)) for k, v in outcome.train_results.items()])
        cur.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                        [(rid, rep, metric, str(k), as_real(v))
                         for (rep, metric), values in outcome.scores.items() for k, v in values.items()
                         if as_real(v) is not None or not isinstance(v, str)])
        cur.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?)",
                        [(rid, rep, metric, as_real(sec), err)
                         for (rep, metric), (sec, err) in outcome.evaluations.items()])
        cur.executemany("INSERT OR REPLACE INTO provenance VALUES (?, ?, ?)",
                        [(rid, str(k), str(v)) for k, v in outcome.provenance.items()])

    def import_runs(self, items: Sequence[tuple[RunRecord, RunOutcome]]) -> int:
        """Insert or merge imported runs with their results in ONE transaction (all or nothing); returns how many
        runs were new. Results merge key by key into an already imported run, so importing twice changes nothing."""
        now = utc_now()
        before_ids = set(self.run_status([r.run_id for r, _ in items]))
        with self.transaction() as cur:
            for record, outcome in items:
                cur.execute("INSERT OR IGNORE INTO runs (run_id, study, model_num, dataset, method, hparam_name,"
                            " hparam_value, seed, config, status, error, source, train_seconds, eval_seconds,"
                            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'done',NULL,?,?,?,?,?)",
                            (record.run_id, record.study, record.model_num, record.dataset, record.method,
                             record.hparam_name, float(record.hparam_value), int(record.seed),
                             canonical_json(record.config), record.source, as_real(outcome.train_seconds),
                             as_real(outcome.eval_seconds), now, now))
                self._write_results(cur, outcome, replace=False)
                if outcome.train_seconds is not None:
                    cur.execute("UPDATE runs SET train_seconds = ? WHERE run_id = ?",
                                (as_real(outcome.train_seconds), record.run_id))
                cur.execute("UPDATE runs SET eval_seconds = (SELECT SUM(seconds) FROM evaluations e"
                            " WHERE e.run_id = runs.run_id) WHERE run_id = ?", (record.run_id,))
        return len({r.run_id for r, _ in items} - before_ids)


class _Cursor:
    """Thin wrapper over the connection inside a transaction (``execute`` / ``executemany`` with ``rowcount``)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.rowcount = 0

    def execute(self, sql: str, args: Sequence = ()) -> sqlite3.Cursor:
        cur = self.conn.execute(sql, args)
        self.rowcount = cur.rowcount
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        cur = self.conn.executemany(sql, rows)
        self.rowcount = cur.rowcount

    def executescript_statements(self, script: str) -> None:
        for statement in statements(script):
            self.conn.execute(statement)
