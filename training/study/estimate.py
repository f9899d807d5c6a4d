"""``dstudy estimate STUDY``: a short calibration run on this machine, then the projected wall time of the whole study.

Cost model (all times measured here, none assumed):

* training: for every (dataset, method) of the study, a few steps of a pack of ``pack`` runs (``train_packed``; a
  plain ``train_model`` run when ``pack`` is 1) are timed after a warm-up; seconds per model-step = pack step time / K.
  Training time of the study = sum over (dataset, method) of runs x steps x seconds per model-step.
* evaluation: for every dataset, one briefly trained model is scored with the study's protocol at two small
  calibration scales ``s`` and ``s/2`` (downstream training sizes capped at ``downstream_cap``); each
  (representation, evaluation) gets a line ``seconds = a + b * size`` through the two points, evaluated at the
  study's scale (downstream tasks: at the study's largest training size relative to the capped one). This is a
  linear extrapolation: good for the sampling and encoding costs, rough for predictors that grow faster than
  linearly (gradient boosting at 10,000 points), so treat evaluation totals beyond ~10x extrapolation as an order of
  magnitude. Where the runner will evaluate on a code table (:func:`training.evaluation.scoring.use_code_table`: a
  deterministic dataset at large protocol sizes), a model's evaluation is the table's build, projected from the time
  to render and encode 4,096 configurations, plus the evaluations calibrated as above on a stand-in table (look-ups
  instead of encodings). Evaluation time of the study = sum over datasets of runs x seconds per model.

Both are wall times of one process on this machine (``workers`` divides them, assuming perfect scaling across
identical workers). :func:`project` is the pure part (calibration numbers in, table out) and is tested with
analytic inputs; :func:`calibrate_training` / :func:`calibrate_evaluation` do the measuring.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_CALIBRATION_STEPS = 10
DEFAULT_WARMUP_STEPS = 3
DEFAULT_EVAL_SCALE = 0.01
DEFAULT_DOWNSTREAM_CAP = 100


@dataclass
class Row:
    """One line of the estimate: a (dataset, method) with its runs and projected seconds."""
    dataset: str
    method: str
    runs: int
    model_steps: int
    seconds_per_model_step: float | None
    train_seconds: float | None
    eval_seconds_per_model: float | None
    eval_seconds: float | None
    note: str = ""


def _runs_per(study) -> dict[tuple[str, str], int]:
    return {(d, m): len(values) * len(study.seeds) for d in study.datasets for m, values in study.methods.items()}


def project(study, seconds_per_model_step: Mapping[tuple[str, str], float | None],
            eval_seconds_per_model: Mapping[str, float | None], workers: int = 1,
            notes: Mapping[tuple[str, str], str] | None = None) -> list[Row]:
    """Projected wall seconds per (dataset, method) of ``study`` from calibration numbers.

    ``seconds_per_model_step[(dataset, method)]`` and ``eval_seconds_per_model[dataset]`` (None: not measurable,
    e.g. data missing) are divided by ``workers``. Rows come in the study's order.
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    notes = notes or {}
    rows = []
    for (dataset, method), runs in _runs_per(study).items():
        rate = seconds_per_model_step.get((dataset, method))
        per_model = eval_seconds_per_model.get(dataset)
        model_steps = runs * int(study.steps)
        rows.append(Row(dataset, method, runs, model_steps, rate,
                        None if rate is None else model_steps * rate / workers, per_model,
                        None if per_model is None else runs * per_model / workers, notes.get((dataset, method), "")))
    return rows


