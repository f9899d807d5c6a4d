"""The packed convolutions as fused implicit-GEMM Triton kernels (``train_packed(impl="triton")``, CUDA).

The ``gemm`` implementation (:mod:`training.kernels.packed_layers`) spends most of a GPU step outside its matrix
products: window gathers, shifted sums, phase interleaves, casts, bias adds and ReLUs are separate memory-bound
kernels (measured on an H200: copies 44 % of the step, products 18 %). Here each layer's forward pass, input
gradient and weight gradient is ONE kernel that gathers its operand tiles straight from the channels-last
activations (no im2col tensor) and fuses bias, ReLU and the ReLU mask of the gradient. Measured on an H200
(``benchmarks/gpu_triton.sh``; ``benchmarks/triton_compile.py`` compiles every variant for a GPU target without
one): faster than gemm's layers for conv1, conv4 and deconv1, slower for the other five (mostly their weight
gradients), so impl "triton" runs gemm's layer where the measured table :data:`GEMM_LAYERS` says so.

Every layer of the shared architecture, and every input gradient, is one **gather GEMM**. For model k and phase p
(of P), output grid row m = (n, i, j) and reduction index r = (ty, tx, c) (c fastest):

    A[m, r] = x[k, n, i*S + OFF + a*PIN + ty*D, j*S + OFF + b*PIN + tx*D, c]   (0 outside the image)
    out[k, n, i*OS + a, j*OS + b, :] = A[m, :] @ W[k, p] (+ bias[k]) (ReLU)

with (a, b) = divmod(p, 2) the phase. :data:`FORWARD` and :data:`DGRAD` give (S, D, taps, OFF, PIN, OS, P) for each
layer kind:

* ``conv4x4_s2`` (k4, s2, p1): S=2, D=1, 4x4 taps, OFF=-1; W rows (ky, kx, c) (``gemm_matrix`` form "im2col");
* ``conv2x2_s2`` (k2, s2, p0): S=2, D=1, 2x2 taps; W rows (dy, dx, c) (form "s2d");
* ``conv_transpose4x4_s2`` (k4, s2, p1): four phases; output pixel (2i + a, 2j + b) sums input pixels
  (i + a - u, j + b - v), u, v in {0, 1}, through kernel tap (1 - a + 2u, 1 - b + 2v): S=1, D=-1, 2x2 taps, PIN=1,
  OS=2; W (4 phases, rows (u, v, c)) (form "phases").

The input gradient of a 4x4 stride-2 convolution is a transposed convolution of the output gradient and vice versa
(:func:`dgrad_matrix` re-arranges the weights); that of the 2x2 stride-2 convolution is four single-tap phases. The
weight gradient (:func:`gather_gemm_wgrad`) is ``A^T @ grad`` over all rows m, with A gathered as in the forward
pass, split over row chunks for parallelism, the bias gradient (the column sums of the gradient) in the same pass.

A transposed convolution to few channels (the output layer) pads its O columns to a 16-column tile and reads its
input once per phase; it takes a col2im path instead (:func:`col2im_forward`): a pointwise GEMM to 16 * O columns,
then a fixed 0/1 gather GEMM in the transposed geometry (not yet timed on a GPU).

Without a CUDA device the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` set before importing this
module): slow, for tests on small shapes.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from training.kernels import packed_layers


class Geometry(NamedTuple):
    """A gather GEMM's index map (see the module docstring)."""

    stride: int        # S: input pixels per output-grid step
    step: int          # D: input pixels per kernel tap (+1 convolution, -1 transposed convolution)
    taps: int          # taps per axis (TY = TX)
    offset: int        # OFF: input offset of tap 0 (minus the padding)
    phase_in: int      # PIN: input offset per phase index
    out_stride: int    # OS: output pixels per output-grid step (2 with four phases)
    phases: int        # P: 1 or 4


FORWARD = {
    "conv4x4_s2": Geometry(stride=2, step=1, taps=4, offset=-1, phase_in=0, out_stride=1, phases=1),
    "conv2x2_s2": Geometry(stride=2, step=1, taps=2, offset=0, phase_in=0, out_stride=1, phases=1),
    "conv_transpose4x4_s2": Geometry(stride=1, step=-1, taps=2, offset=0, phase_in=1, out_stride=2, phases=4),
}
# the input gradient of each kind, a gather GEMM of the output gradient
DGRAD = {
    "conv4x4_s2": FORWARD["conv_transpose4x4_s2"],
    "conv2x2_s2": Geometry(stride=1, step=1, taps=1, offset=0, phase_in=0, out_stride=2, phases=4),
    "conv_transpose4x4_s2": FORWARD["conv4x4_s2"],
}
KINDS = tuple(FORWARD)


def out_size(kind: str, h: int) -> int:
    """Output height (or width) of a layer of ``kind`` for input height ``h``."""
    return 2 * h if kind == "conv_transpose4x4_s2" else h // 2


