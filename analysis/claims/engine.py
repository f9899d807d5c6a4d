"""The verdict engine: a claim's statistics, their intervals, its positive control, and the verdict they give.

A claim (:class:`Claim`) has

* a ``measure``: a pure function of a :class:`Context` (one store's models as a dense array) that returns the
  claim's statistics as an ordered dict, or raises :class:`NotMeasurable` naming what the store lacks;
* ``tests``: each a statistic, a margin and the side of the margin the claim predicts (:class:`Test`);
* a positive ``control`` (:class:`Control`): an effect the same store must show for its statistics to mean
  anything (e.g. "the metrics differ between configurations beyond what shuffling the configurations gives").

Every statistic gets an interval from the SAME models as its point estimate, by one of three resamplings:

* ``models`` (default): a bootstrap of the models stratified by configuration (each configuration of each dataset
  keeps its place in the design; its S models are drawn with replacement, independently of the other
  configurations), the interval centred on the estimate and its spread inflated by sqrt(S / (S - 1))
  (:func:`analysis.bootstrap.centred_interval`). Resampling whole seeds instead (a seed's models in every
  configuration together) leaves only a handful of distinct replicates at 3 or 5 seeds and intervals far too narrow:
  on pure noise at 3 seeds it excluded 0 for 40 % of the metric-accuracy correlations, this one for about 5-15 %.
* ``seeds``: the seed bootstrap (every model trained with a drawn seed comes along), for statistics that pair the
  models of one seed across configurations (Table 1's transfer: the best configuration on one seed, judged on
  another).
* a delete-one-seed jackknife (normal interval with Student-t quantile) for the variance decomposition, where any
  bootstrap's repeated models would inflate the share of variance between configurations.

A trend (a statistic with margin 0 whose test says ``permutation``) also needs its permutation p-value: an exact test
whatever the number of seeds.

The verdict (:data:`VERDICTS`):

* ``not measurable with this store`` when the measure raises :class:`NotMeasurable`;
* ``inconclusive`` when the store has fewer than :data:`MIN_SEEDS` seeds, when the positive control fails or
  cannot be measured, when a test's interval straddles its margin, or when a part of the claim cannot be measured;
* ``not supported`` when the control passes and some test's whole interval lies on the other side of its margin;
* ``supported`` when the control passes and every test's whole interval lies on the claim's side.

Each verdict comes with its reason in one line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

from analysis.bootstrap import centred_interval, covering_interval, resample_models, resample_seeds
from analysis.correlation import spearman_array
from analysis.variance import ConfigCube, nan_median

VERDICTS = ("supported", "not supported", "inconclusive", "not measurable with this store")
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_MEASURABLE = VERDICTS

#: Fewer seeds than this make every seed-resampling interval degenerate (with 2 seeds half the bootstrap replicates
#: hold one seed twice, and a jackknife has one degree of freedom): such a store's claims are inconclusive.
MIN_SEEDS = 3
#: Models trained for fewer steps than this are undertrained for every claim: beta-VAE (beta 16) on dSprites shows
#: no disentanglement at 3,000 steps (MIG 0.01-0.05 for every beta) and first does at 5,000 (MIG 0.05; 0.20 at
#: 20,000); the paper trained 300,000.
MIN_STEPS = 5000


class NotMeasurable(Exception):
    """The store lacks what a claim (or a part of it) needs; the message says what."""


# ----------------------------------------------------------------------------------------------------- context

class Context:
    """One store's models for the claims: a :class:`analysis.variance.ConfigCube` with lazily computed shared
    intermediate results (medians over seeds, Spearman matrices per dataset). A seed-bootstrap or jackknife
    replicate is a Context of the resampled cube."""

    def __init__(self, cube: ConfigCube):
        self.cube = cube
        self.col = {c: i for i, c in enumerate(cube.columns)}
        self.datasets = list(cube.datasets)
        self.methods = np.asarray(cube.group_method, dtype=object)
        self.cache: dict = {}   # results shared by several claims or controls on this context
        self.replicate = False  # True for a bootstrap or jackknife replicate (permutation nulls are skipped)

    def values(self, column: str) -> np.ndarray:
        """(G, H, S) array of ``column`` (groups = (dataset, method) pairs, H hyperparameter slots, S seeds)."""
        return self.cube.values[self.col[column]]

    @cached_property
    def present(self) -> set[str]:
        """Columns with at least one value."""
        return {c for c in self.cube.columns if not np.isnan(self.values(c)).all()}

    @property
    def n_seeds(self) -> int:
        return len(self.cube.seeds)

    @cached_property
    def medians(self) -> np.ndarray:
        """(P, G, H): median over seeds of every column."""
        return nan_median(self.cube.values)

    @cached_property
    def _spearman(self) -> dict[str, np.ndarray]:
        out = {}
        for k, dataset in enumerate(self.datasets):
            block = self.cube.values[:, self.cube.group_dataset == k]          # (P, g, H, S)
            rows = block.reshape(block.shape[0], -1).T
            out[dataset] = spearman_array(rows[~np.isnan(rows).all(axis=1)])
        return out

    def rho(self, dataset: str, rows: list[str], cols: list[str]) -> np.ndarray:
        """Spearman block (len(rows), len(cols)) over the models of ``dataset`` (pairwise complete)."""
        return self._spearman[dataset][np.ix_([self.col[r] for r in rows], [self.col[c] for c in cols])]

    def in_methods(self, methods) -> np.ndarray:
        """(G,) mask of the groups whose method is in ``methods``."""
        return np.isin(self.methods, list(methods))

    def in_dataset(self, dataset: str) -> np.ndarray:
        return self.cube.group_dataset == self.datasets.index(dataset)


def row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of ``x`` vs ``y`` along the last axis, row by row, over the entries where both are finite.

    Rows with fewer than 3 such entries or a constant side give NaN. Invalid entries are ranked above all valid ones
    (as +inf), which leaves the valid entries' average ranks unchanged, then masked out of the Pearson sums.
    """
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    valid = ~np.isnan(x) & ~np.isnan(y)
    rx = rankdata(np.where(valid, x, np.inf), axis=-1)
    ry = rankdata(np.where(valid, y, np.inf), axis=-1)
    n = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(valid, rx, 0).sum(axis=-1) / n
        my = np.where(valid, ry, 0).sum(axis=-1) / n
        cx = np.where(valid, rx - mx[..., None], 0.0)
        cy = np.where(valid, ry - my[..., None], 0.0)
        sxx, syy = (cx ** 2).sum(axis=-1), (cy ** 2).sum(axis=-1)
        rho = (cx * cy).sum(axis=-1) / np.sqrt(sxx * syy)
    return np.where((n >= 3) & (sxx > 0) & (syy > 0), np.clip(rho, -1.0, 1.0), np.nan)


