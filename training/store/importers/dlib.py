"""Import the reference implementation's (disentanglement_lib) results into the store (disentanglement_lib's output layout).

Three input forms, each a set of *records* (one flat, namespaced dict per (model, representation, evaluation), as in
``results/aggregate/evaluation.json``: ``train_config.*``, ``train_results.*``, ``postprocess_config.*``,
``evaluation_config.*``, ``evaluation_results.*``):

* the aggregated ``results.json`` of ``dlib_aggregate_results`` (pandas ``to_json`` orient "columns": one row per
  evaluation file, with a ``path`` column);
* per-model output folders ``.../{model_num}/metrics/{mean,sampled}/{evaluation}/results/aggregate/evaluation.json``
  (a model without metrics contributes ``model/results/aggregate/train.json``: its training results only);
* the released per-model zip files ``{model_num}.zip`` holding such a folder.

Gin-quoted strings (``"'beta_vae'"``) are unquoted into the vocabulary, numbers parsed; ``model_num`` comes from the
path (the folder or zip name), else from ``train_config.model.model_num``. Runs get ``source =
'imported:disentanglement_lib'`` and ``status = 'done'``; a run id hashes the model's defining config (not the file),
so the same model imported from any of the three forms is one run, and importing twice changes nothing.
``evaluation_results.elapsed_time`` goes to ``evaluations.seconds``, ``uuid`` strings are dropped; null/NaN scores
are stored as NULL. Each input file is imported in one transaction: a corrupt or foreign file raises one line and
imports nothing from that file.
"""
from __future__ import annotations

import ast
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

from training.errors import UserError
from training.store import RunOutcome, RunRecord, Store
from training.study.definition import ARCHITECTURE, run_id
from training.vocabulary import DATASETS, METHODS, REPRESENTATIONS, model_num as grid_model_num

SOURCE = "imported:disentanglement_lib"
# The gin binding that holds each method's swept hyperparameter (config/unsupervised_study_v1/sweep.py).
HPARAM_BINDING = {
    "beta_vae": "vae.beta",
    "factor_vae": "factor_vae.gamma",
    "dip_vae_i": "dip_vae.lambda_od",
    "dip_vae_ii": "dip_vae.lambda_od",
    "beta_tc_vae": "beta_tc_vae.beta",
    "annealed_vae": "annealed_vae.c_max",
}
_EVAL_FILE = re.compile(r"(?:^|/)(?:(\d+)/)?metrics/([^/]+)/([^/]+)/results/aggregate/evaluation\.json$")
_TRAIN_FILE = re.compile(r"(?:^|/)(?:(\d+)/)?model/results/aggregate/train\.json$")
_DROP = {"uuid"}


class ImportFormatError(ValueError):
    """A file that is not (valid) disentanglement_lib output."""


@dataclass
class ImportReport:
    """Outcome of :func:`import_paths`: per-file run counts and one-line errors."""

    files: dict[str, int] = field(default_factory=dict)  # file -> runs it touched
    new_runs: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def imported_runs(self) -> int:
        return sum(self.files.values())

    def lines(self) -> list[str]:
        return [f"import-dlib: {len(self.files)} file(s), {self.imported_runs} run(s) read, {self.new_runs} new"
                + (f", {len(self.errors)} file(s) rejected" if self.errors else "")]