# ---- the weights --------------------------------------------------------------------------------------------------
# The stacked parameters hold each kind's forward matrix W (K, P * R, O) (training.kernels.packed_layers.gemm_matrix,
# forms "im2col", "s2d" and "phases"); the input gradient needs them re-arranged (once per backward pass, small).


def forward_matrix(kind: str, matrix: torch.Tensor) -> torch.Tensor:
    """The stored matrix (K, P * R, O) as (K, P, R, O)."""
    k, _, o = matrix.shape
    return matrix.view(k, FORWARD[kind].phases, -1, o)


def dgrad_matrix(kind: str, matrix: torch.Tensor, c_in: int) -> torch.Tensor:
    """The weights of the input gradient's gather GEMM (:data:`DGRAD`) from the stored forward matrix (K, P * R, O)
    of a layer with ``c_in`` input channels: (K, P', R', C_in), rows (taps, o) over the output channels."""
    k, _, o = matrix.shape
    c = c_in
    if kind == "conv2x2_s2":                       # rows (dy, dx, c) -> phase (dy, dx), rows o
        return matrix.view(k, 4, c, o).transpose(2, 3).contiguous()
    if kind == "conv4x4_s2":
        # tap ky = 2u + (1 - a) of phase a: rows (ky, kx, c) viewed (u, s, u2, s2, c), s = 1 - a
        w = matrix.view(k, 2, 2, 2, 2, c, o).flip(2, 4)            # (K, u, a, v, b, c, o)
        return w.permute(0, 2, 4, 1, 3, 6, 5).reshape(k, 4, 4 * o, c)
    # transposed: phase (a, b), rows (u, v, cin) hold tap (ky, kx) = (2u + 1 - a, 2v + 1 - b); the input gradient
    # is a 4x4 convolution of the output gradient with rows (ky, kx, o)
    w = matrix.view(k, 2, 2, 2, 2, c, o).flip(1, 2)                # (K, s = 1 - a, s2, u, v, c, o)
    return w.permute(0, 3, 1, 4, 2, 6, 5).reshape(k, 1, 16 * o, c)


# ---- the kernels --------------------------------------------------------------------------------------------------
#
# The geometry (image and grid sizes, channels, R) is compile-time (``tl.constexpr``): one compiled variant per layer
# and pass, in which the row decomposition m -> (n, i, j) and a flat tile's tap arithmetic r -> (ty, tx, c) are
# shifts and masks (every size in this architecture is a power of two) instead of integer divisions. Only the batch
# size N and the weight gradient's row split stay run-time arguments. Compiled for sm_90
# (benchmarks/triton_compile.py, bf16, one channel), the 25 variants have 21,416 machine instructions instead of
# 41,792 with a run-time geometry (0.29-0.73x per variant) and mostly fewer registers; not yet timed on a GPU.


