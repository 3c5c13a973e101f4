# ALS-LM: `make demo` runs the pipeline end to end on the bundled sample; `make test` runs the tests.
# Both set up what is missing first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
STORE ?= local
PYTEST_ARGS ?=

.PHONY: help setup test lint bench demo

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

setup: ## Install the locked environment and build the MinIO and Ollama binaries (once)
	@scripts/setup.sh

test: setup ## Run the whole test suite (real MinIO, Ollama and Chroma servers on 127.0.0.1)
	$(VENV)/pytest $(PYTEST_ARGS)

lint: setup ## Static checks: ruff and hadolint
	$(VENV)/ruff check .
	$(VENV)/hadolint services/*/Dockerfile

bench: setup ## Run the benchmark scripts (figures go to docs/benchmarks.md by hand, with the command)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done

demo: setup ## The whole pipeline on the bundled sample corpus, CPU only (STORE=local|minio)
	$(VENV)/als-lm demo --store $(STORE)
