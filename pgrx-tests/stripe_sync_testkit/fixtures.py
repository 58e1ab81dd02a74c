"""Module fixtures shared by the tests that run a cluster against the Stripe stand-in:

    api, cluster = standin_fixtures(api_rate_limit=200)

at a test module's top level gives it ``api`` (a StandIn) and ``cluster`` (a cluster whose
API base is that stand-in, with an API key; keyword arguments go to stripe_sync_cluster)."""

from __future__ import annotations

import pytest

from . import harness as h
from .standin import StandIn


def standin_fixtures(**cluster_options):
    @pytest.fixture(scope="module")
    def api():
        with StandIn() as s:
            yield s

    @pytest.fixture(scope="module")
    def cluster(api):
        options = {"api_key": h.TEST_API_KEY, **cluster_options}
        with h.stripe_sync_cluster(options.pop("secret", h.new_webhook_secret()), api_base=api.base,
                                   **options) as c:
            yield c

    return api, cluster
