"""Keep freed CPU tensor memory inside the process instead of handing it back to the OS (glibc ``malloc`` only).

Why this exists: PyTorch's CPU tensors come from ``malloc``. glibc serves every request above its mmap threshold
(128 KiB at start) with a fresh ``mmap`` and unmaps it on ``free``, and it trims the top of the heap as soon as
128 KiB are free there. A training step allocates the same few dozen activation and gradient tensors (up to 8 MiB
each for the 64x64 architecture at batch 64) every step, so each step maps, zero-fills and page-faults them in again:
measured for beta_vae at batch 64, about 13,700 minor page faults (~54 MiB) per step, in the middle of the
convolution and ReLU kernels. Raising both thresholds lets the next step reuse the freed chunks: 0 faults per step.

The cost is that the process keeps its peak heap (a few hundred MiB for training) until it exits. Nothing numerical
changes. :func:`retain_freed_memory` is called by the training engine for CPU runs and by the command line; it is
a no-op (returning False) where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2): chunks above it are still mapped
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB, once per process.

    Returns True when the settings are in effect (now or from an earlier call), False when this is not a glibc
    system. Idempotent and cheap; safe to call from any thread before the work starts.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    _applied = ok
    return ok
