//! Stripe objects to typed columns. Each mirrored object type has an
//! [`ObjectSpec`]: its table and the typed columns taken from the object. From
//! the spec this module writes the one set-based statement that applies a
//! batch of events to the table; the statement runs in SQL so the objects
//! never travel through Rust.
//!
//! Ordering rule (documented in docs/ordering.md): an object's row holds the
//! event that last wrote it; a newer event wins when its key
//! `(created, rank(type), event id)` is greater or equal, where rank is 0 for
//! `*.created`, 2 for deletions and 1 otherwise. Ties within one second are so
//! broken deterministically, whatever the delivery order. A deleted row is a
//! tombstone: nothing writes over it.

mod customers;

/// How a column is read from the object's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string, as `text`.
    Text,
    /// An integer (amounts in the smallest currency unit, counts), as `bigint`.
    BigInt,
    /// A boolean.
    Bool,
    /// Unix seconds, as `timestamptz`.
    Timestamp,
    /// Any JSON value kept as `jsonb` (metadata, address, ...).
    Jsonb,
    /// An expandable reference: the id string, or the `id` of the expanded object.
    Ref,
}

impl Kind {
    /// The PostgreSQL type of such a column.
    pub fn sql_type(self) -> &'static str {
        match self {
            Kind::Text | Kind::Ref => "text",
            Kind::BigInt => "bigint",
            Kind::Bool => "boolean",
            Kind::Timestamp => "timestamp with time zone",
            Kind::Jsonb => "jsonb",
        }
    }
}

/// One typed column: named exactly as the Stripe field it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// A mirrored object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Stripe's `object` value, e.g. `customer`.
    pub object: &'static str,
    /// Table in schema `stripe_sync`, e.g. `customers`.
    pub table: &'static str,
    /// Typed columns besides `id`, `data` and the `_` bookkeeping columns.
    pub columns: &'static [Column],
}

/// Every mirrored object type.
pub const SPECS: &[ObjectSpec] = &[customers::CUSTOMER];

/// The spec for a Stripe `object` value, if we mirror it.
pub fn spec_for(object: &str) -> Option<&'static ObjectSpec> {
    SPECS.iter().find(|s| s.object == object)
}

/// The `object` values we mirror, for the queue's processed/skipped decision.
pub fn mirrored_objects() -> Vec<&'static str> {
    SPECS.iter().map(|s| s.object).collect()
}

/// SQL expression reading `column` from the jsonb object `o`.
fn read_expr(column: &Column) -> String {
    let n = column.name;
    match column.kind {
        Kind::Text => format!("o->>'{n}'"),
        Kind::BigInt => format!("(o->>'{n}')::bigint"),
        Kind::Bool => format!("(o->>'{n}')::boolean"),
        Kind::Timestamp => format!("to_timestamp((o->>'{n}')::double precision)"),
        Kind::Jsonb => format!("o->'{n}'"),
        Kind::Ref => format!("coalesce(o->'{n}'->>'id', o->>'{n}')"),
    }
}

