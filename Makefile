# ALS-LM: `make demo` runs the pipeline end to end on the bundled sample; `make experiment` runs the
# experiment (learning curves, RAG, closed-book); `make test` runs the tests.
# Both set up what is missing first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
STORE ?= local
PYTEST_ARGS ?=
# scripts/setup.sh installs uv with pip --user; the lock tests and `make lock` call it.
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help setup test lint bench gpu-check demo

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

# Without a GPU it stops before the set-up, which on a fresh machine would take half an hour first.
gpu-check: ## On a GPU machine: train base's three fastest planned set-ups and large (ZeRO-3 offload), measured beside the plan (<= 8 min)
	@nvidia-smi -L >/dev/null 2>&1 || { echo "gpu-check: no NVIDIA GPU here (nvidia-smi lists none); run it on a GPU machine" >&2; exit 1; }
	@scripts/setup.sh
	$(VENV)/python benchmarks/gpu_check.py

demo: setup ## The whole pipeline on the bundled sample corpus, CPU only (STORE=local|minio)
	$(VENV)/als-lm demo --store $(STORE)

EXPERIMENT_CONFIG ?= services/trainer/configs/experiment-cpu.yaml
EXPLORE_ROOT ?= volumes/experiment

.PHONY: experiment experiment-extract explore

experiment: setup ## Learning curves over kept checkpoints, RAG and closed-book on all questions (EXPERIMENT_CONFIG=...)
	$(VENV)/als-lm experiment --config $(EXPERIMENT_CONFIG) --store $(STORE)

experiment-extract: setup ## The extraction arm on make experiment's store: QA text for half the facts, a second model (<= 45 min)
	$(VENV)/als-lm experiment-extract --config $(EXPERIMENT_CONFIG) --store $(STORE)

explore: setup ## Open the UI over the results of make experiment (EXPLORE_ROOT=volumes/demo after make demo)
	$(VENV)/als-lm explore --root $(EXPLORE_ROOT) --store $(STORE)

# ---- containers: compose.yaml (+ compose.gpu.yaml with GPU=1); docs/containers.md ----
COMPOSE ?= docker compose
GPU ?= 0
DC := $(COMPOSE) -f compose.yaml $(if $(filter 1,$(GPU)),-f compose.gpu.yaml)
GIT_REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGES := scraper processor trainer exporter evaluator
SOURCE ?=
PRESET ?=
SERVICE ?=

.PHONY: env build up down scrape process train export eval ui logs lock verify-containers stack-up volumes

env: ## Write .env with generated MinIO credentials and your uid (an existing .env is kept)
	@scripts/make_env.sh

.env:
	@scripts/make_env.sh

build: .env ## Build every image, the shared python-base stage first (GPU=1 adds compose.gpu.yaml)
	ALS_GIT_REVISION=$(GIT_REVISION) $(DC) --profile '*' build

# The bind-mounted data folders, owned by the uid the containers run as (ALS_UID in .env).
volumes: .env
	@set -a; . ./.env; d=$${ALS_VOLUMES_DIR:-./volumes}; mkdir -p $$d/minio $$d/ollama $$d/chroma $$d/work; \
	  if [ "$$(id -u)" = 0 ]; then chown "$$ALS_UID:$$ALS_GID" $$d/minio $$d/ollama $$d/chroma $$d/work; fi

up: volumes ## Start MinIO (+ bucket and user), Ollama, ChromaDB and the evaluator UI; wait until healthy
	$(DC) up -d --wait

down: ## Stop and remove the stack's containers (data stays in volumes/)
	$(DC) --profile '*' down

stack-up:
	@$(DC) ps --status running --services | grep -qx minio || { echo "the stack is not up: run make up first" >&2; exit 1; }

scrape: stack-up ## Run the scrape stage in its container (SOURCE=sample|pmc|clinicaltrials|web|wikipedia)
	$(DC) run --rm scrape $(if $(SOURCE),scrape $(SOURCE))

process: stack-up ## Run the process and tokenize stages in their container
	$(DC) run --rm process
	$(DC) run --rm tokenize

train: stack-up ## Run the training stage in its container (PRESET=tiny|small|base|large; GPU=1 for CUDA)
	$(DC) run --rm train $(if $(PRESET),train --preset $(PRESET))

export: stack-up ## Export to HF + GGUF, quantize, and create the als-lm models in the Ollama container
	$(DC) run --rm export
	$(DC) run --rm serve

eval: stack-up ## RAG index, benchmark both systems, score them and write the report, in the evaluator container
	$(DC) run --rm eval

ui: volumes ## Start the stack if needed and print the evaluator UI's address
	$(DC) up -d --wait evaluator
	@set -a; . ./.env; echo "evaluator UI: http://127.0.0.1:$${UI_PORT:-7860}"

logs: ## Follow the stack's logs (SERVICE=minio|ollama|chromadb|evaluator|... for one)
	$(DC) logs -f --tail=100 $(SERVICE)

lock: ## Refresh uv.lock and export the per-image lock files and build constraints from it
	uv lock
	@for s in $(IMAGES); do \
	  uv export --frozen --no-emit-project --extra $$s --format requirements-txt --quiet -o services/$$s/requirements.lock; \
	done
	@# Build backends pinned consistently with the lock (packaging etc. are shared).
	pins=$$(mktemp); uv export --frozen --no-emit-project --all-extras --no-hashes --format requirements-txt --quiet -o $$pins \
	  && uv pip compile --quiet --python-version 3.11 --no-header --no-annotate -c $$pins \
	     services/build-requirements.in -o services/build-constraints.txt; rc=$$?; rm -f $$pins; exit $$rc

verify-containers: ## Build every image with Podman and smoke-test the stack locally (slow; docs/containers.md)
	@scripts/verify_containers.sh
