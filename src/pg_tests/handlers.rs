//! `#[pg_test]`s of event handlers: runs, retries, failures, the role a handler runs as.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;

    #[pg_test]
    fn a_handler_that_fails_twice_runs_three_times_and_acts_once() {
        handler_setup();
        Spi::run("SET stripe_sync.retry_base_delay = 0").unwrap();
        let id = count("SELECT stripe_sync.on_event('customer.*', 'public.flaky(jsonb)')");
        assert_eq!(count("SELECT stripe_sync.on_event('customer.*', 'public.flaky(jsonb)')"), id);
        ingest_signed(&customer_event(
            "evt_h1",
            "customer.created",
            now(),
            "cus_h1",
            "h1@example.com",
        ));
        ingest_signed(&customer_event(
            "evt_h2",
            "invoice.created",
            now(),
            "cus_h2",
            "h2@example.com",
        ));
        process(); // applies, and the first call fails
        assert_eq!(
            text("SELECT concat_ws('|', status, attempts, last_error LIKE 'flaky handler fails on call 1%P0001%') FROM stripe_sync.handler_runs").as_deref(),
            Some("pending|1|t"),
            "one run, for the matching event only"
        );
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handler_failures"), 1);
        process();
        process();
        process();
        assert_eq!(count("SELECT last_value FROM public.calls"), 3);
        assert_eq!(
            text("SELECT string_agg(event_id || ':' || email, ',') FROM public.effects").as_deref(),
            Some("evt_h1:h1@example.com")
        );
        assert_eq!(
            text("SELECT concat_ws('|', status, attempts, finished_at IS NOT NULL) FROM stripe_sync.handler_runs").as_deref(),
            Some("succeeded|3|t")
        );
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handler_failures"), 0);
        // A replay applies the event again but does not call the handler again.
        Spi::run("SELECT stripe_sync.replay_event('evt_h1')").unwrap();
        process();
        assert_eq!(count("SELECT last_value FROM public.calls"), 3);
        assert_eq!(count("SELECT count(*) FROM public.effects"), 1);
    }

    /// A run is marked succeeded in the transaction that claimed it, after
    /// its call's subtransaction, so it leaves no MultiXact behind (see
    /// a_batch_leaves_no_multixact_on_the_events_it_marks).
    #[pg_test]
    fn a_succeeded_handler_run_leaves_no_multixact() {
        handler_setup();
        Spi::run("SELECT stripe_sync.on_event('customer.*', 'public.noted(jsonb)')").unwrap();
        ingest_customers("hmx", 3);
        assert_eq!(process(), 3);
        assert_eq!(count("SELECT count(*) FROM public.effects"), 3);
        assert_eq!(
            count("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'succeeded'"),
            3
        );
        if let Some(versions) = replaced_versions("stripe_sync.handler_runs", "evt_hmx") {
            assert_eq!(versions, (3, 0), "(replaced, with a MultiXact)");
        }
    }

    #[pg_test]
    fn a_handler_that_always_fails_ends_failed_and_blocks_nothing() {
        handler_setup();
        Spi::run("SET stripe_sync.retry_base_delay = 0").unwrap();
        Spi::run("SET stripe_sync.max_attempts = 2").unwrap();
        Spi::run("ALTER SEQUENCE public.calls MINVALUE -100 START -100 RESTART").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.flaky(jsonb)')").unwrap();
        for i in 0..5 {
            ingest_signed(&customer_event(
                &format!("evt_af{i}"),
                "customer.created",
                now(),
                &format!("cus_af{i}"),
                "af@example.com",
            ));
        }
        process();
        process();
        process();
        assert_eq!(count("SELECT count(*) FROM stripe_sync.customers WHERE id LIKE 'cus_af%'"), 5);
        assert_eq!(
            count(
                "SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'failed' AND attempts = 2 AND last_error LIKE 'flaky handler fails%'"
            ),
            5
        );
        assert_eq!(count("SELECT handler_runs_failed FROM stripe_sync.status"), 5);
        assert_eq!(count("SELECT last_value FROM public.calls"), -91, "10 calls, not more");
    }

    #[pg_test]
    fn handler_registration_checks_its_arguments_and_removes_runs() {
        handler_setup();
        for (pattern, state) in [("", "22023"), ("invoice paid", "22023"), ("INVOICE.%", "22023")] {
            let f = error_of(
                "SELECT stripe_sync.on_event($1, 'public.flaky(jsonb)')",
                vec![pattern.into()],
            );
            assert_eq!(f.sqlstate, state, "{pattern}: {}", f.message);
        }
        let f =
            error_of("SELECT stripe_sync.on_event('invoice.paid', 'public.wrong(text)')", vec![]);
        assert_eq!(f.sqlstate, "42P13", "{}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handlers"), 0);

        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.flaky(jsonb)')").unwrap();
        Spi::run("SELECT stripe_sync.on_event('*', 'public.flaky(jsonb)')").unwrap();
        ingest_signed(&customer_event(
            "evt_rm",
            "customer.created",
            now(),
            "cus_rm",
            "rm@example.com",
        ));
        Spi::run("SET stripe_sync.retry_base_delay = '1h'").unwrap();
        process();
        assert_eq!(
            count("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'pending'"),
            2
        );
        assert_eq!(count("SELECT stripe_sync.remove_handler(NULL, 'public.flaky(jsonb)')"), 2);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handler_runs"), 0);

        Spi::run("CREATE ROLE stripe_sync_test_plain").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA stripe_sync TO stripe_sync_test_plain").unwrap();
        Spi::run("SET LOCAL ROLE stripe_sync_test_plain").unwrap();
        let f = error_of(
            "SELECT stripe_sync.on_event('customer.created', 'public.flaky(jsonb)')",
            vec![],
        );
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(f.sqlstate, "42501", "{}", f.message);
    }

    #[pg_test]
    fn handlers_run_as_the_role_they_were_registered_for() {
        Spi::run(
            "CREATE ROLE stripe_sync_test_app;
             CREATE TABLE public.seen (who text, sup boolean);
             GRANT INSERT ON public.seen TO stripe_sync_test_app;
             CREATE FUNCTION public.whoami(event jsonb) RETURNS void LANGUAGE sql
                 AS 'INSERT INTO public.seen SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)';
             CREATE FUNCTION public.escalate(event jsonb) RETURNS void LANGUAGE plpgsql
                 AS $$ BEGIN RESET ROLE; SET ROLE postgres; END $$;",
        )
        .unwrap();
        Spi::run("REVOKE EXECUTE ON FUNCTION public.whoami(jsonb) FROM PUBLIC").unwrap();
        let f = error_of(
            "SELECT stripe_sync.on_event('customer.created', 'public.whoami(jsonb)', 'stripe_sync_test_app')",
            vec![],
        );
        assert_eq!(f.sqlstate, "42501", "the role may not execute it: {}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handlers"), 0);
        Spi::run("GRANT EXECUTE ON FUNCTION public.whoami(jsonb) TO stripe_sync_test_app").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.whoami(jsonb)', 'stripe_sync_test_app')").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.escalate(jsonb)', 'stripe_sync_test_app')").unwrap();
        ingest_signed(&customer_event(
            "evt_ra",
            "customer.created",
            now(),
            "cus_ra",
            "ra@example.com",
        ));
        Spi::run("SET stripe_sync.retry_base_delay = '1h'").unwrap();
        process();
        assert_eq!(
            text("SELECT concat_ws('|', who, sup) FROM public.seen").as_deref(),
            Some("stripe_sync_test_app|f")
        );
        assert_eq!(
            text("SELECT current_user::text").as_deref(),
            Some(text("SELECT session_user::text").unwrap().as_str())
        );
        assert_eq!(
            text("SELECT last_error FROM stripe_sync.handler_failures WHERE handler = 'public.escalate(jsonb)'::regprocedure")
                .map(|e| e.contains("cannot set parameter \"role\" within security-definer function")),
            Some(true)
        );
    }
}
