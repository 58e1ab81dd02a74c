//! The application's users tables (`stripe_sync.provisioning_targets`): every
//! read and write of a table that is not ours happens here, with the rights
//! of that table's owner inside a security-restricted operation
//! (security::as_role with the table's owner). The owner's triggers, casts, defaults and policies
//! still run, as they must, but only ever as the owner: whoever calls us (the
//! worker, a superuser's create_customer) lends them nothing.
//!
//! The statements are built here from the target's registered columns
//! (identifiers quoted) and name only pg_catalog's operators; values travel as
//! parameters.

use crate::security;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_qualified_identifier};

/// One provisioning target, as enable_provisioning registered it.
pub struct Target {
    pub relid: pg_sys::Oid,
    /// The table's owner: whose rights its reads and writes run with.
    owner: pg_sys::Oid,
    /// The table as users name it (and as Stripe metadata and idempotency
    /// keys have carried it since 0.1.0): quoted, qualified unless in public.
    pub name: String,
    /// Always schema-qualified and quoted, for our statements.
    qualified: String,
    id_column: String,
    email_column: String,
    name_column: Option<String>,
    customer_id_column: String,
}

/// What provisioning needs from one users row.
#[derive(Default)]
pub struct Profile {
    pub present: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub customer_id: Option<String>,
}

const TARGETS: &str = "
    SELECT t.users::oid, n.nspname::text, c.relname::text, t.id_column::text, t.email_column::text,
           t.name_column::text, t.customer_id_column::text, c.relowner
      FROM stripe_sync.provisioning_targets t
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.users::oid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace";

/// The target of table `relid`; None when it is not provisioned (or is gone).
pub fn target(relid: pg_sys::Oid) -> Option<Target> {
    read_targets(
        &format!("{TARGETS} WHERE t.users::oid OPERATOR(pg_catalog.=) $1"),
        &[relid.into()],
    )
    .pop()
}

/// Every target, by table name.
pub fn targets() -> Vec<Target> {
    read_targets(&format!("{TARGETS} ORDER BY 2, 3"), &[])
}

fn read_targets(sql: &str, args: &[DatumWithOid]) -> Vec<Target> {
    Spi::connect(|c| {
        c.select(sql, None, args)
            .expect("read provisioning targets")
            .map(|r| {
                let text = |i: usize| r.get::<String>(i).ok().flatten().unwrap_or_default();
                Target {
                    relid: r.get::<pg_sys::Oid>(1).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                    owner: r.get::<pg_sys::Oid>(8).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                    name: if text(2) == "public" {
                        quote_identifier(text(3))
                    } else {
                        quote_qualified_identifier(text(2), text(3))
                    },
                    qualified: quote_qualified_identifier(text(2), text(3)),
                    id_column: quote_identifier(text(4)),
                    email_column: quote_identifier(text(5)),
                    name_column: r.get::<String>(6).ok().flatten().map(quote_identifier),
                    customer_id_column: quote_identifier(text(7)),
                }
            })
            .collect()
    })
}

impl Target {
    /// The row whose id, as text, is `user_id`.
    pub fn profile(&self, user_id: &str) -> Profile {
        let name = self.name_column.as_deref().map_or("NULL".to_owned(), |n| format!("{n}::text"));
        let sql = format!(
            "SELECT {}::text, {name}, {}::text FROM {} WHERE {}::text OPERATOR(pg_catalog.=) $1",
            self.email_column, self.customer_id_column, self.qualified, self.id_column
        );
        security::as_role(self.owner, || {
            Spi::connect(|c| {
                let rows = c.select(&sql, Some(1), &[user_id.into()]).expect("read the users row");
                if rows.is_empty() {
                    return Profile::default();
                }
                let row = rows.first();
                Profile {
                    present: true,
                    email: row.get::<String>(1).ok().flatten(),
                    name: row.get::<String>(2).ok().flatten(),
                    customer_id: row.get::<String>(3).ok().flatten(),
                }
            })
        })
    }

    /// Sets the row's customer id unless it holds one; true when it did.
    pub fn write_back(&self, user_id: &str, customer_id: &str) -> bool {
        let sql = format!(
            "UPDATE {} SET {cust} = $1 WHERE {}::text OPERATOR(pg_catalog.=) $2 AND {cust} IS NULL",
            self.qualified,
            self.id_column,
            cust = self.customer_id_column
        );
        security::as_role(self.owner, || {
            Spi::connect_mut(|c| {
                !c.update(&sql, None, &[customer_id.into(), user_id.into()])
                    .expect("write the customer id back")
                    .is_empty()
            })
        })
    }

    /// The ids of the rows that have no customer id yet.
    pub fn unprovisioned(&self) -> Vec<String> {
        let sql = format!(
            "SELECT {id}::text FROM {} WHERE {} IS NULL AND {id} IS NOT NULL",
            self.qualified,
            self.customer_id_column,
            id = self.id_column
        );
        security::as_role(self.owner, || {
            Spi::connect(|c| {
                c.select(&sql, None, &[])
                    .expect("list users without a customer")
                    .filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect()
            })
        })
    }
}