def nanmean(values) -> float:
    """Mean of the finite entries (NaN when there are none)."""
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def need(condition: bool, what: str) -> None:
    """Raise :class:`NotMeasurable` with ``what`` unless ``condition``."""
    if not condition:
        raise NotMeasurable(what)


# ---------------------------------------------------------------------------------------------- tests, claims

HOLDS, FAILS, STRADDLES, UNMEASURED = "holds", "fails", "straddles", "unmeasured"


@dataclass(frozen=True)
class Test:
    """The claim predicts that statistic ``key`` lies on side ``side`` (``">"`` or ``"<"``) of ``margin``; ``says``
    is that prediction in words (e.g. "sampled TC falls with strength"). With ``permutation``, the measure also gives
    one-sided permutation p-values ``key:p_below`` / ``key:p_above`` of the statistic under no effect, and an interval
    on one side of the margin counts only when the p-value in that direction is below ``alpha / 2`` (exact for any
    number of seeds, where a seed bootstrap with few seeds is too narrow)."""
    key: str
    side: str
    margin: float
    says: str
    permutation: bool = False

    def __post_init__(self):
        if self.side not in (">", "<"):
            raise ValueError(f"side must be '>' or '<', got {self.side!r}")

    def status(self, low: float, high: float, values: dict | None = None, alpha: float = 0.05) -> str:
        """:data:`HOLDS` when the whole interval [low, high] is on the claim's side, :data:`FAILS` when it is all on
        the other side, :data:`STRADDLES` otherwise; :data:`UNMEASURED` when the interval is missing. With
        ``permutation``, a side also needs its permutation p-value (from ``values``) below ``alpha / 2``."""
        if math.isnan(low) or math.isnan(high):
            return UNMEASURED
        if self.side == ">":
            state = HOLDS if low > self.margin else FAILS if high <= self.margin else STRADDLES
            toward, away = f"{self.key}:p_above", f"{self.key}:p_below"
        else:
            state = HOLDS if high < self.margin else FAILS if low >= self.margin else STRADDLES
            toward, away = f"{self.key}:p_below", f"{self.key}:p_above"
        if self.permutation and state != STRADDLES:
            p = (values or {}).get(toward if state == HOLDS else away, float("nan"))
            if not (p < alpha / 2):
                return STRADDLES
        return state

    def text(self) -> str:
        return f"{self.key} {self.side} {self.margin:g}"


