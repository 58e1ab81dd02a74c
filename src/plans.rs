//! Kept SPI plans for the statements on the hot paths (ingest's insert, the
//! queue's claim and mark, the apply statements): parsed and planned once per
//! backend, then reused. PostgreSQL's plan cache replans them by itself when a
//! table or function they use changes (ALTER, DROP/CREATE EXTENSION).

use pgrx::PgOid;
use pgrx::datum::DatumWithOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static PLANS: RefCell<HashMap<&'static str, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Runs the statement `sql` (parameter types `types`) with `args` through its
/// kept plan, handing the result to `f`.
pub fn execute<'conn, R>(
    client: &mut SpiClient<'conn>,
    sql: &'static str,
    types: &[PgOid],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'conn>) -> R,
) -> R {
    PLANS.with_borrow_mut(|plans| {
        if !plans.contains_key(sql) {
            let plan =
                client.prepare_mut(sql, types).unwrap_or_else(|e| panic!("prepare: {e}")).keep();
            plans.insert(sql, plan);
        }
        let plan = &plans[sql];
        let rows = client.update(plan, None, args).unwrap_or_else(|e| panic!("execute: {e}"));
        f(rows)
    })
}

/// Parameter types by name, for readable call sites.
pub mod types {
    use pgrx::PgOid;
    use pgrx::pg_sys::PgBuiltInOids as Oids;

    pub const BOOL: PgOid = PgOid::BuiltIn(Oids::BOOLOID);
    pub const TEXT: PgOid = PgOid::BuiltIn(Oids::TEXTOID);
    pub const TEXT_ARRAY: PgOid = PgOid::BuiltIn(Oids::TEXTARRAYOID);
    pub const FLOAT8: PgOid = PgOid::BuiltIn(Oids::FLOAT8OID);
    pub const INT4: PgOid = PgOid::BuiltIn(Oids::INT4OID);
    pub const INT8: PgOid = PgOid::BuiltIn(Oids::INT8OID);
    pub const JSONB: PgOid = PgOid::BuiltIn(Oids::JSONBOID);
    pub const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(Oids::TIMESTAMPTZOID);
}
