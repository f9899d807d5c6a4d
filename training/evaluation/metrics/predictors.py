"""The classifiers behind DCI and the downstream tasks, pinned, plus the parallel per-factor fitting they share.

Two protocols (``kind``):

``"reference"`` (the default everywhere) - exactly the study's predictors with today's scikit-learn
(metrics/REFERENCE.md 1.7, 0.8):

* :func:`gradient_boosting_classifier` - ``GradientBoostingClassifier`` with all defaults (log-loss, 100 stages,
  learning rate 0.1, depth 3) and an EXPLICIT ``random_state``. The reference left it at ``None`` (NumPy's global
  RNG, so study numbers were not reproducible); one ``np.random.RandomState(gbt_seed)`` handed to every fit of a
  metric in factor order reproduces the reference run after ``np.random.seed(gbt_seed)`` bit for bit (metrics/REFERENCE.md item 10).
* :func:`logistic_regression_cv` - ``LogisticRegressionCV(Cs=10, cv=KFold(5))`` (contiguous folds, no shuffling),
  with ``scoring="accuracy"`` pinned (the current default, which scikit-learn announced will change).

``"fast"`` - a cheaper protocol for CPU studies, NOT the study's numbers (its agreement with the reference is measured
by ``benchmarks/agreement.py`` over trained models and ``benchmarks/evaluate.py --agreement`` over fake ones):

* :func:`fast_gradient_boosting_classifier` - ``HistGradientBoostingClassifier`` shaped like the reference trees
  (at most 8 leaves of depth <= 3, ``min_samples_leaf=1``, no early stopping, so nothing depends on a validation
  split) on 255-bin histograms, with 30 iterations at learning rate 0.3 and L2 regularisation 0.3 of the leaf values
  (:data:`FAST_GBT_PARAMS`); importances are the total split GAIN per feature, normalised to sum 1
  (:func:`feature_importances`), instead of the impurity decrease of the exact trees.
* :func:`fast_logistic_regression_cv` - below 1,000 training points exactly the reference predictor
  (:data:`FAST_LR_REFERENCE_BELOW`); from there on standardised features and ``LogisticRegressionCV`` over the same
  10 values of C, validated on ONE split (the last fifth of the points, i.e. the reference's fifth KFold fold)
  instead of five, with the warm-started regularisation path fitted on at most the first 2,000 points
  (:data:`FAST_LR_PATH_POINTS`), then refit on all points at the chosen C.

How the fast settings were chosen (issue 5; dsprites_full beta_vae models, 1,000 steps, six betas/seeds; "scale
0.1" = DCI on 1,000 training points, "full" = the study's 10,000, compared with a reference run of one model):

* Cost. A histogram tree costs about the same whatever ``max_bins`` (255 / 63 / 31 bins: 5.0 / 4.7 / 4.6 s for
  the 40-class factor at 10,000 points), and at the downstream task's 10 and 100 points it is mostly per-tree
  overhead; what counts is the number of trees, iterations x classes (3 + 6 + 40 + 32 + 32 per iteration for
  dSprites), and predicting with them (~1/3 of a fit at 10,000 + 5,000 points). So: fewer iterations. Fit seconds
  of DCI / downstream boosted trees / downstream logistic regression for one model, both representations, study
  sizes (``benchmarks/evaluate.py --kind fast --n-jobs 2 --code-table``, summed over the two worker processes):
  84 / 109 / 36 s with 100 iterations and the previous logistic regression, 25 / 50 / 52 s with these settings
  (evaluations 79 s of wall time beside a 128 s code table: 3.45 min per model). About 33 worker-seconds of the
  logistic regression are the reference predictor at 10 and 100 points (next item).
* At learning rate 0.1 fewer iterations underfit at full scale (30 iterations: DCI informativeness_train 0.49 vs
  the reference's 0.71, disentanglement 0.19 vs 0.09; 100 iterations: 0.67 and 0.13). A proportionally larger
  learning rate alone overshoots with 32-40 classes, unregularised Newton leaves and ``min_samples_leaf=1`` (30
  iterations at 0.33, 25 at 0.4, 20 at 0.5: informativeness_train 0.40 instead of 0.96 at scale 0.1). A small L2
  penalty on the leaf values damps that: 30 iterations at 0.3 with L2 0.3 agree with the reference as well as 100
  iterations at 0.1 did, for 30 % of the trees. Scale 0.1, Spearman over six models / max abs difference (old
  100-iteration setting in brackets): informativeness_train 0.94 / 0.005 (0.31 / 0.011), informativeness_test
  0.94 / 0.024 (0.89 / 0.023), disentanglement 0.83 / 0.034 (0.83 / 0.023), completeness 0.94 / 0.028 (0.94 /
  0.021); downstream 1000-point mean test accuracy 0.81 / 0.030 (0.94 / 0.028). Full scale, one model, mean /
  sampled representation (reference; old setting): informativeness_test 0.404 / 0.304 (0.399 / 0.301; 0.415 /
  0.308), disentanglement 0.125 / 0.144 (0.092 / 0.100; 0.126 / 0.131), completeness 0.125 / 0.178 (0.097 / 0.138;
  0.127 / 0.171), informativeness_train 0.61 / 0.56 (0.71 / 0.66; 0.67 / 0.64). L2 1.0 or 3.0 fitted the training
  points less (informativeness_train 0.59 / 0.58 at full scale), learning rate 0.5 with L2 1.0 moved
  disentanglement further from the reference (0.160).
* Logistic regression. Standardising and one holdout changed which C small training sets get, so the 10- and
  100-point TRAIN accuracies disagreed with the reference (Spearman -1.0 for 100:mean_train_accuracy over six
  models); the reference predictor costs 0.4-0.6 s per factor there (per-iteration overhead of lbfgs, not data),
  so it is used as is below 1,000 points. At 1,000 points the holdout protocol ranks close to the reference
  (Spearman 0.83 mean test accuracy, max abs diff 0.017) for a fifth of the reference's cost; at 10,000 points the
  capped path (2,000 points) costs 0.44x the full holdout path with the same agreement (Spearman over six models:
  mean train 1.00, mean test 0.93; max abs diff 0.008 / 0.011, vs 0.94 / 0.94 and 0.005 / 0.005 uncapped).

Per-factor fits are independent tasks (:class:`FitTask`) run by :func:`fit_tasks`, serially or with joblib
processes. Parallel fitting gives the same numbers as serial fitting: the random state each reference GBT fit starts
from is computed up front by replaying the draws the previous fits make (:func:`advance_like_gbt`; one
``randint(0, 2**31 - 1)`` per tree, 100 trees per class for > 2 classes, 100 for 2 classes).

Deliberate fix (metrics/REFERENCE.md item 14): a factor with a single class among the training points makes every scikit-learn
classifier raise (and the reference metric crash). Here such a fit predicts that class for every point (accuracy =
fraction of points in that class), reports all-zero importances and draws no random numbers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

PREDICTOR_KINDS = ("reference", "fast")

#: Upper bound of the seed every scikit-learn tree draws from its random state (``RAND_R_MAX`` of the splitter).
_TREE_SEED_HIGH = np.iinfo(np.int32).max
_GBT_STAGES = 100
#: scikit-learn 1.9 announces default changes for these; pin today's meaning (pure L2 penalty; the fitted attributes
#: are not used). The split criterion of the GBT (friedman_mse, now deprecated as a parameter) is its only value.
_LR_CV_PINS = {"l1_ratios": (0.0,), "use_legacy_attributes": False}
#: The fast protocol's histogram GBT (chosen by measured cost and agreement; module docstring).
FAST_GBT_PARAMS = {"loss": "log_loss", "learning_rate": 0.3, "max_iter": 30, "max_leaf_nodes": 8, "max_depth": 3,
                   "min_samples_leaf": 1, "l2_regularization": 0.3, "max_bins": 255, "early_stopping": False,
                   "random_state": 0}
#: Below this many training points the fast protocol's logistic regression is the reference predictor.
FAST_LR_REFERENCE_BELOW = 1000
#: The fast logistic regression fits its regularisation path on at most this many points.
FAST_LR_PATH_POINTS = 2000


def check_kind(kind: str) -> str:
    """Validate a protocol kind (``"reference"`` or ``"fast"``)."""
    if kind not in PREDICTOR_KINDS:
        raise ValueError(f"unknown protocol kind {kind!r}; expected one of {', '.join(PREDICTOR_KINDS)}")
    return kind


def gradient_boosting_classifier(random_state: np.random.RandomState | int | None):
    """The reference's ``GradientBoostingClassifier()`` with every default spelled out and an explicit random state."""
    from sklearn.ensemble import GradientBoostingClassifier
    return GradientBoostingClassifier(
        loss="log_loss", learning_rate=0.1, n_estimators=_GBT_STAGES, subsample=1.0, min_samples_split=2, min_samples_leaf=1, max_depth=3, max_features=None, random_state=random_state)


