# Development tasks of syncfanout. `make` alone lists them.

# Find Go even when /usr/local/go/bin is not on PATH.
ifneq ($(wildcard /usr/local/go/bin/go),)
export PATH := /usr/local/go/bin:$(PATH)
endif

SHELL := /bin/bash
GO ?= go
# The root module and the nested ones, tested separately: integration
# (benchmarks, fault tests) and contrib/otelsyncfanout (OpenTelemetry, a
# module of its own so that the library's users do not build it).
TEST_MODULES := . integration contrib/otelsyncfanout
# Vetted and tidied too: the harness's container helper, a module of its
# own so that testcontainers-go stays out of the root go.mod. It has no
# tests: the harness's tests run it (internal/redistest, container_test.go).
MODULES := $(TEST_MODULES) internal/rediscontainer
# -v shows every subtest (standalone and cluster) and its result.
TEST_FLAGS ?= -race -count=1 -timeout 14m -v
FUZZTIME ?= 5s
# make test runs every fuzz target for this many inputs (the seed corpora
# always run with the unit tests). A count, not a duration: with a duration
# Go 1.26's fuzzing coordinator can fail a clean run with "context deadline
# exceeded" as the time runs out (golang/go#75804, fixed in Go 1.27).
TEST_FUZZTIME ?= 30000x
SOAK_DURATION ?= 5m
BENCH_ARGS ?=
BENCH_SHORT_ARGS ?= -short

.DEFAULT_GOAL := help
.PHONY: help ensure-redis ensure-promtool ensure-chromium screenshots test demo bench bench-short lint apidiff tidy fuzz-smoke soak

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

ensure-redis: ## Install redis-server and redis-cli if missing (apt-get, as root; no service started)
	@bash scripts/ensure-redis.sh

ensure-promtool: ## Install promtool (Debian's prometheus package) if missing, to check deploy/prometheus/alerts.yml
	@bash scripts/ensure-promtool.sh

ensure-chromium: ## Install Debian's chromium if missing (apt-get, as root), for the web console's browser test
	@bash scripts/ensure-chromium.sh

screenshots: ensure-redis ensure-chromium ## Rewrite docs/console/*.png with the browser test (headless Chromium)
	cd integration && SYNCFANOUT_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestConsoleInBrowser$$' ./browser

test: ensure-redis ensure-chromium ## Run all tests with -race in every module, on standalone and cluster Redis, the console in headless Chromium, then each fuzz target for TEST_FUZZTIME
	@# Without promtool (and not root), the deploy tests skip it; .ci/run insists.
	@bash scripts/ensure-promtool.sh || echo "make test: the promtool checks of deploy/ will be skipped"
	@set -o pipefail; status=0; \
	for m in $(TEST_MODULES); do \
		echo "==> go test $(TEST_FLAGS) ./... in $$m"; \
		(cd $$m && $(GO) test $(TEST_FLAGS) ./... 2>&1) \
			| awk '!/^=== (RUN|PAUSE|CONT) / { print; fflush() }' || status=1; \
	done; \
	FUZZTIME=$(TEST_FUZZTIME) bash scripts/fuzz-smoke.sh || status=1; \
	exit $$status

demo: ## Run the lock-step demo (against REDIS_URL or REDIS_ADDR, else a throwaway redis-server)
	@if [ -z "$${REDIS_URL:-}$${REDIS_ADDR:-}" ]; then bash scripts/ensure-redis.sh; fi
	@if [ -d examples/demo ]; then \
		$(GO) run ./examples/demo; \
	else \
		echo "the demo arrives with the engine: one room, three subscribers in lock-step (examples/demo)"; \
	fi

bench: ensure-redis ## Run the benchmark program (integration/bench; BENCH_ARGS=...)
	@if [ -d integration/bench ]; then \
		cd integration && $(GO) run ./bench $(BENCH_ARGS); \
	else \
		echo "no benchmark program yet (integration/bench)"; \
	fi

bench-short: ensure-redis ## Run every Go benchmark once, and the benchmark program with -short
	@set -e; for m in $(TEST_MODULES); do \
		(cd $$m && $(GO) test -run '^$$' -bench . -benchtime 1x ./...); \
	done
	@if [ -d integration/bench ]; then \
		cd integration && $(GO) run ./bench $(BENCH_SHORT_ARGS); \
	else \
		echo "no benchmark program yet (integration/bench)"; \
	fi

lint: ## Check formatting (gofmt -l lists nothing) and go vet in every module, then report API changes (apidiff)
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do echo "==> go vet ./... in $$m"; (cd $$m && $(GO) vet ./...); done
	@bash scripts/apidiff.sh

apidiff: ## Report (never fail) exported-API changes since APIDIFF_BASE (default HEAD~1, the previous commit)
	@bash scripts/apidiff.sh

tidy: ## Run go mod tidy in every module
	@set -e; for m in $(MODULES); do echo "==> go mod tidy in $$m"; (cd $$m && $(GO) mod tidy); done

fuzz-smoke: ## Run every Fuzz* target for FUZZTIME (default 5s) each
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz-smoke.sh

soak: ensure-redis ## Mixed workload with random faults for SOAK_DURATION (default 5m); prints lost/duplicated/out-of-order/violations (not in CI)
	cd integration && $(GO) test -tags soak -race -count=1 -timeout 0 -run '^TestSoak$$' -v ./faults -args -duration $(SOAK_DURATION)
