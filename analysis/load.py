"""Read a results store into pandas frames (read-only, plain SQL, no torch).

Any SQLite file with the tables and columns of the store contract (:mod:`training.store`) is a readable store, whoever wrote it.
Two frames feed every analysis:

* :func:`load_scores` -- tidy, one row per (run, representation, metric, key) with the run columns joined in:
  ``run_id, study, model_num, dataset, method, hparam_name, hparam_value, seed, status, source, representation,
  metric, key, value``. String columns are pandas categoricals whose categories follow the vocabulary's order
  (datasets and methods in the paper's order), so sorting gives the paper's order and a paper-scale store
  (12,600 runs x ~280 keys ~ 3.5 million rows) stays near 50 bytes per row.
* :func:`load_runs` -- one row per run: the run columns plus one column per ``train_results`` key.

Both return only ``done`` runs unless ``status`` says otherwise. A file that is not a store (missing, not SQLite,
missing tables or columns) raises :class:`training.errors.UserError` with a one-line message.
"""
from __future__ import annotations

import json
import os
import pickle
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.errors import UserError
from training.store import connect_store
from training.vocabulary import DATASETS, EVALUATIONS, METHODS, METRIC_KEYS, REPRESENTATIONS

RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "config", "status",
    "error", "source", "train_seconds", "eval_seconds", "created_at", "updated_at",
)
# Run columns joined into every row of the tidy score frame, in this order, then the score columns.
SCORE_RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "status", "source",
)
SCORE_COLUMNS: tuple[str, ...] = SCORE_RUN_COLUMNS + ("representation", "metric", "key", "value")
STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed")
# Result keys the study's analyses read (the notebooks and the claims): the six headline metrics, the unsupervised scores and the
# downstream mean test accuracies. ``dstudy report`` caches only these rows.
ANALYSIS_KEYS: tuple[str, ...] = tuple(dict.fromkeys(
    [key for _evaluation, key in METRIC_KEYS.values()]
    + ["gaussian_total_correlation", "gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm",
       "mutual_info_score"]
    + [f"{size}:mean_test_accuracy" for size in (10, 100, 1000, 10000)]))

_VOCABULARY_ORDER: dict[str, tuple[str, ...]] = {
    "dataset": DATASETS,
    "method": tuple(METHODS),
    "hparam_name": tuple(dict.fromkeys(name for name, _ in METHODS.values())),
    "status": STATUSES,
    "representation": REPRESENTATIONS,
    "metric": EVALUATIONS,
}


def _connect(store_path: str | os.PathLike) -> sqlite3.Connection:
    """Open ``store_path`` read-only; UserError (one line) unless it is an undamaged, readable results store."""
    return connect_store(store_path, readonly=True)


def check_store(store_path: str | os.PathLike) -> None:
    """Raise :class:`UserError` (one line) unless ``store_path`` is a readable results store."""
    _connect(store_path).close()


def _status_filter(status: str | Iterable[str] | None, study: str | None = None) -> tuple[str, list[str]]:
    """SQL ``WHERE`` fragment on ``runs.status`` (``None``: every status) and ``runs.study`` (``None``: every study)
    and its parameters."""
    clauses, params = [], []
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        if not wanted:
            raise ValueError("status must name at least one run status (or be None for all)")
        clauses.append(f"r.status IN ({', '.join('?' * len(wanted))})")
        params += wanted
    if study is not None:
        clauses.append("r.study = ?")
        params.append(study)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def studies(store_path: str | os.PathLike) -> dict[str, int]:
    """Study name -> number of done runs, for every study with a run in the store (name order)."""
    conn = _connect(store_path)
    try:
        rows = conn.execute("SELECT study, SUM(status = 'done') FROM runs GROUP BY study ORDER BY study").fetchall()
    finally:
        conn.close()
    return {str(name): int(done or 0) for name, done in rows}


