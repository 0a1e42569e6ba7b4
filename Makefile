PYTHON ?= python3
export HF_HUB_OFFLINE ?= 1

.PHONY: help install test demo lint bench gpu-wheels

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-11s %s\n", $$1, $$2}'

install: ## Install vqclip with its development tools (pip install -e .[dev])
	$(PYTHON) -m pip install -e '.[dev]'

test: ## Run the fast test suite (tiny and bundled models, CPU, offline)
	$(PYTHON) -m pytest -q

demo: ## Generate "a red circle" offline with the bundled shapes models
	vqclip generate "a red circle" --preset shapes --seed 1

lint: ## Check the code with ruff
	$(PYTHON) -m ruff check vqclip tests benchmarks

bench: ## Time steps of the tiny and full-size architectures on this machine
	$(PYTHON) benchmarks/step_bench.py

gpu-wheels: ## Download the wheels benchmarks/gpu.sh installs on a GPU box without network (Python 3.10-3.13)
	for version in 3.10 3.11 3.12 3.13; do \
		$(PYTHON) -m pip download --dest benchmarks/wheels --only-binary=:all: --no-deps \
			--python-version $$version --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
			open_clip_torch omegaconf ftfy regex wcwidth tqdm filelock timm || exit 1; \
	done
