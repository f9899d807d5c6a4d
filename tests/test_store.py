"""The results store: schema contract, round trips, transactions, migration, foreign files, stale-driver reset."""
from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys

import pytest

from training.errors import UserError
from training.store import SCHEMA_VERSION, RunOutcome, RunRecord, Store

CONTRACT = {
    "meta": ["key", "value"],
    "runs": ["run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "config",
             "status", "error", "source", "train_seconds", "eval_seconds", "created_at", "updated_at"],
    "train_results": ["run_id", "key", "value"],
    "scores": ["run_id", "representation", "metric", "key", "value"],
}


def _run(i: int, **kw) -> RunRecord:
    base = dict(run_id=f"r{i}", study="t", dataset="dsprites_full", method="beta_vae", hparam_name="beta",
                hparam_value=float(i), seed=i % 3, config={"i": i}, model_num=i)
    base.update(kw)
    return RunRecord(**base)


def _outcome(i: int) -> RunOutcome:
    return RunOutcome(run_id=f"r{i}", train_results={"loss": 1.5 * i, "elbo": -2.0, "bad": float("nan")},
                      scores={("mean", "mig"): {"discrete_mig": 0.1 * i, "nan_key": float("nan"), "uuid": "abc"},
                              ("sampled", "mig"): {"discrete_mig": 0.05 * i}},
                      evaluations={("mean", "mig"): (0.5, None), ("sampled", "mig"): (0.25, "boom")},
                      provenance={"threads": "1", "cpu_capability": "AVX2", "commit": f"c{i}"},
                      train_seconds=3.0, eval_seconds=0.75)


def test_schema_contract_and_pragmas(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path):
        pass
    conn = sqlite3.connect(path)
    for table, columns in CONTRACT.items():
        got = [r[1] for r in conn.execute(f"PRAGMA table_info('{table}')")]
        assert got[:len(columns)] == columns
    pk = {r[1]: r[5] for r in conn.execute("PRAGMA table_info('scores')")}
    assert [k for k, v in sorted(pk.items(), key=lambda kv: kv[1]) if v] == ["run_id", "representation", "metric",
                                                                              "key"]
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"evaluations", "studies", "drivers", "provenance"} <= {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}