def format_duration(seconds: float | None) -> str:
    """Human-readable duration: ``45 s``, ``12.5 min``, ``3.2 h``, ``4.1 d``, ``2.3 y`` (None -> ``n/a``)."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / (365 * 86400):.2f} y"


def format_table(rows: list[Row], header: str = "") -> str:
    """The estimate as a text table with a total line."""
    cols = ("dataset", "method", "runs", "model-steps", "ms/model-step", "training", "eval/model", "evaluation",
            "note")
    lines = []
    for r in rows:
        lines.append((r.dataset, r.method, str(r.runs), f"{r.model_steps:,}",
                      "n/a" if r.seconds_per_model_step is None else f"{1000 * r.seconds_per_model_step:.2f}",
                      format_duration(r.train_seconds), format_duration(r.eval_seconds_per_model),
                      format_duration(r.eval_seconds), r.note))
    train = [r.train_seconds for r in rows]
    evals = [r.eval_seconds for r in rows]
    total_train = None if any(v is None for v in train) else sum(train)
    total_eval = None if any(v is None for v in evals) else sum(evals)
    partial_train = sum(v for v in train if v is not None)
    partial_eval = sum(v for v in evals if v is not None)
    lines.append(("total", "", str(sum(r.runs for r in rows)), f"{sum(r.model_steps for r in rows):,}", "",
                  format_duration(total_train) if total_train is not None
                  else f">= {format_duration(partial_train)}",
                  "", format_duration(total_eval) if total_eval is not None else f">= {format_duration(partial_eval)}",
                  ""))
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [header] if header else []
    out += [fmt(cols), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) for line in lines[:-1]] + [fmt(tuple("-" * w for w in widths)), fmt(lines[-1])]
    both = None if total_train is None or total_eval is None else total_train + total_eval
    out.append(f"training + evaluation: {format_duration(both) if both is not None else 'n/a (some rows missing)'}")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------------
# calibration


def calibrate_training(dataset, method: str, hparams: dict, steps: int, batch_size: int, device, pack: int,
                       warmup: int = DEFAULT_WARMUP_STEPS, precision: str = "fp32") -> float:
    """Seconds per model-step of ``method`` on ``dataset`` (an object) in packs of ``pack`` runs, after ``warmup``
    untimed steps; ``steps`` timed steps."""
    import torch

    marks: dict[int, float] = {}

    def on_step(t, losses):
        if t == warmup - 1 or t == warmup + steps - 1:
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            marks[t] = time.perf_counter()

    total = warmup + steps
    if pack == 1 and precision == "fp32":
        from training.engine.train import train_model

        train_model(dataset, method, hparams, 0, total, batch_size=batch_size, device=device, num_eval_samples=0,
                    progress=False, on_step=on_step)
    else:
        from training.engine.packed import train_packed

        out = train_packed(dataset, method, [(dict(hparams), s) for s in range(pack)], total, batch_size=batch_size,
                           device=device, num_eval_samples=0, progress=False, on_step=on_step, precision=precision)
        errors = [r for r in out if isinstance(r, Exception)]
        if errors:
            raise errors[0]
    start = marks.get(warmup - 1)
    if start is None:   # no warm-up
        raise ValueError("warmup must be >= 1")
    return (marks[warmup + steps - 1] - start) / (steps * pack)


def table_calibration(model, dataset, sample: int = 4096, random_state: int = 0):
    """Time a code table's build on ``sample`` consecutive configurations of ``dataset`` from a random start
    (rendered and encoded in the build's chunks of 64, by one encoder; the build's one-thread-per-core encoding is
    ~6 % faster on 2 cores, so this errs high) and return ``(seconds per configuration, stand-in table)``. The
    stand-in is a :class:`training.evaluation.code_table.CodeTable` whose rows repeat those ``sample`` real encodings over all
    configurations: the look-up path costs the same as on the real table, the scores on it mean nothing (timing
    only). A one-off cost of the dataset's first rendering (the dSprites disk cache, once per machine) is paid here
    but not timed."""
    import numpy as np

    from training.evaluation.code_table import MIN_TABLE_CHUNK, CodeTable, encoder_images_fn, render_configurations
    encode = encoder_images_fn(model.vae.encoder)
    total = int(dataset.num_configurations)
    sample = max(MIN_TABLE_CHUNK, min(int(sample), total) // MIN_TABLE_CHUNK * MIN_TABLE_CHUNK)
    first = int(np.random.RandomState(random_state).randint(0, total - sample + 1))
    render_configurations(dataset, first, first + 1)  # a one-off per machine (e.g. the dSprites cache): not timed
    start = time.perf_counter()
    images = render_configurations(dataset, first, first + sample)  # as the build renders: consecutive configurations
    parts = [encode(images[i:i + MIN_TABLE_CHUNK]) for i in range(0, sample, MIN_TABLE_CHUNK)]
    mean = np.concatenate([m.float().cpu().numpy() for m, _ in parts])
    logvar = np.concatenate([lv.float().cpu().numpy() for _, lv in parts])
    seconds = (time.perf_counter() - start) / sample
    rows = np.arange(total) % sample
    return seconds, CodeTable(dataset, mean[rows], logvar[rows], encode)


def calibrate_evaluation(model, dataset, protocol: Mapping[str, Any], scale: float = DEFAULT_EVAL_SCALE,
                         downstream_cap: int = DEFAULT_DOWNSTREAM_CAP) -> float:
    """Projected seconds to evaluate one model of ``dataset`` with ``protocol`` (a study's protocol dict).

    Times every (representation, evaluation) at calibration scales ``s`` and ``s/2`` (``s`` = min(scale,
    protocol scale)), downstream training sizes capped at ``downstream_cap``, and extrapolates each linearly to the
    protocol's sizes (see the module docstring).
    """
    from training.evaluation.scoring import DOWNSTREAM_EVALUATIONS, evaluate_model_records, resolve_protocol, use_code_table
    from training.study.definition import DOWNSTREAM_NUM_TRAIN

    p = resolve_protocol(dict(protocol))
    target = p.scale
    s_hi = min(float(scale), target)
    s_lo = s_hi / 2
    sizes = list(p.downstream_num_train or DOWNSTREAM_NUM_TRAIN)
    capped = sorted({min(n, downstream_cap) for n in sizes})
    base = {"evaluations": list(p.evaluations), "representations": list(p.representations), "kind": p.kind,
            "downstream_num_train": capped}
    total = 0.0
    if use_code_table(dataset, protocol) and hasattr(model, "vae"):
        # the runner will evaluate on a code table: its build (every configuration encoded once) plus evaluations on
        # look-ups, which the calibration times on a stand-in table
        seconds_per_configuration, table = table_calibration(model, dataset)
        total += seconds_per_configuration * dataset.num_configurations
        model, dataset = table, table.dataset
    timings = {}
    for s in (s_lo, s_hi):
        for record in evaluate_model_records(model, dataset, protocol={**base, "scale": s}):
            if record.error is not None:
                raise RuntimeError(f"calibration of {record.evaluation} ({record.representation}) failed: "
                                   f"{record.error}")
            timings.setdefault((record.representation, record.evaluation), {})[s] = record.seconds
    for (rep, name), t in timings.items():
        slope = max(0.0, (t[s_hi] - t[s_lo]) / (s_hi - s_lo))
        at_target = t[s_hi] + slope * (target - s_hi)
        if name in DOWNSTREAM_EVALUATIONS and max(sizes) > max(capped):
            at_target *= max(sizes) / max(capped)   # predictor fits grow at least linearly in their training size
        total += max(at_target, t[s_hi])
    return total


def estimate_study(study, device=None, pack: int | None = None, calibration_steps: int = DEFAULT_CALIBRATION_STEPS,
                   eval_scale: float = DEFAULT_EVAL_SCALE, downstream_cap: int = DEFAULT_DOWNSTREAM_CAP,
                   workers: int = 1, evaluation: bool = True, precision: str = "fp32", log=None) -> list[Row]:
    """Calibrate on this machine and project ``study`` (a :class:`training.study.definition.Study`); returns the rows."""
    from training.engine.train import resolve_device
    from training.vocabulary import METHODS

    device = resolve_device(device)
    if pack is None:
        pack = 32 if device.type == "cuda" else 1
    if int(pack) < 1 or int(calibration_steps) < 1:
        raise ValueError("pack and calibration steps must be >= 1")
    log = log or (lambda message: None)
    rates: dict[tuple[str, str], float | None] = {}
    evals: dict[str, float | None] = {}
    notes: dict[tuple[str, str], str] = {}
    for dataset_name in study.datasets:
        try:
            from training.data import get_dataset

            dataset = get_dataset(dataset_name)
        except Exception as exc:  # noqa: BLE001 - e.g. DataMissingError: that dataset's rows become n/a
            for method in study.methods:
                rates[(dataset_name, method)] = None
                notes[(dataset_name, method)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
            evals[dataset_name] = None
            continue
        for method, values in study.methods.items():
            method_hparam = {METHODS[method][0]: float(values[0])}
            log(f"calibrating training: {dataset_name} {method} (pack {pack}, {calibration_steps} steps)")
            rates[(dataset_name, method)] = calibrate_training(dataset, method, method_hparam, calibration_steps,
                                                               study.batch_size, device, int(pack),
                                                               precision=precision)
        if evaluation:
            from training.engine.train import train_model

            log(f"calibrating evaluation: {dataset_name}")
            method = next(iter(study.methods))
            model = train_model(dataset, method, {METHODS[method][0]: float(study.methods[method][0])}, 0, 2,
                                batch_size=study.batch_size, device=device, num_eval_samples=0, progress=False)
            evals[dataset_name] = calibrate_evaluation(model, dataset, study.protocol, eval_scale, downstream_cap)
        else:
            evals[dataset_name] = None
    return project(study, rates, evals, workers=workers, notes=notes)
