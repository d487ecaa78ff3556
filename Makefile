# creditctl: `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@VENV=$(VENV) ./scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check creditctl db scheduler tests bench

# pytest exits 5 when it collected nothing: that is a broken setup, not a pass.
test: $(STAMP) lint
	@$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; the setup is broken" >&2; exit 1; fi; \
	exit $$rc

bench: $(STAMP)
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache *.egg-info
