"""The kernel-sensitive tests pass under other CPU kernel families than this machine's own.

A user's CPU picks other kernels than CI's: oneDNN and ATen by instruction set (ONEDNN_MAX_CPU_ISA,
ATEN_CPU_CAPABILITY), OpenBLAS by core type (OPENBLAS_CORETYPE), NumPy's vectorised math by SIMD features
(NPY_DISABLE_CPU_FEATURES), and all of them by thread count. Every x86-64 CPU can run the oldest of these kernels, so
the tests whose numbers depend on the kernels (golden values of the reference, code-table tolerances, analytic cases,
pooled versus serial evaluation) run here again in a subprocess with those kernels forced.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NO_AVX512 = "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR AVX512_KNL AVX512_KNM X86_V4"
OLDEST = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENBLAS_CORETYPE": "Prescott",
          "NPY_DISABLE_CPU_FEATURES": NO_AVX512 + " X86_V3 AVX2 FMA3 F16C AVX", "OMP_NUM_THREADS": "1"}
AVX2_TWO_THREADS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
                    "NPY_DISABLE_CPU_FEATURES": NO_AVX512, "OMP_NUM_THREADS": "2"}
SENSITIVE = ["tests/test_metrics_downstream.py::test_array_core_matches_reference", "tests/test_metrics_golden.py",
             "tests/test_metrics_analytic.py",
             "tests/test_evaluate.py::test_pooled_run_gives_the_serial_numbers_for_the_evaluations_run_beside_the_pool",
             "tests/test_code_table.py"]

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 kernel families")


def _pytest_under(env: dict, targets: list[str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets, *extra],
                          cwd=ROOT, env=dict(os.environ, **env), capture_output=True, text=True, timeout=1800)


def test_kernel_sensitive_tests_pass_with_the_oldest_x86_64_kernels():
    done = _pytest_under(OLDEST, SENSITIVE, "-k", "not trained_encoder_agree and not threads_build")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("env", [OLDEST, AVX2_TWO_THREADS], ids=["oldest", "avx2-two-threads"])
def test_kernel_sensitive_modules_pass_whole_under_other_kernel_families(env):
    done = _pytest_under(env, SENSITIVE + ["tests/test_metrics_dci.py", "tests/test_evaluate.py",
                                           "tests/test_train_engine.py"], "-m", "slow or not slow")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
