"""Study files: parse and validate a TOML study (or a shipped preset) and expand it into run configs.

A study file::

    name = "tiny"
    notes = "free text the report shows, e.g. that the models are undertrained"   # optional
    datasets = ["dsprites_full"]
    seeds = [0, 1]              # or: seeds = 50  (meaning 0..49)
    steps = 30
    batch_size = 32             # default 64
    [methods]
    beta_vae = [1.0, 4.0]
    [protocol]                  # all optional
    scale = 0.05
    downstream_num_train = [10, 100, 1000]
    evaluations = ["mig", "sap_score"]
    representations = ["mean", "sampled"]
    kind = "reference"          # or "fast" (training.evaluation.scoring's faster variant of the protocol)
    [protocol.overrides.beta_vae_sklearn]   # optional: explicit parameters of one evaluation (reference names),
    batch_size = 16                         # applied after scale
    [training]                  # optional
    num_eval_samples = 1000     # samples of the final train_results pass (train_model's default when absent)
    precision = "bf16"          # "fp32" (default), "tf32" (CUDA) or "bf16": mixed precision (training.engine.packed)

Every run is a canonical config (a plain JSON-able dict: dataset, method, hparams, seed, steps, batch size,
architecture, protocol and data source); its ``run_id`` is a hash of that config, so editing a study and sweeping
it again trains only what is new. ``model_num`` is the run's index in the paper grid
(:func:`training.vocabulary.model_num`) when its dataset, method, value and seed lie on that grid, else None.
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from training.engine.options import TrainingOptions
from training.errors import UserError
from training.store import RunRecord, canonical_json
from training.vocabulary import DATASETS, EVALUATIONS, METHODS, REPRESENTATIONS, model_num

PRESETS = ("smoke", "mini", "gpu", "paper")
DOWNSTREAM_NUM_TRAIN = (10, 100, 1000, 10000)
# The reference's model (the paper's Appendix B): conv encoder, deconv decoder, 10 latent dimensions, Bernoulli decoder loss.
ARCHITECTURE = {"encoder": "conv_encoder", "decoder": "deconv_decoder", "num_latent": 10,
                "reconstruction_loss": "bernoulli"}

_TOP_KEYS = {"name", "notes", "datasets", "seeds", "steps", "batch_size", "methods", "protocol", "training"}
# Optional [training] table: the options of training.engine.options.STUDY_KEYS, which change the results (and so
# the run id). ``precision`` other than fp32 trains through training.engine.packed.train_packed, packs of one included.
_PROTOCOL_KEYS = {"scale", "downstream_num_train", "evaluations", "representations", "kind", "overrides"}
PROTOCOL_KINDS = ("reference", "fast")  # training.evaluation.scoring: the reference's protocol, or its fast variant


@dataclass(frozen=True)
class Study:
    """A validated study. ``methods`` maps method -> hyperparameter values; ``protocol`` is complete (defaults
    filled in): scale, downstream_num_train, evaluations, representations."""

    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    batch_size: int
    methods: dict[str, tuple[float, ...]]
    protocol: dict[str, Any]
    notes: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    origin: str = field(default="", compare=False)

    @property
    def num_runs(self) -> int:
        return len(self.datasets) * len(self.seeds) * sum(len(v) for v in self.methods.values())

    def definition(self) -> dict:
        """The study as a canonical JSON-able dict (stored in the ``studies`` table)."""
        return {"name": self.name, "datasets": list(self.datasets), "seeds": list(self.seeds), "steps": self.steps,
                "batch_size": self.batch_size, "methods": {m: list(v) for m, v in self.methods.items()},
                "protocol": self.protocol, "architecture": ARCHITECTURE, "training": self.training}

    def runs(self, data_sources: Mapping[str, dict] | Callable[[str], dict] | None = None,
             datasets: Iterable[str] | None = None) -> list[RunRecord]:
        """Expand into runs, in paper-grid order (dataset, method, value, seed).

        ``data_sources`` gives each dataset's ``source`` dict (what the dataset object carries; it enters the run
        id, so a change of data means new runs); a mapping or a function of the dataset name. None uses
        :func:`dataset_source`. ``datasets``: expand only these of the study's datasets (default: all).
        """
        lookup = data_sources if callable(data_sources) else (
            (lambda name: data_sources[name]) if data_sources is not None else dataset_source)
        out = []
        wanted = self.datasets if datasets is None else [d for d in self.datasets if d in set(datasets)]
        for dataset in wanted:
            source = lookup(dataset)
            for method, values in self.methods.items():
                hname = METHODS[method][0]
                for value in values:
                    for seed in self.seeds:
                        config = run_config(dataset, method, value, seed, self.steps, self.batch_size,
                                            self.protocol, source, self.training)
                        out.append(RunRecord(run_id=run_id(config), study=self.name, dataset=dataset,
                                             method=method, hparam_name=hname, hparam_value=value, seed=seed,
                                             config=config, model_num=model_num(dataset, method, value, seed)))
        return out


def run_config(dataset: str, method: str, value: float, seed: int, steps: int, batch_size: int,
               protocol: Mapping[str, Any], data_source: Mapping[str, Any],
               training: Mapping[str, Any] | None = None) -> dict:
    """The canonical config of one run (everything that defines it). ``training`` options enter the config only
    when set, so runs at train_model's defaults keep their ids."""
    config = {"dataset": dataset, "method": method, "hparams": {METHODS[method][0]: float(value)}, "seed": int(seed),
              "steps": int(steps), "batch_size": int(batch_size), "architecture": dict(ARCHITECTURE),
              "protocol": dict(protocol), "data_source": dict(data_source or {})}
    if training:
        config["training"] = dict(training)
    return config