@dataclass(frozen=True)
class Control:
    """A positive control: ``measure(ctx)`` gives statistics (or raises NotMeasurable), and the control passes when
    every test of ``tests`` holds. ``effect`` completes "this store cannot detect ..." in the reason of a failed
    control. ``exact`` names statistics that carry their own uncertainty (e.g. a permutation p-value) or are judged
    on their point value: the point is used as both ends of their interval, and a control whose statistics are all
    exact is not resampled."""
    name: str
    effect: str
    measure: Callable[[Context], dict[str, float]]
    tests: tuple[Test, ...]
    exact: tuple[str, ...] = ()
    resampling: str = "models"

    @property
    def resampled(self) -> bool:
        return any(t.key not in self.exact for t in self.tests)

    def text(self) -> str:
        return " and ".join(t.text() for t in self.tests)

    def says(self) -> str:
        return "; ".join(t.says for t in self.tests)


@dataclass(frozen=True)
class Claim:
    """One checkable claim of the paper: its id, the operational criterion in words, the measure and its tests, the
    positive control; ``jackknife`` names statistics whose interval is a delete-one-seed jackknife; ``percent`` names
    statistics shown as percentages; ``info`` is a sentence of what is reported but not judged."""
    id: str
    criterion: str
    measure: Callable[[Context], dict[str, float]]
    tests: tuple[Test, ...]
    control: Control
    jackknife: tuple[str, ...] = ()
    percent: tuple[str, ...] = ()
    resampling: str = "models"


@dataclass
class Judgement:
    """A claim judged on one store: statistics with intervals, control outcome, verdict and its reason."""
    claim: Claim
    values: dict[str, float] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    control_values: dict[str, float] = field(default_factory=dict)
    control_low: dict[str, float] = field(default_factory=dict)
    control_high: dict[str, float] = field(default_factory=dict)
    control_status: str = UNMEASURED
    control_failed: Test | None = None
    statuses: dict[str, str] = field(default_factory=dict)
    verdict: str = NOT_MEASURABLE
    reason: str = ""


# ---------------------------------------------------------------------------------------------- the procedure

def _interval_of(point: dict, boot: list[dict], jack: list[dict], jackknifed: tuple[str, ...], alpha: float,
                 exact: tuple[str, ...] = (), resampling: str = "models", n_seeds: int = 2) -> tuple[dict, dict]:
    names = list(point)
    low, high = {}, {}
    booted = [k for k in names if k not in jackknifed and k not in exact]
    if booted and boot:
        reps = np.array([[r.get(k, np.nan) for k in booted] for r in boot], dtype=float)
        estimate = np.array([point[k] for k in booted], dtype=float)
        if resampling == "models":
            lo, hi = centred_interval(estimate, reps, alpha, inflate=math.sqrt(n_seeds / max(n_seeds - 1, 1)))
        else:
            lo, hi = covering_interval(estimate, reps, alpha)
        low.update(zip(booted, lo))
        high.update(zip(booted, hi))
    for k in names:
        if k in exact:
            low[k] = high[k] = point[k]
        elif k in jackknifed:
            low[k], high[k] = jackknife_interval(point[k], [r.get(k, np.nan) for r in jack], alpha)
    for k in names:
        low.setdefault(k, float("nan"))
        high.setdefault(k, float("nan"))
    return low, high