#: The fields of a run's config that make two runs of one study comparable: the same training length, batch size,
#: evaluation protocol (scale, kind, sizes, evaluations) and training options. Runs that differ in one are never
#: pooled into one analysis.
PROTOCOL_FIELDS = ("steps", "batch_size", "protocol", "training")


def resolve_study(store_path: str | os.PathLike, study: str | None = None) -> str:
    """The study the analyses run on: ``study`` when the store has it, else the store's only study.

    Raises :class:`UserError` (one line) when ``study`` is not in the store, when the store holds several studies and
    none is chosen (the message lists them), or when the chosen study's done runs were computed under different
    protocols or lengths (:data:`PROTOCOL_FIELDS`: steps, batch size, evaluation protocol, training options) -
    such runs answer different questions and are never pooled.
    """
    found = studies(store_path)
    listing = ", ".join(f"{name} ({done} done)" for name, done in found.items()) or "none"
    if study is None:
        if len(found) != 1:
            raise UserError(f"{store_path} holds {len(found)} studies ({listing}); choose one with --study NAME"
                            if found else f"{store_path} has no runs")
        study = next(iter(found))
    elif study not in found:
        raise UserError(f"no study {study!r} in {store_path}; its studies: {listing}")
    conn = _connect(store_path)
    try:
        configs = [row[0] for row in conn.execute(
            "SELECT DISTINCT config FROM runs WHERE study = ? AND status = 'done'", (study,))]
    finally:
        conn.close()
    seen: dict[str, set] = {f: set() for f in PROTOCOL_FIELDS}
    for text in configs:
        try:
            config = json.loads(text)
        except ValueError:
            continue
        if isinstance(config, dict):
            for f in PROTOCOL_FIELDS:
                seen[f].add(json.dumps(config.get(f), sort_keys=True))
    mixed = [f for f, values in seen.items() if len(values) > 1]
    if mixed:
        detail = "; ".join(f"{f}: {', '.join(sorted(seen[f]))[:160]}" for f in mixed)
        raise UserError(f"study {study!r} in {store_path} mixes runs of different protocols or lengths ({detail}); "
                        f"sweep them as separate studies (a study's runs are never pooled across protocols)")
    return study


def _categorical(values, column: str) -> pd.Categorical:
    """A categorical of ``values`` whose categories are the observed ones, in vocabulary order when one exists."""
    observed = set(pd.unique(np.asarray(values, dtype=object))) - {None}
    order = _VOCABULARY_ORDER.get(column, ())
    categories = [v for v in order if v in observed] + sorted(str(v) for v in observed if v not in set(order))
    return pd.Categorical(values, categories=categories)


