//! `#[pg_test]`s of provisioning: the signup trigger, the outbox, create_customer.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;

    fn users_table(id_type: &str) {
        Spi::run(&format!(
            "CREATE TABLE app_users (id {id_type} PRIMARY KEY, email text, full_name text, stripe_customer_id text, age int)"
        ))
        .unwrap();
    }

    fn jobs() -> i64 {
        count("SELECT count(*) FROM stripe_sync.provisioning_jobs")
    }

    #[pg_test]
    fn enable_provisioning_checks_names_and_types_and_installs_nothing_on_error() {
        users_table("bigint");
        let cases = [
            ("'no_such_table', 'id', 'email'", "42P01"),
            ("'app_users', 'nope', 'email'", "42703"),
            ("'app_users', 'id', 'nope'", "42703"),
            ("'app_users', 'id', 'email', 'nope'", "42703"),
            ("'app_users', 'id', 'email', customer_id_column => 'nope'", "42703"),
            ("'app_users', 'id', 'age'", "42804"),
            ("'app_users', 'id', 'email', 'age'", "42804"),
            ("'app_users', 'id', 'email', customer_id_column => 'age'", "42804"),
            ("'app_users', 'id', NULL", "22004"),
            ("'app_users', 'id', 'email; DROP TABLE app_users'", "42703"),
        ];
        for (args, sqlstate) in cases {
            let f = error_of(&format!("SELECT stripe_sync.enable_provisioning({args})"), vec![]);
            assert_eq!(f.sqlstate, sqlstate, "{args}: {}", f.message);
        }
        assert_eq!(count("SELECT count(*) FROM stripe_sync.provisioning_targets"), 0);
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app_users'::regclass"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM app_users"), 0, "the table is intact");
    }

    #[pg_test]
    fn a_signup_queues_one_job_in_its_own_transaction() {
        users_table("uuid");
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email', 'full_name')")
            .unwrap();
        Spi::run(
            "INSERT INTO app_users (id, email, full_name)
             SELECT gen_random_uuid(), 'u' || i || '@example.com', 'User ' || i FROM generate_series(1, 5) i",
        )
        .unwrap();
        assert_eq!(jobs(), 5);
        // A signup that rolls back queues nothing.
        let f = error_of(
            "WITH x AS (INSERT INTO app_users (id, email) VALUES (gen_random_uuid(), 'gone@example.com') RETURNING 1)
             SELECT 1 / 0 FROM x",
            vec![],
        );
        assert_eq!(f.sqlstate, "22012");
        assert_eq!(jobs(), 5);
        // A row that already has a customer queues nothing; a second enable is idempotent.
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email', 'full_name')")
            .unwrap();
        Spi::run("INSERT INTO app_users (id, email, stripe_customer_id) VALUES (gen_random_uuid(), 'x@example.com', 'cus_x')")
            .unwrap();
        assert_eq!(jobs(), 5);
        let relid =
            Spi::get_one::<pg_sys::Oid>("SELECT 'app_users'::regclass::oid").unwrap().unwrap();
        let id = text("SELECT id::text FROM app_users WHERE email = 'u3@example.com'").unwrap();
        let profile = crate::users::target(relid).unwrap().profile(&id);
        assert!(profile.present);
        assert_eq!(profile.email.as_deref(), Some("u3@example.com"));
        assert_eq!(profile.name.as_deref(), Some("User 3"));
        assert_eq!(profile.customer_id, None);
        assert!(!crate::users::target(relid).unwrap().profile("no such id").present);
        // Existing users without a customer: queued once, not twice.
        assert_eq!(
            Spi::get_one::<i64>("SELECT stripe_sync.provision_existing_users()").unwrap(),
            Some(0)
        );
        Spi::run("DELETE FROM stripe_sync.provisioning_jobs").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT stripe_sync.provision_existing_users()").unwrap(),
            Some(5)
        );
    }

    #[pg_test]
    fn the_users_table_is_read_and_written_as_its_owner_restricted() {
        Spi::run("CREATE ROLE stripe_sync_owner").unwrap();
        Spi::run("GRANT CREATE ON SCHEMA public TO stripe_sync_owner").unwrap();
        Spi::run("SET ROLE stripe_sync_owner").unwrap();
        Spi::run(
            "CREATE TABLE public.owned_users (id int PRIMARY KEY, email text, stripe_customer_id text);
             CREATE TABLE public.trace (who name, super boolean, path text, temp_ok boolean);
             CREATE FUNCTION public.trace() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$
             DECLARE ok boolean := true;
             BEGIN
                 BEGIN EXECUTE 'CREATE TEMP TABLE t_owned (x int)'; EXCEPTION WHEN OTHERS THEN ok := false; END;
                 INSERT INTO public.trace SELECT current_user, r.rolsuper, current_setting('search_path'), ok
                   FROM pg_roles r WHERE r.rolname = current_user;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER trace BEFORE UPDATE ON public.owned_users FOR EACH ROW EXECUTE FUNCTION public.trace();",
        )
        .unwrap();
        Spi::run("RESET ROLE").unwrap();
        Spi::run("SELECT stripe_sync.enable_provisioning('public.owned_users', 'id', 'email')")
            .unwrap();
        Spi::run("INSERT INTO public.owned_users (id, email) VALUES (1, 'o@example.com')").unwrap();
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'public.owned_users'::regclass::oid")
            .unwrap()
            .unwrap();
        let target = crate::users::target(relid).unwrap();
        // As the worker does it, from a superuser's session.
        assert!(target.write_back("1", "cus_owned"));
        assert!(!target.write_back("1", "cus_other"), "a customer id is never overwritten");
        assert_eq!(
            text("SELECT concat_ws('|', who, super, temp_ok) FROM public.trace").as_deref(),
            Some("stripe_sync_owner|f|f"),
            "the owner's trigger ran as the owner, and could not create a temporary table"
        );
        assert_eq!(
            text("SELECT stripe_customer_id FROM public.owned_users").as_deref(),
            Some("cus_owned")
        );
        assert_eq!(text("SELECT current_user::text").as_deref(), Some("postgres"));
        // The signup trigger works for a role with no privilege on stripe_sync.
        Spi::run("SET ROLE stripe_sync_owner").unwrap();
        Spi::run("INSERT INTO public.owned_users (id, email) VALUES (2, 'p@example.com')").unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(
            count(
                "SELECT count(*) FROM stripe_sync.provisioning_jobs WHERE users = 'public.owned_users'::regclass"
            ),
            2
        );
        // Attached by hand to a table provisioning does not know: refused.
        Spi::run("CREATE TABLE public.other_users (id int, stripe_customer_id text)").unwrap();
        Spi::run("CREATE TRIGGER manual AFTER INSERT ON public.other_users FOR EACH ROW EXECUTE FUNCTION stripe_sync._enqueue_provisioning('id', 'stripe_customer_id')").unwrap();
        let f = error_of("INSERT INTO public.other_users VALUES (1, NULL)", vec![]);
        assert_eq!(f.sqlstate, "55000", "{}", f.message);
    }

    #[pg_test]
    fn a_partitioned_users_table_queues_its_rows_under_its_own_name() {
        Spi::run(
            "CREATE TABLE public.split_users (id int, email text, stripe_customer_id text) PARTITION BY RANGE (id);
             CREATE TABLE public.split_users_low PARTITION OF public.split_users FOR VALUES FROM (0) TO (100);
             CREATE TABLE public.split_users_high PARTITION OF public.split_users FOR VALUES FROM (100) TO (200);",
        )
        .unwrap();
        Spi::run("SELECT stripe_sync.enable_provisioning('public.split_users', 'id', 'email')")
            .unwrap();
        Spi::run("INSERT INTO public.split_users (id, email) VALUES (1, 'a@example.com'), (150, 'b@example.com')")
            .unwrap();
        assert_eq!(
            text("SELECT string_agg(users::text || ':' || user_id, ',' ORDER BY user_id) FROM stripe_sync.provisioning_jobs")
                .as_deref(),
            Some("split_users:1,split_users:150")
        );
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'public.split_users'::regclass::oid")
            .unwrap()
            .unwrap();
        assert_eq!(
            crate::users::target(relid).unwrap().profile("150").email.as_deref(),
            Some("b@example.com")
        );
    }

    #[pg_test]
    fn an_owners_code_that_raises_leaves_the_callers_user_and_settings_as_they_were() {
        Spi::run("CREATE ROLE stripe_sync_raiser").unwrap();
        Spi::run("GRANT CREATE ON SCHEMA public TO stripe_sync_raiser").unwrap();
        Spi::run("SET ROLE stripe_sync_raiser").unwrap();
        Spi::run(
            "CREATE TABLE public.raising_users (id int PRIMARY KEY, email text, stripe_customer_id text);
             CREATE FUNCTION public.raise_after_set() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 SET work_mem = '7MB';
                 PERFORM pg_catalog.set_config('search_path', 'public', false);
                 RAISE EXCEPTION 'no write-back today';
             END $$;
             CREATE TRIGGER raiser BEFORE UPDATE ON public.raising_users FOR EACH ROW EXECUTE FUNCTION public.raise_after_set();",
        )
        .unwrap();
        Spi::run("RESET ROLE").unwrap();
        Spi::run("SELECT stripe_sync.enable_provisioning('public.raising_users', 'id', 'email')")
            .unwrap();
        Spi::run("INSERT INTO public.raising_users (id, email) VALUES (1, 'r@example.com')")
            .unwrap();
        let before =
            text("SELECT current_setting('work_mem') || '|' || current_setting('search_path')");
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'public.raising_users'::regclass::oid")
            .unwrap()
            .unwrap();
        let target = crate::users::target(relid).unwrap();
        let outcome =
            subxact::run(std::panic::AssertUnwindSafe(|| target.write_back("1", "cus_r")));
        let f = outcome.expect_err("the owner's trigger raises");
        assert!(f.message.contains("no write-back today"), "{}", f.message);
        assert_eq!(text("SELECT current_user::text").as_deref(), Some("postgres"));
        assert_eq!(
            text("SELECT current_setting('work_mem') || '|' || current_setting('search_path')"),
            before
        );
        // And when it does not raise, its settings are undone all the same.
        Spi::run("CREATE OR REPLACE FUNCTION public.raise_after_set() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN SET work_mem = '7MB'; RETURN NEW; END $$").unwrap();
        assert!(target.write_back("1", "cus_r"));
        assert_eq!(
            text("SELECT current_setting('work_mem') || '|' || current_setting('search_path')"),
            before
        );
    }

    #[pg_test]
    fn update_sync_is_opt_in_and_disable_removes_the_triggers() {
        users_table("bigint");
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email', 'full_name', sync_updates => true)")
            .unwrap();
        Spi::run("INSERT INTO app_users (id, email, stripe_customer_id) VALUES (1, 'a@example.com', 'cus_a')").unwrap();
        Spi::run("UPDATE app_users SET age = 3 WHERE id = 1").unwrap();
        assert_eq!(jobs(), 0, "other columns do not sync");
        Spi::run("UPDATE app_users SET email = 'b@example.com' WHERE id = 1").unwrap();
        assert_eq!(
            text("SELECT concat_ws('|', kind, user_id) FROM stripe_sync.provisioning_jobs")
                .as_deref(),
            Some("update|1")
        );
        Spi::run("SELECT stripe_sync.disable_provisioning('app_users')").unwrap();
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app_users'::regclass"),
            0
        );
        assert_eq!(
            text("SELECT status FROM stripe_sync.provisioning_jobs").as_deref(),
            Some("failed")
        );
        let f = error_of("SELECT stripe_sync.disable_provisioning('app_users')", vec![]);
        assert_eq!(f.sqlstate, "55000");
    }

    #[pg_test]
    fn create_customer_of_a_missing_user_is_a_clear_error() {
        users_table("bigint");
        let f = error_of("SELECT stripe_sync.create_customer('1')", vec![]);
        assert_eq!(f.sqlstate, "55000", "{}", f.message);
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email')").unwrap();
        let f = error_of("SELECT stripe_sync.create_customer('404')", vec![]);
        assert_eq!(f.sqlstate, "P0002", "{}", f.message);
        assert!(f.message.contains("no row with id \"404\""), "{}", f.message);
        // Already provisioned: returned without any API call (no key is configured here).
        Spi::run("INSERT INTO app_users (id, email, stripe_customer_id) VALUES (7, 'p@example.com', 'cus_seven')").unwrap();
        assert_eq!(text("SELECT stripe_sync.create_customer('7')").as_deref(), Some("cus_seven"));
    }
}