def jackknife_interval(point: float, leave_one_out: list[float], alpha: float) -> tuple[float, float]:
    """``point`` +- t(1 - alpha/2, n-1) x the delete-one jackknife standard error of ``leave_one_out`` (n values);
    NaN when fewer than 3 finite values or the point is NaN."""
    values = np.asarray(leave_one_out, dtype=float)
    values = values[~np.isnan(values)]
    n = values.size
    if n < 3 or math.isnan(point):
        return float("nan"), float("nan")
    se = math.sqrt((n - 1) / n * float(((values - values.mean()) ** 2).sum()))
    half = float(student_t.ppf(1 - alpha / 2, n - 1)) * se
    return point - half, point + half


def _safe(measure, ctx) -> dict[str, float] | None:
    try:
        return measure(ctx)
    except NotMeasurable:
        return None


def _replicates(cube: ConfigCube, kind: str, n_boot: int, random_state: int):
    """``n_boot`` bootstrap replicate contexts of ``cube``: ``models`` resampled within each configuration, or whole
    ``seeds`` resampled (see the module docstring)."""
    n_seeds = len(cube.seeds)
    if kind == "seeds":
        for drawn in resample_seeds(n_seeds, n_boot, random_state):
            replicate = Context(cube.resample(drawn))
            replicate.replicate = True
            yield replicate
        return
    cells = cube.values.shape[1:3]
    for drawn in resample_models(cells, n_seeds, n_boot, random_state):
        values = np.take_along_axis(cube.values, np.broadcast_to(drawn, cube.values.shape), axis=-1)
        replicate = Context(replace(cube, values=values, seed_ids=None))
        replicate.replicate = True
        yield replicate


def judge_claims(cube: ConfigCube, claims: tuple[Claim, ...], n_boot: int = 200, alpha: float = 0.05,
                 random_state: int = 0, steps: int | None = None) -> list[Judgement]:
    """Measure, resample and judge every claim of ``claims`` on ``cube``; one :class:`Judgement` per claim.

    The seed bootstrap draws ``n_boot`` replicates with ``np.random.RandomState(random_state)``; the same replicates
    serve every claim and control. Controls shared by several claims are measured once per replicate. ``steps``:
    the training steps of the study's models; fewer than :data:`MIN_STEPS` make every measurable claim inconclusive
    (the statistics are still shown).
    """
    ctx = Context(cube)
    n_seeds = ctx.n_seeds
    out = [Judgement(claim) for claim in claims]
    points: dict[str, dict | str] = {}
    for j in out:
        try:
            points[j.claim.id] = j.claim.measure(ctx)
        except NotMeasurable as exc:
            points[j.claim.id] = str(exc)
    controls = {j.claim.control.name: j.claim.control for j in out if isinstance(points[j.claim.id], dict)}
    control_points: dict[str, dict | str] = {}
    for name, control in controls.items():
        try:
            control_points[name] = control.measure(ctx)
        except NotMeasurable as exc:
            control_points[name] = str(exc)
    enough = n_seeds >= MIN_SEEDS
    boot_claims: dict[str, list[dict]] = {j.claim.id: [] for j in out}
    boot_controls: dict[str, list[dict]] = {name: [] for name in controls}
    jack_claims: dict[str, list[dict]] = {j.claim.id: [] for j in out}
    if enough and n_boot > 0:
        for kind in ("models", "seeds"):
            claims_here = [j for j in out if isinstance(points[j.claim.id], dict) and j.claim.resampling == kind]
            controls_here = [(name, c) for name, c in controls.items()
                             if isinstance(control_points[name], dict) and c.resampled and c.resampling == kind]
            if not claims_here and not controls_here:
                continue
            for replicate in _replicates(cube, kind, n_boot, random_state):
                for j in claims_here:
                    boot_claims[j.claim.id].append(_safe(j.claim.measure, replicate) or {})
                for name, control in controls_here:
                    boot_controls[name].append(_safe(control.measure, replicate) or {})
    if enough:
        for left_out in range(n_seeds):
            kept = np.array([s for s in range(n_seeds) if s != left_out])
            replicate = Context(cube.resample(kept))
            replicate.replicate = True
            for j in out:
                if isinstance(points[j.claim.id], dict) and j.claim.jackknife:
                    jack_claims[j.claim.id].append(_safe(j.claim.measure, replicate) or {})
    for j in out:
        _judge(j, points[j.claim.id], boot_claims[j.claim.id], jack_claims[j.claim.id],
               control_points.get(j.claim.control.name), boot_controls.get(j.claim.control.name, []), n_seeds,
               alpha)
        if steps is not None and steps < MIN_STEPS and j.verdict != NOT_MEASURABLE:
            j.verdict = INCONCLUSIVE
            j.reason = (f"undertrained: the models trained {steps:,} steps (the paper: 300,000); below "
                        f"{MIN_STEPS:,} no disentanglement shows, so no claim about trained models can be judged")
    return out


