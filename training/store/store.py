"""The results store: one SQLite file that holds every run of every study, its training results and its scores.

The schema is a contract: the analysis side and other tools read it with plain SQL.
Tables and columns of the contract::

    meta(key, value)                          -- 'schema_version', ...
    runs(run_id, study, model_num, dataset, method, hparam_name, hparam_value, seed, config, status, error, source,
         train_seconds, eval_seconds, created_at, updated_at)
    train_results(run_id, key, value)
    scores(run_id, representation, metric, key, value)

Additions of schema version 2 (columns and tables are only ever added, never renamed):

* ``runs.attempts`` (INTEGER, failed attempts so far) and ``runs.driver`` (TEXT, the sweep driver that marked the run
  ``running``), so that a new sweep can tell a dead driver's stale ``running`` rows from a live one's;
* ``evaluations(run_id, representation, metric, seconds, error)``: wall seconds and error (NULL when it succeeded) of
  each (representation, evaluation) of a run;
* ``studies(name, definition, notes, updated_at)``: the canonical JSON definition of every study swept into the store
  and its free-text ``notes`` (e.g. "models are undertrained"), for the report;
* ``drivers(driver_id, host, pid, started_at, heartbeat_at)``: sweep drivers, with a heartbeat.

Addition of schema version 3:

* ``provenance(run_id, key, value)``: where and how a run was computed, as text: ``commit`` (the project's git
  commit, ``+modified`` when the tree had changes), ``device``, ``cpu`` (model name), ``cpu_capability`` (the CPU
  kernel family torch dispatches to: ``AVX512``, ``AVX2``, ``DEFAULT``), ``threads`` (torch intra-op threads of the
  run), ``precision``, ``trainer``, and the ``python`` / ``torch`` / ``numpy`` / ``sklearn`` versions. Runs computed
  before version 3 have no rows here.

Only the study driver writes. Every write is one transaction, so a crash leaves either the whole run or nothing.
Scores and training results that are not finite numbers (NaN, complex) are stored as NULL. This module imports no
torch (the analysis side shares it).
"""
from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from training.errors import UserError

SCHEMA_VERSION = 3
DEFAULT_STORE = Path("results") / "study.sqlite"
RUN_STATUSES = ("pending", "running", "done", "failed")

# Version 1: the contract's four tables.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(
    run_id TEXT PRIMARY KEY,
    study TEXT NOT NULL, model_num INTEGER,
    dataset TEXT NOT NULL, method TEXT NOT NULL,
    hparam_name TEXT NOT NULL, hparam_value REAL NOT NULL, seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT, source TEXT NOT NULL,
    train_seconds REAL, eval_seconds REAL, created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS train_results(run_id TEXT, key TEXT, value REAL, PRIMARY KEY (run_id, key))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scores(run_id TEXT, representation TEXT, metric TEXT, key TEXT, value REAL,
    PRIMARY KEY (run_id, representation, metric, key)) WITHOUT ROWID;
