"""The webhook secret and the API key stay out of reach of plain roles and out of the log."""

from __future__ import annotations

import re
import secrets
import time

import psycopg
import pytest

from stripe_sync_testkit import harness as h

API_KEY = "sk_test_" + secrets.token_hex(20)
SECRET_GUCS = ("stripe_sync.webhook_secret", "stripe_sync.api_key")


@pytest.fixture(scope="module")
def sc(secret):
    with h.stripe_sync_cluster(secret, api_key=API_KEY) as c:
        c.query("CREATE ROLE plain LOGIN")
        yield c


@pytest.fixture
def plain(sc):
    with sc.connect(user="plain") as conn:
        yield conn


def test_superuser_can_read_the_settings(sc, secret):
    assert sc.scalar("SHOW stripe_sync.webhook_secret") == secret
    assert sc.scalar("SHOW stripe_sync.api_key") == API_KEY


@pytest.mark.parametrize("guc", SECRET_GUCS)
@pytest.mark.parametrize("sql", [
    "SHOW {guc}",
    "SELECT current_setting('{guc}')",
    "SELECT current_setting('{guc}', true)",
])
def test_plain_role_cannot_read(plain, guc, sql):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        plain.execute(sql.format(guc=guc)).fetchall()


def test_plain_role_sees_no_secret_rows(plain, secret):
    names = [r[0] for r in plain.execute(
        "SELECT name FROM pg_settings WHERE name LIKE 'stripe_sync.%'").fetchall()]
    assert "stripe_sync.poll_interval" in names  # the GUCs are there ...
    for guc in SECRET_GUCS:
        assert guc not in names  # ... but not these
    show_all = plain.execute("SHOW ALL").fetchall()
    assert not [r for r in show_all if r[0] in SECRET_GUCS]
    assert not [r for r in show_all if secret in str(r) or API_KEY in str(r)]


def _bad_deliveries(secret):
    now = int(time.time())
    payload = h.customer_event("customer.created", email="v@example.com", name="Victim")
    good = h.sign(payload, secret, now)
    yield "bad signature", payload, f"t={now},v1={secrets.token_hex(32)}", ("28000",)
    yield "wrong secret", payload, h.sign(payload, h.new_webhook_secret(), now), ("28000",)
    yield "secret as signature", payload, f"t={now},v1={secret}", ("28000", "22P02")
    yield "stale timestamp", payload, h.sign(payload, secret, now - 3600), ("22008",)
    yield "future timestamp", payload, h.sign(payload, secret, now + 3600), ("22008",)
    yield "tampered body", payload.replace("Victim", "Mallory"), good, ("28000",)
    yield "missing header", payload, "", ("22P02",)
    yield "garbled header", payload, "v1=,t=", ("22P02",)
    yield "not json", "<xml/>", h.sign("<xml/>", secret, now), ("22032",)
    not_event = '{"object": "customer", "id": "cus_123"}'
    yield "not an event", not_event, h.sign(not_event, secret, now), ("22023",)


def test_failed_ingests_store_nothing_and_leak_nothing(sc, secret):
    start = sc.log_size()
    with sc.connect() as conn:
        for case, payload, header, sqlstate in _bad_deliveries(secret):
            with pytest.raises(psycopg.Error) as err:
                conn.execute("SELECT stripe_sync.ingest_event(%s, %s)", (payload, header))
            assert err.value.sqlstate in sqlstate, f"{case}: {err.value}"
            message = str(err.value) + str(err.value.diag.message_detail or "")
            assert secret not in message and API_KEY not in message, case

    assert sc.scalar("SELECT count(*) FROM stripe_sync.events") == 0
    log = sc.log_text()
    assert len(re.findall(r"\bERROR:", sc.log_text(start))) >= 10  # the log was written
    for value in (secret, secret.removeprefix("whsec_"), API_KEY, API_KEY.removeprefix("sk_test_")):
        assert value not in log
