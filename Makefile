# One command per thing a user does; the README documents each.
PY ?= python
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install study test lint dev

install:
	./scripts/install.sh

study:
	mkdir -p $(DAGSTER_HOME)
	$(PY) -m synergy_dagster.cli study

test:
	$(PY) -m ruff check synergy_dagster synergy_dagster_tests bench
	$(PY) -m pytest -n 2 --dist loadfile -q

lint:
	$(PY) -m ruff check synergy_dagster synergy_dagster_tests bench
	$(PY) -m ruff format --check synergy_dagster synergy_dagster_tests bench

dev:
	mkdir -p $(DAGSTER_HOME)
	dagster dev -w workspace.yaml -h 127.0.0.1
