"""Time each fused Triton kernel of ``train_packed(impl="triton")`` per layer and pass, for several launch configs.

For every convolution of the shared architecture (beta-VAE on 64x64x1 images, batch 64) and each of its passes
(forward, input gradient, weight gradient), on a pack of K models in bf16, this times the kernel with each
(rows per program, warps, pipeline stages[, reduction indices per tile]) of ``--configs`` and prints the time, the
achieved TFLOP/s and GB/s (the bytes the pass must read and write at least once), and the best config. The sum of
the best times is the convolutions' share of a packed training step; ``K / sum`` bounds the model-steps/s these
kernels allow.

    python benchmarks/triton_tune.py [--k 512] [--configs 64:8:3 128:8:3 32:4:3:128] [--json out.json]

The JSON's "best" lists the fastest configuration of each layer and pass in the form
``training.kernels.triton_layers.set_launch_configs`` installs (``gpu_pack.py --launch out.json``). Then each layer's
whole forward and backward pass (autograd, bf16 autocast, as training runs it) is timed twice: the fused kernels with
their best configurations, and impl gemm's layer (``packed_layers``). The JSON's "layers" gives the faster of the two
per layer, the form ``triton_layers.set_layer_impls`` installs (impl "triton" then runs the gemm layer where it is
faster). The output layer (at most ``triton_layers.COL2IM_MAX_O`` channels) trains by the col2im path: its
per-pass rows time the four-phase kernels, its forward + backward row the col2im path that training runs.

``--tiny`` runs the script on the CPU in Triton's interpreter (K=2, batch 4; timings meaningless).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timer(device):
    """Median milliseconds of fn(): triton's do_bench on CUDA, a few plain calls elsewhere."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return lambda fn: do_bench(fn, warmup=5, rep=25, return_mode="median")

    def plain(fn):
        fn()
        start = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - start)
    return plain


def parse_config(spec: str) -> tuple[int, int, int, int | None]:
    """``block_m:num_warps:num_stages[:block_r]`` -> (block_m, num_warps, num_stages, block_r or None)."""
    values = [int(v) for v in spec.split(":")]
    if len(values) not in (3, 4):
        raise SystemExit(f"a launch config is block_m:num_warps:num_stages[:block_r], got {spec!r}")
    return tuple(values) if len(values) == 4 else (*values, None)


def _spec(cfg: dict) -> str:
    return ":".join(str(cfg[key]) for key in ("block_m", "num_warps", "num_stages", "block_r")
                    if cfg[key] is not None)


