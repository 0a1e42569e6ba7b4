#!/usr/bin/env bash
# The real vqclip command line, end to end, on CUDA: one device call, under 4.5 minutes by construction.
#
#   make gpu-wheels                            # here, with network: the wheels a bare GPU box lacks
#   bash benchmarks/gpu_cli.sh                 # there, from the repository root (benchmarks/wheels carried)
#   bash benchmarks/gpu_cli.sh --device cpu    # the same commands on the CPU with fewer steps: tries the
#                                              # script anywhere, even on a busy machine
#   bash benchmarks/gpu_cli.sh --dry-run       # the planned commands, their time limits and the total
#
# The box needs torch (with CUDA), typer, rich, imageio, timm, safetensors, pillow, numpy and pyyaml;
# open_clip_torch, omegaconf, imageio-ffmpeg (ffmpeg inside), pooch, textual-image and their small
# dependencies (requests among them) are installed from benchmarks/wheels, offline, when an import of
# them fails. Only the bundled shapes models are used: nothing is downloaded.
#
# The commands: generate; the same seed with the step captured as a CUDA graph (--set capture=true),
# its final.png compared with the first's (benchmarks/same_image.py); generate --batch-size 4; generate stopped by SIGINT once its run folder has
# a state.pt and a second frame, then resume of that folder; generate --video mp4; classify of the
# first run's final.png; generate --compile (last, the slowest). Every command has a time limit and
# the limits add up to less than 270 s (doubled with --device cpu). Each one's stdout (the --json
# line) is kept in ${OUT:-/tmp}/vqclip-gpu-cli/NAME.txt and its stderr in NAME.err, the run folders
# in runs/ there; a summary of exit codes, seconds and JSON lines comes last.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PY=${PYTHON:-python3}

DEVICE=cuda DRY=0
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --dry-run) DRY=1; shift ;;
    *) echo "usage: bash benchmarks/gpu_cli.sh [--device cuda|cpu] [--dry-run]" >&2; exit 2 ;;
  esac
done
# Steps of: generate, batch, the interrupted run (and its frame interval), video, compile.
# On the CPU (a dry check, often on a busy machine) every time limit and the budget are doubled.
case $DEVICE in
  cuda) GEN=60 BATCH=60 LONG=200 EVERY=10 VIDEO=30 COMPILE=30 SCALE=1 ;;
  cpu) GEN=10 BATCH=5 LONG=20 EVERY=5 VIDEO=10 COMPILE=3 SCALE=2 ;;
  *) echo "--device $DEVICE: expected cuda or cpu" >&2; exit 2 ;;
esac
export DEVICE
BUDGET=$((270 * SCALE))
if [ "$DEVICE" = cuda ]; then
  MACHINE="nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader"
else
  MACHINE="lscpu | sed -n 's/^Model name: *//p'"
fi
LOGS=${OUT:-/tmp}/vqclip-gpu-cli
export RUNS=$LOGS/runs
VQ="$PY -m vqclip"
GENERATE="$VQ generate 'a red circle' --preset shapes --device $DEVICE --json"
WHEELS="open_clip_torch omegaconf imageio-ffmpeg pooch textual-image"  # dependencies from the folder too
MODULES="open_clip, omegaconf, imageio_ffmpeg, pooch, textual_image"
IMPORTS="import torch, $MODULES; print('torch', torch.__version__, 'open_clip', open_clip.__version__)"
[ "$DEVICE" = cuda ] && IMPORTS="$IMPORTS; assert torch.cuda.is_available(), 'no CUDA device'"

# interrupted_run LIMIT STEPS EVERY: a generate stopped by SIGINT (as Ctrl-C stops it) once its folder
# holds a state.pt and the frame of step EVERY, so that the loop is running; it should exit 130.
# timeout catches SIGINT, so the run gets Python's handler even where a background job ignores it,
# and it passes the SIGINT on; at its own limit it sends SIGINT too.
interrupted_run() {
  local limit=$1 steps=$2 every=$3 dir=$RUNS/interrupt started=$SECONDS
  timeout -s INT -k 5 "$limit" $PY -m vqclip generate 'a red circle' --preset shapes --device "$DEVICE" \
    --json --seed 3 --steps "$steps" --save-every "$every" -o "$dir" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local state
    state=$(find "$dir" -name state.pt -print -quit 2>/dev/null)
    if [ -n "$state" ] && [ "$(find "${state%/state.pt}/frames" -name '*.png' 2>/dev/null | wc -l)" -ge 2 ]; then
      echo "SIGINT after $((SECONDS - started)) s: $(ls "${state%/state.pt}/frames" | tr '\n' ' ')" >&2
      kill -INT "$pid"
      break
    fi
    sleep 0.1
  done
  wait "$pid"
  local status=$?
  [ "$status" -eq 130 ] && { echo "exit 130: interrupted, as meant" >&2; return 0; }
  echo "exit $status, not the 130 of an interrupted run" >&2
  return "$status"
}
export -f interrupted_run
STATE_DIR='"$(dirname "$(find "$RUNS/interrupt" -name state.pt -print -quit)")"'

