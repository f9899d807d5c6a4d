"""The sweep driver on Dask: end to end, resumability, retries, packs, lost workers, kill -9 of the driver.

Training and evaluation are replaced by the cheap deterministic run functions of ``test_sweep_fake`` (same
signature and return type as ``training.study.worker.execute_pack``), so everything else runs for real: the study
expansion, the LocalCluster worker processes, the driver's bookkeeping and the SQLite store.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.fake_runs import FAIL_VALUE, crash_once_pack, fake_pack, fake_scores
from training.cli import main as cli_main
from training.study.driver import make_packs, sweep
from training.study.definition import parse_study

TESTS = Path(__file__).resolve().parent
SOURCES = {"dsprites_full": {"kind": "fake"}, "color_dsprites": {"kind": "fake"}}
STUDY = """
name = "tiny"
datasets = ["dsprites_full", "color_dsprites"]
seeds = [0, 1]
steps = 5
batch_size = 8
[methods]
beta_vae = [1.0, 4.0]
factor_vae = [10.0]
[protocol]
evaluations = ["mig", "sap_score"]
"""


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster (2 worker processes on 127.0.0.1) shared by the tests of this module."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as c:
        yield c


def _store_contents(path: Path) -> dict:
    conn = sqlite3.connect(path)
    runs = {r[0]: r[1:] for r in conn.execute("SELECT run_id, status, error, dataset, method, hparam_value, seed"
                                              " FROM runs")}
    scores = sorted(conn.execute("SELECT run_id, representation, metric, key, value FROM scores"))
    conn.close()
    return {"runs": runs, "scores": scores}


def test_tiny_study_end_to_end_and_resumable(cluster, tmp_path):
    store = tmp_path / "s.sqlite"
    study = parse_study(STUDY)
    summary = sweep(study, store, scheduler=cluster.scheduler_address, run_fn=fake_pack, data_sources=SOURCES,
                    progress=False)
    assert summary.ok and summary.total == summary.done == 12 and summary.already_done == 0
    contents = _store_contents(store)
    assert {v[0] for v in contents["runs"].values()} == {"done"}
    # Scores in the store are exactly what the workers computed for each run's config.
    expected = []
    for run in study.runs(SOURCES):
        for (rep, metric), values in fake_scores(run.config).items():
            expected.extend((run.run_id, rep, metric, k, v) for k, v in values.items())
    assert contents["scores"] == sorted(expected)
    assert len(expected) == 12 * 2 * 2 * 2
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT COUNT(*) FROM train_results").fetchone()[0] == 24
    assert conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 48
    assert conn.execute("SELECT name FROM studies").fetchall() == [("tiny",)]
    assert conn.execute("SELECT COUNT(*) FROM drivers").fetchone()[0] == 0  # the driver unregistered
    conn.close()
    # Again: nothing to compute.
    again = sweep(study, store, scheduler=cluster.scheduler_address, run_fn=fake_pack, data_sources=SOURCES,
                  progress=False)
    assert again.already_done == 12 and again.done == 0
    assert _store_contents(store) == contents
    # An edited study (one more seed) computes only the new runs.
    more = parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    log = tmp_path / "log"
    log.mkdir()
    third = sweep(more, store, scheduler=cluster.scheduler_address, data_sources=SOURCES, progress=False,
                  run_fn=functools.partial(fake_pack, log=str(log)))
    assert third.already_done == 12 and third.done == 6
    assert len(list(log.iterdir())) == 6


def test_failing_runs_are_retried_then_marked_failed(cluster, tmp_path):
    store = tmp_path / "s.sqlite"
    study = parse_study(STUDY.replace("factor_vae = [10.0]", f"factor_vae = [10.0, {FAIL_VALUE}]"))
    log = tmp_path / "log"
    log.mkdir()
    summary = sweep(study, store, scheduler=cluster.scheduler_address, data_sources=SOURCES, progress=False,
                    retries=2, run_fn=functools.partial(fake_pack, log=str(log)))
    assert not summary.ok and summary.done == 12 and len(summary.failed) == 4
    assert all(e == "ValueError: synthetic failure" for e in summary.failed.values())
    assert any("4 failed" in line for line in summary.lines())
    conn = sqlite3.connect(store)
    failed = conn.execute("SELECT run_id, error, attempts FROM runs WHERE status = 'failed'").fetchall()
    assert {r[0] for r in failed} == set(summary.failed) and {r[2] for r in failed} == {3}
    executions = [p.name.split(".")[0] for p in log.iterdir()]
    for rid in summary.failed:
        assert executions.count(rid) == 3  # first attempt + 2 retries
    assert len(executions) == 12 + 4 * 3
    conn.close()


def test_packs_group_compatible_runs_and_store_stays_per_run(cluster, tmp_path):
    study = parse_study(STUDY)
    items = [{"run_id": r.run_id, "config": r.config} for r in study.runs(SOURCES)]
    packs = make_packs(items, 3)
    # per dataset: beta_vae has 4 runs -> packs of 3 + 1; factor_vae has 2 -> one pack of 2
    assert sorted(len(p) for p in packs) == [1, 1, 2, 2, 3, 3]
    for p in packs:
        keys = {(i["config"]["dataset"], i["config"]["method"]) for i in p}
        assert len(keys) == 1
    assert sorted(i["run_id"] for p in packs for i in p) == sorted(i["run_id"] for i in items)
    store = tmp_path / "s.sqlite"
    summary = sweep(study, store, scheduler=cluster.scheduler_address, run_fn=fake_pack, data_sources=SOURCES,
                    progress=False, pack=4)
    assert summary.ok and summary.done == 12
    reference = tmp_path / "r.sqlite"
    sweep(study, reference, scheduler=cluster.scheduler_address, run_fn=fake_pack, data_sources=SOURCES,
          progress=False, pack=1)
    assert _store_contents(store)["scores"] == _store_contents(reference)["scores"]


def test_lost_worker_is_resubmitted(cluster, tmp_path):
    store = tmp_path / "s.sqlite"
    study = parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"))
    run_fn = functools.partial(crash_once_pack, marker=str(tmp_path / "crashed"))
    summary = sweep(study, store, scheduler=cluster.scheduler_address, run_fn=run_fn, data_sources=SOURCES,
                    progress=False, retries=0)
    assert (tmp_path / "crashed").exists()  # a worker really died mid-task
    assert summary.ok and summary.done == 6
    assert {v[0] for v in _store_contents(store)["runs"].values()} == {"done"}


DRIVER_SCRIPT = """
import functools, sys
sys.path.insert(0, {tests!r})
from helpers.fake_runs import fake_pack
from training.study.driver import sweep
from training.study.definition import load_study

