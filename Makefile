# Two commands on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run    install into .venv, build the default models offline, start the app
#   make test   the same set-up plus test dependencies, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODELS ?= models
HOST   ?= 127.0.0.1
PORT   ?= 8080
PYTEST_ARGS ?=

.PHONY: run serve install install-dev models test test-fast lint check-deploy help

help:
	@echo "make run        install, build default models (once), start http://$(HOST):$(PORT)/"
	@echo "make test       install, build default models (once), run all tests"
	@echo "make test-fast  no models, no browser: the fast tier (under a minute)"
	@echo "make models     (re)build only the missing default models"
	@echo "make lint       ruff (lint + format check), mypy, the import-layering contracts (part of make test)"
	@echo "make check-deploy  render + validate k8s overlays, checkov, hadolint (part of make test)"

run: models serve

serve: install
	$(BIN)/python -m webapp --models-dir $(MODELS) serve --host $(HOST) --port $(PORT)

# The stamp is keyed on the requirement files, so re-running is instant unless they change.
$(VENV)/.installed: requirements.txt requirements-quantize.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements-quantize.txt
	$(BIN)/python -m pip install --quiet --no-deps optimum-intel==2.2.0
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	scripts/install-test-system-deps.sh
	touch $@

install-dev: $(VENV)/.installed-dev

models: install
	$(BIN)/python -m quantize --models-dir $(MODELS) defaults

test: install-dev lint models
	DOCCHAT_TEST_MODELS_DIR=$(abspath $(MODELS)) $(BIN)/python -m pytest $(PYTEST_ARGS)
	scripts/check-deploy.sh

# Style, types and layering (pyproject.toml): ruff lint + format check, mypy (strict on llm/, rag/,
# chat/), import-linter's contracts.
lint: install-dev
	$(BIN)/ruff check webapp quantize benchmarks tests
	$(BIN)/ruff format --check webapp quantize benchmarks tests
	$(BIN)/mypy
	PYTHONPATH=. $(BIN)/lint-imports

check-deploy:
	scripts/check-deploy.sh

# No model, no browser: service logic with scripted collaborators (tests/fakes.py), security,
# roles, storage, quantize CLI errors... (~95 tests, under a minute).
test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow and not browser and not models" $(PYTEST_ARGS)