def run_id(config: Mapping[str, Any]) -> str:
    """Stable id of a run: the first 20 hex digits of the SHA-256 of its canonical JSON config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:20]


def dataset_source(name: str) -> dict:
    """The ``source`` dict of dataset ``name`` (``training.data.get_dataset(name).source``)."""
    from training.data import get_dataset  # lazy: loading a dataset is only needed when a study is expanded

    source = getattr(get_dataset(name), "source", None)
    return dict(source or {})


# -- parsing -----------------------------------------------------------------------------------------------------
def load_study(name_or_path: str | Path) -> Study:
    """A preset name (``smoke``, ``mini``, ``paper``) or the path of a TOML study file -> :class:`Study`."""
    text_name = str(name_or_path)
    if text_name in PRESETS:
        text = resources.files("training.study.presets").joinpath(f"{text_name}.toml").read_text()
        return parse_study(text, origin=f"preset {text_name}")
    path = Path(name_or_path)
    if not path.is_file():
        raise UserError(f"no study file or preset {text_name!r} (presets: {', '.join(PRESETS)})")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read study file {path}: {exc}") from None
    return parse_study(text, origin=str(path))


def parse_study(text: str, origin: str = "<string>") -> Study:
    """Parse and validate a TOML study; every problem is a one-line :class:`UserError` naming ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: not valid TOML ({exc})") from None
    return study_from_dict(data, origin)


def study_from_dict(data: Mapping[str, Any], origin: str = "<dict>") -> Study:
    """Validate a study given as a dict (the parsed TOML)."""
    def fail(message: str) -> UserError:
        return UserError(f"{origin}: {message}")

    _check_keys(data, fail)
    name, notes = _name_and_notes(data, fail)
    datasets = _datasets(data["datasets"], fail)
    seeds = _seeds(data["seeds"], fail)
    steps = data["steps"]
    if not _is_int(steps) or steps < 1:
        raise fail("steps must be a positive integer")
    batch_size = data.get("batch_size", 64)
    if not _is_int(batch_size) or batch_size < 2:
        raise fail("batch_size must be an integer >= 2")
    methods = _methods(data["methods"], fail)
    protocol = _protocol(data.get("protocol", {}), fail)
    training = _training(data.get("training", {}), fail)
    return Study(name=name, datasets=datasets, seeds=seeds, steps=int(steps), batch_size=int(batch_size),
                 methods=methods, protocol=protocol, notes=notes, origin=origin, training=training)


def _check_keys(data: Mapping[str, Any], fail) -> None:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "datasets", "seeds", "steps", "methods"):
        if key not in data:
            raise fail(f"missing required key {key!r}")


def _name_and_notes(data: Mapping[str, Any], fail) -> tuple[str, str | None]:
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise fail("name must be a non-empty string")
    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise fail("notes must be a string")
    return name.strip(), notes


def _datasets(datasets: Any, fail) -> tuple[str, ...]:
    """The study's datasets in canonical order."""
    if not isinstance(datasets, list) or not datasets:
        raise fail("datasets must be a non-empty list of dataset names")
    for d in datasets:
        if d not in DATASETS:
            raise fail(f"unknown dataset {d!r}; expected one of {', '.join(DATASETS)}")
    if len(set(datasets)) != len(datasets):
        raise fail("datasets has duplicates")
    return tuple(d for d in DATASETS if d in datasets)


