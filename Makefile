# One command per thing a user does; the README documents each.
PY ?= python
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install home study sensitivity test lint dev

install:
	./scripts/install.sh

home:
	mkdir -p $(DAGSTER_HOME)
	[ -f $(DAGSTER_HOME)/dagster.yaml ] || cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

study: home
	$(PY) -m synergy_dagster.cli study $(STUDY_ARGS)

# the study plus the budget-sensitivity run (global vs local under several training budgets)
sensitivity: home
	$(PY) -m synergy_dagster.cli study --sensitivity $(STUDY_ARGS)

test:
	$(PY) -m ruff check synergy_dagster synergy_dagster_tests bench
	$(PY) -m pytest -n 2 --dist loadfile -q

lint:
	$(PY) -m ruff check synergy_dagster synergy_dagster_tests bench
	$(PY) -m ruff format --check synergy_dagster synergy_dagster_tests bench

dev: home
	dagster dev -w workspace.yaml -h 127.0.0.1
