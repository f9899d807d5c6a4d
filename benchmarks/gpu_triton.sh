#!/usr/bin/env bash
# The prepared device check for impl "triton" (issue 8), for one call on a lent H100/H200 (~8 minutes):
#
#     OUT=... bash benchmarks/gpu_triton.sh
#
#   1 the kernels' tests on CUDA (fp32, against cuDNN without TF32)                         <= 90 s
#   2 gpu_pack.py ceiling: ONE model at batch 64*K on cuDNN, bf16, K=128,512 (~30 s; the     \
#       pack's arithmetic in the vendor's kernels: what packing is measured against)
#     gpu_pack.py agree: the same 4 runs trained with gemm and triton, fp32 and bf16           } <= 270 s
#     gpu_pack.py speed: triton bf16 K=128,512, gemm bf16 K=512, triton tf32 K=512, ...       /
#     gpu_pack.py profile: the fastest configuration (host vs GPU time, host floor, kernels) /
#   3 triton_tune.py: each kernel per layer and pass at K=512 for seven launch configs, then   <= 130 s
#     each layer's forward + backward with the fused kernels and with gemm's layer
#   4 gpu_pack.py speed and profile again: triton bf16 K=512,1024 with the launch configs and   <= 110 s
#     the per-layer choices (fused kernels or gemm's) phase 3 found, gemm bf16 K=512, then
#     triton bf16 K=512 with torch.compile
# GPU_TRITON_PHASES="3 4" runs only those phases (default: all four).
# Every phase writes its log and JSON under $OUT as it goes, so a phase cut by its timeout still leaves its results.
# (8 files at most come back from a lent machine: phases.log, tests.log and the logs and JSON of phases 2-4.)
# GPU_TRITON_TINY=1: a dry run of the script on the CPU (Triton's interpreter, tiny sizes, generous timeouts).
set -u
OUT="${OUT:-$PWD/gpu_triton_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PY:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
TINY=""; T1=90; T2=270; T3=130; T4=110; PACK=""; TUNED="triton:bf16:512,1024 gemm:bf16:512 triton:bf16:512:compile"
PHASES=" ${GPU_TRITON_PHASES:-1 2 3 4} "
TUNE_CONFIGS="64:8:3 128:8:3 32:4:3 64:8:3:128 32:4:3:128 32:8:3:256 16:8:3:512"
if [ "${GPU_TRITON_TINY:-0}" = "1" ]; then
  TINY="--tiny"; T1=300; T2=900; T3=900; T4=300; export TRITON_INTERPRET=1
  PACK="--configs triton:fp32:2 gemm:fp32:2 --agree-precisions fp32 --ceiling-configs cudnn:fp32:2"
  TUNED="triton:fp32:2"
fi
T0=$(date +%s)
phase() { echo "=== $1 at +$(( $(date +%s) - T0 )) s ===" | tee -a "$OUT/phases.log"; }

phase "1 tests"
run() { case "$PHASES" in *" $1 "*) return 0;; *) echo "phase $1 skipped" | tee -a "$OUT/phases.log"; return 1;; esac; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$OUT/phases.log"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/phases.log"
if run 1; then
  timeout $T1 $PY -m pytest -q -p no:cacheprovider -o addopts="" tests/test_triton_layers.py > "$OUT/tests.log" 2>&1
  echo "tests exit $?" | tee -a "$OUT/phases.log"; tail -3 "$OUT/tests.log"
fi

phase "2 ceiling, agree, speed, profile"
if run 2; then
  timeout $T2 $PY benchmarks/gpu_pack.py $TINY --phases ceiling,agree,speed,profile --budget 120 \
    --ceiling-configs cudnn:bf16:128,512 $PACK \
    --json "$OUT/gpu_pack.json" > "$OUT/gpu_pack.log" 2>&1
  echo "gpu_pack exit $?" | tee -a "$OUT/phases.log"
  grep -E "ceiling|agree:|model-steps|profile:" "$OUT/gpu_pack.log" | head -44
fi

phase "3 tune"
if run 3; then
  timeout $T3 $PY benchmarks/triton_tune.py $TINY --k 512 --configs $TUNE_CONFIGS \
    --json "$OUT/triton_tune.json" > "$OUT/triton_tune.log" 2>&1
  echo "triton_tune exit $?" | tee -a "$OUT/phases.log"; tail -38 "$OUT/triton_tune.log"
fi

phase "4 speed with the tuned launches"
if ! run 4; then
  :
elif [ -s "$OUT/triton_tune.json" ]; then
  timeout $T4 $PY benchmarks/gpu_pack.py $TINY --phases speed,profile --budget 90 --configs $TUNED \
    --launch "$OUT/triton_tune.json" --json "$OUT/gpu_tuned.json" > "$OUT/gpu_tuned.log" 2>&1
  echo "gpu_pack tuned exit $?" | tee -a "$OUT/phases.log"; grep -E "model-steps|launch|profile:" "$OUT/gpu_tuned.log"
else
  echo "no tune results: phase 4 skipped" | tee -a "$OUT/phases.log"
fi
phase "done"