def _runs_frame(conn: sqlite3.Connection, status, study: str | None = None) -> pd.DataFrame:
    where, params = _status_filter(status, study)
    columns = ", ".join(f"r.{c}" for c in RUN_COLUMNS)
    frame = pd.read_sql_query(f"SELECT {columns} FROM runs r{where} ORDER BY r.rowid", conn, params=params)
    frame["model_num"] = frame["model_num"].astype("Int64")
    frame["seed"] = frame["seed"].astype("int64")
    frame["hparam_value"] = frame["hparam_value"].astype("float64")
    for column in ("train_seconds", "eval_seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def load_runs(store_path: str | os.PathLike, status: str | Iterable[str] | None = "done",
              study: str | None = None) -> pd.DataFrame:
    """One row per run: the ``runs`` columns, then one float column per ``train_results`` key.

    ``status``: a run status or a list of them (default ``"done"``); ``None`` returns every run. ``study``: only that
    study's runs (None: every study; the analyses take one, :func:`resolve_study`). String columns stay
    plain strings (the frame is small). FactorVAE's reference training results carry no ``elbo``; where a run lacks
    ``elbo`` but has ``reconstruction_loss`` and ``kl_loss``, ``elbo`` is filled in as ``-(reconstruction_loss +
    kl_loss)`` (disentanglement_lib's FactorVAE writes none), and ``elbo_derived`` marks those rows.
    """
    conn = _connect(store_path)
    try:
        runs = _runs_frame(conn, status, study)
        where, params = _status_filter(status, study)
        train = pd.read_sql_query(
            f"SELECT t.run_id, t.key, t.value FROM train_results t JOIN runs r ON r.run_id = t.run_id{where}",
            conn, params=params)
    finally:
        conn.close()
    if len(train):
        wide = train.pivot_table(index="run_id", columns="key", values="value", aggfunc="first")
        wide.columns = [str(c) for c in wide.columns]
        wide = wide.drop(columns=[c for c in wide.columns if c in runs.columns])
        runs = runs.merge(wide, left_on="run_id", right_index=True, how="left")
    if {"reconstruction_loss", "kl_loss"} <= set(runs.columns):
        if "elbo" not in runs.columns:
            runs["elbo"] = np.nan
        derive = runs["elbo"].isna() & runs["reconstruction_loss"].notna() & runs["kl_loss"].notna()
        runs.loc[derive, "elbo"] = -(runs.loc[derive, "reconstruction_loss"] + runs.loc[derive, "kl_loss"])
        runs["elbo_derived"] = derive
    return runs.reset_index(drop=True)


def load_scores(store_path: str | os.PathLike, status: str | Iterable[str] | None = "done",
                metrics: Iterable[str] | None = None, representations: Iterable[str] | None = None,
                keys: Iterable[str] | None = None, study: str | None = None) -> pd.DataFrame:
    """The tidy score frame: one row per (run, representation, metric, key), columns :data:`SCORE_COLUMNS`.

    ``status`` and ``study`` as in :func:`load_runs` (default: ``done`` runs of every study). ``metrics`` /
    ``representations`` / ``keys``
    restrict the rows read (evaluation names, e.g. ``["mig", "dci"]``; ``["mean"]``; result keys, e.g.
    :data:`ANALYSIS_KEYS`, the keys the study's analyses use, about an eighth of a paper-scale store's rows);
    ``None`` reads all. ``value`` is float64; ``model_num`` a nullable integer (NULL off the paper grid); ``seed``
    int64; string columns are categoricals (see the module docstring). Rows are ordered by run (store order),
    representation, metric, key.

    Speed: the filters run inside SQLite's table scan and the run join happens in pandas, so only the selected rows
    cross into Python (the cost is per row returned: a few seconds per million on a laptop core).
    """
    conn = _connect(store_path)
    try:
        runs = _runs_frame(conn, status, study)
        clauses, params = [], []
        for column, wanted in (("metric", metrics), ("representation", representations), ("key", keys)):
            if wanted is not None:
                wanted = [wanted] if isinstance(wanted, str) else list(wanted)
                clauses.append(f"{column} IN ({', '.join('?' * len(wanted))})" if wanted else "0")
                params += wanted
        sql = "SELECT run_id, representation, metric, key, value FROM scores"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    return _tidy(runs, rows)


