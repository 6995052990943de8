# lora-teach: `make lab` to open the course, `make test` to prove it works.
# Both set up a local virtual environment (.venv) on first use and re-make it whenever
# pyproject.toml (where the pinned versions live) changes.

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra options for `make lab`, e.g. LAB_ARGS="--no-browser --port 8890"; root needs --allow-root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# Fixed thread counts: stored outputs are produced and compared under the same settings.
# `OMP_NUM_THREADS=1 make test` overrides them.
export OMP_NUM_THREADS      ?= 2
export MKL_NUM_THREADS      ?= 2
export OPENBLAS_NUM_THREADS ?= 2
export PYTHONHASHSEED       ?= 0
# Stored outputs are computed on a CPU: tests and `make execute` use it even where CUDA exists.
test test-notebooks execute checkpoint: export LORA_TEACH_DEVICE = cpu

.PHONY: help setup lab test test-unit test-notebooks execute checkpoint student html clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[course,test]'
	touch $(STAMP)

setup: $(STAMP)  ## Create the virtual environment (done automatically by the others)

lab: $(STAMP)  ## Start JupyterLab on the course
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

test: $(STAMP)  ## Unit tests, then every notebook under nbval (strict output comparison)
	$(BIN)/python -m pytest tests notebooks

test-unit: $(STAMP)  ## Only the unit tests of lora_teach
	$(BIN)/python -m pytest tests

test-notebooks: $(STAMP)  ## Only the notebooks under nbval
	$(BIN)/python -m pytest notebooks

execute: $(STAMP)  ## Re-execute every notebook in place, refreshing its stored outputs
	@for nb in $(NOTEBOOKS); do \
		echo "executing $$nb"; \
		TIMEFORMAT="  %R s"; time $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False \
			--ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done

checkpoint: $(STAMP)  ## Re-make the pretrained Model M shipped in lora_teach/data/ (~4 min)
	$(BIN)/python -m lora_teach.pretrained

student: $(STAMP)  ## Student copies without solutions or outputs, in build/student/
	$(BIN)/jupyter nbconvert --to notebook --output-dir build/student \
		--TagRemovePreprocessor.enabled=True \
		--TagRemovePreprocessor.remove_cell_tags='["solution"]' \
		--ClearOutputPreprocessor.enabled=True $(NOTEBOOKS)

html: $(STAMP)  ## Read-only HTML pages of the executed notebooks, in build/html/
	$(BIN)/jupyter nbconvert --to html --output-dir build/html $(NOTEBOOKS)

clean:  ## Remove the virtual environment, build output and caches
	rm -rf $(VENV) build .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
