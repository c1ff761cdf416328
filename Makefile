# The two commands a fresh machine needs: `make run` and `make test`.
# Each creates the virtualenv in .venv on first use (only Python and pip are required).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint migration clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/vault

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: $(STAMP)  # conversion, backups, downloads, family evening, playable while converting, uploads (serve: next to nginx)
	$(BIN)/python -m bench
	$(BIN)/python -m bench backup
	$(BIN)/python -m bench download
	$(BIN)/python -m bench evening
	$(BIN)/python -m bench playable
	$(BIN)/python -m bench upload

.PHONY: app
app: $(STAMP)  # Vault.app on macOS, dist/Vault/ elsewhere (PyInstaller, build_app.spec), then its self-check
	$(BIN)/python packaging/build.py

lint: $(STAMP)  # ruff, then mypy (strict on vaultserver/services and vaultserver/api; see pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

migration: $(STAMP)
	$(BIN)/python -c "import os, sys, tempfile; from alembic import command; \
	from vaultserver.db.engine import alembic_config; \
	cfg = alembic_config('sqlite:///' + os.path.join(tempfile.mkdtemp(), 'scratch.db')); \
	command.upgrade(cfg, 'head'); command.revision(cfg, message=sys.argv[1], autogenerate=True)" "$(MSG)"

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .mypy_cache