def _tidy(runs: pd.DataFrame, rows: list[tuple]) -> pd.DataFrame:
    """Join score rows ``(run_id, representation, metric, key, value)`` with their runs into the tidy frame."""
    if rows:
        run_ids, reps, metrics, keys, values = zip(*rows)
    else:
        run_ids = reps = metrics = keys = values = ()
    run_codes, run_uniques = pd.factorize(np.asarray(run_ids, dtype=object))
    position = pd.Index(runs["run_id"]).get_indexer(run_uniques)
    run_rows = position[run_codes] if len(run_codes) else np.zeros(0, dtype=np.intp)
    keep = run_rows >= 0                        # rows of runs outside the status selection (or orphans) go
    if not keep.all():
        run_rows = run_rows[keep]
        reps, metrics, keys = (np.asarray(c, dtype=object)[keep] for c in (reps, metrics, keys))
        values = np.asarray(values, dtype="float64")[keep]
    frame = {}
    for column in SCORE_RUN_COLUMNS:
        if column in ("run_id", "study", "dataset", "method", "hparam_name", "status", "source"):
            per_run = _categorical(runs[column].to_numpy(dtype=object), column)
            frame[column] = pd.Categorical.from_codes(per_run.codes[run_rows], categories=per_run.categories)
        elif column == "model_num":
            frame[column] = runs[column].array[run_rows] if len(run_rows) else pd.array([], dtype="Int64")
        else:
            frame[column] = runs[column].to_numpy()[run_rows].astype(runs[column].dtype)
    frame["representation"] = _categorical(reps, "representation")
    frame["metric"] = _categorical(metrics, "metric")
    frame["key"] = _categorical(keys, "key")
    frame["value"] = np.asarray(values, dtype="float64") if len(values) else np.zeros(0)
    tidy = pd.DataFrame(frame, columns=list(SCORE_COLUMNS))
    order = np.lexsort((tidy["key"].cat.codes, tidy["metric"].cat.codes, tidy["representation"].cat.codes, run_rows))
    return tidy.iloc[order].reset_index(drop=True)


