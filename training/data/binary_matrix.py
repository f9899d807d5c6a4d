"""LeCun's "binary matrix" format of the SmallNORB files (LeCun et al. 2004), plain or gzipped.

Layout, all little-endian: int32 magic (the element type), int32 ndim, max(3, ndim) int32 dimension sizes (unused
trailing ones stored as 1), then the raw C-order data. The header is 8 + 4 max(3, ndim) bytes.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from training.errors import UserError

MAGIC_DTYPES = {
    0x1E3D4C55: np.dtype("u1"),    # uint8 matrix (the reference maps it to int8; the pixels are unsigned)
    0x1E3D4C54: np.dtype("<i4"),   # int32
    0x1E3D4C56: np.dtype("<i2"),   # int16
    0x1E3D4C51: np.dtype("<f4"),   # float32
    0x1E3D4C53: np.dtype("<f8"),   # float64
}
DTYPE_MAGICS = {dtype: magic for magic, dtype in MAGIC_DTYPES.items()}


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``; UserError naming the file when that fails."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: truncated or corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def parse(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse a binary-matrix byte string into an array of its element type and dimensions (no copy of the data)."""
    if len(data) < 8:
        raise UserError(f"{name}: truncated binary matrix: {len(data)} bytes, no header")
    magic, ndim = np.frombuffer(data, dtype="<i4", count=2)
    magic, ndim = int(magic) & 0xFFFFFFFF, int(ndim)
    if magic not in MAGIC_DTYPES:
        raise UserError(f"{name}: wrong magic number 0x{magic:08X}; not a binary-matrix file "
                        f"(expected one of {', '.join(f'0x{m:08X}' for m in MAGIC_DTYPES)})")
    if not 1 <= ndim <= 16:
        raise UserError(f"{name}: implausible number of dimensions {ndim}")
    n_dims_stored = max(3, ndim)
    header = 8 + 4 * n_dims_stored
    if len(data) < header:
        raise UserError(f"{name}: truncated header ({len(data)} of {header} bytes)")
    dims = [int(d) for d in np.frombuffer(data, dtype="<i4", count=n_dims_stored, offset=8)][:ndim]
    if any(d < 0 for d in dims):
        raise UserError(f"{name}: negative dimension in {dims}")
    dtype = MAGIC_DTYPES[magic]
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise UserError(f"{name}: {what}: {len(data)} bytes, the header {dims} of {dtype} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def read(path: str | Path) -> np.ndarray:
    """Read a (possibly gzipped) binary-matrix file."""
    return parse(read_bytes(path), str(path))


def encode(array: np.ndarray) -> bytes:
    """The binary-matrix bytes of ``array`` (uint8, int32, int16, float32 or float64)."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in DTYPE_MAGICS:
        raise ValueError(f"binary matrix cannot store dtype {array.dtype}")
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([DTYPE_MAGICS[dtype], array.ndim] + dims, dtype="<u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as a binary-matrix file (gzipped when the name ends in ``.gz``)."""
    data = encode(array)
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