# -- values --------------------------------------------------------------------------------------------------------
def unquote(value: Any) -> Any:
    """A gin-printed value as Python: ``"'mig'"`` -> ``"mig"``, ``"10000"`` -> 10000, ``"[10, 100]"`` -> list,
    ``"@mig"`` stays text; non-strings are returned unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _number(value: Any) -> float | None:
    value = unquote(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- records -> runs -----------------------------------------------------------------------------------------------
def record_to_run(record: dict, path_num: int | None, path_rep: str | None = None, path_metric: str | None = None,
                  drop_missing: bool = False) -> tuple[RunRecord, RunOutcome]:
    """One namespaced record -> (run, its outcome holding this record's train results and scores).

    ``path_num`` / ``path_rep`` / ``path_metric``: model_num, representation and evaluation taken from the file's
    path (None when the path does not say). ``drop_missing``: skip null scores (the aggregated table fills the
    columns of other evaluations with null). Raises :class:`ImportFormatError` for a record that is not
    disentanglement_lib output of the study's methods and datasets.
    """
    def get(key: str, required: bool = True) -> Any:
        value = record.get(key)
        if _is_missing(value):
            if required:
                raise ImportFormatError(f"missing {key}")
            return None
        return unquote(value)

    dataset = get("train_config.dataset.name")
    if dataset not in DATASETS:
        raise ImportFormatError(f"unknown dataset {dataset!r}")
    method = get("train_config.model.name")
    if method not in METHODS:
        raise ImportFormatError(f"unknown method {method!r}")
    value = _number(record.get(f"train_config.{HPARAM_BINDING[method]}"))
    if value is None:
        raise ImportFormatError(f"missing train_config.{HPARAM_BINDING[method]}")
    seed = get("train_config.model.random_seed")
    if not isinstance(seed, (int, float)) or int(seed) != seed:
        raise ImportFormatError(f"bad train_config.model.random_seed {seed!r}")
    seed = int(seed)
    num = path_num
    if num is None:
        config_num = get("train_config.model.model_num", required=False)
        num = int(config_num) if isinstance(config_num, (int, float)) else grid_model_num(dataset, method, value, seed)
    steps = get("train_config.model.training_steps", required=False)
    batch = get("train_config.model.batch_size", required=False)
    config = {"dataset": dataset, "method": method, "hparams": {METHODS[method][0]: value}, "seed": seed,
              "steps": int(steps) if isinstance(steps, (int, float)) else None,
              "batch_size": int(batch) if isinstance(batch, (int, float)) else None,
              "architecture": dict(ARCHITECTURE), "protocol": "disentanglement_lib unsupervised_study_v1",
              "data_source": {"kind": "imported", "from": "disentanglement_lib"}, "model_num": num}
    run = RunRecord(run_id=run_id(config), study="disentanglement_lib", dataset=dataset, method=method,
                    hparam_name=METHODS[method][0], hparam_value=value, seed=seed, config=config, model_num=num,
                    source=SOURCE)
    outcome = RunOutcome(run_id=run.run_id)
    for key, raw in record.items():
        if key.startswith("train_results."):
            name = key[len("train_results."):]
            if name in _DROP or (drop_missing and _is_missing(raw)):
                continue
            outcome.train_results[name] = _number(raw)
            if name == "elapsed_time":
                outcome.train_seconds = _number(raw)
    rep = get("postprocess_config.postprocess.name", required=False) or path_rep
    metric = get("evaluation_config.evaluation.name", required=False) or path_metric
    has_eval = any(k.startswith("evaluation_results.") for k in record)
    if has_eval:
        if rep not in REPRESENTATIONS:
            raise ImportFormatError(f"unknown representation {rep!r}")
        if not isinstance(metric, str) or not re.fullmatch(r"[A-Za-z0-9_]+", metric):
            raise ImportFormatError(f"bad evaluation name {metric!r}")
        scores: dict[str, float | None] = {}
        seconds = None
        for key, raw in record.items():
            if not key.startswith("evaluation_results."):
                continue
            name = key[len("evaluation_results."):]
            if name == "elapsed_time":
                seconds = _number(raw)
                continue
            if name in _DROP or (drop_missing and _is_missing(raw)):
                continue
            if isinstance(raw, str) and _number(raw) is None:
                continue  # a non-numeric result (none in the study besides uuid)
            scores[name] = _number(raw)
        outcome.scores[(rep, metric)] = scores
        outcome.evaluations[(rep, metric)] = (seconds, None)
    return run, outcome


def merge(items: Iterable[tuple[RunRecord, RunOutcome]]) -> list[tuple[RunRecord, RunOutcome]]:
    """Merge the per-evaluation pieces of the same run into one (run, outcome) each."""
    merged: dict[str, tuple[RunRecord, RunOutcome]] = {}
    for run, outcome in items:
        if run.run_id not in merged:
            merged[run.run_id] = (run, RunOutcome(run_id=run.run_id))
        target = merged[run.run_id][1]
        target.train_results.update(outcome.train_results)
        if outcome.train_seconds is not None:
            target.train_seconds = outcome.train_seconds
        for key, scores in outcome.scores.items():
            target.scores.setdefault(key, {}).update(scores)
        target.evaluations.update(outcome.evaluations)
    return list(merged.values())


# -- readers -------------------------------------------------------------------------------------------------------
def _load_json(text: str | bytes, name: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"not valid JSON ({str(exc).splitlines()[0]})") from None


def _num_from_parts(parts: Sequence[str]) -> int | None:
    """The model_num in a path: the numeric folder right before ``metrics`` / ``model``."""
    for marker in ("metrics", "model"):
        if marker in parts:
            i = parts.index(marker)
            if i > 0 and parts[i - 1].isdigit():
                return int(parts[i - 1])
    return None


def read_aggregated(text: str | bytes) -> list[tuple[RunRecord, RunOutcome]]:
    """The records of a ``dlib_aggregate_results`` results.json (pandas orient "columns")."""
    data = _load_json(text, "results.json")
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise ImportFormatError("not a disentanglement_lib results.json (expected pandas orient='columns' JSON)")
    if "train_config.dataset.name" not in data:
        raise ImportFormatError("not a disentanglement_lib results.json (no train_config.dataset.name column)")
    index = sorted({i for column in data.values() for i in column}, key=lambda i: (len(i), i))
    items = []
    for i in index:
        record = {k: col.get(i) for k, col in data.items()}
        path = str(record.pop("path", "") or "")
        parts = PurePosixPath(path.replace("\\", "/")).parts
        rep, metric = _rep_metric_from_parts(parts)
        try:
            items.append(record_to_run(record, _num_from_parts(parts), rep, metric, drop_missing=True))
        except ImportFormatError as exc:
            raise ImportFormatError(f"row {i}: {exc}") from None
    return items


def _rep_metric_from_parts(parts: Sequence[str]) -> tuple[str | None, str | None]:
    if "metrics" in parts:
        i = parts.index("metrics")
        if len(parts) > i + 2:
            return parts[i + 1], parts[i + 2]
    return None, None


def _read_member(name: str, text: str | bytes, default_num: int | None) -> tuple[RunRecord, RunOutcome] | None:
    """One aggregate file of a model folder or zip (``name`` = its path inside), or None if it is not one."""
    posix = name.replace("\\", "/")
    match = _EVAL_FILE.search(posix) or _TRAIN_FILE.search(posix)
    if not match:
        return None
    record = _load_json(text, name)
    if not isinstance(record, dict):
        raise ImportFormatError(f"{name}: not a disentanglement_lib aggregate file")
    parts = PurePosixPath(posix).parts
    num = _num_from_parts(parts)
    rep, metric = _rep_metric_from_parts(parts)
    if match.re is _TRAIN_FILE:
        record = {k: v for k, v in record.items() if not k.startswith("evaluation_results.")}
    try:
        return record_to_run(record, num if num is not None else default_num, rep, metric)
    except ImportFormatError as exc:
        raise ImportFormatError(f"{name}: {exc}") from None


def read_zip(path: Path) -> list[tuple[RunRecord, RunOutcome]]:
    """The records of a per-model zip file (``{model_num}.zip``)."""
    default_num = int(path.stem) if path.stem.isdigit() else None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            evals = [n for n in names if _EVAL_FILE.search(n)]
            trains = [n for n in names if _TRAIN_FILE.search(n)]
            if not evals and not trains:
                raise ImportFormatError("no disentanglement_lib results inside (no */results/aggregate/*.json)")
            items = [_read_member(n, archive.read(n), default_num) for n in evals or trains]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ImportFormatError(f"corrupt zip file ({exc})") from None
    return [i for i in items if i is not None]


def read_model_folder(folder: Path) -> list[tuple[RunRecord, RunOutcome]]:
    """The records of one model output folder (the folder that holds ``metrics/`` and/or ``model/``)."""
    default_num = int(folder.name) if folder.name.isdigit() else None
    evals = sorted(p for p in folder.glob("metrics/*/*/results/aggregate/evaluation.json"))
    files = evals or [p for p in [folder / "model/results/aggregate/train.json"] if p.is_file()]
    items = []
    for f in files:
        rel = f.relative_to(folder.parent).as_posix()
        try:
            text = f.read_bytes()
        except OSError as exc:
            raise ImportFormatError(f"{rel}: unreadable ({exc})") from None
        item = _read_member(rel, text, default_num)
        if item is not None:
            items.append(item)
    return items


def discover(path: Path) -> list[tuple[str, Any]]:
    """The import units under ``path``: ("aggregated", file) | ("zip", file) | ("folder", model folder)."""
    if path.is_file():
        if zipfile.is_zipfile(path) or path.suffix == ".zip":
            return [("zip", path)]
        return [("aggregated", path)]
    if not path.is_dir():
        raise UserError(f"{path}: no such file or folder")
    units: list[tuple[str, Any]] = []
    folders = set()
    for marker in ("metrics", "model"):
        for sub in path.rglob(marker):
            if sub.is_dir():
                folders.add(sub.parent)
    units.extend(("folder", f) for f in sorted(folders))
    units.extend(("zip", z) for z in sorted(path.rglob("*.zip")))
    units.extend(("aggregated", j) for j in sorted(path.rglob("results.json")) if "aggregate" not in j.parts)
    if not units:
        raise UserError(f"{path}: no disentanglement_lib results found (no results.json, model folders or zips)")
    return units


def import_paths(paths: Sequence[str | Path], store_path: str | Path) -> ImportReport:
    """Import every unit found under ``paths`` into the store; one transaction per unit (file or model folder).
    Errors are collected per unit in the report (nothing of a failing unit is imported)."""
    report = ImportReport()
    units: list[tuple[str, Any]] = []
    for p in paths:
        try:
            units.extend(discover(Path(p)))
        except UserError as exc:
            report.errors[str(p)] = str(exc).split(": ", 1)[-1]
    store = None  # opened (or created) with the first unit that has results: a failed import creates nothing
    try:
        for kind, target in units:
            try:
                if kind == "zip":
                    items = read_zip(target)
                elif kind == "folder":
                    items = read_model_folder(target)
                else:
                    try:
                        text = Path(target).read_bytes()
                    except OSError as exc:
                        raise ImportFormatError(f"unreadable ({exc})") from None
                    items = read_aggregated(text)
                runs = merge(items)
                if not runs:
                    raise ImportFormatError("no disentanglement_lib results in it")
                if store is None:
                    store = Store(store_path)
                report.new_runs += store.import_runs(runs)
                report.files[str(target)] = len(runs)
            except ImportFormatError as exc:
                report.errors[str(target)] = str(exc)
    finally:
        if store is not None:
            store.close()
    return report