def load_meta(store_path: str | os.PathLike) -> dict[str, str]:
    """The ``meta`` table as a dict (empty when a store written by another tool has none)."""
    conn = _connect(store_path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            return {}
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    finally:
        conn.close()


def data_source(config: str | dict | None) -> str | None:
    """A short label of the data source recorded in a run's canonical config JSON, else None.

    dstudy writes ``config["data_source"]`` as the dataset's ``source`` dict (``{"kind": "procedural", ...}``,
    ``{"kind": "file", "path": ...}``; Scream-dSprites adds ``"scream": "painting" | "substitute"``); the label is
    the ``kind`` plus any such string qualifiers, e.g. ``procedural, scream: substitute``. A plain string (other
    tools) is returned as it is; a ``source`` inside a nested ``data`` / ``dataset`` object is found too.
    """
    if config is None:
        return None
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return None
    if not isinstance(config, dict):
        return None
    for key in ("data_source", "source"):
        value = config.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and value:
            label = str(value.get("kind", "unspecified"))
            extras = [f"{k}: {v}" for k, v in value.items() if k != "kind" and isinstance(v, str)
                      and k not in ("path", "sha256", "generator", "version")]
            return ", ".join([label] + extras)
    for key in ("data", "dataset"):
        inner = config.get(key)
        if isinstance(inner, dict):
            found = data_source(inner)
            if found:
                return found
    return None


@dataclass
class StoreSummary:
    """What a store contains: counts and names for the report's index page."""

    path: str
    runs_by_status: dict[str, int]
    studies: list[str]
    datasets: list[str]
    methods: list[str]
    seeds: list[int]
    configs: int
    evaluations: dict[str, int]          # evaluation -> number of done runs that have it (any representation)
    representations: list[str]
    sources: dict[str, int]              # runs.source -> done runs
    data_sources: dict[str, int]         # dataset: data source from the config JSON -> done runs
    notes: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    study: str | None = None                  # the study summarised (None: every run of the store)
    protocol: dict = field(default_factory=dict)   # steps, batch_size, protocol, training of the done runs
    provenance: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> value -> done runs
    unrecorded: int = 0                       # done runs computed before provenance was recorded
    train_seconds: tuple[float, float] = (float("nan"), float("nan"))   # total, mean per run (trained runs)
    eval_seconds: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def done(self) -> int:
        return int(self.runs_by_status.get("done", 0))

    @property
    def procedural_datasets(self) -> list[str]:
        """Datasets whose done runs used a procedural substitute (data source ``procedural`` or ``substitute``)."""
        found = []
        for label in self.data_sources:
            dataset, _, source = label.partition(": ")
            if ("procedural" in source.lower() or "substitute" in source.lower()) and dataset not in found:
                found.append(dataset)
        return found


def summarize_store(store_path: str | os.PathLike, study: str | None = None) -> StoreSummary:
    """Counts of what ``store_path`` holds (all statuses for the run counts, ``done`` runs for everything else),
    restricted to ``study`` when given: its protocol, the provenance of its runs and their wall times too."""
    conn = _connect(store_path)
    try:
        where, params = ("WHERE study = ?", [study]) if study is not None else ("", [])
        by_status = dict(conn.execute(f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status",
                                      params).fetchall())
        done = pd.read_sql_query(
            "SELECT run_id, study, dataset, method, hparam_value, seed, source, config, train_seconds, eval_seconds"
            " FROM runs WHERE status='done'" + (" AND study = ?" if study is not None else ""), conn,
            params=params)
        # DISTINCT over the primary key's prefix: a scan of its covering index, no sort, no join
        present = pd.DataFrame(conn.execute("SELECT DISTINCT run_id, representation, metric FROM scores").fetchall(),
                               columns=["run_id", "representation", "metric"])
        present = present[present["run_id"].isin(set(done["run_id"])) & present["representation"].isin(REPRESENTATIONS)
                          & present["metric"].isin(EVALUATIONS)]      # the study's own, not dstudy models' scores
        evaluations = present.groupby("metric")["run_id"].nunique().to_dict()
        representations = present["representation"].unique().tolist()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        study_notes = []
        if "studies" in tables:
            columns = {row[1] for row in conn.execute('PRAGMA table_info("studies")')}
            if {"name", "notes"} <= columns:
                study_notes = [f"{name}: {text}" for name, text in conn.execute(
                    "SELECT name, notes FROM studies WHERE notes IS NOT NULL AND notes != ''"
                    + (" AND name = ?" if study is not None else "") + " ORDER BY name", params)]
        provenance = (pd.read_sql_query("SELECT run_id, key, value FROM provenance", conn)
                      if "provenance" in tables else pd.DataFrame(columns=["run_id", "key", "value"]))
    finally:
        conn.close()

    def ordered(values, column):
        return list(_categorical(list(values), column).categories)

    data_sources: dict[str, int] = {}
    notes: list[str] = []
    configs = {}
    for dataset, config in zip(done["dataset"], done["config"]):
        if config not in configs:
            try:
                configs[config] = json.loads(config)
            except ValueError:
                configs[config] = None
        parsed = configs[config]
        label = f"{dataset}: {data_source(parsed) or 'not recorded'}"
        data_sources[label] = data_sources.get(label, 0) + 1
        if isinstance(parsed, dict) and isinstance(parsed.get("notes"), str) and parsed["notes"] not in notes:
            notes.append(parsed["notes"])
    for key, value in meta.items():
        if "notes" in str(key).lower() and value and str(value) not in notes:
            notes.insert(0, str(value))
    notes.extend(n for n in study_notes if n not in notes)
    protocol: dict = {}
    for parsed in configs.values():
        if isinstance(parsed, dict):
            for f in PROTOCOL_FIELDS:
                if f in parsed and f not in protocol:
                    protocol[f] = parsed[f]
    provenance = provenance[provenance["run_id"].isin(set(done["run_id"]))]
    by_key: dict[str, dict[str, int]] = {}
    for key, group in provenance.groupby("key", sort=True):
        by_key[str(key)] = {str(v): int(n) for v, n in group["value"].value_counts().items()}
    trained = done[done["source"] == "trained"]

    def seconds(column):
        values = pd.to_numeric(trained[column], errors="coerce").dropna()
        return (float(values.sum()), float(values.mean())) if len(values) else (float("nan"), float("nan"))

    return StoreSummary(
        path=str(Path(store_path)),
        runs_by_status={str(k): int(v) for k, v in by_status.items()},
        studies=sorted(done["study"].unique().tolist()),
        datasets=ordered(done["dataset"].unique(), "dataset"),
        methods=ordered(done["method"].unique(), "method"),
        seeds=sorted(int(s) for s in done["seed"].unique()),
        configs=int(done[["method", "hparam_value"]].drop_duplicates().shape[0]),
        evaluations={m: int(evaluations[m]) for m in ordered(evaluations, "metric")},
        representations=ordered(representations, "representation"),
        sources={str(k): int(v) for k, v in done["source"].value_counts().items()},
        data_sources=dict(sorted(data_sources.items(), key=lambda kv: (
            DATASETS.index(kv[0].split(": ")[0]) if kv[0].split(": ")[0] in DATASETS else len(DATASETS), kv[0]))),
        notes=notes,
        meta={str(k): str(v) for k, v in meta.items()},
        study=study,
        protocol=protocol,
        provenance=by_key,
        unrecorded=int((~done["run_id"].isin(set(provenance["run_id"]))).sum()),
        train_seconds=seconds("train_seconds"),
        eval_seconds=seconds("eval_seconds"),
    )


# ---- frames cached once per report, loaded by every notebook ---------------------------------------------------

CACHE_FILES = {"scores": "scores.pkl", "runs": "runs.pkl", "table": "model_table.pkl"}


def _model_table(scores: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame | None:
    """``analysis.frames.model_table`` of the frames (mean representation), or None when that module is absent."""
    try:
        from analysis import frames
    except ImportError:
        return None
    return frames.model_table(scores, runs)


def write_cache(store_path: str | os.PathLike, cache_dir: str | os.PathLike,
                keys: Iterable[str] | None = ANALYSIS_KEYS,
                study: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Load the tidy scores (the study's representations ``mean`` and ``sampled``, not those ``dstudy models`` adds;
    ``keys`` only: default :data:`ANALYSIS_KEYS`, None for all), the runs and the model
    table of one study of ``store_path`` (``study``, or the store's only one: :func:`resolve_study`) once and pickle
    them into ``cache_dir``.

    Returns ``(scores, runs, model_table)`` (the table is None without ``analysis.frames``). The files are written
    atomically (temporary name, then rename).
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    study = resolve_study(store_path, study)
    scores = load_scores(store_path, keys=keys, representations=REPRESENTATIONS, study=study)
    runs = load_runs(store_path, study=study)
    frames = {"scores": scores, "runs": runs, "table": _model_table(scores, runs)}
    for name, frame in frames.items():
        if frame is None:
            continue
        tmp = cache / (CACHE_FILES[name] + ".tmp")
        with open(tmp, "wb") as handle:
            pickle.dump(frame, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cache / CACHE_FILES[name])
    return scores, runs, frames["table"]


def _read_pickle(path: Path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


def load_frames(store_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                study: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """``(scores, runs, model_table)`` of one study of the store, as the notebooks use them: ``done`` runs, scores
    of the study's representations (``mean``, ``sampled``) restricted to :data:`ANALYSIS_KEYS`, the model table of
    ``analysis.frames`` (None if that module is absent). Read from the pickles :func:`write_cache` left in ``cache_dir`` when present, else from ``store_path`` (``study``, or
    the store's only one: :func:`resolve_study`)."""
    if cache_dir:
        cache = Path(cache_dir)
        paths = {name: cache / file for name, file in CACHE_FILES.items()}
        if paths["scores"].is_file() and paths["runs"].is_file():
            scores, runs = _read_pickle(paths["scores"]), _read_pickle(paths["runs"])
            table = _read_pickle(paths["table"]) if paths["table"].is_file() else _model_table(scores, runs)
            return scores, runs, table
    study = resolve_study(store_path, study)
    scores = load_scores(store_path, keys=ANALYSIS_KEYS, representations=REPRESENTATIONS, study=study)
    runs = load_runs(store_path, study=study)
    return scores, runs, _model_table(scores, runs)
