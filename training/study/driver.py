"""The sweep driver: computes a study's missing runs on Dask (a LocalCluster or an existing cluster) and is the
single writer of the results store.

Protocol (per run): ``pending`` -> ``running`` (when its pack is submitted, tagged with this driver's id) ->
``done`` (one transaction: train_results, scores, evaluations and the status together) or, after ``retries`` failed
retries, ``failed`` with its error. Workers only compute and return :class:`~training.store.RunOutcome` objects.

Robustness:

* Ctrl-C: a transaction in progress rolls back; the runs this driver had in flight go back to ``pending``.
* kill -9 of the driver: its rows stay ``running``; the next sweep sees that the driver is gone (its process no longer
  exists on this host, or its heartbeat is stale) and resets them to ``pending``; finished runs are never redone and
  never duplicated (run ids are primary keys).
* a lost worker: Dask reschedules its tasks on the remaining workers (``distributed.scheduler.allowed-failures``);
  if Dask gives up (``KilledWorker``), that counts as a failed attempt of each run of the pack and is retried.

On a cluster, the store stays with the driver (workers never open it); workers need dstudy installed and the
dataset files where ``training.data`` looks for them (``$DSTUDY_DATA``). Plain Dask::

    dask scheduler --port 8786                        # on the head node
    dask worker tcp://HEAD:8786 --nthreads 1          # on every compute node (e.g. via srun)
    dstudy sweep paper --scheduler tcp://HEAD:8786 --device cuda

or a SLURM allocation through dask-jobqueue, started from Python, then the same ``dstudy sweep --scheduler``::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=4, processes=1, memory="16GB", walltime="24:00:00",
                           job_extra_directives=["--gres=gpu:1"])
    cluster.scale(jobs=32)
    print(cluster.scheduler_address)
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from training.errors import UserError
from training.study.worker import error_text
from training.store import DEFAULT_STORE, RunOutcome, Store
from training.study.definition import Study, select_model_num

RunFn = Callable[..., list]  # (pack: list[dict], device, threads, artifacts_dir) -> list[RunOutcome]


@dataclass
class SweepSummary:
    """What a sweep did. ``failed`` maps run_id -> error of the runs that ended ``failed``."""

    total: int = 0
    already_done: int = 0
    busy_elsewhere: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    reset_stale: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        out = [f"sweep: {self.total} runs in the study: {self.already_done} already done, {self.done} computed now,"
               f" {len(self.failed)} failed" + (f", {self.busy_elsewhere} running under another live driver"
                                                 if self.busy_elsewhere else "")
               + f" ({self.seconds:.1f} s)"]
        if self.reset_stale:
            out.append(f"sweep: reset {self.reset_stale} stale 'running' runs of a driver that is gone")
        for rid, err in list(self.failed.items())[:20]:
            out.append(f"  failed {rid}: {err}")
        if len(self.failed) > 20:
            out.append(f"  ... and {len(self.failed) - 20} more (see `dstudy status`)")
        return out


#: runs per pack on a CUDA device when --pack is not given. Measured on an H200 (beta_vae, bf16, impl "gemm";
#: benchmarks/measured/2026-11-28-h200/): the first gemm reached 3,665 model-steps/s at K = 64, 92 % of its best
#: (3,994 at K = 512); the final one 5,019 at K = 128 (20 GiB peak) and 5,186 at K = 512. So 64 keeps ~90 % of the
#: speed with a fraction of the memory (it fits smaller GPUs, and fp32) and fewer runs waiting on each other; on a
#: large GPU pass ``--pack 512``.
CUDA_PACK = 64


def default_pack(device: str | None) -> int:
    """Runs per unit of work when the caller gives none: :data:`CUDA_PACK` when training runs on CUDA (``device``
    names it, or None and this machine has CUDA), else 1 (on CPU the local pool already gives every core its own
    single-threaded run, which is what a packed CPU run does too)."""
    if device is None:
        import torch
        on_cuda = torch.cuda.is_available()
    else:
        on_cuda = str(device).startswith("cuda")
    return CUDA_PACK if on_cuda else 1


def make_packs(items: Sequence[dict], pack: int) -> list[list[dict]]:
    """Group runs (``{"run_id", "config"}``) into packs of at most ``pack`` runs that share dataset, method, steps,
    batch size, protocol and training options, keeping the input order within each group."""
    if pack < 1:
        raise ValueError(f"pack must be >= 1, got {pack}")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for item in items:
        c = item["config"]
        key = (c["dataset"], c["method"], c["steps"], c["batch_size"], repr(sorted(c["protocol"].items())),
               repr(sorted(c.get("training", {}).items())))
        groups[key].append(item)
    packs = []
    for members in groups.values():
        packs.extend(members[i:i + pack] for i in range(0, len(members), pack))
    return packs


class _Heartbeat(threading.Thread):
    """Refreshes the driver's heartbeat in the store every ``interval`` seconds (own connection)."""

    def __init__(self, path: Path, driver_id: str, interval: float = 30.0):
        super().__init__(daemon=True, name="dstudy-heartbeat")
        self.path, self.driver_id, self.interval = path, driver_id, interval
        self.stop = threading.Event()

    def run(self) -> None:
        store = Store(self.path)
        try:
            while not self.stop.wait(self.interval):
                store.heartbeat(self.driver_id)
        finally:
            store.close()


