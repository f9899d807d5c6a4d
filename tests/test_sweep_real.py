"""Real (tiny) training and evaluation through the sweep: the local pool and a `dask scheduler` + `dask worker` on
loopback give the same stored numbers; the default run function fills every table of the store."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from training.study.driver import sweep
from training.study.definition import parse_study

pytestmark = pytest.mark.slow  # real training + evaluation in worker processes: minutes on a busy 2-core machine

TINY = """
name = "tiny-real"
notes = "five training steps"
datasets = ["dsprites_full"]
seeds = [0]
steps = 5
batch_size = 8
[methods]
beta_vae = [1.0]
factor_vae = [10.0]
[protocol]
scale = 0.002
evaluations = ["mig", "sap_score", "unsupervised"]
kind = "fast"
[training]
num_eval_samples = 64
"""


def _numbers(path):
    conn = sqlite3.connect(path)
    out = (sorted(conn.execute("SELECT run_id, representation, metric, key, value FROM scores")),
           # wall-clock timings differ from run to run; every other number must be identical
           sorted(r for r in conn.execute("SELECT run_id, key, value FROM train_results")
                  if not r[1].endswith(("seconds", "elapsed_time"))),
           sorted(conn.execute("SELECT run_id, status, error FROM runs")))
    conn.close()
    return out


def test_real_tiny_study_local_and_on_a_loopback_cluster(tmp_path):
    study = parse_study(TINY)
    local = tmp_path / "local.sqlite"
    # the driver decides every run's torch threads: one here, as the cluster's default below
    summary = sweep(study, local, workers=1, threads=1, progress=False)
    assert summary.ok, summary.failed
    scores, train, runs = _numbers(local)
    assert [r[1] for r in runs] == ["done", "done"]
    assert {(s[1], s[2]) for s in scores} == {(r, m) for r in ("mean", "sampled")
                                              for m in ("mig", "sap_score", "unsupervised")}
    assert {"discrete_mig", "SAP_score", "gaussian_total_correlation"} <= {s[3] for s in scores}
    assert {"reconstruction_loss", "kl_loss", "elbo"} <= {t[1] for t in train}
    conn = sqlite3.connect(local)
    assert conn.execute("SELECT COUNT(*) FROM evaluations WHERE error IS NULL").fetchone()[0] == 12
    assert conn.execute("SELECT MIN(train_seconds) > 0, MIN(eval_seconds) > 0 FROM runs").fetchone() == (1, 1)
    conn.close()

    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 120
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen(["dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                       "--nworkers", "2", "--no-dashboard"], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        remote = tmp_path / "remote.sqlite"
        summary = sweep(study, remote, scheduler=address, progress=False)
        assert summary.ok, summary.failed
        assert _numbers(remote) == _numbers(local)
        for path in (local, remote):
            conn = sqlite3.connect(path)
            threads = {v for (v,) in conn.execute("SELECT value FROM provenance WHERE key = 'threads'")}
            counted = conn.execute("SELECT COUNT(DISTINCT run_id) FROM provenance").fetchone()[0]
            conn.close()
            assert threads == {"1"} and counted == 2
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
