# Model Compression Lab task runner. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup run lab test lint format release check-release bench lock teacher collect grade bench-grading clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(INSTALLED): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(INSTALLED) ## create .venv and install the exact versions of requirements.lock

run: $(INSTALLED) ## execute every solution notebook headless (papermill) and print its key results
	$(PY) -m course_tools.headless

lab: $(INSTALLED) ## open JupyterLab on the student notebooks
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

test: $(INSTALLED) lint ## the whole test suite: lint, unit, notebooks, grading, browser (CI runs this)
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff check and ruff format --check, notebooks included
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

release: $(INSTALLED) ## regenerate notebooks/ and the gradebook from solutions/
	$(PY) -m course_tools.release

check-release: $(INSTALLED) ## fail if notebooks/ is out of date with solutions/
	$(PY) -m course_tools.release --check

bench: $(INSTALLED) ## headless time per notebook and one student's autograde, as ratios to an import-torch notebook
	$(PY) -m course_tools.bench_notebooks

teacher: $(INSTALLED) ## retrain the teacher checkpoint (same bytes only on the CPU kind it was built on)
	$(PY) -m course_tools.make_teacher

lock: ## regenerate requirements.lock from pyproject.toml in a fresh virtualenv
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Exact versions CI tested. Regenerate with 'make lock'; install with 'make setup'."; \
	  build/lock-venv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements.lock
	rm -rf build/lock-venv

ASSIGNMENT ?=
FROM ?=
GRADE_ARGS ?=
collect: $(INSTALLED) ## import submissions: make collect ASSIGNMENT=01_pruning FROM=downloads.zip (zip or folder)
	$(PY) -m course_tools.collect $(ASSIGNMENT) $(FROM)

grade: $(INSTALLED) ## autograde in the sandbox on all cores, feedback, build/grades/<assignment>.csv: make grade ASSIGNMENT=01_pruning
	$(PY) -m course_tools.grade $(ASSIGNMENT) $(GRADE_ARGS)

bench-grading: $(INSTALLED) ## grading benchmark: the sandbox's cost, wall time per class (not a test)
	$(PY) -m course_tools.bench_grading

clean: ## remove build outputs (keeps .venv)
	rm -rf build
