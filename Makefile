# One command per thing a user does; the README documents each. Every target that runs Python first
# makes the virtual environment .venv and installs into it (scripts/install.sh) when that has not
# happened yet or setup.py / pyproject.toml / scripts/install.sh changed since: a fresh clone needs
# only `make study` or `make test`.
BASE_PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
# Recipes see .venv/bin first, as in an activated environment (tools that look up `dagster` etc.).
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
SRC := synergy_dagster synergy_dagster_tests bench
FAST := not e2e and not fault and not ui and not slow

.PHONY: install home study sensitivity test test-fast lint dev mutate

$(PY):
	$(BASE_PYTHON) -m venv $(VENV)

# The stamp is touched only after a successful install, so a failed one is retried next time.
$(STAMP): setup.py pyproject.toml scripts/install.sh | $(PY)
	PYTHON=$(PY) ./scripts/install.sh
	touch $@

install: $(STAMP)

home:
	mkdir -p $(DAGSTER_HOME)
	[ -f $(DAGSTER_HOME)/dagster.yaml ] || cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

study: $(STAMP) home
	$(PY) -m synergy_dagster.cli study $(STUDY_ARGS)

# the study plus the budget-sensitivity run (global vs local under several training budgets)
sensitivity: $(STAMP) home
	$(PY) -m synergy_dagster.cli study --sensitivity $(STUDY_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check $(SRC)
	$(PY) -m ruff format --check $(SRC)

# everything, as CI runs it
test: lint
	$(PY) -m pytest -n 2 --dist loadfile -q

# the unit tests only: no whole studies, fault injection or UI (markers in pyproject.toml)
test-fast: lint
	$(PY) -m pytest -n 2 --dist loadfile -q -m "$(FAST)"

# Mutation testing (mutmut, the dev extra) of the modules whose rules decide the study's answer, each
# against its fast tests: kill rate per module and every surviving mutant (docs/testing.md: how long
# it takes, the measured figures). CPU-heavy, so niced; MUTATE_ARGS picks targets, e.g. "metrics".
mutate: $(STAMP)
	nice -n 10 $(PY) scripts/mutate.py $(MUTATE_ARGS)

dev: $(STAMP) home
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1
