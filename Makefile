# Everyday commands. `make dev` and `make test` are the README's two commands.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev worker test lint format typecheck migration upgrade bench

$(BIN)/dlp:
	python3 -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'

dev: $(BIN)/dlp          ## API + embedded worker on http://127.0.0.1:8000
	$(BIN)/dlp serve

worker: $(BIN)/dlp       ## a standalone worker (scale-out)
	$(BIN)/dlp worker

test: $(BIN)/dlp         ## the whole suite, with coverage
	$(BIN)/pytest

lint: $(BIN)/dlp
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(BIN)/dlp
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

typecheck: $(BIN)/dlp
	$(BIN)/mypy

migration: $(BIN)/dlp    ## make migration m="what changed"
	$(BIN)/alembic revision --autogenerate -m "$(m)"

upgrade: $(BIN)/dlp
	$(BIN)/dlp db upgrade

bench: $(BIN)/dlp
	$(BIN)/python benchmarks/upload_rss.py