if __name__ == "__main__":
    run_fn = functools.partial(fake_pack, delay=0.4, log={log!r})
    sweep(load_study({study!r}), {store!r}, workers=2, run_fn=run_fn, data_sources={sources!r}, progress=False)
"""


def test_kill_9_of_the_driver_then_resume(cluster, tmp_path):
    """kill -9 the driver mid-sweep; a new sweep resets its stale rows and finishes: nothing lost or duplicated,
    runs finished before the kill are not recomputed."""
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3]"))  # 24 runs
    store, log1, log2 = tmp_path / "s.sqlite", tmp_path / "log1", tmp_path / "log2"
    log1.mkdir()
    log2.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER_SCRIPT.format(tests=str(TESTS), log=str(log1), study=str(study_file), store=str(store),
                                           sources=SOURCES))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        done_before = 0
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if store.exists():
                try:
                    conn = sqlite3.connect(store, timeout=5)
                    done_before = conn.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
                    conn.close()
                except sqlite3.OperationalError:
                    continue
                if done_before >= 4:
                    break
        assert proc.poll() is None, "the driver ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the dead driver's LocalCluster worker processes
        except ProcessLookupError:
            pass
    before = _store_contents(store)
    statuses = [v[0] for v in before["runs"].values()]
    assert statuses.count("running") >= 1 and 4 <= statuses.count("done") < 24
    done_ids = {rid for rid, v in before["runs"].items() if v[0] == "done"}
    done_scores = [s for s in before["scores"] if s[0] in done_ids]
    # No half-written run: every stored score belongs to a run marked done, 8 per run.
    assert {s[0] for s in before["scores"]} == done_ids and len(before["scores"]) == 8 * len(done_ids)

    summary = sweep(parse_study(study_file.read_text()), store, scheduler=cluster.scheduler_address,
                    data_sources=SOURCES, progress=False, run_fn=functools.partial(fake_pack, log=str(log2)))
    assert summary.ok and summary.reset_stale == statuses.count("running")
    after = _store_contents(store)
    assert len(after["runs"]) == 24 and {v[0] for v in after["runs"].values()} == {"done"}
    assert len(after["scores"]) == 24 * 8
    recomputed = {p.name.split(".")[0] for p in log2.iterdir()}
    assert not recomputed & done_ids and recomputed | done_ids == set(after["runs"])
    assert [s for s in after["scores"] if s[0] in done_ids] == done_scores


@pytest.mark.slow  # ~15 s: starts a scheduler and a worker process from the command line
def test_dask_scheduler_and_worker_on_loopback_give_the_local_scores(cluster, tmp_path):
    """A real `dask scheduler` + `dask worker` (127.0.0.1) computes the same store as the local cluster."""
    study = parse_study(STUDY)
    local = tmp_path / "local.sqlite"
    sweep(study, local, scheduler=cluster.scheduler_address, run_fn=fake_pack, data_sources=SOURCES, progress=False)
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen(["dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                       "--nworkers", "1", "--no-dashboard"], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=60)
        remote = tmp_path / "remote.sqlite"
        summary = sweep(study, remote, scheduler=address, run_fn=fake_pack, data_sources=SOURCES, progress=False)
        assert summary.ok and summary.done == 12
        assert _store_contents(remote) == _store_contents(local)
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert cli_main(["sweep", "no-such-thing", "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study file or preset 'no-such-thing'" in err
    assert cli_main(["run", "--preset", "no-such-thing", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert cli_main(["status", "--store", str(tmp_path / "absent.sqlite")]) == 2
    assert "no results store" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    assert cli_main(["sweep", str(bad), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "missing required key 'datasets'" in capsys.readouterr().err


def test_cli_status_reports_counts_throughput_and_eta(cluster, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    study = parse_study(STUDY.replace("factor_vae = [10.0]", f"factor_vae = [10.0, {FAIL_VALUE}]"))
    sweep(study, store, scheduler=cluster.scheduler_address, run_fn=fake_pack, data_sources=SOURCES,
          progress=False, retries=0)
    conn = sqlite3.connect(store)
    conn.execute("UPDATE runs SET status = 'pending' WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'done'"
                 " LIMIT 2)")
    conn.commit()
    conn.close()
    assert cli_main(["status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines() if line.startswith(("dsprites",
                                                                                                       "color"))}
    assert sum(int(r[2]) for r in rows.values()) == 10 and sum(int(r[3]) for r in rows.values()) == 4
    assert "throughput:" in out and "ETA:" in out and "synthetic failure" in out


def test_model_num_selects_exactly_the_reference_model(cluster, tmp_path):
    """`sweep paper --model-num 300`: one run, the reference's model 300; only its dataset is looked at."""
    from training.study.definition import load_study

    store = tmp_path / "s.sqlite"
    summary = sweep(load_study("paper"), store, scheduler=cluster.scheduler_address, run_fn=fake_pack,
                    data_sources={"dsprites_full": {"kind": "fake"}}, progress=False, model_num=300)
    assert summary.ok and summary.total == summary.done == 1
    conn = sqlite3.connect(store)
    row = conn.execute("SELECT model_num, dataset, method, hparam_value, seed, config FROM runs").fetchall()
    conn.close()
    assert len(row) == 1 and row[0][:5] == (300, "dsprites_full", "factor_vae", 10.0, 0)
    config = json.loads(row[0][5])
    assert config["steps"] == 300000 and config["batch_size"] == 64 and config["protocol"]["scale"] == 1.0
    assert cli_main(["sweep", "paper", "--model-num", "12600", "--store", str(store)]) == 2


