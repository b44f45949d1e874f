# tap-braze-series: set-up from nothing, the demo, the tests.
#
#   make demo    set everything up, then run the sandbox -> Meltano -> DuckDB job
#   make test    set everything up, then run the whole test suite (tests/)
#
#   make test-python PY=python3.13
#                set up a venv for that interpreter (.venv-python3.13), then run the
#                suite without the end-to-end tests (-m 'not e2e') on it
#
# Set-up needs only python3.11 (with pip and venv). The end-to-end tests need
# PostgreSQL's server binaries: PG_BIN, the OS's (Debian: /usr/lib/postgresql/*/bin) or
# initdb on PATH; when there are none, set-up installs them from PyPI (the `pgserver`
# wheel ships PostgreSQL) into .tools/pgserver.
# Each set-up step leaves a stamp file and is skipped while its inputs are unchanged,
# so a second `make test` starts the tests at once.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3.11
VENV := .venv
TOOLS := .tools
MELTANO_VENV := $(TOOLS)/meltano
MELTANO := $(MELTANO_VENV)/bin/meltano
MELTANO_SPEC := meltano>=4.4,<4.5
PYTEST_ARGS ?=

VENV_STAMP := $(VENV)/.installed
MELTANO_STAMP := $(MELTANO_VENV)/.installed
PLUGINS_STAMP := .meltano/.plugins-installed

# PostgreSQL's server binaries for the end-to-end tests (tests/harness/postgres.py looks
# in the same places, in this order): only when none is found, from PyPI.
PGSERVER_VENV := $(TOOLS)/pgserver
PGSERVER_SPEC := pgserver==0.1.4
PGSERVER_STAMP := $(PGSERVER_VENV)/.installed
PG_SERVER_FOUND := $(or $(PG_BIN),$(wildcard /usr/lib/postgresql/*/bin/initdb),$(shell command -v initdb 2>/dev/null))

# Meltano installs plugins with uv, which reads the CA bundle from SSL_CERT_FILE.
ifneq ($(wildcard /etc/ssl/certs/ca-certificates.crt),)
export SSL_CERT_FILE ?= /etc/ssl/certs/ca-certificates.crt
endif
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# $(call fresh_venv,DIR,STAMP): a venv in DIR made by $(PYTHON). Reused only if this
# Makefile made it (STAMP exists, even if outdated) and it still runs Python 3.11;
# anything else found there (a copy from another checkout, whose scripts point at
# another path) is replaced by a new venv.
define fresh_venv
if [ ! -e $(2) ] || ! $(1)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
    rm -rf $(1) && $(PYTHON) -m venv $(1); fi
endef

.PHONY: help setup demo test test-e2e test-python lint clean distclean

help:
	@echo "make demo    set up, then run the sandbox -> Meltano -> DuckDB job and summarise it"
	@echo "make test    set up, then run the whole test suite (pytest tests/)"
	@echo "make test-python PY=python3.13"
	@echo "             the suite without the end-to-end tests on another Python (own venv)"
	@echo "make setup   only the set-up (.venv, .tools/meltano, Meltano plugins in .meltano/)"
	@echo "make clean   remove outputs; make distclean also removes every venv"

setup: $(VENV_STAMP) $(PLUGINS_STAMP) $(if $(PG_SERVER_FOUND),,$(PGSERVER_STAMP))

# The tap's development venv (tap, sandbox, pytest).
$(VENV_STAMP): pyproject.toml
	@echo "==> $(VENV): tap-braze-series[dev] with $(PYTHON)"
	@$(call fresh_venv,$(VENV),$(VENV_STAMP))
	$(VENV)/bin/python -m pip install -qq -e ".[dev]"
	@touch $@

# Meltano in a venv of its own (its dependencies clash with the tap's); redone when
# this Makefile (MELTANO_SPEC) changes.
$(MELTANO_STAMP): Makefile
	@echo "==> $(MELTANO_VENV): $(MELTANO_SPEC)"
	@$(call fresh_venv,$(MELTANO_VENV),$(MELTANO_STAMP))
	$(MELTANO_VENV)/bin/python -m pip install -qq "$(MELTANO_SPEC)"
	@touch $@

# The plugins of meltano.yml, each in its venv under .meltano/ (installed with uv).
$(PLUGINS_STAMP): meltano.yml pyproject.toml $(MELTANO_STAMP)
	@echo "==> meltano install (plugins of meltano.yml into .meltano/)"
	$(MELTANO) install
	@touch $@

# No PostgreSQL server binaries on this machine: the `pgserver` wheel's (PostgreSQL 16),
# without its Python dependencies (only its binaries are used).
$(PGSERVER_STAMP): Makefile
	@echo "==> $(PGSERVER_VENV): PostgreSQL server binaries from PyPI ($(PGSERVER_SPEC))"
	@$(call fresh_venv,$(PGSERVER_VENV),$(PGSERVER_STAMP))
	$(PGSERVER_VENV)/bin/python -m pip install -qq --no-deps "$(PGSERVER_SPEC)"
	@touch $@

demo: setup
	$(VENV)/bin/python scripts/demo.py

test: setup
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-e2e: setup
	$(VENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS)

# Another interpreter's venv, .venv-<PY>, made and filled once (redone when
# pyproject.toml changes); the suite without the end-to-end tests (which run the
# Meltano set-up's own Python) runs on it.
PY ?= python3.13
PY_VENV := .venv-$(notdir $(PY))

test-python: setup
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 10), sys.version' || \
	    { echo "make test-python: $(PY) does not run Python 3.10 or later" >&2; exit 1; }
	@if [ ! -e $(PY_VENV)/.installed ] || [ pyproject.toml -nt $(PY_VENV)/.installed ]; then \
	    echo "==> $(PY_VENV): tap-braze-series[dev] with $$($(PY) --version)"; \
	    rm -rf $(PY_VENV) && $(PY) -m venv $(PY_VENV) && \
	    $(PY_VENV)/bin/python -m pip install -qq -e ".[dev]" && touch $(PY_VENV)/.installed; fi
	$(PY_VENV)/bin/python -m pytest tests -m 'not e2e' $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check tap_braze_series tests benchmarks scripts

clean:
	rm -rf output .meltano/run .meltano/logs

distclean: clean
	rm -rf $(VENV) .venv-python* $(TOOLS) .meltano