# NAME|SECONDS|COMMAND, in the order they run; SECONDS are those of CUDA, SCALE times them on the CPU.
PLAN=(
  "machine|5|$MACHINE"
  "install|15|$PY -c 'import $MODULES' 2>/dev/null || $PY -m pip install --quiet --no-index --find-links benchmarks/wheels $WHEELS"
  "imports|30|$PY -c \"$IMPORTS\" && $VQ --version"
  "generate|20|$GENERATE --seed 1 --steps $GEN -o \$RUNS/generate"
  "captured|20|$GENERATE --seed 1 --steps $GEN --set capture=true -o \$RUNS/captured"
  "same|10|$PY benchmarks/same_image.py \$RUNS/generate \$RUNS/captured"
  "batch|20|$GENERATE --seed 2 --steps $BATCH --batch-size 4 -o \$RUNS/batch"
  "interrupt|20|interrupted_run $((17 * SCALE)) $LONG $EVERY"
  "resume|20|$VQ resume $STATE_DIR --json"
  "video|15|$GENERATE --seed 4 --steps $VIDEO --video mp4 -o \$RUNS/video"
  "classify|15|$VQ classify \$RUNS/generate/*/*/final.png --preset shapes -l 'a red circle' -l 'a blue square' --device $DEVICE --json"
  "compile|75|$GENERATE --seed 5 --steps $COMPILE --compile -o \$RUNS/compile"
)

total=0
for i in "${!PLAN[@]}"; do
  IFS='|' read -r name limit command <<<"${PLAN[$i]}"
  PLAN[$i]="$name|$((limit * SCALE))|$command"
  total=$((total + limit * SCALE))
done
if [ "$DRY" = 1 ]; then
  for item in "${PLAN[@]}"; do
    IFS='|' read -r name limit command <<<"$item"
    printf '%-9s %4d s  %s\n' "$name" "$limit" "$command"
  done
  echo "(interrupted_run LIMIT STEPS EVERY: $GENERATE --seed 3 --steps STEPS --save-every EVERY" \
    "-o \$RUNS/interrupt in the background, SIGINT once its folder has a state.pt and 2 frames)"
  printf 'total %d s of %d s; RUNS=%s\n' "$total" "$BUDGET" "$RUNS"
fi
if [ "$total" -ge "$BUDGET" ]; then
  echo "the commands' time limits add up to $total s, over the $BUDGET s budget" >&2; exit 1
fi
[ "$DRY" = 1 ] && exit 0

rm -rf "$LOGS"  # only this script's own folder: a rerun starts clean
mkdir -p "$RUNS"
started=$SECONDS
declare -A STATUS TOOK
echo "vqclip benchmarks/gpu_cli.sh --device $DEVICE, $(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null)"
for item in "${PLAN[@]}"; do
  IFS='|' read -r name limit command <<<"$item"
  echo "== $name (limit $limit s): $command"
  run_started=$SECONDS
  timeout --kill-after=5 "$limit" bash -c "$command" 2>"$LOGS/$name.err" | tee "$LOGS/$name.txt"
  status=${PIPESTATUS[0]}
  STATUS[$name]=$status TOOK[$name]=$((SECONDS - run_started))
  tail -n 2 "$LOGS/$name.err" | sed 's/^/   | /'
  echo "   ($name: exit $status in ${TOOK[$name]} s)"
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "TIMED OUT after $limit s" | tee -a "$LOGS/$name.txt"
  elif [ "$status" -ne 0 ]; then
    echo "FAILED with status $status (see $LOGS/$name.err):" | tee -a "$LOGS/$name.txt"
    tail -n 8 "$LOGS/$name.err" | tee -a "$LOGS/$name.txt"
    if [ "$name" = install ] || [ "$name" = imports ]; then
      echo "cannot run vqclip without these imports; nothing else was run" >&2; exit 1
    fi
  fi
done

echo
echo "== summary: vqclip benchmarks/gpu_cli.sh --device $DEVICE, $(date -u +%Y-%m-%d), $((SECONDS - started)) s"
failed=0
for item in "${PLAN[@]}"; do
  IFS='|' read -r name limit command <<<"$item"
  printf '%-9s exit %3d  %3d s of %3d s\n' "$name" "${STATUS[$name]}" "${TOOK[$name]}" "$limit"
  [ "${STATUS[$name]}" -eq 0 ] || failed=$((failed + 1))
done
for item in "${PLAN[@]}"; do
  name=${item%%|*}
  grep '^{' "$LOGS/$name.txt" | sed "s/^/$name: /"
done
echo "$failed of ${#PLAN[@]} commands failed; logs and run folders in $LOGS"
[ "$failed" -eq 0 ]
