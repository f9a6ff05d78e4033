# The two commands a user needs: `make run` and `make test`.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test lint unit browser-deps bench screenshots samples clean

$(BIN)/python:
	@echo "creating $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip lists what it installs, so a first run of a few minutes is never silent.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	@echo "installing the app's packages into $(VENV) (first run: a few minutes)"
	$(BIN)/python -m pip install --progress-bar off -r requirements.txt | grep -E "^(Collecting|Successfully)" || true
	$(BIN)/python -c "import torch, streamlit, plotly" && touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt requirements-optional.txt $(VENV)/.installed
	@echo "installing the test tools into $(VENV)"
	$(BIN)/python -m pip install --progress-bar off -r requirements-dev.txt | grep -E "^(Collecting|Successfully)" || true
	$(BIN)/python -c "import pytest, hypothesis, playwright, ortools" && touch $@

run: $(VENV)/.installed
	@echo "starting packviz on http://localhost:$(PORT)"
	$(BIN)/python -m ui.serve --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

# Browser tests drive Debian's chromium; install it when it is missing.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

test: $(VENV)/.installed-dev browser-deps lint
	$(BIN)/python -m pytest

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not browser"

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_packer.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
