#!/usr/bin/env bash
# Every GPU measurement of vqclip in one device call, under 8 minutes by construction.
#
#   make gpu-wheels                        # here, with network: the wheels a bare GPU box lacks
#   bash benchmarks/gpu.sh                 # there, from the repository root (benchmarks/wheels carried)
#   bash benchmarks/gpu.sh --device cpu    # the same runs with the tiny models on one CPU thread:
#                                          # tries the script anywhere, even on a busy machine
#   bash benchmarks/gpu.sh --dry-run       # the planned runs in order, their time limits and the total
#
# The box needs torch (with CUDA), typer, rich, imageio, timm and safetensors; open_clip_torch,
# omegaconf and their small dependencies are installed from benchmarks/wheels, offline, and the
# benchmarks' imports are checked before anything is measured.
# Full-size random weights: imagenet f16 16384 VQGAN and ViT-B/32 (speed needs no real weights).
#
# Every run has a time limit and the limits add up to less than 480 s; the cheap runs come first
# and the compiled one last. `captured` rows record the step as one CUDA graph (--capture: on the
# CPU they time the eager step); `batch_*` rows give images per hour at 512x512 and 300 steps
# for K = 1, 4, 8, 16 images per step, eager and captured; GPU busy is the profiler's kernel
# time over wall time. `peer` runs nerdyrodent's generate.py, unmodified, at 512x512 and 32
# cutouts (fp32, as it always runs: set it beside `fp32`) when benchmarks/peer was carried
# (benchmarks/peer_prepare.sh). Rows are printed as they are measured and kept in
# ${OUT:-/tmp}/vqclip-gpu/NAME.txt, so a run stopped at its limit keeps the rows it finished.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BUDGET=480

DEVICE=cuda DRY=0
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --dry-run) DRY=1; shift ;;
    *) echo "usage: bash benchmarks/gpu.sh [--device cuda|cpu] [--dry-run]" >&2; exit 2 ;;
  esac
done
case $DEVICE in
  cuda) MODEL=full THREADS=2 SMALL="256:32 512:32" MID=512:32 LARGE=1024:32 MEM="512:32 1024:32:low" KS="1 4 8 16"
        PEER="512 32 20" ;;
  cpu) MODEL=tiny THREADS=1 SMALL="32:4 48:4" MID=32:4 LARGE=64:4 MEM="32:4 32:4:low" KS="1 2" PEER="32 1 2" ;;
  *) echo "--device $DEVICE: expected cuda or cpu" >&2; exit 2 ;;
esac
if [ "$DEVICE" = cuda ]; then
  MACHINE="nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader"
else
  MACHINE="lscpu | sed -n 's/^Model name: *//p'"
fi
STEP="$PY benchmarks/step_bench.py --device $DEVICE --model $MODEL --threads $THREADS"
WHEELS="open_clip_torch omegaconf"  # their dependencies come from benchmarks/wheels too
IMPORTS="import open_clip, omegaconf, torch, step_bench, memory_bench"
[ "$DEVICE" = cuda ] && IMPORTS="$IMPORTS; assert torch.cuda.is_available(), 'no CUDA device'"

# NAME|SECONDS|COMMAND, in the order they run.
PLAN=(
  "machine|5|$MACHINE"
  "install|20|$PY -c 'import open_clip, omegaconf' 2>/dev/null || $PY -m pip install --quiet --no-index --find-links benchmarks/wheels $WHEELS"
  "imports|25|PYTHONPATH=benchmarks:\$PYTHONPATH $PY -c \"$IMPORTS; print('imports ok: torch', torch.__version__, 'open_clip', open_clip.__version__)\""
  "eager_bf16|35|$STEP --precision auto --grid $SMALL --steps 10 --warmup 2 --busy"
  "captured|45|$STEP --precision auto --capture --grid $SMALL $LARGE --steps 10 --warmup 5 --busy"
  "batch_eager|40|$STEP --precision auto --grid $MID --batch-sizes $KS --steps 3 --warmup 1"
  "batch_captured|45|$STEP --precision auto --capture --grid $MID --batch-sizes $KS --steps 5 --warmup 5"
  "fp32|20|$STEP --precision fp32 --grid $MID --steps 5 --warmup 1"
  "peer|70|bash benchmarks/peer_gpu.sh --device $DEVICE $PEER"
  "memory|60|$PY benchmarks/memory_bench.py --device $DEVICE --model $MODEL --threads $THREADS --grid $MEM"
  "compiled|110|$STEP --precision auto --compile --grid $MID --steps 10 --warmup 3"
)

total=0
for item in "${PLAN[@]}"; do total=$((total + $(cut -d'|' -f2 <<<"$item"))); done
if [ "$DRY" = 1 ]; then
  for item in "${PLAN[@]}"; do
    IFS='|' read -r name limit command <<<"$item"
    printf '%-12s %4d s  %s\n' "$name" "$limit" "$command"
  done
  printf 'total %d s of %d s\n' "$total" "$BUDGET"
fi
if [ "$total" -ge "$BUDGET" ]; then
  echo "the runs' time limits add up to $total s, over the $BUDGET s budget" >&2; exit 1
fi
[ "$DRY" = 1 ] && exit 0

LOGS=${OUT:-/tmp}/vqclip-gpu
mkdir -p "$LOGS"
started=$SECONDS
echo "vqclip benchmarks/gpu.sh --device $DEVICE, $(date -u +%Y-%m-%d)"
for item in "${PLAN[@]}"; do
  IFS='|' read -r name limit command <<<"$item"
  echo "== $name (limit $limit s): $command"
  run_started=$SECONDS
  timeout --kill-after=5 "$limit" bash -c "$command" 2>"$LOGS/$name.err" | tee "$LOGS/$name.txt"
  status=${PIPESTATUS[0]}
  echo "   ($name took $((SECONDS - run_started)) s)"
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "TIMED OUT after $limit s (rows above were measured)" | tee -a "$LOGS/$name.txt"
  elif [ "$status" -ne 0 ]; then
    echo "FAILED with status $status (see $LOGS/$name.err):" | tee -a "$LOGS/$name.txt"
    tail -5 "$LOGS/$name.err" | tee -a "$LOGS/$name.txt"
    if [ "$name" = install ] || [ "$name" = imports ]; then
      echo "cannot measure without these imports; nothing else was run" >&2; exit 1
    fi
  fi
done

echo
echo "== summary: vqclip benchmarks/gpu.sh --device $DEVICE, $(date -u +%Y-%m-%d), $((SECONDS - started)) s"
for item in "${PLAN[@]}"; do
  name=${item%%|*}
  echo "-- $name"
  cat "$LOGS/$name.txt"
done