def sweep(study: Study, store_path: str | os.PathLike = DEFAULT_STORE, *, workers: int | None = None,
          scheduler: str | None = None, retries: int = 2, model_num: int | None = None, pack: int | None = None,
          device: str | None = None, threads: int | None = None, artifacts_dir: str | None = None,
          run_fn: RunFn | None = None, data_sources: Any = None, progress: bool = True,
          stale_after: float = 600.0) -> SweepSummary:
    """Compute ``study``'s missing runs and record them in the store at ``store_path``.

    Args:
        workers: local worker processes (a Dask LocalCluster on 127.0.0.1); default: the number of CPU cores
            (at most 4). Ignored with ``scheduler``.
        scheduler: address of an existing Dask scheduler (``tcp://host:port``).
        retries: how many times a failing run is retried before it is marked ``failed``.
        model_num: compute only the run(s) with this paper-grid index.
        pack: runs per unit of work (see :mod:`training.study.worker`); default :func:`default_pack` of ``device``.
        device: torch device for training (None: the worker's default).
        threads: torch threads per run, the same for every run of the sweep and recorded with each run; default
            locally cores // workers, with ``scheduler`` 1 (the README's workers run ``--nthreads 1``). Runs give
            identical numbers on the same CPU kernel family with the same ``threads``, whichever worker runs them.
        artifacts_dir: where workers save trained models (None: not saved).
        run_fn: the function a worker runs on a pack (default :func:`training.study.worker.execute_pack`).
        data_sources: dataset name -> source dict (mapping or function); default: from the datasets themselves.
        stale_after: seconds without heartbeat after which another driver's ``running`` rows count as stale.
    Returns:
        a :class:`SweepSummary`.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if pack is None:
        pack = default_pack(device)
    started = time.perf_counter()
    # an unreachable scheduler must fail before the store is created or touched
    client = _scheduler_client(scheduler) if scheduler else None
    try:
        with _sigterm_as_interrupt():
            return _sweep(study, Path(store_path), started, workers=workers, client=client, retries=retries,
                          model_num=model_num, pack=pack, device=device, threads=threads,
                          artifacts_dir=artifacts_dir, run_fn=run_fn, data_sources=data_sources, progress=progress,
                          stale_after=stale_after)
    finally:
        if client is not None:
            client.close()


def _scheduler_client(scheduler: str):
    from distributed import Client

    try:
        return Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise UserError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


@contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM (``timeout``, a batch scheduler ending the job) like Ctrl-C, so the driver hands its running
    runs back; only in the main thread, and the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sweep(study: Study, store_path: Path, started: float, *, workers, client, retries, model_num, pack, device,
           threads, artifacts_dir, run_fn, data_sources, progress, stale_after) -> SweepSummary:
    if model_num is not None:
        # Only the dataset of that grid index needs loading (the others' files may well be absent).
        runs = select_model_num(study.runs(data_sources, datasets=[_grid_dataset(model_num)]), model_num)
    else:
        runs = study.runs(data_sources)
    summary = SweepSummary(total=len(runs))
    with Store(store_path) as store:
        store.save_study(study.name, study.definition(), study.notes)
        store.add_runs(runs)
        summary.reset_stale = store.reset_stale(stale_after)
        status = store.run_status([r.run_id for r in runs])
        todo = [{"run_id": r.run_id, "config": r.config} for r in runs if status.get(r.run_id) in ("pending", "failed")]
        summary.already_done = sum(1 for r in runs if status.get(r.run_id) == "done")
        summary.busy_elsewhere = sum(1 for r in runs if status.get(r.run_id) == "running")
        if todo:
            _drive(store, todo, summary, workers=workers, client=client, retries=retries, pack=pack,
                   device=device, threads=threads, artifacts_dir=artifacts_dir, run_fn=run_fn, progress=progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _grid_dataset(num: int) -> str:
    from training.vocabulary import from_model_num

    try:
        return from_model_num(num)[0]
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _drive(store: Store, todo: list[dict], summary: SweepSummary, *, workers, client, retries, pack, device,
           threads, artifacts_dir, run_fn, progress) -> None:
    """Compute ``todo`` on ``client`` (a connected scheduler's) or, when None, on a LocalCluster of ``workers``."""
    if run_fn is None:
        from training.study.worker import execute_pack as run_fn
    client, cluster, slots, threads = _connect(client, workers, threads)
    driver_id = store.register_driver()
    beat = _Heartbeat(store.path, driver_id)
    beat.start()
    dispatch = _Dispatch(store, client, driver_id, make_packs(todo, pack), 2 * slots, retries, summary,
                         _progress(len(todo), progress), run_fn, (device, threads, artifacts_dir))
    try:
        dispatch.run()
    finally:
        # Ctrl-C (or any error): hand back what this driver still had in flight or queued for a retry.
        try:
            store.release_driver(driver_id)
            store.unregister_driver(driver_id)
        finally:
            beat.stop.set()
            dispatch.bar.close()
            dispatch.cancel()
            if cluster is not None:  # a scheduler's client is closed by sweep()
                client.close()
                cluster.close()


def _connect(client, workers: int | None, threads: int | None):
    """(client, its LocalCluster or None, task slots, torch threads per run): ``client`` when given (a connected
    scheduler's: one slot per worker thread, one torch thread per run by default), else a new LocalCluster of
    ``workers`` processes on this machine (default: the CPU cores, at most 4; its cores shared among them)."""
    from distributed import Client, LocalCluster

    if client is not None:
        return client, None, max(1, sum(client.nthreads().values())), 1 if threads is None else threads
    n = workers or max(1, min(os.cpu_count() or 1, 4))
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // n)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster, n, threads


class _Dispatch:
    """The packs of one sweep on a Dask client: submitted while fewer than ``limit`` are in flight, each pack's
    outcomes recorded as it completes; a failed run goes back into the queue alone until it has failed more than
    ``retries`` times. A pack stays in :attr:`inflight` until recorded, so an interruption still releases its runs.
    """

    def __init__(self, store: Store, client, driver_id: str, packs: list[list[dict]], limit: int, retries: int,
                 summary: SweepSummary, bar, run_fn: RunFn, task_args: tuple):
        from distributed import as_completed

        self.store, self.client, self.driver_id = store, client, driver_id
        self.queue = packs[::-1]   # pop() from the end keeps the study order
        self.limit, self.retries, self.summary, self.bar = limit, retries, summary, bar
        self.run_fn, self.task_args = run_fn, task_args
        self.inflight: dict[Any, list[dict]] = {}
        self.attempts: dict[str, int] = defaultdict(int)
        self.completed = as_completed()

    def run(self) -> None:
        self.submit_more()
        for fut in self.completed:
            p = self.inflight[fut]
            self.record(p, self.outcomes(fut, p))
            del self.inflight[fut]
            fut.release()
            self.submit_more()

    def submit_more(self) -> None:
        while self.queue and len(self.inflight) < self.limit:
            p = self.queue.pop()
            self.store.mark_running([item["run_id"] for item in p], self.driver_id)
            first = p[0]["run_id"]
            fut = self.client.submit(self.run_fn, p, *self.task_args, pure=False,
                                     key=f"dstudy-{first}-{self.attempts[first]}-{len(p)}")
            self.inflight[fut] = p
            self.completed.add(fut)

    @staticmethod
    def outcomes(fut, p: list[dict]) -> list[RunOutcome]:
        """One outcome per run of the pack, in its order: an error where the worker returned none for a run, and
        for every run when the task failed as a whole."""
        try:
            by_id = {o.run_id: o for o in fut.result()}
            return [by_id.get(item["run_id"]) or RunOutcome(run_id=item["run_id"],
                                                           error="the worker returned no result")
                    for item in p]
        except Exception as exc:  # noqa: BLE001 - the task failed as a whole (e.g. KilledWorker)
            return [RunOutcome(run_id=item["run_id"], error=error_text(exc)) for item in p]

    def record(self, p: list[dict], outcomes: list[RunOutcome]) -> None:
        items = {item["run_id"]: item for item in p}
        for outcome in outcomes:
            rid = outcome.run_id
            if outcome.ok:
                self.store.record_outcome(outcome)
                self.summary.done += 1
                self.bar.update(1)
                continue
            self.attempts[rid] += 1
            if self.attempts[rid] <= self.retries:
                self.store.count_attempt(rid, outcome.error)
                self.queue.append([items[rid]])
            else:
                self.store.record_outcome(outcome)
                self.summary.failed[rid] = outcome.error
                self.bar.update(1)

    def cancel(self) -> None:
        for fut in self.inflight:
            fut.cancel()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="runs", unit="run", file=sys.stderr, dynamic_ncols=True)
