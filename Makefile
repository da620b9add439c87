# Two commands on a fresh machine with Python 3.10+:  make demo   |   make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test quality clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gr demo

test: $(STAMP)
	$(PY) -m pytest tests

# the retrieval-quality protocol on the synthetic and FIRST catalogs (benchmarks/quality/README.md)
quality: $(STAMP)
	$(PY) benchmarks/quality/run.py

clean:
	rm -rf data/demo runs/demo indexes/demo