def compare_layer(time_ms, T, L, name, kind, c, o, size, relu, weight, bias, x, grad, best, device) -> dict:
    """One layer's forward + backward (autograd, bf16 autocast on CUDA) with the fused kernels (their best launch
    configurations installed) and with gemm's layer -> a row of "layers" (the faster is the layer's impl)."""
    import torch

    T.set_launch_configs(best)
    first = name == "conv1"   # the images need no gradient
    xg = x.detach().requires_grad_(not first)
    bias = bias.detach().requires_grad_(True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    fns = {}
    for impl in ("triton", "gemm"):
        form = L.TRITON_FORMS[kind] if impl == "triton" else L.gemm_form(kind, c, o)
        matrix = L.gemm_matrix(kind, weight, form).contiguous().requires_grad_(True)   # fp32, as training keeps it
        inputs = ([] if first else [xg]) + [matrix, bias]

        def layer(impl=impl, matrix=matrix, form=form, inputs=inputs):
            with autocast:
                if impl == "triton":
                    out = T.packed_conv(xg, matrix, bias, kind, relu=relu, precision="bf16")
                else:
                    out = (L.conv4x4_s2(xg, matrix, bias, form) if kind == "conv4x4_s2" else
                           L.conv2x2_s2(xg, matrix, bias) if kind == "conv2x2_s2" else
                           L.conv_transpose4x4_s2(xg, matrix, bias, form))
                    out = torch.relu(out) if relu else out
            return torch.autograd.grad(out, inputs, grad.to(out.dtype))
        fns[impl] = layer
    times = {impl: time_ms(fn) for impl, fn in fns.items()}
    row = {"layer": name, "kind": kind, "c": c, "o": o, "height": size, "triton_ms": times["triton"],
           "gemm_ms": times["gemm"], "impl": min(times, key=times.get)}
    print(f"{name:8s} forward+backward: triton {times['triton']:8.3f} ms, gemm {times['gemm']:8.3f} ms -> "
          f"{row['impl']}", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--configs", nargs="+", default=["64:8:3", "128:8:3", "32:4:3", "64:8:3:128", "32:4:3:128"],
                        help="block_m:num_warps:num_stages[:block_r] ...")
    parser.add_argument("--json", default=None)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    import torch

    if args.tiny:
        os.environ.setdefault("TRITON_INTERPRET", "1")
        device, k, n = torch.device("cpu"), 2, 4
    elif torch.cuda.is_available():
        device, k, n = torch.device("cuda"), args.k, args.batch_size
    else:
        print("no CUDA device (--tiny runs the script on the CPU)")
        return 2
    from triton_compile import architecture

    from training.kernels import packed_layers as L
    from training.kernels import triton_layers as T

    dtype = torch.float32 if args.tiny else torch.bfloat16
    time_ms = _timer(device)
    configs = [parse_config(spec) for spec in args.configs]
    rows, best_rows, layer_rows, total = [], [], [], 0.0
    g = torch.Generator(device=device).manual_seed(0)
    print(f"{torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu (interpreter)'}, K={k}, batch {n}")
    for name, kind, c, o, size, relu in architecture(1):
        shape = (k,) + L.weight_shape(kind, c, o)
        weight = 0.1 * torch.randn(shape, generator=g, device=device)
        matrix = L.gemm_matrix(kind, weight, L.TRITON_FORMS[kind]).contiguous().to(dtype)   # as packed_conv casts
        bias = 0.1 * torch.randn((k, o), generator=g, device=device)
        x = torch.randn((k, n, size, size, c), generator=g, device=device).to(dtype)
        out_hw = (T.out_size(kind, size),) * 2
        out = T.gather_gemm(x, T.forward_matrix(kind, matrix), bias, T.FORWARD[kind], out_hw, relu=relu)
        grad = torch.randn(out.shape, generator=g, device=device).to(dtype)
        mask = out if relu else None
        # each output element sums R = taps^2 * C products (a phase of the transposed convolution: 2x2 taps); the
        # two gradients cost the same
        flops = 2.0 * out.numel() * T.FORWARD[kind].taps ** 2 * c
        size_of = x.element_size()
        passes = {   # each: launch config (block_m, num_warps, num_stages, block_r) -> the pass
            "forward": (lambda cfg: T.gather_gemm(x, T.forward_matrix(kind, matrix), bias, T.FORWARD[kind], out_hw,
                                                  relu=relu, **cfg),
                        (x.numel() + out.numel()) * size_of),
            "wgrad": (lambda cfg: T.gather_gemm_wgrad(x, grad, T.FORWARD[kind], mask=mask, **cfg),
                      (x.numel() + out.numel() * (2 if relu else 1)) * size_of),
        }
        if name != "conv1":
            dmatrix = T.dgrad_matrix(kind, matrix, c)
            passes["dgrad"] = (lambda cfg: T.gather_gemm(grad, dmatrix, None, T.DGRAD[kind], (size, size),
                                                         mask=mask, **cfg),
                               (x.numel() + out.numel() * (2 if relu else 1)) * size_of)
        for pass_name, (fn, nbytes) in passes.items():
            best = None
            for bm, warps, stages, block_r in configs:
                cfg = {"block_m": bm, "num_warps": warps, "num_stages": stages, "block_r": block_r}
                try:
                    ms = time_ms(lambda: fn(cfg))
                except Exception as exc:  # noqa: BLE001 (e.g. out of shared memory: report, go on)
                    print(f"  {name:8s} {pass_name:8s} {_spec(cfg)} failed: {type(exc).__name__}: "
                          f"{str(exc)[:200]}", flush=True)
                    continue
                row = {"layer": name, "pass": pass_name, **cfg, "ms": ms, "tflops": flops / ms / 1e9,
                       "gbps": nbytes / ms / 1e6}
                rows.append(row)
                if best is None or ms < best["ms"]:
                    best = row
            if best is not None:
                total += best["ms"]
                best_rows.append({"kind": kind, "c": c, "o": o, "height": size, "pass": pass_name,
                                  **{key: best[key] for key in ("block_m", "num_warps", "num_stages", "block_r",
                                                                "ms")}})
                print(f"{name:8s} {pass_name:8s} best {_spec(best)} {best['ms']:8.3f} ms  {best['tflops']:7.1f} "
                      f"TFLOP/s  {best['gbps']:7.0f} GB/s  ("
                      + ", ".join(f"{_spec(r)} {r['ms']:.3f}"
                                  for r in rows if r["layer"] == name and r["pass"] == pass_name) + ")", flush=True)
        layer_rows.append(compare_layer(time_ms, T, L, name, kind, c, o, size, relu, weight, bias, x, grad,
                                        [r for r in best_rows if r["kind"] == kind and r["c"] == c and r["o"] == o
                                         and r["height"] == size], device))
    print(f"sum of the best: {total:.2f} ms per step of K={k}: at most {k / total * 1e3:.0f} model-steps/s from the "
          f"convolutions alone")
    both = sum(r["triton_ms"] for r in layer_rows), sum(r["gemm_ms"] for r in layer_rows)
    chosen = sum(min(r["triton_ms"], r["gemm_ms"]) for r in layer_rows)
    print(f"layers forward + backward: triton {both[0]:.2f} ms, gemm {both[1]:.2f} ms, the faster of each "
          f"{chosen:.2f} ms ({', '.join(r['layer'] + ' ' + r['impl'] for r in layer_rows)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"k": k, "batch_size": n, "rows": rows, "best": best_rows,
                                                "layers": layer_rows, "sum_best_ms": total}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
