# The two commands (see README.md): `make book` builds the site, `make test` runs the tests.
# Both create .venv and install the pinned requirements on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY := PASSIVE

.PHONY: test lint book clean-book

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check salience_lib tests benchmarks

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(STAMP) lint
	@set +e; $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

clean-book:
	rm -rf _build
