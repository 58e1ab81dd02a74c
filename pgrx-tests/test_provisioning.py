"""Signup provisioning end to end: users rows become exactly one Stripe customer
each (localstripe), through the real worker, including a worker crash."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from stripe_sync_testkit import harness as h

N_SIGNUPS = 200


@pytest.fixture(scope="module")
def cluster(stand_in):
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=stand_in.base,
                               retry_base_delay="200ms", api_rate_limit=100) as c:
        yield c


def customers_of(api, table: str) -> dict[str, list[str]]:
    """Stripe customers created for `table`, by user id."""
    out: dict[str, list[str]] = {}
    for c in api.v1.customers.list(params={"limit": 100}).auto_paging_iter():
        meta = c.metadata.to_dict() if c.metadata else {}
        if meta.get("users_table") == table:
            out.setdefault(meta["user_id"], []).append(c.id)
    return out


def test_signups_in_one_transaction_each_get_one_customer_despite_a_worker_crash(cluster, api):
    cluster.query("CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, name text,"
                  " stripe_customer_id text)")
    cluster.query("SELECT stripe_sync.enable_provisioning('accounts', 'id', 'email', 'name')")
    with cluster.connect(autocommit=False) as conn:
        conn.execute("INSERT INTO accounts (id, email, name) SELECT i, 'signup' || i || '@example.com',"
                     " 'Signup ' || i FROM generate_series(1, %s) i", (N_SIGNUPS,))
        conn.commit()
    done = lambda: cluster.scalar("SELECT count(*) FROM accounts WHERE stripe_customer_id IS NOT NULL")
    h.wait_until(lambda: done() >= 20, timeout=60, what="the first customers")
    old = cluster.worker_pid()
    os.kill(old, signal.SIGKILL)  # mid-way: some jobs leased, some calls in flight
    h.wait_until(lambda: (p := cluster.worker_pid()) not in (None, old) and p, timeout=60,
                 what="the worker to come back")
    # Leases of jobs the dead worker held expire after 10 minutes; make them due now.
    cluster.query("UPDATE stripe_sync.provisioning_jobs SET next_attempt_at = now() WHERE status = 'pending'")
    h.wait_until(lambda: done() == N_SIGNUPS, timeout=180, what="every signup to have its customer")

    by_user = customers_of(api, "accounts")
    assert len(by_user) == N_SIGNUPS
    dupes = {u: ids for u, ids in by_user.items() if len(ids) != 1}
    assert not dupes, f"users with several customers: {dupes}"
    rows = dict(cluster.query("SELECT id::text, stripe_customer_id FROM accounts"))
    assert rows == {u: ids[0] for u, ids in by_user.items()}
    mirrored = cluster.scalar("SELECT count(*) FROM stripe_sync.customers WHERE metadata->>'users_table' = 'accounts'")
    assert mirrored == N_SIGNUPS
    assert cluster.query("SELECT status, count(*) FROM stripe_sync.provisioning_jobs GROUP BY 1") == [("done", N_SIGNUPS)]
    email = cluster.scalar("SELECT email FROM stripe_sync.customers WHERE id = %s", (rows["17"],))
    assert email == "signup17@example.com"


def test_a_rolled_back_signup_provisions_nothing(cluster, api):
    cluster.query("CREATE TABLE members (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text,"
                  " stripe_customer_id text)")
    cluster.query("SELECT stripe_sync.enable_provisioning('members', 'id', 'email')")
    with cluster.connect(autocommit=False) as conn:
        conn.execute("INSERT INTO members (email) VALUES ('never@example.com')")
        conn.rollback()
    with cluster.connect(autocommit=False) as conn:
        conn.execute("INSERT INTO members (email) VALUES ('kept@example.com')")
        conn.commit()
    h.wait_until(lambda: cluster.scalar("SELECT stripe_customer_id FROM members WHERE email = 'kept@example.com'"),
                 timeout=60, what="the committed signup's customer")
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.provisioning_jobs WHERE users = 'members'::regclass") == 1
    assert api.v1.customers.list(params={"email": "never@example.com"}).data == []


def test_create_customer_twice_creates_one(cluster, api):
    cluster.query("CREATE TABLE people (id uuid PRIMARY KEY, email text, full_name text, stripe_customer_id text)")
    cluster.query("SELECT stripe_sync.enable_provisioning('people', 'id', 'email', 'full_name')")
    uid = "6f1c2b1e-6d5e-4a39-9d0a-2f3b4c5d6e7f"
    with cluster.connect(autocommit=False) as conn:
        conn.execute("INSERT INTO people VALUES (%s, 'twice@example.com', 'Twice', NULL)", (uid,))
        first = conn.execute("SELECT stripe_sync.create_customer(%s, 'people')", (uid,)).fetchone()[0]
        conn.commit()
    with cluster.connect() as conn:
        second = conn.execute("SELECT stripe_sync.create_customer(%s, 'people')", (uid,)).fetchone()[0]
        # Several users tables are provisioned by now: naming none is ambiguous.
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.create_customer(%s)", (uid,))
        assert err.value.sqlstate == "22023"
        assert "several users tables" in str(err.value)
    assert first == second and first.startswith("cus_")
    assert cluster.scalar("SELECT stripe_customer_id FROM people WHERE id = %s", (uid,)) == first
    assert customers_of(api, "people") == {uid: [first]}
    # The worker finds the job done and creates nothing more.
    h.holds_for(lambda: customers_of(api, "people") == {uid: [first]}, 1.0, interval=0.25,
                what="no second customer")
    with cluster.connect() as conn:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.create_customer('00000000-0000-0000-0000-000000000000', 'people')")
    assert err.value.sqlstate == "P0002"


def clerk_refused(cluster) -> None:
    """create_customer is refused (42501) to the role clerk, before any request."""
    with cluster.connect(autocommit=False) as conn:
        conn.execute("SET ROLE clerk")
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.create_customer('1', 'clerks_users')")
    assert err.value.sqlstate == "42501", err.value
    assert "create_customer needs SELECT on the id, email and name columns of clerks_users" in str(err.value)


def test_create_customer_that_could_not_write_back_creates_none_in_stripe(cluster, api):
    # Checked before the POST: a read-only transaction, and a role without UPDATE on the users
    # table, get a clear error, and Stripe gets no customer that nothing would link.
    cluster.query("CREATE TABLE clerks_users (id int PRIMARY KEY, email text, stripe_customer_id text)")
    cluster.query("SELECT stripe_sync.enable_provisioning('clerks_users', 'id', 'email')")
    cluster.query("ALTER TABLE clerks_users DISABLE TRIGGER USER")  # only the calls below create
    cluster.query("INSERT INTO clerks_users VALUES (1, 'ro@example.com', NULL)")
    cluster.query("CREATE ROLE clerk")
    cluster.query("GRANT USAGE ON SCHEMA stripe_sync TO clerk; GRANT SELECT ON clerks_users TO clerk; "
                  "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA stripe_sync TO clerk; "
                  "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA stripe_sync TO clerk")
    with cluster.connect(autocommit=False) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.create_customer('1', 'clerks_users')")
        assert err.value.sqlstate == "25006", err.value
    clerk_refused(cluster)
    # UPDATE on another column is not UPDATE on the customer id column.
    cluster.query("GRANT UPDATE (email) ON clerks_users TO clerk")
    clerk_refused(cluster)
    # That column is not all the write-back needs: the call's own record in provisioning_jobs
    # takes the id sequence too (which grants only USAGE or UPDATE).
    cluster.query("GRANT UPDATE (stripe_customer_id) ON clerks_users TO clerk")
    clerk_refused(cluster)
    # INSERT alone on the mirror is not enough either.
    cluster.query("GRANT UPDATE ON ALL SEQUENCES IN SCHEMA stripe_sync TO clerk")
    cluster.query("REVOKE UPDATE ON stripe_sync.customers FROM clerk")
    clerk_refused(cluster)
    cluster.query("GRANT UPDATE ON stripe_sync.customers TO clerk")
    assert customers_of(api, "clerks_users") == {}
    assert cluster.scalar("SELECT stripe_customer_id FROM clerks_users") is None
    # With all of it (the sequence's UPDATE standing for USAGE), the call creates and links it.
    with cluster.connect(autocommit=False) as conn:
        conn.execute("SET ROLE clerk")
        made = conn.execute("SELECT stripe_sync.create_customer('1', 'clerks_users')").fetchone()[0]
        conn.commit()
    assert customers_of(api, "clerks_users") == {"1": [made]}
    assert cluster.scalar("SELECT stripe_customer_id FROM clerks_users") == made


def test_email_changes_follow_when_asked(cluster, api):
    cluster.query("CREATE TABLE subscribers (id text PRIMARY KEY, email text, stripe_customer_id text)")
    cluster.query("SELECT stripe_sync.enable_provisioning('subscribers', 'id', 'email', sync_updates => true)")
    cluster.query("INSERT INTO subscribers VALUES ('s-1', 'before@example.com', NULL)")
    cid = h.wait_until(lambda: cluster.scalar("SELECT stripe_customer_id FROM subscribers WHERE id = 's-1'"),
                       timeout=60, what="the customer")
    cluster.query("UPDATE subscribers SET email = 'after@example.com' WHERE id = 's-1'")
    h.wait_until(lambda: api.v1.customers.retrieve(cid).email == "after@example.com", timeout=60,
                 what="Stripe to have the new email")
    h.wait_until(lambda: cluster.scalar("SELECT email FROM stripe_sync.customers WHERE id = %s", (cid,))
                 == "after@example.com", timeout=30, what="the mirror to follow")


def test_stripe_refusing_a_user_fails_its_job_visibly_and_a_blip_is_retried(stand_in):
    from stripe_sync_testkit.faultproxy import FaultProxy

    with FaultProxy(stand_in.base) as proxy, \
            h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=proxy.base,
                                  retry_base_delay="100ms") as c:
        c.query("CREATE TABLE shoppers (id int PRIMARY KEY, email text, stripe_customer_id text)")
        c.query("SELECT stripe_sync.enable_provisioning('shoppers', 'id', 'email')")
        # A refusal (400) is permanent: failed at once, with Stripe's message, in the view.
        proxy.always("400", match="/v1/customers")
        c.query("INSERT INTO shoppers VALUES (1, 'refused@example.com', NULL)")
        h.wait_until(lambda: c.query("SELECT user_id, attempts, last_error FROM stripe_sync.provisioning_failures"),
                     timeout=30, what="the refused job in provisioning_failures")
        [(user_id, attempts, error)] = c.query("SELECT user_id, attempts, last_error FROM stripe_sync.provisioning_failures")
        assert (user_id, attempts) == ("1", 1)
        assert "stripe API error 400" in error and "(injected)" in error
        assert h.TEST_API_KEY not in error
        # A 503 that outlasts the client's retries is retried later by the job, which then succeeds.
        proxy.clear()
        proxy.inject(*["503"] * 7, match="/v1/customers")
        c.query("INSERT INTO shoppers VALUES (2, 'blip@example.com', NULL)")
        h.wait_until(lambda: c.scalar("SELECT stripe_customer_id FROM shoppers WHERE id = 2"), timeout=120,
                     what="the customer after the outage")
        assert c.scalar("SELECT attempts FROM stripe_sync.provisioning_jobs WHERE user_id = '2'") >= 2
        assert c.scalar("SELECT stripe_customer_id FROM shoppers WHERE id = 1") is None
