#!/usr/bin/env bash
# Builds the extension (release) and installs it into the system PostgreSQL
# without disturbing running clusters: each file is written next to its target
# and renamed over it, so a server that has the old library mapped keeps it
# (`cargo pgrx install` rewrites the .so in place, which crashes such servers).
# A running cluster picks up the new library when it restarts.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$HOME/.cargo/bin:$PATH"
out=target/package
rm -rf "$out"
cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$out" >/dev/null
# The 0.1.0 install script as released (a test fixture), so CREATE EXTENSION
# stripe_sync VERSION '0.1.0' (or any later release, reached through the
# upgrade scripts) followed by ALTER EXTENSION stripe_sync UPDATE can be
# tested; pgrx packages only the current one and the upgrade scripts.
cp pgrx-tests/fixtures/stripe_sync--0.1.0.sql "$out$("$PG_CONFIG" --sharedir)/extension/"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
(cd "$out" && find . -type f) | while read -r f; do
  dest="/${f#./}"
  mode=0644; case "$f" in *.so) mode=0755 ;; esac
  as_root install -D -m "$mode" "$out/$f" "$dest.new.$$"
  as_root mv -f "$dest.new.$$" "$dest"
done
echo "installed stripe_sync into $("$PG_CONFIG" --pkglibdir) and $("$PG_CONFIG" --sharedir)/extension"
