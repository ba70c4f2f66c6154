# The two commands of the README's quick start, and the checks CI runs.
#   make demo   set up, then walk through mien on a throw-away root
#   make test   set up, then run the whole test suite
#   make lint   ruff, formatting, mypy (strict on src/), import-linter contracts
#   make lock   re-pin requirements/dev.lock to the newest releases
#   make test-latest   the suite against the newest releases, unpinned

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements/dev.lock
LATEST := .venv-latest
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test test-unit test-integration test-e2e test-latest lock lint format bench clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit("mien needs Python 3.11 or newer; found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@# The libvirt provider's C extension builds against libvirt's headers: installed when
	@# we can; without them mien works and the libvirt provider's tests skip.
	@scripts/system-deps --build
	@$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[libvirt]' 2>/dev/null \
		|| echo "setup: libvirt-python did not build (needs libvirt-dev, pkg-config, a C compiler); the libvirt provider's tests will skip"
	@touch $(STAMP)

setup: $(STAMP)

# What the integration tests drive for real (a cron daemon, PostgreSQL); installed when we
# are root on Debian/Ubuntu, otherwise the tests that need them skip and say why.
system-deps:
	@scripts/system-deps

demo: setup
	@$(BIN)/python scripts/demo.py

test: setup system-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The same suite against the newest releases pyproject.toml allows, in a separate venv.
test-latest: system-deps
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -e '.[dev,libvirt]'
	$(LATEST)/bin/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# Re-resolve the pinned environment to the newest releases; commit the result.
lock:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -e '.[dev,libvirt]'
	@{ sed -n '/^#/p' $(LOCK); $(LATEST)/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	@echo "wrote $(LOCK); run 'make test' and commit it"

test-unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: setup
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

bench: setup
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache .mypy_cache .ruff_cache build dist
