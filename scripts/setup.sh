#!/usr/bin/env bash
# Installs what stripe_sync needs to build, test and demo on Debian 12, and only
# what is missing: a second run takes seconds. Run as root (or with sudo on PATH).
#   apt: PostgreSQL 15 server + headers, pg_cron, clang (bindgen), sudo (cargo-pgrx --runas)
#   cargo-pgrx at the pinned version, `cargo pgrx init` against the system PostgreSQL 15
#   a Python virtualenv with localstripe, stripe, psycopg and pytest (pgrx-tests/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

PGRX_VERSION=0.18.1
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
VENV=${STRIPE_SYNC_VENV:-$HOME/.cache/stripe_sync/venv}
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-contrib pgbouncer libclang-dev clang pkg-config sudo python3-venv)
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
  step "cargo: installing cargo-pgrx $PGRX_VERSION (about 5 minutes on 2 cores)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
fi

if ! grep -qs "^pg15 = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  step "pgrx: init against $PG_CONFIG"
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

req=pgrx-tests/requirements.txt
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  step "python: virtualenv $VENV from $req"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$VENV/.requirements.sha256"
fi
step "setup complete"
