"""The results store's schema and how a file is opened: one SQLite file that holds every run of every study, its
training results, scores and provenance.

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

Representation names are free text. The study writes ``mean`` and ``sampled``; ``dstudy models``
(:mod:`training.evaluation.model_analyses`) adds, with no schema change: ``rotated`` (the headline metrics of the
rotated mean representation, Theorem 1, same metric and key names as ``mean``), ``model`` (metric ``likelihood``:
IWAE log-likelihoods of the trained and the rotated model), metric ``udr`` under ``mean``, and ``mean~r1``,
``mean~r2``, ... (the headline metrics of ``mean`` again with other evaluation seeds). Each has its
``evaluations`` row (seconds, error) like the study's own scores.

:func:`connect_store` opens a file and checks that it is an undamaged store of this contract; nothing here imports
torch (the analysis side shares it).
"""
from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path

from training.errors import UserError

SCHEMA_VERSION = 3
DEFAULT_STORE = Path("results") / "study.sqlite"
RUN_STATUSES = ("pending", "running", "done", "failed")

# Version 1: the contract's four tables.
SCHEMA_V1 = """
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
SCHEMA_V2_TABLES = """
CREATE TABLE IF NOT EXISTS evaluations(run_id TEXT, representation TEXT, metric TEXT, seconds REAL, error TEXT,
    PRIMARY KEY (run_id, representation, metric)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS studies(name TEXT PRIMARY KEY, definition TEXT NOT NULL, notes TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS drivers(driver_id TEXT PRIMARY KEY, host TEXT, pid INTEGER, started_at TEXT,
    heartbeat_at REAL);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_dataset_method ON runs(dataset, method);
"""
V2_RUN_COLUMNS = (("attempts", "INTEGER NOT NULL DEFAULT 0"), ("driver", "TEXT"))

# Version 3 addition.
SCHEMA_V3_TABLES = """
CREATE TABLE IF NOT EXISTS provenance(run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key)) WITHOUT ROWID;
"""

REQUIRED_COLUMNS = {
    "meta": {"key", "value"},
    "runs": {"run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "config",
             "status", "error", "source", "train_seconds", "eval_seconds", "created_at", "updated_at"},
    "train_results": {"run_id", "key", "value"},
    "scores": {"run_id", "representation", "metric", "key", "value"},
}


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
        tables = table_columns(conn)
        if tables:
            check_contract(path, tables)
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


def table_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    return {n: {r[1] for r in conn.execute(f"PRAGMA table_info('{n}')")} for n in names}


def check_contract(path: Path, tables: dict[str, set[str]], required=("runs", "train_results", "scores")) -> None:
    """UserError unless ``tables`` (name -> columns) has the ``required`` tables with the contract's columns (a
    store written by another tool may lack ``meta``: the analysis side reads it all the same)."""
    missing_tables = [t for t in required if t not in tables]
    if missing_tables:
        raise UserError(f"{path} is not a dstudy results store (no table {', '.join(missing_tables)})")
    missing = [f"{t}.{c}" for t in required for c in sorted(REQUIRED_COLUMNS[t] - tables.get(t, set()))]
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


def statements(script: str) -> list[str]:
    """The statements of an SQL script (split on ';')."""
    return [s.strip() for s in script.split(";") if s.strip()]
