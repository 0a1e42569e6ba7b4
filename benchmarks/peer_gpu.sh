#!/usr/bin/env bash
# The peer's step on this machine: nerdyrodent/VQGAN-CLIP's generate.py, unmodified, with
# random full-size weights (imagenet f16 16384 VQGAN, ViT-B/32), timed by the peer-bench
# harness. Prints the harness's JSON line and one summary row.
#
#   bash benchmarks/peer_gpu.sh [--device cuda|cpu] SIZE CUTN ITERS
#
# Needs benchmarks/peer (bash benchmarks/peer_prepare.sh); without it, says so and exits 0 so
# that gpu.sh goes on. The peer's dependencies are installed from benchmarks/peer/wheels into a
# folder of their own (nothing of the box's Python changes); the checkpoints are made once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
DEVICE=cuda
if [ "${1:-}" = --device ]; then DEVICE=${2:?--device needs cuda or cpu}; shift 2; fi
if [ $# -ne 3 ]; then echo "usage: bash benchmarks/peer_gpu.sh [--device cuda|cpu] SIZE CUTN ITERS" >&2; exit 2; fi
SIZE=$1 CUTN=$2 ITERS=$3
PEER=$PWD/benchmarks/peer  # absolute: the harness runs the peer from its own folder
if [ ! -f "$PEER/run_peer.py" ]; then
  echo "peer: skipped, benchmarks/peer is not here (bash benchmarks/peer_prepare.sh, then carry it)"; exit 0
fi
SITE=${OUT:-/tmp}/vqclip-peer-site
"$PY" -m pip install --quiet --no-index --no-deps --find-links "$PEER/wheels" --target "$SITE" \
  -r "$PEER/requirements.txt"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
if [ ! -f "$PEER/checkpoints/vqgan_random.ckpt" ] || [ ! -f "$PEER/checkpoints/clip_vitb32_random.pt" ]; then
  (cd "$PEER" && "$PY" make_checkpoints.py >/dev/null)
fi
[ "$DEVICE" = cuda ] && PEER_DEVICE=cuda:0 || PEER_DEVICE=cpu
JSON=${OUT:-/tmp}/peer_${SIZE}_${CUTN}.json
"$PY" "$PEER/run_peer.py" --json "$JSON" --threads 2 -- \
  -p "a red circle" -s "$SIZE" "$SIZE" -cuts "$CUTN" -i "$ITERS" -se 1000000 -sd 1 -cd "$PEER_DEVICE" \
  -o "${OUT:-/tmp}/peer.png" -conf "$PEER/checkpoints/model.yaml" \
  -ckpt "$PEER/checkpoints/vqgan_random.ckpt" -m "$PEER/checkpoints/clip_vitb32_random.pt" \
  >"${OUT:-/tmp}/peer_run.log" 2>&1 || { tail -5 "${OUT:-/tmp}/peer_run.log" >&2; exit 1; }
cat "$JSON"
"$PY" - "$JSON" <<'PYEOF'
import json, sys
row = json.load(open(sys.argv[1]))
seconds = row["s_per_iter_median"]
print(f"peer (nerdyrodent generate.py, unmodified: {row['generate_py_unmodified']}) {row['size']}x{row['size']} "
      f"cutn {row['cutn']} on {row['device']}: {seconds * 1000:.1f} ms/step median, "
      f"{1 / seconds:.2f} steps/s; clip {row['clip_dtype']}, vqgan {row['vqgan_dtype']}")
PYEOF
