"""The store's register of sweep drivers (:class:`DriverRegistry`, mixed into :class:`training.store.Store`): each
driver registers itself and keeps a heartbeat, so that a new sweep can tell a dead driver's ``running`` rows from a
live one's and hand them back."""
from __future__ import annotations

import os
import socket
import time

from training.store.records import utc_now


class DriverRegistry:
    """Driver bookkeeping of a :class:`training.store.Store` (uses its ``conn`` and ``transaction``)."""

    def register_driver(self) -> str:
        """Register this process as a sweep driver; returns its id (``host:pid:start``)."""
        host, pid = socket.gethostname(), os.getpid()
        driver_id = f"{host}:{pid}:{time.time():.6f}"
        with self.transaction() as cur:
            cur.execute("INSERT INTO drivers VALUES (?, ?, ?, ?, ?)", (driver_id, host, pid, utc_now(), time.time()))
        return driver_id

    def heartbeat(self, driver_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE drivers SET heartbeat_at = ? WHERE driver_id = ?", (time.time(), driver_id))

    def unregister_driver(self, driver_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM drivers WHERE driver_id = ?", (driver_id,))

    def reset_stale(self, stale_after: float = 600.0) -> int:
        """Reset ``running`` rows whose driver is gone to ``pending``; returns how many.

        A driver is gone when it is not registered, when it ran on this host and its process no longer exists (or
        is another program by now: a different start), or when its heartbeat is older than ``stale_after`` seconds.
        """
        host, now = socket.gethostname(), time.time()
        drivers = {d: (h, p, hb) for d, h, p, hb in
                   self.conn.execute("SELECT driver_id, host, pid, heartbeat_at FROM drivers")}
        owners = {r[0] for r in self.conn.execute("SELECT DISTINCT driver FROM runs WHERE status = 'running'")}
        dead = []
        for owner in owners:
            info = drivers.get(owner)
            if info is None:
                dead.append(owner)
                continue
            h, pid, hb = info
            if (h == host and not _pid_alive(int(pid))) or hb is None or now - float(hb) > stale_after:
                dead.append(owner)
        gone = [d for d in drivers if d in dead or (drivers[d][0] == host and not _pid_alive(int(drivers[d][1])))]
        if not dead and not gone:
            return 0
        with self.transaction() as cur:
            count = 0
            for owner in dead:
                if owner is None:
                    cur.execute("UPDATE runs SET status = 'pending', updated_at = ? WHERE status = 'running'"
                                " AND driver IS NULL", (utc_now(),))
                else:
                    cur.execute("UPDATE runs SET status = 'pending', driver = NULL, updated_at = ?"
                                " WHERE status = 'running' AND driver = ?", (utc_now(), owner))
                count += cur.rowcount
            cur.executemany("DELETE FROM drivers WHERE driver_id = ?", [(d,) for d in gone])
        return count


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