def _judge(j: Judgement, point, boot: list[dict], jack: list[dict], control_point, control_boot: list[dict],
           n_seeds: int, alpha: float) -> None:
    claim = j.claim
    if isinstance(point, str):
        j.verdict, j.reason = NOT_MEASURABLE, f"missing: {point}"
        return
    j.values = dict(point)
    j.low, j.high = _interval_of(point, boot, jack, claim.jackknife, alpha, resampling=claim.resampling,
                                 n_seeds=n_seeds)
    for test in claim.tests:
        j.statuses[test.key] = test.status(j.low.get(test.key, np.nan), j.high.get(test.key, np.nan), j.values, alpha)
    if isinstance(control_point, dict):
        j.control_values = dict(control_point)
        j.control_low, j.control_high = _interval_of(control_point, control_boot, [], (), alpha,
                                                     exact=claim.control.exact,
                                                     resampling=claim.control.resampling, n_seeds=n_seeds)
        states = [t.status(j.control_low.get(t.key, np.nan), j.control_high.get(t.key, np.nan), j.control_values,
                           alpha) for t in claim.control.tests]
        j.control_status = next((s for s in states if s != HOLDS), HOLDS)
        j.control_failed = next((t for t, s in zip(claim.control.tests, states) if s != HOLDS), None)
    if n_seeds < MIN_SEEDS:
        j.verdict = INCONCLUSIVE
        j.reason = f"too few seeds for a seed bootstrap (n = {n_seeds}; at least {MIN_SEEDS} needed)"
        return
    if isinstance(control_point, str):
        j.verdict, j.reason = INCONCLUSIVE, f"positive control not measurable: {control_point}"
        return
    if j.control_status != HOLDS:
        test = j.control_failed
        j.verdict = INCONCLUSIVE
        j.reason = (f"positive control failed: this store cannot detect {claim.control.effect} "
                    f"({_shown(test.key, j.control_values, j.control_low, j.control_high)}; needs {test.text()})")
        return
    failed = [t for t in claim.tests if j.statuses[t.key] == FAILS]
    if failed:
        t = failed[0]
        j.verdict = NOT_SUPPORTED
        j.reason = f"not ({t.says}): {_shown(t.key, j.values, j.low, j.high)} lies beyond the margin {t.margin:g}"
        return
    open_tests = [t for t in claim.tests if j.statuses[t.key] != HOLDS]
    if not open_tests:
        j.verdict = SUPPORTED
        j.reason = "; ".join(f"{t.says}: {_shown(t.key, j.values, j.low, j.high)}" for t in claim.tests)
        return
    t = open_tests[0]
    j.verdict = INCONCLUSIVE
    if j.statuses[t.key] == UNMEASURED:
        j.reason = f"part not measurable with this store: {t.says} ({t.key} has no value)"
    elif t.permutation and t.status(j.low.get(t.key, np.nan), j.high.get(t.key, np.nan)) != STRADDLES:
        p = min(j.values.get(f"{t.key}:p_below", np.nan), j.values.get(f"{t.key}:p_above", np.nan))
        j.reason = (f"no significant trend: {_shown(t.key, j.values, j.low, j.high)} but shuffling the strengths "
                    f"gives as extreme a value with p = {p:.3g} ({t.says})")
    else:
        j.reason = (f"interval straddles the margin: {_shown(t.key, j.values, j.low, j.high)} for "
                    f"{t.text()} ({t.says})")


def _shown(key: str, values: dict, low: dict, high: dict) -> str:
    value = values.get(key, np.nan)
    lo, hi = low.get(key, np.nan), high.get(key, np.nan)
    if math.isnan(value):
        return f"{key} n/a"
    if math.isnan(lo) or math.isnan(hi):
        return f"{key} = {value:.3g}"
    if lo == hi == value:
        return f"{key} = {value:.3g}"
    return f"{key} = {value:.3g} [{lo:.3g}, {hi:.3g}]"
