# The two commands of the README: `make demo` and `make test`. Each creates .venv if it is
# missing and installs what it needs; the tests' broker (mosquitto) is installed here too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test bench broker clean layer

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints.txt pins the versions the suite was last run with, so a fresh machine resolves
# the same set quickly (the reference peers pin older OTel protos than the newest releases).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs only its extra (boto3, moto's server mode), not the test stack; the test
# extra includes it, so after `make test` this is already satisfied.
$(DEMO_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[demo]'
	touch $(DEMO_STAMP)

# mosquitto is a Debian package: install it when missing (root or sudo), the fixture starts it.
broker:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; }
	@# the package starts a system broker on :1883; tests run their own on a free port
	@-{ command -v systemctl >/dev/null 2>&1 && systemctl stop mosquitto >/dev/null 2>&1; } || true

test: $(STAMP) broker
	$(BIN)/python -m ruff check otel_dd_lambda tests benchmarks
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

demo: $(DEMO_STAMP)
	$(BIN)/otel-dd-lambda demo

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The Lambda layer zip in dist/: `make layer LAYER_PYTHON=3.12 LAYER_ARCH=arm64`. The .pyc files
# are included only when LAYER_PYTHON is the venv's Python. Needs a package index (PyPI).
LAYER_PYTHON ?= $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LAYER_ARCH ?= x86_64
layer: $(STAMP)
	$(BIN)/otel-dd-lambda layer --python $(LAYER_PYTHON) --arch $(LAYER_ARCH) --out dist/ -c constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist *.egg-info
