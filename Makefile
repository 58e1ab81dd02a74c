# stripe_sync: the commands of the README. `make demo` and `make test` set up
# what is missing first (scripts/setup.sh, idempotent).
PG_CONFIG   ?= /usr/lib/postgresql/15/bin/pg_config
VENV        ?= $(HOME)/.cache/stripe_sync/venv
PGTEST_DATA ?= /tmp/stripe_sync-pgtest
export PATH := $(HOME)/.cargo/bin:$(PATH)
export STRIPE_SYNC_VENV := $(VENV)

.PHONY: setup test unit pgtest install e2e demo bench lint

setup:
	@bash scripts/setup.sh

## Every test: pure Rust units, #[pg_test]s in a throwaway cluster, end to end.
test: setup
	cargo test -p stripe_sync_core
	cargo pgrx test pg15 --runas postgres --pgdata $(PGTEST_DATA)
	PG_CONFIG=$(PG_CONFIG) bash scripts/install.sh
	$(VENV)/bin/python -m pytest pgrx-tests

unit: setup
	cargo test -p stripe_sync_core

pgtest: setup
	cargo pgrx test pg15 --runas postgres --pgdata $(PGTEST_DATA)

## Builds (release) and installs into the system PostgreSQL 15; running clusters keep their library until restarted.
install: setup
	PG_CONFIG=$(PG_CONFIG) bash scripts/install.sh

e2e: install
	$(VENV)/bin/python -m pytest pgrx-tests

## Private cluster + localstripe + webhook relay; creates customers and shows them synced.
demo: install
	$(VENV)/bin/python scripts/demo.py

## Benchmarks on a private cluster (about 10 minutes); writes BENCHMARKS.md.
bench: install
	$(VENV)/bin/python bench/run.py

lint:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
