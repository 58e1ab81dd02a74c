//! stripe_sync: a PostgreSQL extension that keeps a verified, queryable copy of a
//! Stripe account. Data flows one way: ingest -> queue -> (worker) apply -> tables.
//! This file only lists the modules and wires `_PG_init`.

use pgrx::prelude::*;

mod accounts;
mod alerts;
mod api;
mod apply;
mod backfill;
mod balance;
mod catch_up;
mod config;
mod drain;
mod errors;
mod handlers;
mod helpers;
mod inflight;
mod ingest;
mod jobs;
mod jsonb;
mod launch;
mod listing;
mod notify;
mod outbox;
mod plans;
mod provision;
mod queue;
mod refresh;
mod runs;
mod security;
mod shmem;
mod signup;
mod slack;
mod stripe;
mod subxact;
mod upgrade;
mod users;
mod verify;
mod version;
mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/tables.sql", name = "tables", requires = ["schema"]);
extension_sql_file!("../sql/provisioning.sql", name = "provisioning", requires = ["tables"]);
// schema.sql .. finalize.sql are the 0.1.0 schema (less what later versions
// redefine); each later version's upgrade script follows them, so a fresh
// install runs what an upgrade runs (sql/README.md).
extension_sql_file!(
    "../sql/finalize.sql",
    name = "finalize",
    requires = [
        "provisioning",
        api::ingest_event,
        api::process_pending,
        api::worker_status,
        api::retry_failed,
        api::replay_event,
        api::purge_events,
        api::sync_object,
        api::backfill,
        api::catch_up,
        api::create_customer,
        api::_wake_worker
    ]
);
extension_sql_file!(
    "../sql/stripe_sync--0.1.0--0.2.0.sql",
    name = "v0_2_0",
    requires = ["finalize"]
);
extension_sql_file!("../sql/stripe_sync--0.2.0--0.3.0.sql", name = "v0_3_0", requires = ["v0_2_0"]);
extension_sql_file!("../sql/stripe_sync--0.3.0--0.4.0.sql", name = "v0_4_0", requires = ["v0_3_0"]);
extension_sql_file!("../sql/stripe_sync--0.4.0--0.5.0.sql", name = "v0_5_0", requires = ["v0_4_0"]);
extension_sql_file!("../sql/stripe_sync--0.5.0--0.6.0.sql", name = "v0_6_0", requires = ["v0_5_0"]);
extension_sql_file!("../sql/stripe_sync--0.6.0--0.7.0.sql", name = "v0_7_0", requires = ["v0_6_0"]);
extension_sql_file!("../sql/stripe_sync--0.7.0--0.8.0.sql", name = "v0_8_0", requires = ["v0_7_0"]);
extension_sql_file!("../sql/stripe_sync--0.8.0--0.9.0.sql", name = "v0_9_0", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    config::init();
    // Shared memory and the worker exist only when the library is preloaded;
    // without that, ingest still queues and process_pending() applies.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        shmem::init();
        worker::register();
    }
}

/// Settings for `cargo pgrx test`: the test cluster preloads the library so the
/// worker and shared memory exist there too.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'stripe_sync'",
            "stripe_sync.webhook_secret = 'whsec_pgtest_old, whsec_pgtest'",
            "stripe_sync.poll_interval = 200",
        ]
    }
}
