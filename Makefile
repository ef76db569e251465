# Model Compression Lab task runner. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup run lab test lint format release check-release bench lock teacher roster collect grade export bench-grading bench-gradebooks bundle clean

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

lab: $(INSTALLED) ## open JupyterLab at the course root (Formgrader needs it), showing notebooks/
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks

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
COLLECT_ARGS ?=
collect: $(INSTALLED) ## import submissions: make collect ASSIGNMENT=01_pruning FROM=downloads.zip (zip or folder); COLLECT_ARGS=--key name|lms-id (default: Canvas user id where the name has one)
	$(PY) -m course_tools.collect $(ASSIGNMENT) $(FROM) $(COLLECT_ARGS)

roster: $(INSTALLED) ## import the class roster into the gradebook: make roster FROM=roster.csv
	$(PY) -m course_tools.roster $(FROM)

grade: $(INSTALLED) ## autograde in the sandbox on all cores, feedback, build/grades/<assignment>.csv: make grade ASSIGNMENT=01_pruning
	$(PY) -m course_tools.grade $(ASSIGNMENT) $(GRADE_ARGS)

EXPORT_ARGS ?=
export: $(INSTALLED) ## Canvas gradebook import CSV of every assignment: build/grades/canvas.csv
	$(PY) -m course_tools.lms_export $(EXPORT_ARGS)

bench-grading: $(INSTALLED) ## grading benchmark: the sandbox's cost, wall time per class (not a test)
	$(PY) -m course_tools.bench_grading

bench-gradebooks: $(INSTALLED) ## a class of 48 with sqlite (1/2 workers) and PostgreSQL (1/2/3), projections
	$(PY) -m course_tools.bench_gradebooks

ASSIGNMENTS ?=
bundle: $(INSTALLED) ## the student bundle: build/model-compression-lab-student.zip (ASSIGNMENTS="01_pruning ..." to choose)
	$(PY) -m course_tools.bundle $(if $(ASSIGNMENTS),--assignments $(ASSIGNMENTS))

clean: ## remove build outputs (keeps .venv)
	rm -rf build
