//! `#[pg_test]`s of who runs what: pinned search_path, restricted user switches, secrets.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;

    #[pg_test]
    fn secrets_are_hidden_from_a_plain_role() {
        Spi::run("CREATE ROLE stripe_sync_plain").unwrap();
        Spi::run("SET ROLE stripe_sync_plain").unwrap();
        for sql in [
            "SHOW stripe_sync.webhook_secret",
            "SHOW stripe_sync.api_key",
            "SELECT current_setting('stripe_sync.webhook_secret')",
            "SELECT current_setting('stripe_sync.api_key', true)",
        ] {
            let f = error_of(sql, vec![]);
            assert_eq!(f.sqlstate, "42501", "{sql}: {}", f.message);
            assert!(!f.message.contains("whsec_"), "{}", f.message);
        }
        assert_eq!(
            count(
                "SELECT count(*) FROM pg_settings WHERE name IN ('stripe_sync.webhook_secret', 'stripe_sync.api_key')"
            ),
            0
        );
        let f = error_of("SET stripe_sync.webhook_secret = 'whsec_forged'", vec![]);
        assert_eq!(f.sqlstate, "42501");
        let f = error_of("SET stripe_sync.api_base = 'http://evil.example'", vec![]);
        assert_eq!(f.sqlstate, "42501");
        Spi::run("RESET ROLE").unwrap();
        // A superuser reads it.
        assert_eq!(
            text("SHOW stripe_sync.webhook_secret").as_deref(),
            Some("whsec_pgtest_old, whsec_pgtest")
        );
    }

    #[pg_test]
    fn ingest_needs_a_grant_but_no_table_privileges() {
        Spi::run("CREATE ROLE stripe_sync_hook").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA stripe_sync TO stripe_sync_hook").unwrap();
        Spi::run("SET ROLE stripe_sync_hook").unwrap();
        let p =
            customer_event("evt_role", "customer.created", now(), "cus_role", "role@example.com");
        let f = ingest_error(&p, &header(&p, SECRET, now()));
        assert_eq!(f.sqlstate, "42501", "{}", f.message);
        Spi::run("RESET ROLE").unwrap();
        Spi::run(
            "GRANT EXECUTE ON FUNCTION stripe_sync.ingest_event(text, text) TO stripe_sync_hook",
        )
        .unwrap();
        Spi::run("SET ROLE stripe_sync_hook").unwrap();
        assert_eq!(ingest_signed(&p), "queued");
        let f = error_of("SELECT count(*) FROM stripe_sync.events", vec![]);
        assert_eq!(f.sqlstate, "42501", "the hook role cannot read the queue");
        let f = error_of("SELECT stripe_sync.process_pending()", vec![]);
        assert_eq!(f.sqlstate, "42501");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events WHERE id = 'evt_role'"), 1);
    }

    /// Every function PUBLIC may execute, by signature: what any role of the
    /// database can call. A new function is private until it is added here
    /// with a reason (docs/security.md lists the same).
    const PUBLIC_FUNCTIONS: &[&str] = &[
        // Pure functions of their arguments, for queries and views.
        "stripe_sync.amount_decimal(bigint,text)",
        "stripe_sync.subscription_mrr(jsonb,timestamp with time zone)",
        // The internals of the above (inlined into the callers' queries).
        "stripe_sync._discount_factor(jsonb,numeric,timestamp with time zone)",
        "stripe_sync._earns_mrr(jsonb)",
        "stripe_sync._event_rank(text)",
        "stripe_sync._has_discount(jsonb)",
        "stripe_sync._is_deletion(text,jsonb)",
        "stripe_sync._is_stub(jsonb)",
        "stripe_sync._item_mrr(jsonb)",
        "stripe_sync._monthly_amount(numeric,text,integer)",
        "stripe_sync._status_severity(text)",
        "stripe_sync._undiscounted_mrr(jsonb)",
    ];

    #[pg_test]
    fn public_executes_only_the_allowlisted_functions() {
        let public: Vec<String> = texts(
            "SELECT p.oid::regprocedure::text
                   FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                  WHERE p.pronamespace = 'stripe_sync'::regnamespace
                    AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'
                  ORDER BY 1",
        )
        .into_iter()
        .map(|s| s.replace(", ", ","))
        .collect();
        let mut allowed: Vec<String> = PUBLIC_FUNCTIONS.iter().map(|s| s.to_string()).collect();
        allowed.sort();
        assert_eq!(public, allowed, "functions PUBLIC can execute");
    }

    #[pg_test]
    fn every_function_resolves_names_in_pg_catalog_only() {
        // Bodies parsed at call time get a pinned search_path; SQL-standard
        // bodies (RETURN, BEGIN ATOMIC) were bound when they were created.
        let loose: Vec<String> = texts(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'stripe_sync'::regnamespace AND p.prosqlbody IS NULL
                    AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
                  ORDER BY 1",
        );
        assert!(loose.is_empty(), "functions without search_path = pg_catalog, pg_temp: {loose:?}");
        assert!(
            count("SELECT count(*) FROM pg_proc WHERE pronamespace = 'stripe_sync'::regnamespace")
                > 20
        );
        // No function of ours runs as its owner but the one ingest needs.
        let definers: Vec<String> = texts(
            "SELECT proname::text FROM pg_proc
                  WHERE pronamespace = 'stripe_sync'::regnamespace AND prosecdef ORDER BY 1",
        );
        assert_eq!(definers, ["ingest_event"]);
    }

    #[pg_test]
    fn every_sequence_and_stateful_table_is_kept_by_pg_dump() {
        let missing: Vec<String> = texts("SELECT c.oid::regclass::text FROM pg_class c
                  WHERE c.relnamespace = 'stripe_sync'::regnamespace AND c.relkind IN ('r', 'p', 'S')
                    AND c.oid <> ALL (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'stripe_sync')
                  ORDER BY 1");
        assert!(missing.is_empty(), "not registered with pg_extension_config_dump: {missing:?}");
        assert!(
            count(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'stripe_sync'::regnamespace AND relkind = 'S'"
            ) >= 4
        );
    }

    #[pg_test]
    fn a_secret_cannot_be_stored_where_every_role_reads_it() {
        Spi::run("CREATE ROLE stripe_sync_app").unwrap();
        for sql in [
            "ALTER DATABASE postgres SET stripe_sync.api_key = 'sk_test_catalog'",
            "ALTER ROLE stripe_sync_app SET stripe_sync.webhook_secret = 'whsec_catalog'",
            "ALTER ROLE stripe_sync_app IN DATABASE postgres SET stripe_sync.slack_webhook_url = 'https://hooks.example/catalog'",
            "CREATE FUNCTION public.keyed() RETURNS int LANGUAGE sql SET stripe_sync.api_key = 'sk_test_catalog' AS 'SELECT 1'",
        ] {
            let f = error_of(sql, vec![]);
            assert_eq!(f.sqlstate, "42501", "{sql}: {}", f.message);
            assert!(f.message.contains("every role can read"), "{}", f.message);
            assert!(!f.message.contains("catalog'"), "the value is not quoted: {}", f.message);
        }
        // Settings that are not secrets still can be.
        Spi::run("ALTER ROLE stripe_sync_app SET stripe_sync.batch_size = 100").unwrap();
        // Nothing a plain role can read shows a configured secret.
        Spi::run("SET ROLE stripe_sync_app").unwrap();
        for sql in [
            "SELECT string_agg(s::text, ' ') FROM pg_settings s",
            "SELECT string_agg(s::text, ' ') FROM pg_db_role_setting s",
            "SELECT string_agg(p.proconfig::text, ' ') FROM pg_proc p",
            "SELECT string_agg(a.query, ' ') FROM pg_stat_activity a",
            "SELECT string_agg(d.description, ' ') FROM pg_description d",
            "SELECT string_agg(e::text, ' ') FROM pg_extension e",
            "SELECT string_agg(c.reloptions::text, ' ') FROM pg_class c",
        ] {
            let seen = text(sql).unwrap_or_default();
            assert!(!seen.contains("whsec_pgtest"), "{sql} shows the webhook secret");
        }
        let f = error_of("SELECT count(*) FROM pg_file_settings", vec![]);
        assert_eq!(f.sqlstate, "42501", "{}", f.message);
        Spi::run("RESET ROLE").unwrap();
    }
}
