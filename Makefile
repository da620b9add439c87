# Two commands on a fresh machine with Python 3.11+:  make demo   |   make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint quality readme clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gr demo

# lint first: CI (.ci/run: make test) checks the rules and the formatting with the tests
test: $(STAMP) lint
	$(PY) -m pytest tests

# the rules and their reasons: [tool.ruff] in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the retrieval-quality protocol (benchmarks/quality/README.md): synthetic and FIRST; with GZ2=DIR
# and/or SDSS6K=DIR (the labelled smooth / featured folder) those too, and the shipped model zero-shot
quality: $(STAMP)
	$(PY) benchmarks/quality/run.py $(if $(GZ2),--gz2 $(GZ2)) $(if $(SDSS6K),--sdss6k $(SDSS6K))
	$(if $(or $(GZ2),$(SDSS6K)),$(PY) benchmarks/quality/pretrained.py $(if $(GZ2),--gz2 $(GZ2)) $(if $(SDSS6K),--sdss6k $(SDSS6K)))

# README.md's generated blocks and docs/cli.md, from the commands' help and benchmarks/results/*.json
# (after a demo run: $(PY) docs/readme.py --record-demo runs/demo/results.json)
readme: $(STAMP)
	$(PY) docs/readme.py

clean:
	rm -rf data/demo runs/demo indexes/demo
