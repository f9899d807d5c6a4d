"""Time the evaluation of one model, split by evaluation into sampling+encoding and fitting; and measure how well
the fast protocol agrees with the reference protocol.

Timing (default mode)::

    flock /tmp/dstudy-bench.lock python benchmarks/evaluate.py [--kind reference|fast] [--scale 1.0]
        [--evaluations dci,downstream_task_boosted_trees] [--representations mean,sampled] [--n-jobs 2]
        [--model PATH | --train-steps 300] [--dataset dsprites_full] [--code-table] [--compare-direct]
        [--save results.json]

evaluates one model (a saved ``TrainedModel`` or one trained here for ``--train-steps`` steps) on the dataset with
``training.evaluation.scoring.evaluate_model_records`` at the study's protocol sizes times ``--scale``, and prints per
(representation, evaluation) the wall-clock seconds, the part spent in ``dataset.sample*`` and the representation
function ("sampling+encoding") and the rest ("fitting"), plus totals, the wall-clock time of the whole model and
``os.getloadavg()``. With ``--n-jobs > 1`` the fits of dci and the downstream tasks are pooled across both
representations and run in worker processes while the other evaluations run; their "fitting" column is then the
summed fit time in the workers (compute seconds), and the printed wall time is what a model costs.

``--code-table`` first encodes every factor configuration of the (deterministic) dataset once
(:mod:`training.evaluation.code_table`; its build time is printed and included in the wall time), then evaluates on look-ups;
"sample+encode" is then drawing the factors plus the look-ups. ``--compare-direct`` (with ``--code-table``) also runs
the straightforward path (rendering and encoding every image, no table) on the same model and protocol and reports
whether every score of every (representation, evaluation) is identical. ``--save`` writes the scores and seconds as
JSON.

Agreement over FAKE models (``--agreement N``; over trained models see ``benchmarks/agreement.py``)::

    flock /tmp/dstudy-bench.lock python benchmarks/evaluate.py --agreement 8 --scale 0.1 \\
        --evaluations dci,downstream_task_logistic_regression,downstream_task_boosted_trees

scores N fake representations of increasing entanglement and noise (codes = tanh(mixing @ factors) + noise on a
dataset with dSprites' factor sizes whose observations carry the factor values, so encoding costs nothing) with both
protocols, and prints per result key the Spearman rank correlation across the N models and the largest absolute
difference between the protocols, plus the time each protocol took.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.evaluation import scoring as ev  # noqa: E402
from training.vocabulary import EVALUATIONS  # noqa: E402


class Clock:
    """Accumulates seconds per label."""

    def __init__(self):
        self.seconds: dict = {}

    def add(self, label, dt):
        self.seconds[label] = self.seconds.get(label, 0.0) + dt


class TimedDataset:
    """Delegates to ``inner``; time spent in its sampling methods is charged to ``clock`` under ``label()``."""

    def __init__(self, inner, clock: Clock, label):
        self._inner, self._clock, self._label = inner, clock, label

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _timed(self, name, *args):
        start = time.perf_counter()
        try:
            return getattr(self._inner, name)(*args)
        finally:
            self._clock.add(self._label(), time.perf_counter() - start)

    def sample(self, num, random_state):
        return self._timed("sample", num, random_state)

    def sample_factors(self, num, random_state):
        return self._timed("sample_factors", num, random_state)

    def sample_observations_from_factors(self, factors, random_state):
        return self._timed("sample_observations_from_factors", factors, random_state)

    def sample_observations(self, num, random_state):
        return self._timed("sample_observations", num, random_state)


class TimedModel:
    """Wraps a model so that its representation functions charge their time to ``clock`` and remember which
    (representation, evaluation) is running (from the seed evaluate_model passes)."""

    def __init__(self, inner, clock: Clock):
        self._inner, self._clock = inner, clock
        self.current = None
        self._by_seed = {seed: key for key, seed in ev.EVALUATION_SEEDS.items()}

    def representation_fn(self, kind, seed=0):
        self.current = self._by_seed.get(seed, (kind, "?"))
        fn = self._inner.representation_fn(kind, seed=seed)

        def timed(obs):
            start = time.perf_counter()
            try:
                return fn(obs)
            finally:
                self._clock.add(self.current, time.perf_counter() - start)
        return timed


def _load_model(args, dataset):
    from training.engine.train import TrainedModel, train_model
    if args.model:
        return TrainedModel.load(args.model)
    start = time.perf_counter()
    model = train_model(dataset, "beta_vae", {"beta": 4.0}, seed=0, steps=args.train_steps, batch_size=64)
    print(f"# trained beta_vae beta=4 seed 0 for {args.train_steps} steps in {time.perf_counter() - start:.1f} s")
    return model


def _evaluate(model, dataset, protocol, args, label):
    """Evaluate with per-evaluation timing; returns (records, wall seconds)."""
    clock = Clock()
    timed_model = TimedModel(model, clock)
    timed_data = TimedDataset(dataset, clock, lambda: timed_model.current)
    print(f"# {label}: dataset {args.dataset}, protocol {protocol}, n_jobs {args.n_jobs}, loadavg at start "
          f"{tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"{'representation':<10} {'evaluation':<38} {'total_s':>9} {'sample+encode_s':>16} {'fitting_s':>10}  "
          f"loadavg(1m)")
    totals = {"total": 0.0, "sample": 0.0}
    start_all = time.perf_counter()

    def report(record):
        sampling = clock.seconds.get((record.representation, record.evaluation), 0.0)
        totals["total"] += record.seconds
        totals["sample"] += sampling
        status = "" if record.error is None else f"  ERROR {record.error}"
        print(f"{record.representation:<10} {record.evaluation:<38} {record.seconds:9.1f} {sampling:16.1f} "
              f"{record.seconds - sampling:10.1f}  {os.getloadavg()[0]:.2f}{status}", flush=True)

    records = ev.evaluate_model_records(timed_model, timed_data, None, protocol, n_jobs=args.n_jobs, on_record=report)
    wall = time.perf_counter() - start_all
    print(f"{'TOTAL':<10} {'':<38} {totals['total']:9.1f} {totals['sample']:16.1f} "
          f"{totals['total'] - totals['sample']:10.1f}")
    print(f"# {label}: evaluations wall {wall:.1f} s ({wall / 60:.2f} min); loadavg at end "
          f"{tuple(round(x, 2) for x in os.getloadavg())}", flush=True)
    return records, wall


def run_timing(args):
    import json
    from training.data import get_dataset
    dataset = get_dataset(args.dataset)
    model = _load_model(args, dataset)
    protocol = {"scale": args.scale, "kind": args.kind, "evaluations": args.evaluations,
                "representations": args.representations}
    if args.downstream_num_train:
        protocol["downstream_num_train"] = args.downstream_num_train
    build = 0.0
    if args.code_table:
        start = time.perf_counter()
        table = model.code_table(dataset)
        build = time.perf_counter() - start
        print(f"# code table: {dataset.num_configurations} configurations encoded in {build:.1f} s "
              f"({build / 60:.2f} min); loadavg {tuple(round(x, 2) for x in os.getloadavg())}", flush=True)
        records, wall = _evaluate(table, table.dataset, protocol, args, "code table")
    else:
        records, wall = _evaluate(model, dataset, protocol, args, "direct")
    print(f"# wall per model {build + wall:.1f} s ({(build + wall) / 60:.2f} min) = table {build:.1f} s + "
          f"evaluations {wall:.1f} s", flush=True)
    out = {"protocol": protocol, "n_jobs": args.n_jobs, "code_table": bool(args.code_table), "table_seconds": build,
           "wall_seconds": build + wall,
           "records": [{"representation": r.representation, "evaluation": r.evaluation, "scores": r.scores,
                        "seconds": r.seconds, "error": r.error} for r in records]}
    if args.compare_direct:
        direct, direct_wall = _evaluate(model, dataset, protocol, args, "direct")
        different = [(a.representation, a.evaluation) for a, b in zip(records, direct)
                     if a.scores != b.scores or a.error != b.error]
        n_scores = sum(len(r.scores) for r in records)
        print(f"# direct path wall {direct_wall:.1f} s; scores identical to the code-table path: "
              f"{'YES' if not different else 'NO'} ({n_scores} values in {len(records)} evaluations"
              f"{'' if not different else '; differ: ' + str(different)})", flush=True)
        out["direct_wall_seconds"] = direct_wall
        out["identical_to_direct"] = not different
    if args.save:
        Path(args.save).write_text(json.dumps(out, indent=1))


# --------------------------------------------------------------------------------------------------- agreement
DSPRITES_SIZES = (3, 6, 40, 32, 32)


class FactorCarrier:
    """Dataset with dSprites' factor sizes; an observation carries its factor values in its first pixels (so a
    representation can be any function of the factors). Sampling draws like the reference (factor by factor)."""

    def __init__(self, sizes=DSPRITES_SIZES):
        self.factors_num_values = list(sizes)
        self.num_factors = len(sizes)
        self.observation_shape = (64, 64, 1)

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(s, size=num) for s in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        obs = np.zeros((len(factors), 1, self.num_factors, 1), dtype=np.float32)  # only the carried values
        obs[:, 0, :, 0] = factors / (np.array(self.factors_num_values, dtype=np.float32) - 1.0)
        return obs

    def sample(self, num, random_state):
        f = self.sample_factors(num, random_state)
        return f, self.sample_observations_from_factors(f, random_state)


class MixingModel:
    """Codes (10) = tanh(2 * M @ (factor - 0.5)) + noise, with M = (1 - a) [I; 0] + a * random, noise scale s; a
    deterministic function of the observation except the noise (seeded per call sequence like ``sampled``)."""

    def __init__(self, entanglement: float, noise: float, seed: int):
        rs = np.random.RandomState(seed)
        base = np.zeros((10, len(DSPRITES_SIZES)))
        base[np.arange(5), np.arange(5)] = 1.0
        self.mix = ((1 - entanglement) * base + entanglement * rs.randn(10, len(DSPRITES_SIZES))).astype(np.float32)
        self.noise = noise

    def representation_fn(self, kind, seed=0):
        noise_rs = np.random.RandomState(seed)

        def fn(obs):
            x = obs[:, 0, :, 0] - 0.5
            z = np.tanh(2.0 * x @ self.mix.T)
            return (z + self.noise * noise_rs.randn(*z.shape)).astype(np.float32)
        return fn


def _spearman(a, b):
    from scipy.stats import spearmanr
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def run_agreement(args):
    dataset = FactorCarrier()
    levels = np.linspace(0.0, 1.0, args.agreement)
    models = [MixingModel(entanglement=a, noise=0.02 + 0.3 * a, seed=i) for i, a in enumerate(levels)]
    protocol = {"scale": args.scale, "representations": ["mean"], "evaluations": args.evaluations}
    if args.downstream_num_train:
        protocol["downstream_num_train"] = args.downstream_num_train
    print(f"# agreement: {len(models)} mixing models (entanglement 0..1), protocol {protocol}, n_jobs {args.n_jobs},"
          f" loadavg at start {tuple(round(x, 2) for x in os.getloadavg())}")
    results = {"reference": [], "fast": []}
    seconds = {"reference": {}, "fast": {}}
    for i, model in enumerate(models):
        for kind in ("reference", "fast"):
            recs = ev.evaluate_model_records(model, dataset, None, dict(protocol, kind=kind), n_jobs=args.n_jobs)
            for r in recs:
                if r.error:
                    raise SystemExit(f"{kind} {r.evaluation} failed: {r.error}")
                seconds[kind][r.evaluation] = seconds[kind].get(r.evaluation, 0.0) + r.seconds
            results[kind].append({(r.evaluation, k): v for r in recs for k, v in r.scores.items()})
        print(f"# model {i} done, loadavg {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'evaluation':<38} {'key':<34} {'spearman':>9} {'max_abs_diff':>13}")
    for key in results["reference"][0]:
        ref = np.array([r[key] for r in results["reference"]])
        fast = np.array([r[key] for r in results["fast"]])
        print(f"{key[0]:<38} {key[1]:<34} {_spearman(ref, fast):9.3f} {np.max(np.abs(ref - fast)):13.4f}")
    for kind in ("reference", "fast"):
        for name, s in seconds[kind].items():
            print(f"# {kind:<9} {name:<38} {s / len(models):8.1f} s per model")
    print(f"# loadavg at end {tuple(round(x, 2) for x in os.getloadavg())}")


def _names(text, valid):
    names = [t for t in text.split(",") if t]
    bad = [n for n in names if n not in valid]
    if bad:
        raise SystemExit(f"unknown name(s) {', '.join(bad)}; expected some of {', '.join(valid)}")
    return names


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=ev.PROTOCOL_KINDS, default="reference")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--evaluations", default=",".join(EVALUATIONS))
    p.add_argument("--representations", default="mean,sampled")
    p.add_argument("--downstream-num-train", default="")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--model", default=None, help="a TrainedModel file (default: train one here)")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--dataset", default="dsprites_full")
    p.add_argument("--code-table", action="store_true", help="encode every factor configuration once, then look up")
    p.add_argument("--compare-direct", action="store_true",
                   help="with --code-table: also run the straightforward path and check the scores are identical")
    p.add_argument("--save", default=None, help="write scores and seconds to this JSON file")
    p.add_argument("--agreement", type=int, default=0,
                   help="number of FAKE models for the agreement study (trained models: benchmarks/agreement.py)")
    args = p.parse_args(argv)
    args.evaluations = _names(args.evaluations, EVALUATIONS)
    args.representations = _names(args.representations, ("mean", "sampled"))
    args.downstream_num_train = [int(v) for v in args.downstream_num_train.split(",") if v]
    if args.compare_direct and not args.code_table:
        raise SystemExit("--compare-direct compares against --code-table; pass both")
    if args.agreement:
        run_agreement(args)
    else:
        run_timing(args)


if __name__ == "__main__":
    main()
