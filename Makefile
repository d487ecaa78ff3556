# creditctl: `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
RUFF   := $(VENV)/bin/ruff
MYPY   := $(VENV)/bin/mypy
# What ruff formats and checks, and what mypy type-checks.
SOURCES := creditctl db scheduler tests bench
# The quick subset: no test marked slow, and no PostgreSQL half. Every test that takes the
# backend fixture has its backend first in its id: name[postgresql] or name[postgresql-...].
FAST_SELECTION := -m "not slow" -k "not [postgresql] and not [postgresql-"
# db/ and scheduler/ install as creditctl.db and creditctl.scheduler through a mapping mypy
# cannot follow, so mypy reads the package from a tree of links laid out as installed.
TYPED := $(VENV)/typed

.PHONY: install demo test test-fast lint ruff-check typecheck fmt bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@VENV=$(VENV) ./scripts/demo.sh

ruff-check: $(STAMP)
	$(RUFF) check $(SOURCES)

typecheck: $(STAMP)
	@rm -rf $(TYPED) && mkdir -p $(TYPED)/creditctl
	@for entry in creditctl/*; do ln -s "$(CURDIR)/$$entry" $(TYPED)/creditctl/; done
	@ln -s "$(CURDIR)/db" $(TYPED)/creditctl/db && ln -s "$(CURDIR)/scheduler" $(TYPED)/creditctl/scheduler
	@# Messages name the files of the checkout, not the links.
	@cd $(TYPED) && out=$$("$(abspath $(MYPY))" --config-file "$(CURDIR)/pyproject.toml" \
	  --cache-dir "$(abspath $(VENV))/mypy-cache" -p creditctl 2>&1); rc=$$?; \
	printf '%s\n' "$$out" | sed -e 's#^creditctl/db/#db/#' -e 's#^creditctl/scheduler/#scheduler/#'; \
	exit $$rc

lint: ruff-check
	$(RUFF) format --check $(SOURCES)
	@$(MAKE) --no-print-directory typecheck

# check --fix first, so what it rewrites is formatted too; format runs even when check fails.
fmt: $(STAMP)
	@$(RUFF) check --fix $(SOURCES); rc=$$?; \
	$(RUFF) format $(SOURCES) && exit $$rc

# pytest exits 5 when it collected nothing: that is a broken setup, not a pass.
test: $(STAMP) lint
	@$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; the setup is broken" >&2; exit 1; fi; \
	exit $$rc

# CI is cleared: with the PostgreSQL half deselected, a missing server is no failure here.
test-fast: $(STAMP)
	@CI= $(PY) -m pytest -p no:cacheprovider $(FAST_SELECTION) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests; the setup is broken" >&2; exit 1; fi; \
	exit $$rc

bench: $(STAMP)
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache .mypy_cache *.egg-info
