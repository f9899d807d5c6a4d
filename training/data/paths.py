"""Where dataset files and derived caches live.

Data root (the registry's rule): the ``data_dir`` argument, else ``$DSTUDY_DATA``, else
``$DISENTANGLEMENT_LIB_DATA``, else none. Inside the root the reference's sub-folder layout is used, so that an
existing disentanglement_lib download works as it is::

    <root>/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz
    <root>/3dshapes/3dshapes.h5            (or <root>/3dshapes.h5)
    <root>/cars/*.mat                      (+ optional list.txt)
    <root>/small_norb/smallnorb-*-{dat,cat,info}.mat[.gz]
    <root>/scream/scream.jpg

Derived artefacts (rendered procedural arrays, file checksums) go under ``$DSTUDY_CACHE`` (default
``~/.cache/dstudy``); they can always be deleted and are rebuilt when missing or corrupt.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used, so the CLI starts fast
    import numpy as np

DATA_ENV_VARS = ("DSTUDY_DATA", "DISENTANGLEMENT_LIB_DATA")

DSPRITES_FILE = Path("dsprites") / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SHAPES3D_FILES = (Path("3dshapes") / "3dshapes.h5", Path("3dshapes.h5"))
CARS3D_DIR = Path("cars")
SMALLNORB_DIR = Path("small_norb")
SCREAM_FILE = Path("scream") / "scream.jpg"


def data_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data root: ``data_dir`` if given, else ``$DSTUDY_DATA``, else ``$DISENTANGLEMENT_LIB_DATA``, else None."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    for var in DATA_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser()
    return None


def cache_dir() -> Path:
    """Folder for derived caches: ``$DSTUDY_CACHE`` or ``~/.cache/dstudy`` (not created here)."""
    value = os.environ.get("DSTUDY_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "dstudy"


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks of ``chunk_bytes``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def cached_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of ``path``, remembered in the cache folder keyed by absolute path, size and modification time.

    Large dataset files (a 255 MB ``3dshapes.h5``, 900 MB of SmallNORB) are hashed once; later calls read the stored
    digest as long as the file's size and mtime are unchanged. A missing or unreadable cache entry is recomputed.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    entry = cache_dir() / "checksums" / f"{key}.json"
    try:
        stored = json.loads(entry.read_text())
        if stored.get("path") == str(path) and isinstance(stored.get("sha256"), str) and len(stored["sha256"]) == 64:
            return stored["sha256"]
    except (OSError, ValueError):
        pass
    digest = sha256_file(path)
    try:
        atomic_write_bytes(entry, json.dumps({"path": str(path), "sha256": digest}).encode())
    except OSError:
        pass  # an unwritable cache only costs time
    return digest


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_cached_array(data_path: Path, meta_path: Path, meta: dict, shape: tuple, dtype) -> "np.ndarray | None":
    """A cached ``.npy`` array if its JSON sidecar matches ``meta`` and shape, dtype and SHA-256 agree; else None."""
    import numpy as np

    try:
        stored = json.loads(Path(meta_path).read_text())
        array = np.load(data_path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in meta.items()):
        return None
    if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
        return None
    array = np.ascontiguousarray(array)
    if hashlib.sha256(array.data).hexdigest() != stored.get("sha256"):
        return None
    return array


def save_cached_array(data_path: Path, meta_path: Path, meta: dict, array, **extra) -> bool:
    """Save ``array`` as ``.npy`` plus a JSON sidecar (``meta``, its SHA-256, ``extra``), both atomically.

    Returns False (and leaves no partial file) when the folder is not writable: a cache only saves time.
    """
    import io

    import numpy as np

    array = np.ascontiguousarray(array)
    try:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(Path(data_path), buffer.getbuffer())
        del buffer
        sidecar = dict(meta, sha256=hashlib.sha256(array.data).hexdigest(), **extra)
        atomic_write_bytes(Path(meta_path), json.dumps(sidecar).encode())
    except OSError:
        return False
    return True
