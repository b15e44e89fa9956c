.PHONY: install test study lint
COMPLAW_DATA_DIR ?= ../shared/datasets
export COMPLAW_DATA_DIR

install:
	bash scripts/install.sh

test: install
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests benchmarks
