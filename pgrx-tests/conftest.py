"""Fixtures for the stripe_sync end-to-end tests.

The extension must already be installed into the system PostgreSQL 15
(`make install`). Each cluster below is a real server with stripe_sync in
shared_preload_libraries; most tests share one per session, and the tests
that crash, stop or reconfigure a server get their own.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from stripe_sync_testkit import harness as h

def pytest_sessionstart(session):
    if not session.config.option.collectonly and not h.extension_installed():
        pytest.exit(
            "stripe_sync is not installed into PostgreSQL 15 "
            f"({h.PG_BIN}): run `make install` before these tests",
            returncode=1,
        )


@pytest.fixture(scope="session")
def secret() -> str:
    return h.new_webhook_secret()


@pytest.fixture(scope="session")
def cluster(secret) -> Iterator[h.Cluster]:
    """The shared cluster: extension created, worker running, secret configured."""
    with h.stripe_sync_cluster(secret) as c:
        h.wait_until(c.worker_pid, timeout=30, what="the stripe_sync worker to start")
        yield c


@pytest.fixture
def db(cluster):
    """An autocommit superuser connection to the shared cluster."""
    with cluster.connect() as conn:
        yield conn


@pytest.fixture(scope="session")
def localstripe() -> Iterator[h.LocalStripe]:
    # A localstripe that cannot start fails the tests that need it (never a skip: the
    # suite would pass with them unrun).
    with h.LocalStripe() as ls:
        yield ls


@pytest.fixture(scope="session")
def relay(cluster) -> Iterator[h.Relay]:
    with h.Relay(cluster.dsn()) as r:
        yield r


@pytest.fixture(scope="module")
def stand_in() -> Iterator[h.LocalStripe]:
    """A localstripe of the test module's own, so counts are not shared across modules."""
    with h.LocalStripe() as ls:
        yield ls


@pytest.fixture(scope="module")
def api(stand_in):
    """The official stripe client, pointed at the module's localstripe."""
    return h.stripe_client(stand_in.base)
