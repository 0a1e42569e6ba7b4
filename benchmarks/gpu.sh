#!/usr/bin/env bash
# Every GPU measurement in one run (well under 8 minutes on an H100); the summary table last.
#
#   make gpu-wheels            # here, with network: the wheels a bare GPU box lacks
#   bash benchmarks/gpu.sh     # there, from the repository root (benchmarks/wheels carried along)
#
# The box needs torch with CUDA, typer, rich, imageio, timm and safetensors; open_clip_torch,
# omegaconf and their small dependencies are installed from benchmarks/wheels, offline.
# Full-size random weights: imagenet f16 16384 VQGAN and ViT-B/32 (speed needs no real weights).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}
LOGS=${OUT:-/tmp}/vqclip-gpu
mkdir -p "$LOGS"

if ! "$PY" -c "import open_clip, omegaconf" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-index --find-links benchmarks/wheels \
    open_clip_torch omegaconf ftfy regex wcwidth tqdm filelock antlr4-python3-runtime
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOGS/gpu.txt"

run() {  # NAME COMMAND...: run a measurement, keep its table, go on if it fails
  local name=$1; shift
  echo "== $name: $*" >&2
  if ! timeout 240 "$@" >"$LOGS/$name.txt" 2>"$LOGS/$name.err"; then
    echo "FAILED (see $LOGS/$name.err)" >"$LOGS/$name.txt"; tail -5 "$LOGS/$name.err" >&2
  fi
}
run eager "$PY" benchmarks/step_bench.py --device cuda --grid 256:32 512:32 1024:32 --steps 20 --warmup 3
run fp32_tf32 "$PY" benchmarks/step_bench.py --device cuda --precision fp32 --grid 512:32 --steps 10 --warmup 2
run compiled "$PY" benchmarks/step_bench.py --device cuda --compile --grid 512:32 --steps 30 --warmup 5
run memory "$PY" benchmarks/memory_bench.py --device cuda --grid 512:32 1024:32 512:32:low 1024:32:low

echo
echo "vqclip GPU benchmarks, $(date -u +%Y-%m-%d), $(cat "$LOGS/gpu.txt")"
for name in eager fp32_tf32 compiled memory; do
  echo "-- $name"
  cat "$LOGS/$name.txt"
done
