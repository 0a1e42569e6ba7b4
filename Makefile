PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
# Touched after each complete install: an environment older than pyproject.toml is brought up to date.
# The runtime (vqclip and what it imports) is all the demo needs; the development tools and Ray go on top.
VENV_RUNTIME := $(VENV)/.installed-runtime
VENV_READY := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1

.PHONY: help venv install browser cluster-tools test test-long test-cluster demo docs-images lint bench gpu-wheels gpu-peer

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-13s %s\n", $$1, $$2}'

$(VENV_RUNTIME): pyproject.toml
	@echo "Setting up vqclip in $(VENV) from pyproject.toml (once; torch alone is several GB)"
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --progress-bar on -e .
	@touch $@

$(VENV_READY): $(VENV_RUNTIME)
	@echo "Adding the development tools and Ray to $(VENV) (pytest, ruff, taming-transformers, ray)"
	$(VENV_PYTHON) -m pip install --progress-bar on -e '.[dev,ray]'
	@touch $@

venv: $(VENV_READY) ## Build .venv with the development tools and Ray (test, lint and bench do it when needed)

install: ## Install vqclip with its development tools and Ray into the current Python (pip install -e .[dev,ray])
	$(PYTHON) -m pip install -e '.[dev,ray]'

browser: ## Install Debian's chromium for the gallery's browser tests, where root and apt-get allow
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  echo "Installing chromium for the browser tests" && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	echo "chromium is not installed (needs root and apt-get): the browser tests will be skipped"

test: $(VENV_READY) browser ## Run the fast test suite (tiny and bundled models, CPU, offline, the installed wheel)
	$(VENV_PYTHON) -m pytest -q -m 'not cluster and not long'

test-long: $(VENV_READY) ## Run the long generation tests: what the shapes models draw at the preset's full length
	$(VENV_PYTHON) -m pytest -q -m long

cluster-tools: ## Install Debian's SLURM (slurmctld, slurmd, client), munge and iproute2 for the cluster tests, where root and apt-get allow
	@{ command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged && \
	   command -v ip && command -v ss; } >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  echo "Installing SLURM, munge and iproute2 for the cluster tests" && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge iproute2 >/dev/null; } || \
	echo "SLURM, munge or iproute2 is missing (installing needs root and apt-get): those tests will be skipped"

test-cluster: $(VENV_READY) cluster-tools ## Run the tests of batches over many processes and machines: the worker pool, Ray, a one-machine SLURM and a two-node Ray (root)
	$(VENV_PYTHON) -m pytest -q -m cluster

demo: $(VENV_RUNTIME) ## Generate "a red circle" offline with the bundled shapes models (vqclip alone in .venv)
	$(VENV)/bin/vqclip generate "a red circle" --preset shapes --seed 1
	@echo
	@echo "Next: put vqclip on your PATH in this shell with   source $(VENV)/bin/activate"
	@echo "(or run it as $(VENV)/bin/vqclip), then try:   vqclip generate --help"

docs-images: $(VENV_READY) ## Remake the README's pictures with the commands the README shows
	cp "$$($(VENV)/bin/vqclip generate "a red circle" --preset shapes --seed 1 -q -o build/docs-runs)" \
		docs/shapes-red-circle.png

lint: $(VENV_READY) ## Check the code with ruff
	$(VENV_PYTHON) -m ruff check vqclip tests benchmarks

bench: $(VENV_READY) ## Time steps of the tiny and full-size architectures on this machine
	$(VENV_PYTHON) benchmarks/step_bench.py

gpu-wheels: ## Download the wheels benchmarks/gpu.sh and gpu_cli.sh install on a GPU box without network (Python 3.10-3.13)
	for version in 3.10 3.11 3.12 3.13; do \
		$(PYTHON) -m pip download --dest benchmarks/wheels --only-binary=:all: --no-deps \
			--python-version $$version --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
			open_clip_torch omegaconf ftfy regex wcwidth tqdm filelock timm \
			imageio-ffmpeg pooch platformdirs packaging textual-image \
			requests urllib3 idna charset-normalizer certifi || exit 1; \
	done
	@# The folder is carried to the GPU box, whose carried paths are limited to 64 MiB in all;
	@# imageio-ffmpeg alone (ffmpeg inside) is about 30 MB. requests and its dependencies: in case the box lacks them.
	@size=$$(du -sm benchmarks/wheels | cut -f1); echo "benchmarks/wheels: $$size MiB"; \
		[ "$$size" -lt 56 ] || { echo "benchmarks/wheels is over 56 MiB: delete it and run make gpu-wheels again" >&2; exit 1; }

gpu-peer: ## Lay out benchmarks/peer, the peer gpu.sh runs beside vqclip (MIRROR=folder of bare clones)
	MIRROR=$(MIRROR) PYTHON=$(PYTHON) bash benchmarks/peer_prepare.sh
