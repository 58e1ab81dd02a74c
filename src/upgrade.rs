//! What the upgrade scripts call: typed columns a version adds are computed
//! from the objects the rows already store, and child tables it adds are
//! filled from their parents' embedded lists, as the apply would have
//! written them (stripe_sync_core::mapping), without asking Stripe again.

use pgrx::prelude::*;

/// `stripe_sync._refill_columns(table_name, columns)`: see sql/stripe_sync--0.7.0--0.8.0.sql.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn _refill_columns(table_name: &str, columns: Vec<String>) -> i64 {
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let Some(sql) = stripe_sync_core::mapping::refill_sql(table_name, &names) else {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("stripe_sync: {table_name} has no typed columns {names:?} to refill"),
        );
    };
    Spi::connect_mut(|c| c.update(&sql, None, &[]).expect("refill columns").len() as i64)
}

/// `stripe_sync._refill_children(parent_table)`: see sql/stripe_sync--0.7.0--0.8.0.sql.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn _refill_children(parent_table: &str) -> i64 {
    let statements = stripe_sync_core::mapping::refill_children_sql(parent_table);
    if statements.is_empty() {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("stripe_sync: {parent_table} has no child tables to refill"),
        );
    }
    Spi::connect_mut(|c| {
        statements
            .iter()
            .map(|s| c.update(s, None, &[]).expect("refill children").len() as i64)
            .sum()
    })
}
