#!/usr/bin/env bash
# Lays out benchmarks/peer/ for benchmarks/peer_gpu.sh: the peer (nerdyrodent/VQGAN-CLIP's
# generate.py, unmodified, with the CLIP and taming-transformers sources it expects beside it),
# the peer-bench harness that runs and times it, and the wheels of the peer's dependencies that
# a GPU box with torch lacks. Run here, with the package registry reachable; the folder is then
# carried to the GPU box beside benchmarks/wheels.
#
#   MIRROR=DIR PEER_BENCH=DIR bash benchmarks/peer_prepare.sh
#
# MIRROR: the folder holding bare clones of the three repositories as <owner>+<name>/repo.
# PEER_BENCH: the peer-bench harness (run_peer.py, peer_stubs.py, make_checkpoints.py,
# checkpoints/model.yaml); default shared/peer-bench beside the repository.
# PEER_PYTHON: the Python versions of the machines it will run on, for the compiled wheels
# (default 3.12, the GPU box's; "3.11 3.12" for this machine too).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MIRROR=${MIRROR:?set MIRROR to the folder holding the bare clones <owner>+<name>/repo}
PEER_BENCH=${PEER_BENCH:-../shared/peer-bench}
PEER_PYTHON=${PEER_PYTHON:-3.12}
PY=${PYTHON:-python3}
OUT=benchmarks/peer

for file in run_peer.py peer_stubs.py make_checkpoints.py checkpoints/model.yaml; do
  [ -f "$PEER_BENCH/$file" ] || { echo "PEER_BENCH=$PEER_BENCH: no $file there" >&2; exit 2; }
done
rm -rf "$OUT"
mkdir -p "$OUT/checkpoints" "$OUT/VQGAN-CLIP/CLIP" "$OUT/VQGAN-CLIP/taming-transformers" "$OUT/wheels"
cp "$PEER_BENCH"/{run_peer.py,peer_stubs.py,make_checkpoints.py} "$OUT/"
cp "$PEER_BENCH/checkpoints/model.yaml" "$OUT/checkpoints/"

# The commits the peer-bench harness pins; generate.py's hash is checked below and by run_peer.py.
git --git-dir="$MIRROR/nerdyrodent+VQGAN-CLIP/repo" archive 592d555a68f882a75f96453d94ccba1e070577b3 \
  -- generate.py LICENSE 2>/dev/null | tar -x -C "$OUT/VQGAN-CLIP"
git --git-dir="$MIRROR/openai+CLIP/repo" archive d05afc436d78f1c48dc0dbf8e5980a9d471f35f6 \
  -- clip LICENSE 2>/dev/null | tar -x -C "$OUT/VQGAN-CLIP/CLIP"
git --git-dir="$MIRROR/CompVis+taming-transformers/repo" archive 3ba01b241669f5ade541ce990f7650a3b8f65318 \
  -- taming main.py License.txt 2>/dev/null | tar -x -C "$OUT/VQGAN-CLIP/taming-transformers"
echo "7ae664b54456f7dcc6cd789336ec9c68aadaac829a4e12e58b824058e08993ec  $OUT/VQGAN-CLIP/generate.py" \
  | sha256sum -c --quiet -

# The versions peer-bench's lock file resolved, without their dependencies (the box has torch,
# torchvision, numpy, pillow, imageio, tqdm, requests; omegaconf, ftfy and regex come from
# benchmarks/wheels).
cat >"$OUT/requirements.txt" <<'PINS'
kornia==0.9.0
kornia_rs==0.2.0
torch-optimizer==0.3.0
pytorch-ranger==0.1.1
pytorch-lightning==2.6.6
lightning-utilities==0.15.3
torchmetrics==1.9.0
fsspec==2026.9.0
aiohttp==3.14.5
aiohappyeyeballs==2.7.1
aiosignal==1.4.0
attrs==26.1.0
frozenlist==1.8.0
multidict==7.2.1
propcache==0.5.4
yarl==1.25.1
einops==0.8.2
PyYAML==6.0.4
PINS
for version in $PEER_PYTHON; do
  "$PY" -m pip download --quiet --dest "$OUT/wheels" --only-binary=:all: --no-deps \
    --python-version "$version" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -r "$OUT/requirements.txt"
done
size=$(du -sm "$OUT" | cut -f1)
wheels=$(du -sm benchmarks/wheels 2>/dev/null | cut -f1 || echo 0)
echo "$OUT: $size MiB; with benchmarks/wheels ($wheels MiB) $((size + wheels)) MiB of the 64 MiB a device call carries"
[ $((size + wheels)) -lt 64 ] || echo "over 64 MiB: carry them in separate calls, or fewer PEER_PYTHON versions" >&2