def test_round_trip_with_plain_sql(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        assert store.add_runs([_run(1), _run(2)]) == 2
        assert store.add_runs([_run(1), _run(3)]) == 1  # existing ids are kept, not duplicated
        store.record_outcome(_outcome(1))
        store.record_outcome(RunOutcome(run_id="r2", error="TrainingDivergedError: loss is nan"))
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT run_id, status FROM runs"))
    assert rows == {"r1": "done", "r2": "failed", "r3": "pending"}
    assert conn.execute("SELECT error FROM runs WHERE run_id='r2'").fetchone()[0].startswith("TrainingDiverged")
    scores = {(r, m, k): v for r, m, k, v in conn.execute(
        "SELECT representation, metric, key, value FROM scores WHERE run_id='r1'")}
    assert scores[("mean", "mig", "discrete_mig")] == pytest.approx(0.1)
    assert scores[("sampled", "mig", "discrete_mig")] == pytest.approx(0.05)
    assert scores[("mean", "mig", "nan_key")] is None  # NaN -> NULL
    assert ("mean", "mig", "uuid") not in scores  # strings are not scores
    train = dict(conn.execute("SELECT key, value FROM train_results WHERE run_id='r1'"))
    assert train == {"loss": 1.5, "elbo": -2.0, "bad": None}
    assert conn.execute("SELECT train_seconds, eval_seconds FROM runs WHERE run_id='r1'").fetchone() == (3.0, 0.75)
    ev = {(r, m): (s, e) for r, m, s, e in conn.execute("SELECT representation, metric, seconds, error"
                                                         " FROM evaluations WHERE run_id='r1'")}
    assert ev == {("mean", "mig"): (0.5, None), ("sampled", "mig"): (0.25, "boom")}
    assert dict(conn.execute("SELECT key, value FROM provenance WHERE run_id='r1'")) == {
        "threads": "1", "cpu_capability": "AVX2", "commit": "c1"}
    # Recording again replaces, never duplicates.
    with Store(path) as store:
        store.record_outcome(_outcome(1))
    assert conn.execute("SELECT COUNT(*) FROM scores WHERE run_id='r1'").fetchone()[0] == 3


def test_add_results_adds_rows_and_leaves_the_rest_of_the_run(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_runs([_run(1)])
        store.record_outcome(_outcome(1))
        before = sorted(store.conn.execute("SELECT * FROM scores").fetchall())
        run_before = store.conn.execute("SELECT * FROM runs").fetchall()
        later = RunOutcome(run_id="r1", scores={("rotated", "mig"): {"discrete_mig": 0.01},
                                                ("mean", "udr"): {"udr": float("nan")}},
                           evaluations={("rotated", "mig"): (2.0, None), ("mean", "udr"): (1.0, "ValueError: x")})
        store.add_results(later)
        store.add_results(later)                                             # again: replaces, never duplicates
        after = sorted(store.conn.execute("SELECT * FROM scores").fetchall())
        assert store.conn.execute("SELECT * FROM runs").fetchall() == run_before
        assert after == sorted(before + [("r1", "rotated", "mig", "discrete_mig", 0.01),
                                         ("r1", "mean", "udr", "udr", None)])
        ev = dict(((r, m), (sec, e)) for r, m, sec, e in store.conn.execute(
            "SELECT representation, metric, seconds, error FROM evaluations"))
        assert ev[("rotated", "mig")] == (2.0, None) and ev[("mean", "udr")] == (1.0, "ValueError: x")
        assert ev[("sampled", "mig")] == (0.25, "boom")                      # the run's own rows are kept


def test_failed_transaction_leaves_no_half_written_run(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_runs([_run(1)])
        bad = _outcome(1)
        bad.evaluations[("mean", "dci")] = "not a pair"  # fails after scores and train_results were written
        with pytest.raises(ValueError):
            store.record_outcome(bad)
        assert store.run_status(["r1"]) == {"r1": "pending"}
        assert store.conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0
        assert store.conn.execute("SELECT COUNT(*) FROM train_results").fetchone()[0] == 0


def test_foreign_files_give_one_line_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database\n" * 50)
    with pytest.raises(UserError, match="not a dstudy results store") as info:
        Store(text)
    assert "\n" not in str(info.value)
    assert text.read_text().startswith("hello")  # untouched
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things(a)")
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="no table runs, train_results, scores"):
        Store(other)
    with pytest.raises(UserError, match="no results store"):
        Store(tmp_path / "absent.sqlite", create=False)
    with pytest.raises(UserError, match="directory"):
        Store(tmp_path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(UserError, match="newer"):
        Store(path)


def test_migration_from_version_1_keeps_data(tmp_path):
    """A store written by another tool that follows the store contract (version 1) is read and migrated."""
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE runs(run_id TEXT PRIMARY KEY, study TEXT NOT NULL, model_num INTEGER, dataset TEXT NOT NULL,
            method TEXT NOT NULL, hparam_name TEXT NOT NULL, hparam_value REAL NOT NULL, seed INTEGER NOT NULL,
            config TEXT NOT NULL, status TEXT NOT NULL, error TEXT, source TEXT NOT NULL, train_seconds REAL,
            eval_seconds REAL, created_at TEXT, updated_at TEXT);
        CREATE TABLE train_results(run_id TEXT, key TEXT, value REAL, PRIMARY KEY (run_id, key));
        CREATE TABLE scores(run_id TEXT, representation TEXT, metric TEXT, key TEXT, value REAL,
            PRIMARY KEY (run_id, representation, metric, key));
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO runs VALUES ('a', 'old', 7, 'dsprites_full', 'beta_vae', 'beta', 1.0, 7, '{}', 'done', NULL,
            'trained', 1.0, 2.0, NULL, NULL);
        INSERT INTO scores VALUES ('a', 'mean', 'mig', 'discrete_mig', 0.25);
    """)
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        runs = store.runs()
        assert runs[0]["run_id"] == "a" and runs[0]["attempts"] == 0
        assert store.conn.execute("SELECT value FROM scores").fetchone()[0] == 0.25
        store.record_outcome(_outcome(1))  # version-2 and version-3 tables exist
        assert store.provenance() == {"r1": {"threads": "1", "cpu_capability": "AVX2", "commit": "c1"}}


def test_readonly_open_does_not_migrate(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_runs([_run(1)])
    with Store(path, readonly=True) as store:
        assert store.run_status(["r1"]) == {"r1": "pending"}
        with pytest.raises(sqlite3.OperationalError):
            store.add_runs([_run(2)])


def test_reset_stale_only_touches_dead_drivers(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_runs([_run(i) for i in range(4)])
        me = store.register_driver()
        store.mark_running(["r0", "r1"], me)
        # A driver process that existed and is gone now.
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        dead = f"{os.uname().nodename}:{child.pid}:0"
        store.conn.execute("INSERT INTO drivers VALUES (?, ?, ?, 'x', ?)",
                           (dead, __import__("socket").gethostname(), child.pid, __import__("time").time()))
        store.mark_running(["r2"], dead)
        # A driver on another host whose heartbeat stopped long ago.
        store.conn.execute("INSERT INTO drivers VALUES ('far:1:0', 'far-away-host', 1, 'x', 0.0)")
        store.mark_running(["r3"], "far:1:0")
        assert store.reset_stale(stale_after=600) == 2
        assert store.run_status([f"r{i}" for i in range(4)]) == {"r0": "running", "r1": "running",
                                                                 "r2": "pending", "r3": "pending"}
        store.release(["r0"])
        assert store.run_status(["r0"]) == {"r0": "pending"}


def test_progress_and_status_table(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add_runs([_run(i) for i in range(3)])
        store.record_outcome(_outcome(0))
        store.record_outcome(_outcome(1))
        p = store.progress()
        assert p["mean_run_seconds"] == pytest.approx(3.75)
        assert store.status_table() == [("dsprites_full", "beta_vae", "done", 2),
                                        ("dsprites_full", "beta_vae", "pending", 1)]
        assert math.isclose(p["mean_train_seconds"], 3.0)


# ------------------------------------------------------------------------------------ damaged and read-only stores
def _filled_store(path, runs=400):
    """A store of ``runs`` done runs with ~60 scores each (a few MB: many pages to damage)."""
    with Store(path) as store:
        store.add_runs([_run(i) for i in range(runs)])
        for i in range(runs):
            store.record_outcome(RunOutcome(run_id=f"r{i}", train_results={"loss": float(i)},
                                            scores={("mean", "dci"): {f"k{j}": j / (i + 1) for j in range(60)}},
                                            provenance={"threads": "1"}))
    return path


def _cli(args, capsys):
    from training.cli import main
    code = main(args)
    return code, capsys.readouterr().err.strip()


def test_a_store_damaged_in_the_middle_is_refused_by_every_command_and_left_as_it_was(tmp_path, capsys):
    path = _filled_store(tmp_path / "s.sqlite")
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # 50 KB of noise in the middle of a valid store
        fh.seek(size // 2)
        fh.write(os.urandom(50_000))
    damaged = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(UserError, match="is damaged") as info:
            Store(path, readonly=readonly)
        assert "\n" not in str(info.value) and ".recover" in str(info.value)
    from analysis.load import check_store
    with pytest.raises(UserError, match="is damaged"):
        check_store(path)
    (tmp_path / "study.toml").write_text('name = "t"\ndatasets = ["dsprites_full"]\nseeds = [0]\nsteps = 2\n'
                                         'batch_size = 4\n[methods]\nbeta_vae = [1.0]\n')
    for args in (["status"], ["sweep", str(tmp_path / "study.toml")], ["report", "--out", str(tmp_path / "r")]):
        code, err = _cli([args[0], "--store", str(path), *args[1:]], capsys)
        assert code == 2 and err.startswith("dstudy: error: the results store") and "damaged" in err, (args, err)
        assert "\n" not in err and "Traceback" not in err
    assert path.read_bytes() == damaged  # nothing was written
    assert not (tmp_path / "r").exists()


def test_a_store_in_a_read_only_folder_is_read_by_status_and_refused_with_that_reason_by_sweep(tmp_path):
    from helpers import readonly

    folder = tmp_path / "ro"
    folder.mkdir()
    path = _filled_store(folder / "s.sqlite", runs=3)  # WAL mode, as every store this package writes
    (tmp_path / "study.toml").write_text('name = "t"\ndatasets = ["dsprites_full"]\nseeds = [0]\nsteps = 2\n'
                                         'batch_size = 4\n[methods]\nbeta_vae = [1.0]\n')
    status = readonly.run_cli_in_readonly_folder(folder, ["status", "--store", str(path)])
    if status is None:
        pytest.skip("this machine cannot make a folder read-only for a root process")
    assert status.returncode == 0, status.stderr
    assert "3/3 runs done" in status.stdout
    sweep = readonly.run_cli_in_readonly_folder(folder, ["sweep", str(tmp_path / "study.toml"), "--store", str(path)])
    assert sweep.returncode == 2 and sweep.stderr.count("\n") == 1, sweep.stderr
    assert "is read-only here" in sweep.stderr and "Traceback" not in sweep.stderr
    report = readonly.run_cli_in_readonly_folder(folder, ["report", "--store", str(path), "--out", str(folder / "r")])
    assert report.returncode == 2 and report.stderr.startswith("dstudy: error: cannot write the report to")
    assert report.stderr.count("\n") == 1, report.stderr


def test_report_to_an_unwritable_place_is_one_line_and_creates_nothing(tmp_path, capsys):
    path = _filled_store(tmp_path / "s.sqlite", runs=3)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = _cli(["report", "--store", str(path), "--out", str(blocker / "report")], capsys)
    assert code == 2 and err.startswith("dstudy: error: cannot write the report to") and "\n" not in err


def test_an_unreachable_scheduler_creates_no_store(tmp_path, monkeypatch):
    import distributed

    from training.study.driver import sweep
    from training.study.definition import parse_study

    def refuse(address, timeout=None):
        raise OSError(f"Timed out trying to connect to {address}")

    monkeypatch.setattr(distributed, "Client", refuse)
    study = parse_study('name = "t"\ndatasets = ["dsprites_full"]\nseeds = [0]\nsteps = 2\nbatch_size = 4\n'
                        '[methods]\nbeta_vae = [1.0]\n')
    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        sweep(study, tmp_path / "s.sqlite", scheduler="tcp://127.0.0.1:9", progress=False)
    assert not (tmp_path / "s.sqlite").exists()
