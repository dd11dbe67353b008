# The README's two commands: `make demo` (the dashboard on the lab) and `make test`.
# Both install what is missing: a venv with the package and, as root on Debian/Ubuntu,
# the server packages the lab and the tests start (postgresql, redis-server,
# prometheus and its exporters; chromium for the browser test, optional). Without root
# they say what to install.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBS := postgresql redis-server prometheus prometheus-postgres-exporter prometheus-redis-exporter

.PHONY: demo test test-fast fuzz bench system-deps venv clean

demo: system-deps venv
	$(BIN)/scaledash demo

test: system-deps venv
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m pytest -q -p no:randomly

# The tests that need no server (pure logic, Pilot on scripted snapshots): seconds, for iterating.
test-fast: venv
	$(BIN)/python -m pytest -q -p no:randomly -m "not integration and not slow"

# The fuzzers' long run (tests/test_fuzz.py, hypothesis profile "long": 20,000 examples a
# test, random); `make test` runs the same tests on the bounded, derandomized "ci" profile.
fuzz: venv
	SCALEDASH_FUZZ_PROFILE=long $(BIN)/python -m pytest -q -p no:randomly --timeout=0 tests/test_fuzz.py

# Every benchmark table (tests/bench/all.py): detection latency, load on the primary, the
# TUI against pg_activity, the poll round. BENCH="--quick" or BENCH="--only detection,load".
bench: venv
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python tests/bench/all.py $(BENCH)

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make: Python 3.11+ is needed: apt-get install python3 python3-venv"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
		echo "make: cannot create a venv: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lab,suites,serve]'
	$(BIN)/python -m compileall -q dashboard widgets >/dev/null
	@touch $(STAMP)

# Which server binaries exist; as root, apt-get install the missing packages without
# starting their system services (the lab and tests run their own on free ports).
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-postgres-exporter >/dev/null 2>&1 || missing="$$missing prometheus-postgres-exporter"; \
	command -v prometheus-redis-exporter >/dev/null 2>&1 || missing="$$missing prometheus-redis-exporter"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: installing$$missing (system services stay stopped)"; \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
			status=$$?; rm -f /usr/sbin/policy-rc.d; \
			[ $$status = 0 ] || { echo "make: apt-get install$$missing failed"; exit 1; }; \
		else \
			echo "make: missing$$missing; install them with: sudo apt-get install$$missing"; \
			echo "make: (PostgreSQL and Redis are required; Prometheus and the exporters are optional)"; \
			case "$$missing" in *postgresql*|*redis-server*) exit 1;; esac; \
		fi; \
	fi
	@# Chromium is optional: the browser test of `scaledash serve` runs in it, and skips
	@# (saying why) when it is missing and cannot be installed.
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: installing chromium (for the browser test of scaledash serve)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
				|| { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
					--no-install-recommends chromium >/dev/null 2>&1; } \
				|| echo "make: chromium could not be installed; the browser test will skip"; \
		else \
			echo "make: chromium is missing (optional, for the browser test): sudo apt-get install chromium"; \
		fi; \
	}

clean:
	rm -rf $(VENV) .lab
