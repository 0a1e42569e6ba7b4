PYTHON ?= python3
export HF_HUB_OFFLINE ?= 1

.PHONY: help install test demo lint bench

help: ## Show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

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