def _seeds(seeds: Any, fail) -> tuple[int, ...]:
    """``seeds = N`` (meaning 0..N-1) or a list of distinct integers >= 0."""
    if _is_int(seeds):
        if seeds < 1:
            raise fail("seeds = N needs N >= 1")
        return tuple(range(seeds))
    if isinstance(seeds, list) and seeds and all(_is_int(s) and s >= 0 for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise fail("seeds has duplicates")
        return tuple(seeds)
    raise fail("seeds must be a positive integer N (meaning 0..N-1) or a non-empty list of integers >= 0")


def _methods(raw_methods: Any, fail) -> dict[str, tuple[float, ...]]:
    """method -> its hyperparameter values as floats, in canonical (paper-grid) order whatever the file's order."""
    if not isinstance(raw_methods, dict) or not raw_methods:
        raise fail("[methods] must map at least one method to a list of hyperparameter values")
    methods: dict[str, tuple[float, ...]] = {}
    for method in METHODS:
        if method not in raw_methods:
            continue
        values = raw_methods[method]
        if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
            raise fail(f"methods.{method} must be a non-empty list of numbers ({METHODS[method][0]} values)")
        floats = tuple(float(v) for v in values)
        if len(set(floats)) != len(floats):
            raise fail(f"methods.{method} has duplicate values")
        methods[method] = floats
    unknown = sorted(set(raw_methods) - set(METHODS))
    if unknown:
        raise fail(f"unknown method(s) {', '.join(unknown)}; expected any of {', '.join(METHODS)}")
    return methods


def _training(training: Any, fail) -> dict[str, Any]:
    """The ``[training]`` table, validated as the engines and workers validate it."""
    if not isinstance(training, dict):
        raise fail("[training] must be a table")
    try:
        TrainingOptions.from_study(training)      # one validation for study files, engines and workers
    except ValueError as exc:
        raise fail(f"[training]: {exc}") from None
    return dict(training)


def _protocol(raw: Any, fail) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise fail("[protocol] must be a table")
    unknown = sorted(set(raw) - _PROTOCOL_KEYS)
    if unknown:
        raise fail(f"unknown protocol key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_PROTOCOL_KEYS))}")
    scale = raw.get("scale", 1.0)
    if not _is_number(scale) or not 0 < float(scale) <= 1:
        raise fail("protocol.scale must be a number in (0, 1]")
    sizes = raw.get("downstream_num_train", list(DOWNSTREAM_NUM_TRAIN))
    if not isinstance(sizes, list) or not sizes or not all(_is_int(s) and s >= 1 for s in sizes):
        raise fail("protocol.downstream_num_train must be a non-empty list of positive integers")
    evaluations = raw.get("evaluations", list(EVALUATIONS))
    if not isinstance(evaluations, list) or not evaluations:
        raise fail("protocol.evaluations must be a non-empty list of evaluation names")
    for e in evaluations:
        if e not in EVALUATIONS:
            raise fail(f"unknown evaluation {e!r}; expected any of {', '.join(EVALUATIONS)}")
    representations = raw.get("representations", list(REPRESENTATIONS))
    if not isinstance(representations, list) or not representations:
        raise fail("protocol.representations must be a non-empty list")
    for r in representations:
        if r not in REPRESENTATIONS:
            raise fail(f"unknown representation {r!r}; expected any of {', '.join(REPRESENTATIONS)}")
    kind = raw.get("kind", "reference")
    if kind not in PROTOCOL_KINDS:
        raise fail(f"protocol.kind must be one of {', '.join(PROTOCOL_KINDS)}, got {kind!r}")
    resolved = {"scale": float(scale), "downstream_num_train": sorted(set(int(s) for s in sizes)), "kind": kind,
                "evaluations": [e for e in EVALUATIONS if e in evaluations],
                "representations": [r for r in REPRESENTATIONS if r in representations]}
    if raw.get("overrides"):  # only when set, so that existing run ids do not change
        from training.evaluation.scoring import resolve_protocol

        try:
            resolve_protocol({"overrides": raw["overrides"]})
        except ValueError as exc:
            raise fail(f"protocol.overrides: {exc}") from None
        resolved["overrides"] = {e: dict(sorted(raw["overrides"][e].items())) for e in sorted(raw["overrides"])}
    return resolved


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def select_model_num(runs: list[RunRecord], num: int) -> list[RunRecord]:
    """The runs of ``runs`` whose paper-grid index is ``num`` (a one-line error when there is none)."""
    chosen = [r for r in runs if r.model_num == int(num)]
    if not chosen:
        raise UserError(f"model_num {num} is not part of this study")
    return chosen
