# FireAct Studio: `make run` opens the app on a demo database, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# FireAct's own generator (openai==0.28) for side-by-side tests and benches: a venv of its own.
REF_VENV := .venv-ref
REF_STAMP := $(REF_VENV)/.installed
REF_SETUP := ../shared/fireact/reference/setup_venv.sh
DB ?= fireact.duckdb
PORT ?= 8501

.PHONY: run test lint install install-test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is pinned and installed first: the pinned build is a CPU wheel; an unpinned one pulls CUDA.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train]'
	touch $@

$(REF_STAMP):
	bash $(REF_SETUP) $(REF_VENV)
	touch $@

$(TEST_STAMP): $(STAMP) $(REF_STAMP)
	$(PIP) install -q -e '.[train,test]'
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || { \
	  echo "installing Debian chromium for the browser tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	touch $@

install: $(STAMP)
install-test: $(TEST_STAMP)

demo: $(STAMP)
	FIREACT_DB=$(DB) $(VENV)/bin/fireact demo

run: demo
	FIREACT_DB=$(DB) $(PY) -m streamlit run serve.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false --server.fileWatcherType none

# ruff over the tree (rules and banned imports in pyproject.toml and the ruff.toml files), mypy over fireact_core
lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(REF_VENV) *.egg-info test-artifacts .pytest_cache
