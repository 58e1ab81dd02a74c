#!/usr/bin/env bash
# Fails when a released script changed. A release's upgrade scripts (and the
# 0.1.0 install script the upgrade test starts from) are what users ran: a
# fresh install runs them too, so they never change after the release
# (sql/README.md, "Versions"). Checked two ways: against the checksums in
# sql/released.sha256, and each stripe_sync--A--B.sql against the tag of the
# release that shipped it first (vB), when this clone has it.
set -euo pipefail
cd "$(dirname "$0")/.."
sha256sum --quiet -c sql/released.sha256
status=0
for f in sql/stripe_sync--*--*.sql; do
  to=${f##*--}; to=${to%.sql}
  if git rev-parse -q --verify "refs/tags/v$to" >/dev/null && ! git diff --quiet "v$to" -- "$f"; then
    echo "check_releases: $f differs from release v$to" >&2
    status=1
  fi
done
# The version being built has its upgrade script, and every released one is listed.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ls sql/stripe_sync--*--"$version".sql >/dev/null
for f in sql/stripe_sync--*--*.sql; do
  to=${f##*--}; to=${to%.sql}
  if [ "$to" != "$version" ] && ! grep -q " $f\$" sql/released.sha256; then
    echo "check_releases: $f (released in $to) is missing from sql/released.sha256" >&2
    status=1
  fi
done
[ "$status" = 0 ] && echo "check_releases: released scripts unchanged"
exit "$status"
