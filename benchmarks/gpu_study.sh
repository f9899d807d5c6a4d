#!/usr/bin/env bash
# The GPU study (preset `gpu`): ONE prepared command for a lent H100/H200, run from the repository root:
#
#     OUT=$OUT bash benchmarks/gpu_study.sh              # on the GPU machine; at most ~9 minutes
#     bash benchmarks/gpu_study.sh --rehearse            # here, on the CPU: the same commands at tiny sizes
#
# Phases: 0 environment; 1 install without dependencies (the GPU machine has no registry), PYTHONPATH fallback;
# 2 the dSprites base array for device-resident batches (<= 100 s); 3 `dstudy sweep gpu` under `timeout` (six
# workers share the GPU, one pack of 9 runs per method, bf16, evaluation on the host's cores beside the training):
# what finishes is stored and the same command resumes the rest; 4 `dstudy report` of the store. The store and the
# report are copied to $OUT (reports/gpu/ in the repository).
set -u
REHEARSE=0
[ "${1:-}" = "--rehearse" ] && REHEARSE=1
OUT="${OUT:-$PWD/gpu_study_out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_study.log") 2>&1
set -x
export PYTHONUNBUFFERED=1
export DSTUDY_CACHE="${DSTUDY_CACHE:-/tmp/dstudy-cache}"
PY="${PY:-python3}"
T0=$(date +%s)
phase() { echo "=== phase $1 at +$(( $(date +%s) - T0 )) s ==="; }

STORE="$OUT/study.sqlite"
if [ "$REHEARSE" = "1" ]; then
  # the gpu preset at tiny sizes: the same sweep and report code paths, on the CPU, in a few minutes
  STUDY="$OUT/gpu-rehearsal.toml"
  $PY - "$STUDY" <<'EOF'
import sys
from importlib import resources
text = resources.files("training.study.presets").joinpath("gpu.toml").read_text()
text = text.replace('name = "gpu"', 'name = "gpu-rehearsal"').replace("steps = 30000", "steps = 20")
text = text.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2]").replace("scale = 0.1", "scale = 0.002")
text = text.replace("downstream_num_train = [10, 100, 1000]", "downstream_num_train = [10]")
text = text.replace('precision = "bf16"', 'precision = "bf16"\nnum_eval_samples = 64')
open(sys.argv[1], "w").write(text)
EOF
  DEVICE=cpu; WORKERS=2; THREADS=1; SWEEP_LIMIT=1500; REPORT_LIMIT=600
else
  STUDY=gpu; DEVICE=cuda; WORKERS=6; THREADS=2; SWEEP_LIMIT=420; REPORT_LIMIT=100
fi

phase 0
nvidia-smi || true
$PY -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

phase 1
if [ "$REHEARSE" = "0" ]; then
  timeout 60 $PY -m pip install -q --no-deps --no-build-isolation -e . || echo "pip install -e . failed; PYTHONPATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import training.engine.packed, training.study; print('imports ok')" || { echo "imports failed"; exit 1; }

phase 2
if [ "$REHEARSE" = "0" ]; then
  timeout 100 $PY -c "from training.data import dsprites_base_images; print(dsprites_base_images(packed=True).shape)" \
    || echo "base array not ready in time: batches drawn on the host"
fi

phase 3
[ -f reports/gpu/study.sqlite ] && [ ! -f "$STORE" ] && cp reports/gpu/study.sqlite "$STORE"   # resume a study
timeout -s TERM "$SWEEP_LIMIT" $PY -m training.cli sweep "$STUDY" --store "$STORE" --device "$DEVICE" \
  --workers "$WORKERS" --threads "$THREADS" --pack 9 --quiet || echo "sweep stopped (exit $?): resume with the same command"
$PY -m training.cli status --store "$STORE" | tail -5

phase 4
timeout "$REPORT_LIMIT" $PY -m training.cli report --store "$STORE" --out "$OUT/report" || echo "report stopped (exit $?)"
echo "=== done at +$(( $(date +%s) - T0 )) s ==="