/// The statement that applies the events whose ids are in `$1` (text[]) to
/// this spec's table. For each object only its newest event in the batch is
/// used; full objects are upserted, deleted stubs (`{"id", "object",
/// "deleted": true}`) only mark the row deleted. Returns one row per write.
pub fn apply_sql(spec: &ObjectSpec) -> String {
    let table = spec.table;
    let object = spec.object;
    let names: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
    let reads: Vec<String> = spec.columns.iter().map(read_expr).collect();
    let sets: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    format!(
        "WITH batch AS (
    SELECT DISTINCT ON (e.object_id)
           e.id AS event_id, e.type AS event_type, e.created AS event_created,
           e.account, e.data->'data'->'object' AS o,
           stripe_sync._is_deletion(e.type, e.data->'data'->'object') AS is_deletion
      FROM stripe_sync.events e
     WHERE e.id = ANY($1) AND e.object_type = '{object}' AND e.object_id IS NOT NULL
     ORDER BY e.object_id, e.created DESC, stripe_sync._event_rank(e.type) DESC, e.id DESC
), full_objects AS (
    INSERT INTO stripe_sync.{table} AS t
           (id, {cols}, data, _account_id, _last_event_at, _last_event_type, _last_event_id, _deleted, _synced_at)
    SELECT o->>'id', {reads}, o, account, event_created, event_type, event_id, is_deletion, now()
      FROM batch
     WHERE NOT stripe_sync._is_stub(o)
    ON CONFLICT (id) DO UPDATE SET {sets},
           data = excluded.data, _account_id = excluded._account_id,
           _last_event_at = excluded._last_event_at, _last_event_type = excluded._last_event_type,
           _last_event_id = excluded._last_event_id, _deleted = excluded._deleted,
           _synced_at = excluded._synced_at
     WHERE {newer}
    RETURNING 1
), stubs AS (
    INSERT INTO stripe_sync.{table} AS t
           (id, data, _account_id, _last_event_at, _last_event_type, _last_event_id, _deleted, _synced_at)
    SELECT o->>'id', o, account, event_created, event_type, event_id, true, now()
      FROM batch
     WHERE stripe_sync._is_stub(o)
    ON CONFLICT (id) DO UPDATE SET
           _last_event_at = excluded._last_event_at, _last_event_type = excluded._last_event_type,
           _last_event_id = excluded._last_event_id, _deleted = true, _synced_at = excluded._synced_at
     WHERE {newer}
    RETURNING 1
)
SELECT (SELECT count(*) FROM full_objects) + (SELECT count(*) FROM stubs)",
        cols = names.join(", "),
        reads = reads.join(", "),
        sets = sets.join(", "),
        newer = NEWER,
    )
}

/// The ordering rule as a condition over the existing row `t` and the incoming `excluded`.
const NEWER: &str = "NOT t._deleted
       AND (excluded._last_event_at, stripe_sync._event_rank(excluded._last_event_type), excluded._last_event_id)
        >= (coalesce(t._last_event_at, '-infinity'), stripe_sync._event_rank(t._last_event_type),
            coalesce(t._last_event_id, ''))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_have_unique_objects_tables_and_columns() {
        let mut objects: Vec<_> = SPECS.iter().map(|s| s.object).collect();
        let mut tables: Vec<_> = SPECS.iter().map(|s| s.table).collect();
        objects.sort();
        objects.dedup();
        tables.sort();
        tables.dedup();
        assert_eq!(objects.len(), SPECS.len());
        assert_eq!(tables.len(), SPECS.len());
        for s in SPECS {
            let mut cols: Vec<_> = s.columns.iter().map(|c| c.name).collect();
            cols.sort();
            cols.dedup();
            assert_eq!(cols.len(), s.columns.len(), "{}", s.table);
            for c in cols {
                assert!(
                    c != "id" && c != "data" && !c.starts_with('_'),
                    "{}.{c} is reserved",
                    s.table
                );
                assert!(
                    c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{}.{c}",
                    s.table
                );
            }
        }
    }

    #[test]
    fn read_expressions_by_kind() {
        let c = |name, kind| read_expr(&Column { name, kind });
        assert_eq!(c("email", Kind::Text), "o->>'email'");
        assert_eq!(c("balance", Kind::BigInt), "(o->>'balance')::bigint");
        assert_eq!(c("livemode", Kind::Bool), "(o->>'livemode')::boolean");
        assert_eq!(
            c("created", Kind::Timestamp),
            "to_timestamp((o->>'created')::double precision)"
        );
        assert_eq!(c("metadata", Kind::Jsonb), "o->'metadata'");
        assert_eq!(
            c("customer", Kind::Ref),
            "coalesce(o->'customer'->>'id', o->>'customer')"
        );
    }

    #[test]
    fn apply_sql_lists_every_column_once_and_takes_ids_as_a_parameter() {
        let sql = apply_sql(spec_for("customer").unwrap());
        assert!(sql.contains("INSERT INTO stripe_sync.customers AS t"));
        assert!(sql.contains("e.id = ANY($1)"));
        assert!(sql.contains("e.object_type = 'customer'"));
        for c in customers::CUSTOMER.columns {
            assert_eq!(
                sql.matches(&format!("{n} = excluded.{n}", n = c.name))
                    .count(),
                1,
                "{}",
                c.name
            );
        }
        assert!(!sql.contains("$2"));
    }

    #[test]
    fn unknown_objects_are_not_mirrored() {
        assert!(spec_for("customer").is_some());
        assert!(spec_for("balance_transaction").is_none());
        assert_eq!(mirrored_objects(), vec!["customer"]);
    }
}
