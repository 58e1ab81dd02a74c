//! stripe_sync: a PostgreSQL extension that keeps a verified, queryable copy of a
//! Stripe account. Data flows one way: ingest -> queue -> (worker) apply -> tables.
//! This file only lists the modules and wires `_PG_init`.

use pgrx::prelude::*;

mod api;
mod apply;
mod backfill;
mod config;
mod drain;
mod errors;
mod ingest;
mod jobs;
mod notify;
mod plans;
mod provision;
mod queue;
mod shmem;
mod stripe;
mod subxact;
mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/tables.sql", name = "tables", requires = ["schema"]);
extension_sql_file!("../sql/provisioning.sql", name = "provisioning", requires = ["tables"]);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

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
