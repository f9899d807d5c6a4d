"""Dataset speed and memory: ms per batch of 64 for each procedural dataset, one-time cache builds, resident memory.

Usage (serialise with other benchmarks on a shared machine):

    flock /tmp/dstudy-bench.lock python benchmarks/datasets.py [--batches 200] [--full-dsprites]

Per dataset it times ``sample(64, rs)`` (factor draws + images, the training loop's call) after a warm-up, and
``sample_observations_from_factors`` alone. The Shapes3D G-buffer build (480 configurations) is timed in a fresh
cache folder; ``--full-dsprites`` also renders the whole 737,280-image dSprites base array (3 GB in memory, ~30 s)
and reports the cache build and load times. Targets (issue 3): <= 5 ms for dsprites_full and shapes3d, <= 15 ms for
the variants. Numbers on a shared 2-core machine are inflated; the load average is printed alongside.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np

PROCEDURAL = ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "shapes3d")


def rss_mib() -> float:
    """Current resident set size of this process in MiB (from /proc), or the peak where /proc is unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_batches(fn, batches: int) -> tuple[float, float]:
    """Median wall-clock ms of ``fn()`` over ``batches`` calls, and mean CPU (process) ms per call.

    On a loaded shared machine the wall time includes waiting for a core; the CPU time does not.
    """
    times = []
    cpu_start = time.process_time()
    for _ in range(batches):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), (time.process_time() - cpu_start) / batches * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="timed batches per dataset (default 200)")
    parser.add_argument("--full-dsprites", action="store_true", help="also build the whole dSprites base array")
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="dstudy-bench-cache-")
    os.environ["DSTUDY_CACHE"] = cache          # cold caches, so the one-time builds are measured
    for var in ("DSTUDY_DATA", "DISENTANGLEMENT_LIB_DATA"):
        os.environ.pop(var, None)

    from training.data import get_dataset
    from training.data.dsprites_render import dsprites_base_images

    print(f"load average at start: {os.getloadavg()}; cpus: {os.cpu_count()}")
    print(f"resident memory at start: {rss_mib():.0f} MiB")

    start = time.perf_counter()
    shapes = get_dataset("shapes3d")
    build = shapes.precompute()
    print(f"shapes3d: G-buffer build (480 configurations, cold cache): {build:.1f} s "
          f"(total {time.perf_counter() - start:.1f} s incl. saving), {shapes.memory_bytes() / 2**20:.0f} MiB")
    from training.data.registry import clear_cache
    from training.data.shapes3d import ProceduralShapes3D
    start = time.perf_counter()
    ProceduralShapes3D()
    print(f"shapes3d: G-buffer cache load (warm cache): {time.perf_counter() - start:.2f} s")
    clear_cache()

    print(f"\n{'dataset':<16} {'sample(64) ms':>14} {'cpu ms':>7} {'from_factors ms':>16} {'target':>7}  rss MiB")
    for name in PROCEDURAL:
        ds = get_dataset(name)
        if name == "shapes3d":
            ds.precompute()
        rs = np.random.RandomState(0)
        for _ in range(10):                      # warm-up
            ds.sample(64, rs)
        median, cpu = time_batches(lambda: ds.sample(64, rs), args.batches)
        factors = ds.sample_factors(64, rs)
        median_f, _ = time_batches(lambda: ds.sample_observations_from_factors(factors, rs), args.batches)
        target = 5 if name in ("dsprites_full", "shapes3d") else 15
        print(f"{name:<16} {median:>14.2f} {cpu:>7.2f} {median_f:>16.2f} {target:>7}  {rss_mib():.0f}")

    if args.full_dsprites:
        start = time.perf_counter()
        bits = dsprites_base_images(packed=True)
        print(f"\ndsprites base array: render + pack + cache (cold): {time.perf_counter() - start:.1f} s, "
              f"packed {bits.nbytes / 2**20:.0f} MiB")
        del bits
        start = time.perf_counter()
        images = dsprites_base_images(packed=False)
        print(f"dsprites base array: load + verify + unpack (warm): {time.perf_counter() - start:.1f} s, "
              f"{images.nbytes / 2**30:.2f} GiB uint8; rss {rss_mib():.0f} MiB")
        del images
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"load average at end: {os.getloadavg()}")
    import shutil
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
