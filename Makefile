# nbviz: two entry points, each doing its own set-up on a fresh machine.
#   make demo   JupyterLab on the tour notebook
#   make test   every test: JS unit, Python unit, notebooks, JupyterLab in headless Chromium
# Both are idempotent: set-up steps rerun only when their inputs change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The local CPU build; installed before anything that depends on torch so that
# a bare `torch` requirement never pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
JS_SOURCES := $(wildcard js/src/*.js js/src/*.css js/src/lib/*.js js/src/lib/*.css) js/build.mjs
# Every js/src/<name>.js is a widget's bundle (js/build.mjs builds each one).
BUNDLES := $(patsubst js/src/%.js,nbviz/static/%.js,$(wildcard js/src/*.js))
PYTEST_ARGS ?=

.PHONY: demo test js wheel chromium lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)

js/node_modules/.package-lock.json: js/package.json js/package-lock.json
	npm --prefix js ci --no-audit --no-fund
	@touch $@

$(BUNDLES) &: js/node_modules/.package-lock.json $(JS_SOURCES)
	npm --prefix js run build

js: $(BUNDLES)

# The bundles must exist for the editable install (hatch's ensured-targets),
# but rebuilding them needs no reinstall: order-only prerequisite.
$(VENV)/.demo-installed: $(BIN)/python pyproject.toml | $(BUNDLES)
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	@touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml | $(BUNDLES)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

# A wheel that carries the built bundles, for installing nbviz where there is no Node:
# dist/nbviz-<version>-py3-none-any.whl (the bundles exist, so the build hook skips npm).
wheel: $(BIN)/python js
	$(BIN)/python -m pip wheel --no-deps -w dist .

# Debian's Chromium for the browser tests, unless NBVIZ_CHROMIUM names another
# Chromium/Chrome. Installed only when missing and we may install packages.
chromium:
	@if [ -n "$$NBVIZ_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	else echo "No Chromium found: install Debian's 'chromium' or set NBVIZ_CHROMIUM; browser tests will fail."; fi

# As root (containers, CI-like machines) Jupyter insists on --allow-root. Passive OpenMP
# threads, as for the tests: spinning torch threads take the few cores that JupyterLab and
# the browser need to draw the live views (the kernel inherits the server's environment).
demo: export OMP_WAIT_POLICY ?= PASSIVE
demo: $(VENV)/.demo-installed js
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/01_tour.ipynb

# Passive OpenMP threads: the tests run a kernel, JupyterLab and Chromium beside each
# other on few cores, where spinning torch threads made training cells 5-17x slower.
test: export OMP_WAIT_POLICY ?= PASSIVE
test: $(VENV)/.test-installed js chromium
	npm --prefix js test
	npm --prefix js run check
	$(BIN)/python -m ruff check nbviz tests benchmarks examples
	$(BIN)/python -m ruff format --check nbviz tests benchmarks examples
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test-installed js/node_modules/.package-lock.json
	npm --prefix js run check
	$(BIN)/python -m ruff check nbviz tests benchmarks examples
	$(BIN)/python -m ruff format --check nbviz tests benchmarks examples

clean:
	rm -rf $(VENV) js/node_modules nbviz/static test-artifacts
