//! The signup trigger (`stripe_sync._enqueue_provisioning`, installed by
//! enable_provisioning): one outbox row in the signup's own transaction.
//!
//! It runs as whoever inserted or updated the users row (SECURITY INVOKER)
//! and reads only the two columns it needs, through their types' output
//! functions, as that role: a type or cast of the application's runs with the
//! application's rights, never ours. Only the outbox insert runs as the
//! extension's owner (restricted, a fixed statement with parameters), so the
//! application role needs no privilege on schema stripe_sync.

use crate::{security, shmem};
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

/// Queues the job if the table is a provisioning target; says whether it is.
/// A row of a partitioned users table arrives from its partition: the job
/// names the partitioned table, the one enable_provisioning registered.
const QUEUE: &str = "
    WITH rel AS (
        SELECT coalesce(pg_catalog.pg_partition_root($1::regclass), $1::regclass) AS users
    ), target AS (
        SELECT rel.users, EXISTS (SELECT 1 FROM stripe_sync.provisioning_targets t WHERE t.users = rel.users) AS known
          FROM rel
    ), queued AS (
        INSERT INTO stripe_sync.provisioning_jobs (users, user_id, kind)
        SELECT target.users, $2, $3 FROM target WHERE target.known
        ON CONFLICT (users, user_id) WHERE kind = 'create' DO NOTHING
    )
    SELECT known FROM target";

#[pg_trigger(sql = false)]
fn _enqueue_provisioning<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let data = trigger.trigger_data();
    let args = trigger.extra_args()?;
    let [id_column, customer_id_column] = args.as_slice() else {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "stripe_sync: _enqueue_provisioning takes two arguments: the id and customer id columns"
                .into(),
        )
    };
    let kind = match trigger.op()? {
        PgTriggerOperation::Insert => "create",
        PgTriggerOperation::Update => "update",
        _ => crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "stripe_sync: _enqueue_provisioning runs on INSERT or UPDATE only".into(),
        ),
    };
    let tuple = if kind == "update" { data.tg_newtuple } else { data.tg_trigtuple };
    // SAFETY: a row trigger's relation and tuple are valid while it runs.
    let desc = unsafe { (*data.tg_relation).rd_att };
    let column = |name: &str| unsafe { column_text(desc, tuple, name) };
    let has_customer = column(customer_id_column).is_some();
    // A new row with a customer needs none; a changed row without one is
    // not provisioned yet (its create job reads the new values).
    if (kind == "create") == has_customer {
        return Ok(None);
    }
    let Some(user_id) = column(id_column) else {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
            format!("stripe_sync: a users row with a NULL {id_column} cannot be provisioned"),
        )
    };
    let relid = trigger.relid()?;
    security::as_extension_owner(|| {
        let known = Spi::get_one_with_args::<bool>(
            QUEUE,
            &[relid.into(), user_id.as_str().into(), kind.into()],
        )
        .expect("queue the provisioning job")
        .unwrap_or(false);
        if !known {
            crate::errors::raise_with_hint(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "stripe_sync: table with oid {} is not a provisioning target",
                    relid.to_u32()
                ),
                "Install the trigger with stripe_sync.enable_provisioning(), not CREATE TRIGGER."
                    .into(),
            );
        }
    });
    shmem::wake_worker_after_commit();
    Ok(None)
}

/// One column of `tuple` as text (its type's output function, run as the
/// current user); None when NULL. An unknown column is an ERROR.
unsafe fn column_text(
    desc: pg_sys::TupleDesc,
    tuple: *mut pg_sys::HeapTupleData,
    name: &str,
) -> Option<String> {
    let cname = CString::new(name).unwrap_or_default();
    let number = unsafe { pg_sys::SPI_fnumber(desc, cname.as_ptr()) };
    if number <= 0 {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "stripe_sync: the users table has no column \"{name}\" (run enable_provisioning again)"
            ),
        );
    }
    let value = unsafe { pg_sys::SPI_getvalue(tuple, desc, number) };
    (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned())
}