@triton.jit
def _gather_tile(n, y0, x0, row_ok, r0, R: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr,
                 TX: tl.constexpr, D: tl.constexpr, BR: tl.constexpr, FLAT: tl.constexpr):
    """Addresses (within one model's (N, H, W, C) block) and validity of the operand tile A[rows, r0:r0 + BR].

    ``FLAT``: any reduction indices (few channels: a tile spans several taps; every element's tap is computed).
    Otherwise BR divides C, so the tile lies in one tap: one input pixel per row, BR consecutive channels (cheap
    per-row address arithmetic, contiguous loads)."""
    if FLAT:
        rr = r0 + tl.arange(0, BR)
        t = rr // C
        iy = y0[:, None] + (t // TX)[None, :] * D
        ix = x0[:, None] + (t % TX)[None, :] * D
        ok = row_ok[:, None] & (rr < R)[None, :] & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        return ((n[:, None] * H + iy) * W + ix) * C + (rr % C)[None, :], ok
    else:
        t = r0 // C
        iy = y0 + (t // TX) * D
        ix = x0 + (t % TX) * D
        ok = row_ok & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        cc = r0 % C + tl.arange(0, BR)
        return (((n * H + iy) * W + ix) * C)[:, None] + cc[None, :], ok[:, None] & (cc < C)[None, :]


@triton.jit
def _model_phase(kp, P: tl.constexpr):
    """Program axis 1 = model k x phase p -> (k, a, b), (a, b) = divmod(p, 2)."""
    return kp // P, (kp % P) // 2, (kp % P) % 2


@triton.jit
def _grid_rows(rows, GH: tl.constexpr, GW: tl.constexpr):
    """Output grid rows m -> (n, i, j) of an N x GH x GW grid."""
    return rows // (GH * GW), (rows % (GH * GW)) // GW, rows % GW


@triton.jit
def _gather_gemm_kernel(x_ptr, mask_ptr, w_ptr, b_ptr, out_ptr, N,
                        H: tl.constexpr, W: tl.constexpr, C: tl.constexpr, GH: tl.constexpr, GW: tl.constexpr,
                        HO: tl.constexpr, WO: tl.constexpr, O: tl.constexpr, R: tl.constexpr,
                        S: tl.constexpr, D: tl.constexpr, TX: tl.constexpr, OFF: tl.constexpr,
                        PIN: tl.constexpr, OS: tl.constexpr, P: tl.constexpr,
                        HAS_MASK: tl.constexpr, HAS_BIAS: tl.constexpr, RELU: tl.constexpr, PREC: tl.constexpr,
                        ACC: tl.constexpr, FLAT: tl.constexpr, BM: tl.constexpr, BR: tl.constexpr,
                        BO: tl.constexpr):
    kp = tl.program_id(1)
    k, a, b = _model_phase(kp, P)
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    row_ok = rows < N * GH * GW
    n, i, j = _grid_rows(rows, GH, GW)
    y0 = i * S + OFF + a * PIN
    x0 = j * S + OFF + b * PIN
    x_base = k.to(tl.int64) * N * H * W * C
    cols = tl.program_id(2) * BO + tl.arange(0, BO)
    col_ok = cols < O
    w_base = kp.to(tl.int64) * R * O
    acc = tl.zeros((BM, BO), dtype=ACC)
    for r0 in range(0, R, BR):
        rr = r0 + tl.arange(0, BR)
        addr, ok = _gather_tile(n, y0, x0, row_ok, r0, R, H, W, C, TX, D, BR, FLAT)
        av = tl.load(x_ptr + x_base + addr, mask=ok, other=0.0)
        if HAS_MASK:   # the ReLU mask of the incoming gradient: where the layer's output was positive
            mv = tl.load(mask_ptr + x_base + addr, mask=ok, other=0.0)
            av = tl.where(mv > 0, av, tl.zeros_like(av))
        wv = tl.load(w_ptr + w_base + rr[:, None] * O + cols[None, :], mask=(rr < R)[:, None] & col_ok[None, :],
                     other=0.0)
        acc += tl.dot(av, wv.to(av.dtype), input_precision=PREC)
    if HAS_BIAS:
        acc += tl.load(b_ptr + k * O + cols, mask=col_ok, other=0.0)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    oy = i * OS + a
    ox = j * OS + b
    out_addr = k.to(tl.int64) * N * HO * WO * O + (((n * HO + oy) * WO + ox) * O)[:, None] + cols[None, :]
    tl.store(out_ptr + out_addr, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _wgrad_kernel(x_ptr, g_ptr, mask_ptr, dw_ptr, db_ptr, N, ROWS_PER_SPLIT, SPLIT, KP,
                  H: tl.constexpr, W: tl.constexpr, C: tl.constexpr, GH: tl.constexpr, GW: tl.constexpr,
                  HO: tl.constexpr, WO: tl.constexpr, O: tl.constexpr, R: tl.constexpr,
                  S: tl.constexpr, D: tl.constexpr, TX: tl.constexpr, OFF: tl.constexpr,
                  PIN: tl.constexpr, OS: tl.constexpr, P: tl.constexpr,
                  HAS_MASK: tl.constexpr, HAS_BIAS: tl.constexpr, PREC: tl.constexpr, ACC: tl.constexpr,
                  FLAT: tl.constexpr, BM: tl.constexpr, BR: tl.constexpr, BO: tl.constexpr):
    pid0 = tl.program_id(0)
    r_tile = pid0 // SPLIT
    split = pid0 % SPLIT
    kp = tl.program_id(1)
    k, a, b = _model_phase(kp, P)
    rr = r_tile * BR + tl.arange(0, BR)
    cols = tl.program_id(2) * BO + tl.arange(0, BO)
    col_ok = cols < O
    x_base = k.to(tl.int64) * N * H * W * C
    g_base = k.to(tl.int64) * N * HO * WO * O
    m_end = tl.minimum(N * GH * GW, (split + 1) * ROWS_PER_SPLIT)
    acc = tl.zeros((BR, BO), dtype=ACC)
    bacc = tl.zeros((BO,), dtype=ACC)
    for m0 in range(split * ROWS_PER_SPLIT, m_end, BM):
        rows = m0 + tl.arange(0, BM)
        row_ok = rows < m_end
        n, i, j = _grid_rows(rows, GH, GW)
        addr, ok = _gather_tile(n, i * S + OFF + a * PIN, j * S + OFF + b * PIN, row_ok, r_tile * BR, R, H, W, C, TX,
                                D, BR, FLAT)
        av = tl.load(x_ptr + x_base + addr, mask=ok, other=0.0)
        g_addr = g_base + (((n * HO + i * OS + a) * WO + j * OS + b) * O)[:, None] + cols[None, :]
        g_ok = row_ok[:, None] & col_ok[None, :]
        gv = tl.load(g_ptr + g_addr, mask=g_ok, other=0.0)
        if HAS_MASK:
            mv = tl.load(mask_ptr + g_addr, mask=g_ok, other=0.0)
            gv = tl.where(mv > 0, gv, tl.zeros_like(gv))
        acc += tl.dot(tl.trans(av), gv.to(av.dtype), input_precision=PREC)
        if HAS_BIAS:
            bacc += tl.sum(gv.to(ACC), axis=0)
    part = split.to(tl.int64) * KP + kp
    tl.store(dw_ptr + part * R * O + rr[:, None] * O + cols[None, :], acc,
             mask=(rr < R)[:, None] & col_ok[None, :])
    if HAS_BIAS:
        if r_tile == 0:
            tl.store(db_ptr + part * O + cols, bacc, mask=col_ok)


# ---- launchers ----------------------------------------------------------------------------------------------------


# 8 warps per program: with 4, the 64 x 64 tiles of the gathered operands need more than 255 registers per thread
# and spill (benchmarks/triton_compile.py, sm_90); with 8 none spills
NUM_WARPS = 8


# Measured launch configurations: (kind, C, O, input height, pass) -> (block_m, num_warps, num_stages, block_r), pass
# one of "forward", "dgrad", "wgrad"; a layer not listed gets (64, NUM_WARPS, Triton's default, see _block_r).
# ``benchmarks/triton_tune.py`` times the candidates on a GPU and writes its best as a table that
# :func:`set_launch_configs` installs.
LAUNCH_CONFIGS: dict[tuple[str, int, int, int, str], tuple[int, int, int | None, int | None]] = {}


# Layers (kind, C, O, input height) where the gemm layer (forward and backward) measured faster than these kernels:
# train_packed(impl="triton") runs the gemm layer there (``triton_tune.py`` measures both; :func:`set_layer_impls`).
GEMM_LAYERS: set[tuple[str, int, int, int]] = set()


#: Launch configurations and per-layer choices measured on a GPU (``tuning/<device>.json``, written from
#: ``benchmarks/triton_tune.py``); installed at import on a GPU whose name matches, never in Triton's interpreter (a
#: correctness tool: every layer then runs the fused kernels with the interpreter's tiles).
TUNING_DIR = Path(__file__).resolve().parent / "tuning"


def load_tuning(path: str | os.PathLike) -> tuple[dict, set]:
    """The launch configurations ``{(kind, c, o, height, pass): (block_m, num_warps, num_stages, block_r)}`` and the
    gemm layers ``{(kind, c, o, height)}`` of a tuning file."""
    data = json.loads(Path(path).read_text())
    configs = {(r["kind"], r["c"], r["o"], r["height"], r["pass"]): (r["block_m"], r["num_warps"], r["num_stages"],
                                                                     r["block_r"]) for r in data["launch_configs"]}
    return configs, {(r["kind"], r["c"], r["o"], r["height"]) for r in data["gemm_layers"]}


if os.environ.get("TRITON_INTERPRET") != "1":
    _configs, _gemm_layers = load_tuning(TUNING_DIR / "h200.json")
    LAUNCH_CONFIGS.update(_configs)
    GEMM_LAYERS.update(_gemm_layers)


def uses_kernels(kind: str, c: int, o: int, height: int) -> bool:
    """Whether impl "triton" runs this layer with the fused kernels (else with the gemm layer, :data:`GEMM_LAYERS`)."""
    return (kind, c, o, height) not in GEMM_LAYERS


def set_layer_impls(rows) -> int:
    """Install measured per-layer choices: rows of dicts with kind, c, o, height and impl "gemm" or "triton"
    (``triton_tune.py --json``'s "layers"). Returns the number of layers that will run the gemm layer."""
    for row in rows:
        key = (row["kind"], int(row["c"]), int(row["o"]), int(row["height"]))
        if row["kind"] not in FORWARD or row["impl"] not in ("gemm", "triton"):
            raise ValueError(f"not a layer choice of this module: {row}")
        if row["impl"] == "gemm":
            GEMM_LAYERS.add(key)
        else:
            GEMM_LAYERS.discard(key)
    return len(GEMM_LAYERS)


def launch_config(kind: str, c: int, o: int, height: int, pass_name: str) -> dict:
    """``block_m``, ``num_warps``, ``num_stages``, ``block_r`` of one layer's pass (:data:`LAUNCH_CONFIGS`, else the
    defaults)."""
    block_m, num_warps, num_stages, block_r = LAUNCH_CONFIGS.get((kind, c, o, height, pass_name),
                                                                 (None, NUM_WARPS, None, None))
    return {"block_m": block_m, "num_warps": num_warps, "num_stages": num_stages, "block_r": block_r}


def set_launch_configs(rows) -> int:
    """Install measured launch configurations: rows of dicts with kind, c, o, height, pass, block_m, num_warps,
    num_stages and optionally block_r (``triton_tune.py --json``'s "best"). Returns the number installed."""
    for row in rows:
        if row["kind"] not in FORWARD or row["pass"] not in ("forward", "dgrad", "wgrad"):
            raise ValueError(f"not a launch configuration of this module: {row}")
        LAUNCH_CONFIGS[(row["kind"], int(row["c"]), int(row["o"]), int(row["height"]), row["pass"])] = (
            int(row["block_m"]), int(row["num_warps"]),
            None if row.get("num_stages") is None else int(row["num_stages"]),
            None if row.get("block_r") is None else int(row["block_r"]))
    return len(rows)


def _block_m(block_m: int | None) -> int:
    """Rows per program: 64 on a GPU; 1,024 in Triton's interpreter, where each program costs milliseconds of
    Python (the results do not depend on it)."""
    if block_m is not None:
        return block_m
    return 1024 if os.environ.get("TRITON_INTERPRET") == "1" else 64


def _pow2(value: int, low: int, high: int) -> int:
    return max(low, min(high, triton.next_power_of_2(value)))


def _block_r(r: int, c: int, block_r: int | None = None) -> tuple[int, bool]:
    """Reduction indices per tile and whether the tile is "flat" -> (BR, FLAT).

    Default: with C a multiple of 16, the largest power of two <= 64 dividing C (a tile within one tap); else
    ("flat" tiles, C < 16 in this architecture) all R rounded up to a power of two, 16 to 64. ``block_r`` (a power of
    two >= 16) asks for that many instead: more than C makes a flat tile spanning several taps (fewer passes over
    the other operand in the weight gradient, more address arithmetic)."""
    if block_r is not None:
        if block_r < 16 or block_r & (block_r - 1):
            raise ValueError(f"block_r must be a power of two >= 16, got {block_r}")
        return block_r, c % 16 != 0 or block_r > c or c % block_r != 0
    if c % 16 == 0:
        return min(64, c & -c), False
    return _pow2(r, 16, 64), True


def _precision(dtype: torch.dtype, precision: str) -> str | None:
    """Triton's ``input_precision`` for fp32 operands (``"ieee"`` unless TF32 is asked for); None for bf16/fp16."""
    if dtype != torch.float32:
        return None
    return "tf32" if precision == "tf32" else "ieee"


def _launch(num_warps: int, num_stages: int | None) -> dict:
    """Launch options (``num_stages`` None: Triton's default)."""
    return {"num_warps": num_warps} if num_stages is None else {"num_warps": num_warps, "num_stages": num_stages}


def _accumulator(dtype: torch.dtype):
    """The kernels sum in float32 (float64 for float64 operands: the interpreter's tests)."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def gather_gemm(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, geometry: Geometry,
                out_hw: tuple[int, int], relu: bool = False, mask: torch.Tensor | None = None,
                precision: str = "fp32", block_m: int | None = None, num_warps: int = NUM_WARPS,
                num_stages: int | None = None, block_r: int | None = None) -> torch.Tensor:
    """One gather GEMM for all K models: x (K, N, H, W, C) channels-last, contiguous; w (K, P, R, O) with
    R = taps**2 * C (any float dtype, cast to x's on load); bias (K, O) or None; ``mask`` (like x) zeroes the
    operand where ``mask <= 0`` (the ReLU mask of a gradient) -> (K, N, HO, WO, O) in x's dtype. ``block_m``,
    ``num_warps``, ``num_stages``, ``block_r``: the launch (rows per program, warps per program, software-pipeline
    depth, reduction indices per tile (:func:`_block_r`); see ``benchmarks/triton_tune.py``)."""
    k, n, h, w_in, c = x.shape
    kw, phases, r, o = w.shape
    if kw != k or phases != geometry.phases or r != geometry.taps ** 2 * c:
        raise ValueError(f"weights {tuple(w.shape)} do not fit input {tuple(x.shape)} and {geometry}")
    ho, wo = out_hw
    gh, gw = ho // geometry.out_stride, wo // geometry.out_stride
    w, bias = w.contiguous(), (None if bias is None else bias.contiguous())   # the kernel assumes dense rows
    out = x.new_empty((k, n, ho, wo, o))
    (br, flat), bm, bo = _block_r(r, c, block_r), _block_m(block_m), _pow2(o, 16, 64)
    grid = (triton.cdiv(n * gh * gw, bm), k * phases, triton.cdiv(o, bo))
    _gather_gemm_kernel[grid](
        x, x if mask is None else mask, w, w if bias is None else bias, out, n,
        H=h, W=w_in, C=c, GH=gh, GW=gw, HO=ho, WO=wo, O=o, R=r,
        S=geometry.stride, D=geometry.step, TX=geometry.taps, OFF=geometry.offset, PIN=geometry.phase_in,
        OS=geometry.out_stride, P=phases, HAS_MASK=mask is not None, HAS_BIAS=bias is not None, RELU=relu,
        PREC=_precision(x.dtype, precision), ACC=_accumulator(x.dtype), FLAT=flat, BM=bm, BR=br, BO=bo,
        **_launch(num_warps, num_stages))
    return out


def gather_gemm_wgrad(x: torch.Tensor, grad: torch.Tensor, geometry: Geometry, mask: torch.Tensor | None = None,
                      with_bias: bool = True, precision: str = "fp32", split: int | None = None,
                      block_m: int | None = None, num_warps: int = NUM_WARPS, num_stages: int | None = None,
                      block_r: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight (and bias) gradient of :func:`gather_gemm`'s forward pass: x (K, N, H, W, C) its input,
    grad (K, N, HO, WO, O) the gradient of its output (zeroed where ``mask <= 0``) -> dW (K, P, R, O) float32 and
    dbias (K, O) float32 (summed over the phases) or None (float64 for float64 inputs). ``split``: row chunks per
    model, each summed by its own programs (default: enough programs to fill a large GPU). ``block_m``: rows per
    step of a program's loop (see :func:`_block_m`); ``block_r``: see :func:`_block_r` (each program re-reads the
    gradient once per tile of R)."""
    k, n, h, w_in, c = x.shape
    _, _, ho, wo, o = grad.shape
    phases, r = geometry.phases, geometry.taps ** 2 * c
    gh, gw = ho // geometry.out_stride, wo // geometry.out_stride
    m = n * gh * gw
    (br, flat), bm, bo = _block_r(r, c, block_r), _block_m(block_m), _pow2(o, 16, 64)
    tiles = triton.cdiv(r, br) * k * phases * triton.cdiv(o, bo)
    if split is None:   # aim at ~2,048 programs, each at least 8 row tiles
        split = max(1, min(triton.cdiv(2048, tiles), m // (8 * bm)))
    rows_per_split = triton.cdiv(triton.cdiv(m, split), bm) * bm
    split = triton.cdiv(m, rows_per_split)
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32   # float64: the interpreter's tests
    dw = torch.empty((split, k * phases, r, o), device=x.device, dtype=acc_dtype)
    db = torch.empty((split, k * phases, o), device=x.device, dtype=acc_dtype) if with_bias else dw
    grid = (triton.cdiv(r, br) * split, k * phases, triton.cdiv(o, bo))
    _wgrad_kernel[grid](
        x, grad, grad if mask is None else mask, dw, db, n, rows_per_split, split, k * phases,
        H=h, W=w_in, C=c, GH=gh, GW=gw, HO=ho, WO=wo, O=o, R=r,
        S=geometry.stride, D=geometry.step, TX=geometry.taps, OFF=geometry.offset, PIN=geometry.phase_in,
        OS=geometry.out_stride, P=phases, HAS_MASK=mask is not None, HAS_BIAS=with_bias,
        PREC=_precision(x.dtype, precision), ACC=_accumulator(x.dtype), FLAT=flat, BM=bm, BR=br, BO=bo,
        **_launch(num_warps, num_stages))
    dw = (dw[0] if split == 1 else dw.sum(0)).view(k, phases, r, o)
    return dw, (db.sum(0).view(k, phases, o).sum(1) if with_bias else None)


# ---- the layer ----------------------------------------------------------------------------------------------------


# The layer is a pair of custom operators: torch.compile then calls the kernels as opaque operators (with their
# output shapes from the fake implementations) and compiles the rest of the step around them.


def conv_forward(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None, kind: str, relu: bool,
                 precision: str) -> torch.Tensor:
    """The layer's forward pass (the body of its custom operator; see :func:`packed_conv`)."""
    h, w = out_size(kind, x.shape[2]), out_size(kind, x.shape[3])
    layer = (kind, x.shape[-1], matrix.shape[-1], x.shape[2])
    # every program reads the whole weight tile it needs: cast the (small) weights to the activations' dtype once,
    # not in every program
    return gather_gemm(x, forward_matrix(kind, matrix).to(x.dtype), bias, FORWARD[kind], (h, w), relu=relu,
                       precision=precision, **launch_config(*layer, "forward"))


@torch.library.custom_op("dstudy::triton_packed_conv", mutates_args=())
def _conv_op(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, kind: str, relu: bool,
             precision: str) -> torch.Tensor:
    return conv_forward(x, matrix, bias, kind, relu, precision)


@_conv_op.register_fake
def _conv_shape(x, matrix, bias, kind, relu, precision):
    return x.new_empty((x.shape[0], x.shape[1], out_size(kind, x.shape[2]), out_size(kind, x.shape[3]),
                        matrix.shape[-1]))


def conv_backward(grad: torch.Tensor, x: torch.Tensor, matrix: torch.Tensor, out: torch.Tensor | None, kind: str,
                  precision: str, input_grad: bool, bias_grad: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer's backward pass: ``out`` the forward output where it was ReLU'd (the gradient's mask), else None
    -> (dx, dmatrix, dbias); dx and dbias are empty when not asked for (an operator returns tensors only)."""
    c = x.shape[-1]
    layer = (kind, c, grad.shape[-1], x.shape[2])
    dx = grad.new_empty(0)
    if input_grad:
        dx = gather_gemm(grad, dgrad_matrix(kind, matrix.to(grad.dtype), c), None, DGRAD[kind], tuple(x.shape[2:4]),
                         mask=out, precision=precision, **launch_config(*layer, "dgrad"))
    dw, db = gather_gemm_wgrad(x, grad, FORWARD[kind], mask=out, with_bias=bias_grad, precision=precision,
                               **launch_config(*layer, "wgrad"))
    return dx, dw.view(matrix.shape), (db if bias_grad else dw.new_empty(0))


@torch.library.custom_op("dstudy::triton_packed_conv_backward", mutates_args=())
def _conv_backward_op(grad: torch.Tensor, x: torch.Tensor, matrix: torch.Tensor, out: torch.Tensor | None, kind: str,
                      precision: str, input_grad: bool, bias_grad: bool
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return conv_backward(grad, x, matrix, out, kind, precision, input_grad, bias_grad)


@_conv_backward_op.register_fake
def _conv_backward_shapes(grad, x, matrix, out, kind, precision, input_grad, bias_grad):
    accumulator = torch.float64 if x.dtype == torch.float64 else torch.float32
    return (grad.new_empty(x.shape if input_grad else (0,)), matrix.new_empty(matrix.shape, dtype=accumulator),
            matrix.new_empty((x.shape[0], grad.shape[-1]) if bias_grad else (0,), dtype=accumulator))


def _conv_setup(ctx, inputs, output):
    x, matrix, _, kind, relu, precision = inputs
    ctx.kind, ctx.precision = kind, precision
    ctx.save_for_backward(x, matrix, output if relu else None)


def _conv_backward(ctx, grad):
    x, matrix, out = ctx.saved_tensors
    input_grad, bias_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    dx, dw, db = _conv_backward_op(grad.contiguous(), x, matrix, out, ctx.kind, ctx.precision, input_grad, bias_grad)
    return (dx if input_grad else None), dw, (db if bias_grad else None), None, None, None


_conv_op.register_autograd(_conv_backward, setup_context=_conv_setup)


# ---- the output layer: a transposed convolution to few channels as a 1x1 GEMM and a col2im gather ------------------
# With O output channels (1 or 3: the images), the four-phase kernels pad O to a 16-column tile and read the input
# once per phase. Instead: P = x @ W_all, one pointwise GEMM to 16 * O columns (one per tap and channel), reading x
# once; then out[Y, X, o] = sum of P's columns (ky, kx, o) over the pixels with Y = 2i - 1 + ky, X = 2j - 1 + kx: a
# gather GEMM of P in the transposed geometry with a fixed 0/1 selection matrix (bias and ReLU fused there).

COL2IM_MAX_O = 4   # transposed convolutions with at most this many output channels take the col2im path
_POINTWISE = Geometry(stride=1, step=1, taps=1, offset=0, phase_in=0, out_stride=1, phases=1)


@functools.lru_cache(maxsize=16)
def _selection(o: int, device: str, dtype: torch.dtype, dgrad: bool = False) -> torch.Tensor:
    """The col2im gather's weights (1, 4 * 4 * 16 * O, O) in the "phases" form: the transposed convolution whose
    input channel (ky, kx, o') reaches output channel o through tap (ky, kx) alone, with weight 1 if o' = o.
    ``dgrad``: its input gradient's weights instead (:func:`dgrad_matrix`), a constant too."""
    if dgrad:
        return dgrad_matrix("conv_transpose4x4_s2", _selection(o, device, dtype), 16 * o)
    w = torch.zeros((1, 16 * o, o, 4, 4), dtype=torch.float64)
    for ky in range(4):
        for kx in range(4):
            for c in range(o):
                w[0, (ky * 4 + kx) * o + c, c, ky, kx] = 1.0
    return packed_layers.gemm_matrix("conv_transpose4x4_s2", w, "phases").to(device=device, dtype=dtype)


def col2im_forward(x: torch.Tensor, w_all: torch.Tensor, bias: torch.Tensor, relu: bool, precision: str
                   ) -> torch.Tensor:
    """The col2im path's forward pass: x (K, N, H, W, C), w_all (K, 1, C, 16 * O) columns (ky, kx, o), bias (K, O)
    -> (K, N, 2H, 2W, O)."""
    k, _, h, w, _ = x.shape
    o = bias.shape[-1]
    cols = gather_gemm(x, w_all.to(x.dtype), None, _POINTWISE, (h, w), precision=precision)
    select = forward_matrix("conv_transpose4x4_s2", _selection(o, str(x.device), x.dtype).expand(k, -1, -1))
    return gather_gemm(cols, select, bias, FORWARD["conv_transpose4x4_s2"], (2 * h, 2 * w), relu=relu,
                       precision=precision)


@torch.library.custom_op("dstudy::triton_col2im_conv", mutates_args=())
def _col2im_op(x: torch.Tensor, w_all: torch.Tensor, bias: torch.Tensor, relu: bool, precision: str
               ) -> torch.Tensor:
    return col2im_forward(x, w_all, bias, relu, precision)


@_col2im_op.register_fake
def _col2im_shape(x, w_all, bias, relu, precision):
    return x.new_empty((x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3], bias.shape[-1]))


def col2im_backward(grad: torch.Tensor, x: torch.Tensor, w_all: torch.Tensor, out: torch.Tensor | None,
                    precision: str, input_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The col2im path's backward pass (``out`` as in :func:`conv_backward`) -> (dx, dw_all); dx is empty when
    not asked for."""
    k, _, h, w, _ = x.shape
    o = grad.shape[-1]
    select = _selection(o, str(x.device), grad.dtype, dgrad=True).expand(k, -1, -1, -1)
    # the gradient of P: the col2im gather's input gradient (the ReLU mask applied to the output gradient's loads)
    dcols = gather_gemm(grad, select, None, DGRAD["conv_transpose4x4_s2"], (h, w), mask=out, precision=precision)
    dx = grad.new_empty(0)
    if input_grad:
        dx = gather_gemm(dcols, w_all.to(grad.dtype).transpose(2, 3), None, _POINTWISE, (h, w), precision=precision)
    dw, _ = gather_gemm_wgrad(x, dcols, _POINTWISE, with_bias=False, precision=precision)
    return dx, dw


@torch.library.custom_op("dstudy::triton_col2im_conv_backward", mutates_args=())
def _col2im_backward_op(grad: torch.Tensor, x: torch.Tensor, w_all: torch.Tensor, out: torch.Tensor | None,
                        precision: str, input_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return col2im_backward(grad, x, w_all, out, precision, input_grad)


@_col2im_backward_op.register_fake
def _col2im_backward_shapes(grad, x, w_all, out, precision, input_grad):
    accumulator = torch.float64 if x.dtype == torch.float64 else torch.float32
    return grad.new_empty(x.shape if input_grad else (0,)), w_all.new_empty(w_all.shape, dtype=accumulator)


def _col2im_setup(ctx, inputs, output):
    x, w_all, _, relu, precision = inputs
    ctx.precision = precision
    ctx.save_for_backward(x, w_all, output if relu else None)


def _col2im_backward(ctx, grad):
    x, w_all, out = ctx.saved_tensors
    grad = grad.contiguous()
    dx, dw = _col2im_backward_op(grad, x, w_all, out, ctx.precision, ctx.needs_input_grad[0])
    db = None
    if ctx.needs_input_grad[2]:
        masked = grad if out is None else torch.where(out > 0, grad, torch.zeros_like(grad))
        db = masked.sum(dim=(1, 2, 3), dtype=torch.float64 if grad.dtype == torch.float64 else torch.float32)
    return (dx if ctx.needs_input_grad[0] else None), dw, db, None, None


_col2im_op.register_autograd(_col2im_backward, setup_context=_col2im_setup)


def _col2im_conv(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, relu: bool, precision: str):
    """The transposed convolution of the stored "phases" matrix (K, 16 * C, O) by the col2im path."""
    return _col2im_op(x, col2im_matrix(matrix, x.shape[-1]), bias, relu, precision)


def col2im_matrix(matrix: torch.Tensor, c_in: int) -> torch.Tensor:
    """The col2im path's pointwise weights from the stored "phases" matrix (K, 16 * C, O) -> (K, 1, C, 16 * O),
    columns (ky, kx, o) (differentiable torch ops)."""
    k, o = matrix.shape[0], matrix.shape[-1]
    weight = packed_layers.gemm_weight("conv_transpose4x4_s2", matrix, (k, c_in, o, 4, 4), "phases")
    return weight.permute(0, 1, 3, 4, 2).reshape(k, 1, c_in, 16 * o)


def packed_conv(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, kind: str, relu: bool = False,
                precision: str = "fp32") -> torch.Tensor:
    """K convolutions of ``kind`` (:data:`KINDS`) with fused bias and optional ReLU: x (K, N, H, W, C)
    channels-last (made contiguous), ``matrix`` (K, P * R, O) the stored weights
    (``packed_layers.gemm_matrix(kind, weight, packed_layers.TRITON_FORMS[kind])``), bias (K, O)
    -> (K, N, HO, WO, O) in x's dtype. ``precision`` "tf32" lets fp32 operands use TF32 products."""
    if kind not in FORWARD:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "conv_transpose4x4_s2" and matrix.shape[-1] <= COL2IM_MAX_O:
        return _col2im_conv(x.contiguous(), matrix, bias, relu, precision)
    return _conv_op(x.contiguous(), matrix, bias, kind, relu, precision)