@pytest.mark.slow  # ~15 s each: a driver subprocess with its own LocalCluster
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_hands_back_running_runs_and_leaves_no_half_written_run(cluster, tmp_path, how):
    """Ctrl-C (SIGINT to the terminal's process group) or SIGTERM to the driver (``timeout``, a batch scheduler)."""
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3]"))  # 24 runs
    store, log = tmp_path / "s.sqlite", tmp_path / "log"
    log.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER_SCRIPT.format(tests=str(TESTS), log=str(log), study=str(study_file), store=str(store),
                                           sources=SOURCES))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if len(list(log.iterdir())) >= 4:
                break
        assert proc.poll() is None
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        else:
            os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        assert b"KeyboardInterrupt" in err
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    contents = _store_contents(store)
    statuses = [v[0] for v in contents["runs"].values()]
    assert "running" not in statuses and statuses.count("pending") >= 1
    done_ids = {rid for rid, v in contents["runs"].items() if v[0] == "done"}
    assert {s[0] for s in contents["scores"]} == done_ids and len(contents["scores"]) == 8 * len(done_ids)
    summary = sweep(parse_study(study_file.read_text()), store, scheduler=cluster.scheduler_address,
                    run_fn=fake_pack, data_sources=SOURCES, progress=False)
    assert summary.ok and summary.reset_stale == 0 and summary.already_done == len(done_ids)
    assert len(_store_contents(store)["scores"]) == 24 * 8


def test_default_pack_is_per_device():
    from training.study.driver import CUDA_PACK, default_pack
    assert default_pack("cpu") == 1
    assert default_pack("cuda") == CUDA_PACK == default_pack("cuda:1")
    import torch
    assert default_pack(None) == (CUDA_PACK if torch.cuda.is_available() else 1)
