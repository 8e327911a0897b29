# Two commands: `make demo` (the main job on the synthetic cohort) and `make test`.
# Both create the virtual environment they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= data/synthetic_small

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: venv demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m scintilab synth $(DATA) --size small --seed 0
	$(PY) -m scintilab ingest $(DATA)/dicom --labels $(DATA)/labels.csv --annotations $(DATA)/annotations --out $(DATA)/manifest.csv

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m scintilab bench

clean:
	rm -rf $(VENV) data papermill_runs/out
