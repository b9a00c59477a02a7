# imaging-consent: one entry point for install, compile, test, gas and benchmarks.
# Every target installs what it needs on first use; a second run reuses what is there.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOLC_VERSION := 0.8.37
NETWORK ?= ganache-cli

# brownie and py-solc-x find the offline compiler here; node_modules/.bin has ganache and anvil.
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$(PATH)

INSTALLED_PY := $(VENV)/.installed
INSTALLED_NODE := node_modules/.installed
SOLC := .solcx/solc-v$(SOLC_VERSION)
SOURCES := $(wildcard contracts/*.sol contracts/*/*.sol interfaces/*.sol) brownie-config.yaml
COMPILED := build/.compiled

.PHONY: install orthanc postgresql compile test test-contracts test-client test-stateful lint solhint typecheck gas gas-table artifacts demo bench clean

install: $(INSTALLED_PY) $(INSTALLED_NODE) $(SOLC)

$(INSTALLED_PY): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(INSTALLED_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SOLC): $(INSTALLED_NODE) scripts/solc/solc-offline.js
	mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec node "$$(dirname "$$0")/../scripts/solc/solc-offline.js" "$$@"\n' > $@
	chmod +x $@
	$@ --version | grep -q '$(SOLC_VERSION)'

compile: $(COMPILED)

$(COMPILED): $(SOURCES) $(INSTALLED_PY) $(SOLC)
	$(BIN)/brownie compile
	touch $@

lint: $(INSTALLED_PY) solhint
	$(BIN)/ruff check src tests scripts examples bench
	$(BIN)/ruff format --check src tests scripts examples bench
	$(BIN)/lint-imports --no-cache

# Solidity lint: solhint:recommended (.solhint.json), zero warnings allowed. Rules changed there:
# - func-visibility, ignoreConstructors: Solidity >= 0.7 constructors take no visibility.
# - use-natspec, author off: the project has no per-contract authors; title, notice, param and
#   return stay required.
# - immutable-vars-naming off: house style (OpenZeppelin v5) names private immutables
#   `_camelCase` like other private state, and MockWallet1271's public `owner` is its getter.
# - gas-strict-inequalities off: the non-strict comparisons state the documented boundaries
#   (notBefore is the first second a grant applies, expiresAt the first it does not); strict
#   versions would need +-1 arithmetic for no real saving.
# Disabled inline, each with its reason beside it: gas-small-strings (EIP-712 type strings) and
# gas-indexed-events (two events whose indexing is part of the ABI).
solhint: $(INSTALLED_NODE)
	node_modules/.bin/solhint --max-warnings 0 'contracts/**/*.sol' 'interfaces/**/*.sol'

typecheck: $(INSTALLED_PY)
	$(BIN)/mypy

# Slither (pinned in pyproject's dev extras) on ConsentRegistry, StudyRegistry and AccessLog, in
# `make test`; fails on any high or medium finding (about 10 s). Plain `slither file.sol` passes
# solc flags the offline compiler does not answer, so scripts/slither_check.py builds a solc
# standard-JSON input from brownie-config.yaml (remappings, EVM version, optimizer) and compiles it
# through .solcx/solc-v$(SOLC_VERSION) with crytic-compile's SolcStandardJson platform, whose
# import callback reads interfaces/ and OpenZeppelin from disk. Findings accepted on purpose are
# listed in that script, each with its reason.
.PHONY: slither
slither: $(INSTALLED_PY) $(SOLC)
	$(BIN)/python scripts/slither_check.py

test: slither

test-contracts: $(COMPILED)
	$(BIN)/brownie test tests/contracts --network $(NETWORK)

# Orthanc and its DICOMweb plugin (Debian packages), for the Orthanc store's tests: installed
# when missing (as root; `apt-get update` first if the install fails). The test fixtures start
# and stop their own servers on free loopback ports (tests/client/orthanc_server.py).
ORTHANC_PLUGIN := /usr/share/orthanc/plugins/libOrthancDicomWeb.so
orthanc:
	@if { command -v Orthanc || test -x /usr/sbin/Orthanc; } >/dev/null && test -f $(ORTHANC_PLUGIN); then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "Orthanc is missing: run 'apt-get install -y orthanc orthanc-dicomweb' as root" >&2; \
		exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q orthanc orthanc-dicomweb \
		|| { apt-get update -q && apt-get install -y -q orthanc orthanc-dicomweb; }

# The patient page (web/patient), bundled with viem by esbuild into the package's static folder
# (git-ignored), and the EIP-1193 test wallet the browser tests inject (web/test-wallet).
PATIENT_PAGE := src/imaging_consent/server/static/patient
TEST_WALLET := build/test-wallet/wallet.js
ESBUILD := node_modules/.bin/esbuild
.PHONY: patient-page chromium
patient-page: $(PATIENT_PAGE)/app.js $(TEST_WALLET)

$(PATIENT_PAGE)/app.js: $(wildcard web/patient/*.html web/patient/*.css web/patient/src/*.js) $(INSTALLED_NODE)
	mkdir -p $(PATIENT_PAGE)
	$(ESBUILD) web/patient/src/main.js --bundle --format=esm --minify --target=es2020 \
		--legal-comments=none --log-level=warning --outfile=$@
	cp web/patient/index.html web/patient/style.css $(PATIENT_PAGE)/

$(TEST_WALLET): web/test-wallet/wallet.js $(INSTALLED_NODE)
	$(ESBUILD) $< --bundle --format=iife --target=es2020 --log-level=warning --outfile=$@

# Debian's Chromium, which the browser tests drive with Playwright (as root; CI runs as root).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# PostgreSQL (Debian's package), for the shared audit index's tests: installed when no
# initdb is found (as root; `apt-get update` first if the install fails). The fixtures run
# initdb and pg_ctl as the postgres user on throwaway folders (tests/client/postgres_server.py).
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "PostgreSQL is missing: run 'apt-get install -y postgresql' as root" >&2; \
		exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q postgresql \
		|| { apt-get update -q && apt-get install -y -q postgresql; }

test-client: $(COMPILED) orthanc postgresql patient-page chromium
	$(BIN)/python -m pytest -p no:pytest-brownie tests/client

test: lint typecheck test-contracts test-client

# The brownie state machine at 100 examples of 50 steps on Ganache (about 22 min); `make test`
# runs it at 10, and the same rules at 100 x 50 on Anvil (tests/client/test_consent_model.py).
test-stateful: $(COMPILED)
	SM_EXAMPLES=100 $(BIN)/brownie test tests/contracts/test_consent_stateful.py --network $(NETWORK)

# Regenerate the ABI and bytecode the Python package ships (commit the result).
# A full compile: brownie's incremental build can keep stale metadata when only an imported file changed.
artifacts: $(INSTALLED_PY) $(SOLC)
	$(BIN)/brownie compile --all
	touch $(COMPILED)
	$(BIN)/python scripts/export_artifacts.py

# The end-to-end story on an embedded Ganache. The package ships its compiled contracts, so
# this needs the installs only, not brownie compile. Then it says how to get the command on PATH.
demo: $(INSTALLED_PY) $(INSTALLED_NODE)
	$(BIN)/imaging-consent demo
	@echo 'To run imaging-consent yourself, put it on PATH in this shell:  . ./env.sh'

# Writes bench/gas.json, then the gas tables generated from it in README.md and docs/ARCHITECTURE.md.
gas: $(COMPILED)
	$(BIN)/brownie run scripts/gas.py --network $(NETWORK)
	$(BIN)/python scripts/gas_table.py --write

gas-table: $(INSTALLED_PY)
	$(BIN)/python scripts/gas_table.py --write

# Gas, latency, throughput and scale on local chains the harness starts itself (about 10 min);
# writes bench/results.json and bench/summary.md. `make bench BENCH_ARGS=--quick` is a smoke run.
BENCH_ARGS ?=
bench: $(INSTALLED_PY) $(INSTALLED_NODE)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf build reports .pytest_cache .mypy_cache .ruff_cache .hypothesis
