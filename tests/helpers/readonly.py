"""Helpers shared by test modules (no tests here)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

_MARK = "dstudy-test: folder is read-only"


def run_cli_in_readonly_folder(folder: Path, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess | None:
    """Run ``python -m training.cli *args`` while ``folder`` is read-only for that command; None when this machine
    cannot make it so (the caller skips).

    A non-root user gets a folder with its write bits removed (restored afterwards). Root ignores permission bits,
    so for root the command runs in a private mount namespace (``unshare -m``) over a read-only bind mount of the
    folder, which disappears with the command; where that is not allowed (a container without CAP_SYS_ADMIN),
    None."""
    command = [sys.executable, "-m", "training.cli", *args]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        try:
            for p in modes:
                p.chmod(0o555 if p.is_dir() else 0o444)
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    if shutil.which("unshare") is None:
        return None
    script = ('mount --bind -o ro "$1" "$1" 2>/dev/null || exit 97; touch "$1/.probe" 2>/dev/null && exit 97; '
              f'echo "{_MARK}" >&2; shift; exec "$@"')
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), *command], capture_output=True,
                          text=True, timeout=timeout, env=env)
    if _MARK not in done.stderr:
        return None
    done.stderr = done.stderr.replace(_MARK + "\n", "")
    return done