"""
# (WITHOUT ROWID: rows live in the primary-key tree itself, no separate index; same tables and columns, about half
# the file size at paper scale. Stores created with plain rowid tables are read and written the same way.)

# Version 2 additions (applied by the migration from 1, and on creation).
_SCHEMA_V2_TABLES = """
CREATE TABLE IF NOT EXISTS evaluations(run_id TEXT, representation TEXT, metric TEXT, seconds REAL, error TEXT,
    PRIMARY KEY (run_id, representation, metric)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS studies(name TEXT PRIMARY KEY, definition TEXT NOT NULL, notes TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS drivers(driver_id TEXT PRIMARY KEY, host TEXT, pid INTEGER, started_at TEXT,
    heartbeat_at REAL);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_dataset_method ON runs(dataset, method);
"""
_V2_RUN_COLUMNS = (("attempts", "INTEGER NOT NULL DEFAULT 0"), ("driver", "TEXT"))

# Version 3 addition.
_SCHEMA_V3_TABLES = """
CREATE TABLE IF NOT EXISTS provenance(run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key)) WITHOUT ROWID;
"""

_REQUIRED_COLUMNS = {
    "meta": {"key", "value"},
    "runs": {"run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "config",
             "status", "error", "source", "train_seconds", "eval_seconds", "created_at", "updated_at"},
    "train_results": {"run_id", "key", "value"},
    "scores": {"run_id", "representation", "metric", "key", "value"},
}


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


def connect_store(path: str | os.PathLike, *, readonly: bool, create: bool = False) -> sqlite3.Connection:
    """Open the store file at ``path`` and check that it is an undamaged dstudy store; returns the connection
    (autocommit; a fresh file opened with ``create`` is an empty database for the caller to fill).

    Every problem is a :class:`UserError` with a one-line message that says what is wrong and what to do: no such
    file, a folder, a file this user may not read, a file or folder that is read-only where writing was asked for, a
    file that is not SQLite, an SQLite file without the contract's tables, a damaged file (``PRAGMA quick_check``,
    which reads every page once). Nothing is created or changed unless ``create`` and the file is missing.
    """
    path = Path(path).expanduser()
    if not path.exists():
        if readonly or not create:
            raise UserError(f"no results store at {path}")
        folder = _existing_parent(path)
        if not os.access(folder, os.W_OK):
            raise UserError(f"cannot create a results store at {path}: {folder} {not_writable_reason(folder)}")
        path.parent.mkdir(parents=True, exist_ok=True)
    elif path.is_dir():
        raise UserError(f"{path} is a directory, not a results store")
    elif not os.access(path, os.R_OK):
        raise UserError(f"cannot read the results store {path}: permission denied")
    elif not readonly:
        for target, what in ((path, "the file"), (path.parent, "its folder")):
            if not os.access(target, os.W_OK):
                raise UserError(f"the results store {path} is read-only here ({what} {not_writable_reason(target)});"
                                f" this command writes to it: copy the store to a writable place, or use a command"
                                f" that only reads it (status, report)")
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    if readonly:
        # a folder this user cannot write holds no live writer's journal: read the file as it is (SQLite would
        # otherwise need to create the -shm file of a WAL store beside it)
        uri += "?mode=ro" + ("&immutable=1" if not os.access(path.parent, os.W_OK) else "")
    else:
        uri += "?mode=rwc"
    conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        tables = _table_columns(conn)
        if tables:
            _check_contract(path, tables)
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(1)")]
            if problems != ["ok"]:
                lines = [ln.strip() for p in problems for ln in p.splitlines() if ln.strip() and "***" not in ln]
                raise sqlite3.DatabaseError(lines[0] if lines else "PRAGMA quick_check failed")
        elif readonly:
            raise UserError(f"{path} is an empty SQLite file, not a dstudy results store")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UserError(_database_error_message(path, exc)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def not_writable_reason(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be written, as the end of a sentence ("is on a read-only file system", ...)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        pass
    return "is not writable by this user"


def _existing_parent(path: Path) -> Path:
    folder = path.parent.resolve()
    while not folder.exists():
        folder = folder.parent
    return folder


def _table_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    return {n: {r[1] for r in conn.execute(f"PRAGMA table_info('{n}')")} for n in names}


def _check_contract(path: Path, tables: dict[str, set[str]], required=("runs", "train_results", "scores")) -> None:
    """UserError unless ``tables`` (name -> columns) has the ``required`` tables with the contract's columns (a
    store written by another tool may lack ``meta``: the analysis side reads it all the same)."""
    missing_tables = [t for t in required if t not in tables]
    if missing_tables:
        raise UserError(f"{path} is not a dstudy results store (no table {', '.join(missing_tables)})")
    missing = [f"{t}.{c}" for t in required for c in sorted(_REQUIRED_COLUMNS[t] - tables.get(t, set()))]
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise UserError(f"{path} is not a dstudy results store (missing {shown})")


def _database_error_message(path: Path, exc: sqlite3.DatabaseError) -> str:
    """One line for an SQLite error met while opening or reading ``path``."""
    text = " ".join(str(exc).split())
    if "file is not a database" in text or "not a database" in text:
        return f"{path} is not a dstudy results store (not an SQLite database: {text})"
    if "readonly" in text or "read-only" in text:
        return f"the results store {path} is read-only here ({text})"
    if "unable to open" in text:
        return f"cannot open the results store {path} ({text}): check that its folder is readable"
    return (f"the results store {path} is damaged ({text}); nothing was changed. Save the runs that are still "
            f"readable with: sqlite3 {path} .recover | sqlite3 {path.with_suffix('.recovered.sqlite')}")


def database_error(path: str | os.PathLike, exc: sqlite3.DatabaseError) -> UserError:
    """A :class:`UserError` for an SQLite error met while reading or writing the store at ``path`` (e.g. a page
    found damaged after the open-time check passed)."""
    return UserError(_database_error_message(Path(path), exc))


class Store:
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
        tables = _table_columns(self.conn)
        if not tables:  # a new (or empty) file: connect_store checked the rest
            if self.readonly:
                raise UserError(f"{self.path} is an empty SQLite file, not a dstudy results store")
            self._create()
            return
        _check_contract(self.path, tables, required=tuple(_REQUIRED_COLUMNS))
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
            cur.executescript_statements(_SCHEMA_V1)
            self._migrate(1)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (utc_now(),))

    def _migrate(self, version: int) -> None:
        """Bring a store of schema ``version`` up to :data:`SCHEMA_VERSION` (inside the caller's transaction)."""
        if version < 2:
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info('runs')")}
            for name, decl in _V2_RUN_COLUMNS:
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
            for statement in _statements(_SCHEMA_V2_TABLES):
                self.conn.execute(statement)
        if version < 3:
            for statement in _statements(_SCHEMA_V3_TABLES):
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

    # -- drivers -------------------------------------------------------------------------------------------------
    def register_driver(self) -> str:
        """Register this process as a sweep driver; returns its id (``host:pid:start``)."""
        host, pid = socket.gethostname(), os.getpid()
        driver_id = f"{host}:{pid}:{time.time():.6f}"
        with self.transaction() as cur:
            cur.execute("INSERT INTO drivers VALUES (?, ?, ?, ?, ?)", (driver_id, host, pid, utc_now(), time.time()))
        return driver_id

    def heartbeat(self, driver_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE drivers SET heartbeat_at = ? WHERE driver_id = ?", (time.time(), driver_id))

    def unregister_driver(self, driver_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM drivers WHERE driver_id = ?", (driver_id,))

    def reset_stale(self, stale_after: float = 600.0) -> int:
        """Reset ``running`` rows whose driver is gone to ``pending``; returns how many.

        A driver is gone when it is not registered, when it ran on this host and its process no longer exists (or
        is another program by now: a different start), or when its heartbeat is older than ``stale_after`` seconds.
        """
        host, now = socket.gethostname(), time.time()
        drivers = {d: (h, p, hb) for d, h, p, hb in
                   self.conn.execute("SELECT driver_id, host, pid, heartbeat_at FROM drivers")}
        owners = {r[0] for r in self.conn.execute("SELECT DISTINCT driver FROM runs WHERE status = 'running'")}
        dead = []
        for owner in owners:
            info = drivers.get(owner)
            if info is None:
                dead.append(owner)
                continue
            h, pid, hb = info
            if (h == host and not _pid_alive(int(pid))) or hb is None or now - float(hb) > stale_after:
                dead.append(owner)
        gone = [d for d in drivers if d in dead or (drivers[d][0] == host and not _pid_alive(int(drivers[d][1])))]
        if not dead and not gone:
            return 0
        with self.transaction() as cur:
            count = 0
            for owner in dead:
                if owner is None:
                    cur.execute("UPDATE runs SET status = 'pending', updated_at = ? WHERE status = 'running'"
                                " AND driver IS NULL", (utc_now(),))
                else:
                    cur.execute("UPDATE runs SET status = 'pending', driver = NULL, updated_at = ?"
                                " WHERE status = 'running' AND driver = ?", (utc_now(), owner))
                count += cur.rowcount
            cur.executemany("DELETE FROM drivers WHERE driver_id = ?", [(d,) for d in gone])
        return count

    # -- summaries -----------------------------------------------------------------------------------------------
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
        for statement in _statements(script):
            self.conn.execute(statement)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
