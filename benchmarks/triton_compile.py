"""Compile every Triton kernel variant of ``train_packed(impl="triton")`` for a GPU target, without a GPU.

A pre-flight check for a lent device: the kernels' tests run in Triton's interpreter here, which does not type-check
or lower them the way the compiler does. This script runs one packed forward and backward pass of the shared
architecture's convolutions on "meta" tensors (shapes only), records each kernel launch instead of running it, and
compiles each distinct variant (kernel, dtypes, constexprs) for ``--arch`` (default sm_90, H100/H200) with Triton's
own compiler. It prints each variant's registers, spilled bytes and shared memory; a variant that fails to compile
prints its error, and the exit status is 1.

    python benchmarks/triton_compile.py [--arch 90] [--channels 1] [--precision bf16]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from training.kernels import packed_layers as L  # noqa: E402
from training.kernels import triton_layers as T  # noqa: E402

# (name, kind, input channels, output channels, input size, ReLU after it) for C-channel images
def architecture(channels: int) -> list[tuple[str, str, int, int, int, bool]]:
    return [("conv1", "conv4x4_s2", channels, 32, 64, True), ("conv2", "conv4x4_s2", 32, 32, 32, True),
            ("conv3", "conv2x2_s2", 32, 64, 16, True), ("conv4", "conv2x2_s2", 64, 64, 8, True),
            ("deconv1", "conv_transpose4x4_s2", 64, 64, 4, True), ("deconv2", "conv_transpose4x4_s2", 64, 32, 8, True),
            ("deconv3", "conv_transpose4x4_s2", 32, 32, 16, True),
            ("deconv4", "conv_transpose4x4_s2", 32, channels, 32, False)]


_TYPES = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float64: "*fp64"}


class _Recorder:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](*args, **constexprs)`` records the call."""

    def __init__(self, kernel, calls: list):
        self.kernel, self.calls = kernel, calls

    def __getitem__(self, grid):
        def launch(*args, **constexprs):
            self.calls.append((self.kernel, grid, args, constexprs))
        return launch


def record_launches(channels: int, precision: str, k: int = 2, n: int = 64) -> list:
    """The kernel launches of one forward and backward pass of the eight convolutions (meta tensors)."""
    calls: list = []
    saved = T._gather_gemm_kernel, T._wgrad_kernel
    T._gather_gemm_kernel, T._wgrad_kernel = _Recorder(saved[0], calls), _Recorder(saved[1], calls)
    try:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        for name, kind, c, o, size, relu in architecture(channels):
            shape = (k,) + L.weight_shape(kind, c, o)
            matrix = L.gemm_matrix(kind, torch.empty(shape, device="meta"), L.TRITON_FORMS[kind])
            bias = torch.empty((k, o), device="meta")
            x = torch.empty((k, n, size, size, c), device="meta", dtype=dtype)
            # the custom operators' bodies (through the dispatcher, meta tensors would run the shape-only fakes)
            if kind == "conv_transpose4x4_s2" and o <= T.COL2IM_MAX_O:
                w_all = T.col2im_matrix(matrix, c)
                out = T.col2im_forward(x, w_all, bias, relu, precision)
                T.col2im_backward(torch.empty_like(out), x, w_all, out if relu else None, precision, True)
            else:
                out = T.conv_forward(x, matrix, bias, kind, relu, precision)
                T.conv_backward(torch.empty_like(out), x, matrix, out if relu else None, kind, precision,
                                name != "conv1", True)
    finally:
        T._gather_gemm_kernel, T._wgrad_kernel = saved
    return calls


def resource_usage(cubin: bytes) -> str:
    """Registers, local (spill) memory and stack of a cubin, and its count of machine (SASS) instructions (a static
    measure of the kernel's code: fewer for the same tiles means less address arithmetic), from the ``cuobjdump``
    that Triton's package carries."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.exists():
        return ""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
        sass = subprocess.run([str(tool), "-sass", f.name], capture_output=True, text=True).stdout
    found = {key: re.search(rf"{key}:(\d+)", text) for key in ("REG", "STACK", "LOCAL")}
    instructions = len(re.findall(r"^\s+/\*[0-9a-f]{4,}\*/", sass, flags=re.MULTILINE))
    return ", ".join([f"{key.lower()} {m.group(1)}" for key, m in found.items() if m]
                     + [f"{instructions} instructions"])


def _variant(kernel, args, constexprs) -> tuple[dict, dict]:
    names = kernel.arg_names
    signature, values = {}, {}
    for name, value in zip(names, args):
        if isinstance(value, torch.Tensor):
            signature[name] = _TYPES[value.dtype]
        else:
            signature[name] = "i32"
    for name, value in constexprs.items():
        signature[name] = "constexpr"
        values[name] = value
    return signature, values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability x 10 (90: H100 / H200)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "tf32", "bf16"))
    parser.add_argument("--num-warps", type=int, default=None, help="default: the launchers' own choice")
    parser.add_argument("--num-stages", type=int, default=None,
                        help="default: the launch table's, else 3")
    args = parser.parse_args(argv)
    args.num_stages_given = args.num_stages is not None
    args.num_stages = 3 if args.num_stages is None else args.num_stages
    target = GPUTarget("cuda", args.arch, 32)
    seen, failed = set(), 0
    print(f"triton {triton.__version__}, target sm_{args.arch}, {args.precision}, {args.channels} channel(s)")
    for kernel, _grid, call_args, constexprs in record_launches(args.channels, args.precision):
        constexprs = dict(constexprs)   # the launch options (a launch table's) are not kernel arguments
        num_warps = constexprs.pop("num_warps", 4) if args.num_warps is None else args.num_warps
        constexprs.pop("num_warps", None)
        launch_stages = constexprs.pop("num_stages", None)
        num_stages = args.num_stages if launch_stages is None or args.num_stages_given else launch_stages
        signature, values = _variant(kernel, call_args, constexprs)
        key = (kernel.__name__, tuple(sorted(signature.items())), tuple(sorted((k, str(v)) for k, v in values.items())),
               num_warps, num_stages)
        if key in seen:
            continue
        seen.add(key)
        label = (f"{kernel.__name__:20s} " + " ".join(f"{k}={v}" for k, v in values.items() if k not in ("ACC",))
                 + f" warps={num_warps} stages={num_stages}")
        start = time.perf_counter()
        try:
            src = ASTSource(fn=kernel, signature=signature,
                            constexprs={(kernel.arg_names.index(k),): v for k, v in values.items()})
            compiled = triton.compile(src, target=target, options={"num_warps": num_warps,
                                                                   "num_stages": num_stages})
        except Exception as exc:  # noqa: BLE001 (report every failing variant)
            failed += 1
            print(f"FAILED {label}: {type(exc).__name__}: {str(exc)[:400]}", flush=True)
            continue
        usage = resource_usage(compiled.asm["cubin"])
        print(f"ok {label}  shared {compiled.metadata.shared} B, warps {compiled.metadata.num_warps}, {usage}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"{len(seen)} variants, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
