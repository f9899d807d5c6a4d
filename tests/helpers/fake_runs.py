"""Cheap, deterministic stand-ins for the real run function, used by the sweep tests and the driver benchmark.

They take and return exactly what :func:`training.study.worker.execute_pack` does, so the driver, the Dask path and the
store are exercised for real; only training and evaluation are replaced by arithmetic on the run config.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from training.store import RunOutcome
from training.study.definition import run_id as config_run_id

FAIL_VALUE = 99.0  # a hyperparameter value whose runs always fail


def fake_scores(config: dict) -> dict[tuple[str, str], dict[str, float]]:
    """Scores that are a pure function of the run config (seeded by its run id)."""
    rng = np.random.RandomState(int(config_run_id(config)[:8], 16))
    out = {}
    for rep in config["protocol"]["representations"]:
        for ev in config["protocol"]["evaluations"]:
            out[(rep, ev)] = {"score_a": float(rng.uniform()), "score_b": float(rng.normal())}
    return out


def fake_pack(pack, device=None, threads=None, artifacts_dir=None, *, delay=0.0, log=None):
    """Returns one outcome per run; hparam value FAIL_VALUE raises a run error; ``log`` (a folder) gets one file
    per execution, named ``<run_id>.<pid>.<time>``, so tests can count how often each run was computed."""
    outcomes = []
    for item in pack:
        cfg = item["config"]
        if log:
            Path(log, f"{item['run_id']}.{os.getpid()}.{time.time_ns()}").touch()
        if delay:
            time.sleep(delay)
        value = next(iter(cfg["hparams"].values()))
        if value == FAIL_VALUE:
            outcomes.append(RunOutcome(run_id=item["run_id"], error="ValueError: synthetic failure"))
            continue
        outcomes.append(RunOutcome(run_id=item["run_id"], train_results={"loss": float(value), "elbo": -float(value)},
                                   scores=fake_scores(cfg),
                                   evaluations={k: (0.01, None) for k in fake_scores(cfg)},
                                   train_seconds=0.001, eval_seconds=0.002))
    return outcomes


def crash_once_pack(pack, device=None, threads=None, artifacts_dir=None, *, marker):
    """Kills its worker process the first time any worker runs it (``marker`` file absent), then behaves."""
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return fake_pack(pack)