def logistic_regression_cv():
    """The reference's ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` with its defaults pinned."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold
    return LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy", solver="lbfgs", max_iter=100,
                                tol=1e-4, fit_intercept=True, refit=True, **_LR_CV_PINS)


def fast_gradient_boosting_classifier():
    """Fast protocol: histogram gradient boosting shaped like the reference's trees, :data:`FAST_GBT_PARAMS`
    (see module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(**FAST_GBT_PARAMS)


def fast_logistic_regression_cv(num_points: int):
    """Fast protocol's logistic regression for ``num_points`` training points.

    Below :data:`FAST_LR_REFERENCE_BELOW` points it IS the reference predictor (:func:`logistic_regression_cv`).
    From there on: standardise, then choose C among the reference's 10 values on one holdout (the last fifth of the
    points, the reference's fifth fold), with the regularisation path fitted on at most
    :data:`FAST_LR_PATH_POINTS` points (the first ones), and refit on all points at the chosen C."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    num_points = int(num_points)
    if num_points < FAST_LR_REFERENCE_BELOW:
        return logistic_regression_cv()
    split = max(1, num_points - max(1, num_points // 5))
    indices = np.arange(num_points)
    cv = [(indices[:min(split, FAST_LR_PATH_POINTS)], indices[split:])]
    return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=cv, scoring="accuracy", solver="lbfgs",
                                                                max_iter=100, tol=1e-4, refit=True, **_LR_CV_PINS))


def gbt_num_trees(y_train: np.ndarray) -> int:
    """Number of regression trees the reference GBT fits on labels ``y_train`` (each draws one seed)."""
    num_classes = np.unique(np.asarray(y_train)).size
    if num_classes < 2:
        return 0
    return _GBT_STAGES * (num_classes if num_classes > 2 else 1)


def advance_like_gbt(random_state: np.random.RandomState, y_train: np.ndarray) -> None:
    """Consume from ``random_state`` exactly what fitting the reference GBT on ``y_train`` would consume."""
    for _ in range(gbt_num_trees(y_train)):
        random_state.randint(0, _TREE_SEED_HIGH)


def feature_importances(model, num_features: int) -> np.ndarray:
    """Importance per input feature ``(num_features,)``, summing to 1 (or all zero when no tree splits).

    Exact GBT: scikit-learn's impurity-based ``feature_importances_`` (absolute value, as the reference).
    Histogram GBT: total split gain per feature over all trees, normalised.
    """
    if hasattr(model, "feature_importances_"):
        return np.abs(np.asarray(model.feature_importances_, dtype=np.float64))
    gains = np.zeros(num_features, dtype=np.float64)
    for stage in model._predictors:  # list (iterations) of lists (trees per iteration) of TreePredictor
        for tree in stage:
            nodes = tree.nodes
            split = nodes["is_leaf"] == 0
            np.add.at(gains, nodes["feature_idx"][split], nodes["gain"][split])
    total = gains.sum()
    return gains / total if total > 0 else gains


@dataclass(frozen=True)
class FitTask:
    """One classifier fit: points are ROWS here (``x_train`` (N, D), ``y_train`` (N,), ``x_test`` (M, D), ``y_test``
    (M,)). ``predictor`` is ``"gradient_boosting"`` or ``"logistic_regression"``; ``kind`` the protocol;
    ``rng_state`` the ``RandomState.get_state()`` the reference GBT starts from (else None)."""
    predictor: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    rng_state: tuple | None = None
    want_importances: bool = False

    def cost(self) -> float:
        """Rough relative cost (points x classes), used only to schedule large fits first."""
        return float(len(self.y_train)) * max(1, np.unique(self.y_train).size)


@dataclass(frozen=True)
class FitResult:
    """Accuracies (fractions) on the training and test points, importances ``(D,)`` when requested, and the seconds
    the fit took in its worker. ``error`` ("ExceptionType: message") is set, and the rest empty, when the fit raised
    inside :func:`fit_tasks` with ``capture_errors=True``."""
    train_accuracy: float
    test_accuracy: float
    importances: np.ndarray | None
    seconds: float = 0.0
    error: str | None = None


def _make(task: FitTask):
    if task.predictor == "gradient_boosting":
        if task.kind == "fast":
            return fast_gradient_boosting_classifier()
        rs = np.random.RandomState()
        if task.rng_state is None:
            raise ValueError("a reference gradient-boosting fit needs the random state it starts from")
        rs.set_state(task.rng_state)
        return gradient_boosting_classifier(rs)
    if task.predictor == "logistic_regression":
        return fast_logistic_regression_cv(len(task.y_train)) if task.kind == "fast" else logistic_regression_cv()
    raise ValueError(f"unknown predictor {task.predictor!r}; expected 'gradient_boosting' or 'logistic_regression'")


def run_fit(task: FitTask) -> FitResult:
    """Fit one classifier and score it (accuracy = mean of ``predict == label``)."""
    check_kind(task.kind)
    classes = np.unique(task.y_train)
    num_features = task.x_train.shape[1]
    if classes.size == 1:  # metrics/REFERENCE.md item 14: constant predictor instead of a crash
        only = classes[0]
        return FitResult(float(np.mean(task.y_train == only)), float(np.mean(task.y_test == only)),
                         np.zeros(num_features) if task.want_importances else None)
    start = time.perf_counter()
    model = _make(task)
    model.fit(task.x_train, task.y_train)
    train_accuracy = float(np.mean(model.predict(task.x_train) == task.y_train))
    test_accuracy = float(np.mean(model.predict(task.x_test) == task.y_test))
    importances = feature_importances(model, num_features) if task.want_importances else None
    return FitResult(train_accuracy, test_accuracy, importances, time.perf_counter() - start)


def _run_fit_quietly(task: FitTask, capture_errors: bool = False) -> FitResult:
    import warnings
    with warnings.catch_warnings():
        # lbfgs hitting max_iter=100 is part of the reference protocol; don't flood the log with it.
        warnings.filterwarnings("ignore", message=".*lbfgs failed to converge.*")
        warnings.filterwarnings("ignore", message=".*The least populated class.*")
        warnings.filterwarnings("ignore", message=".*number of unique classes is greater than 50%.*")
        if not capture_errors:
            return run_fit(task)
        try:
            return run_fit(task)
        except Exception as exc:  # noqa: BLE001 - reported per task; the caller decides
            return FitResult(float("nan"), float("nan"), None, 0.0, f"{type(exc).__name__}: {exc}")


def fit_tasks(tasks: list[FitTask], n_jobs: int = 1, capture_errors: bool = False) -> list[FitResult]:
    """Run ``tasks`` and return their results in task order. ``n_jobs > 1`` uses that many joblib worker processes
    (largest fits dispatched first); the numbers do not depend on ``n_jobs``. With ``capture_errors`` a fit that
    raises gives a :class:`FitResult` with ``error`` set instead of raising."""
    n_jobs = int(n_jobs)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs}")
    if n_jobs == 1 or len(tasks) <= 1:
        return [_run_fit_quietly(t, capture_errors) for t in tasks]
    from joblib import Parallel, delayed
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].cost())
    results = Parallel(n_jobs=min(n_jobs, len(tasks)), backend="loky")(
        delayed(_run_fit_quietly)(tasks[i], capture_errors) for i in order)
    out: list[FitResult | None] = [None] * len(tasks)
    for i, r in zip(order, results):
        out[i] = r
    return out  # type: ignore[return-value]


def gbt_rng_states(y_trains: list[np.ndarray], gbt_seed: int) -> list[tuple]:
    """Starting random states of consecutive reference GBT fits on ``y_trains`` sharing one
    ``np.random.RandomState(gbt_seed)`` (in list order), as if fitted one after another."""
    rs = np.random.RandomState(int(gbt_seed))
    states = []
    for y in y_trains:
        states.append(rs.get_state())
        advance_like_gbt(rs, y)
    return states
