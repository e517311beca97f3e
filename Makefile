# gan_lab: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
MLFLOW_DB ?= $(CURDIR)/mlflow.db
PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help install test test-all train ui bench clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

install: $(PY) ## Create .venv and install gan_lab (editable) with its test tools
	$(PY) -m pip install -e '.[dev]'

test: ## Run the tests, slow ones excluded (MNIST from GAN_LAB_DATA_DIR or ../shared/data/mnist)
	$(PY) -m pytest -m "not slow" $(ARGS)

test-all: ## Run every test, slow ones included
	$(PY) -m pytest $(ARGS)

train: ## Train with the default config; pass overrides as ARGS="model=mlp loss=lsgan"
	$(PY) -m gan_lab $(ARGS)

ui: ## Serve the MLflow UI on 127.0.0.1 (PORT=5000) over ./mlflow.db; prints each experiment's runs-table address
	$(PY) -m gan_lab.runs ui port=$(PORT) mlflow.tracking_uri=sqlite:///$(MLFLOW_DB)

bench: ## Benchmarks: trainer vs plain TF step, peak memory, judge metrics, CLI start-up
	$(PY) -m gan_lab.bench $(ARGS)

clean: ## Remove caches and Hydra outputs (keeps mlflow.db and mlartifacts/)
	rm -rf .pytest_cache build *.egg-info samples
	find . -name __pycache__ -prune -exec rm -rf {} +
	find outputs -mindepth 1 ! -name .gitkeep -prune -exec rm -rf {} +
