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
//! broken deterministically, whatever the delivery order. A deletion ranks
//! highest in its second, so no older event brings a deleted row back.

mod billing;
mod catalog;
mod checkout;
mod customers;
mod entitlements;
mod ledger;
mod payments;
#[cfg(test)]
mod spec_tests;

/// How a column is read from the object's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string, as `text`.
    Text,
    /// An integer (amounts in the smallest currency unit, counts), as `bigint`.
    BigInt,
    /// A number that may have a fraction (`percent_off`), as `numeric`.
    Numeric,
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
            Kind::Numeric => "numeric",
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
    /// Where the value is in the object: the first path that is not null
    /// wins. Empty means the top-level field `name`. Several paths cover
    /// fields that moved between API versions (e.g. an invoice's subscription,
    /// top-level before 2025-03-31, under `parent.subscription_details` since).
    pub paths: &'static [&'static [&'static str]],
}

/// A column read from the top-level field of the same name.
pub const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind, paths: &[] }
}

/// A column read from the first non-null of `paths`.
pub const fn col_at(
    name: &'static str,
    kind: Kind,
    paths: &'static [&'static [&'static str]],
) -> Column {
    Column { name, kind, paths }
}

/// A list embedded in a parent object whose elements are rows of their own
/// table (a subscription's `items`, an invoice's `lines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSpec {
    /// Table in schema `stripe_sync`, e.g. `subscription_items`.
    pub table: &'static str,
    /// Field of the parent holding the list object (`{"data": [...], "has_more": ..}`).
    pub list: &'static str,
    /// Column of the child table that holds the parent's id, e.g. `subscription`.
    pub parent_column: &'static str,
    /// Typed columns besides `id`, the parent column, `data` and bookkeeping.
    pub columns: &'static [Column],
}

/// A mirrored object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Stripe's `object` value, e.g. `customer`.
    pub object: &'static str,
    /// The field of the object that identifies it and becomes the row's
    /// `id`: `id`, but for an object Stripe gives no id of its own (a
    /// customer's entitlement summary: its `customer`).
    pub key: &'static str,
    /// Table in schema `stripe_sync`, e.g. `customers`.
    pub table: &'static str,
    /// Typed columns besides `id`, `data` and the `_` bookkeeping columns.
    pub columns: &'static [Column],
    /// Embedded lists mirrored as child rows; replaced whenever the parent is written.
    pub children: &'static [ChildSpec],
}

/// Every mirrored object type.
pub const SPECS: &[ObjectSpec] = &[
    customers::CUSTOMER,
    catalog::PRODUCT,
    catalog::PRICE,
    catalog::PLAN,
    catalog::COUPON,
    billing::SUBSCRIPTION,
    billing::INVOICE,
    billing::INVOICE_ITEM,
    payments::CHARGE,
    payments::REFUND,
    payments::PAYMENT_INTENT,
    payments::PAYMENT_METHOD,
    payments::SETUP_INTENT,
    payments::DISPUTE,
    billing::CREDIT_NOTE,
    customers::TAX_ID,
    checkout::CHECKOUT_SESSION,
    payments::EARLY_FRAUD_WARNING,
    billing::SUBSCRIPTION_SCHEDULE,
    // 0.8.0: the money ledger and around it.
    ledger::BALANCE_TRANSACTION,
    ledger::PAYOUT,
    ledger::TRANSFER,
    ledger::APPLICATION_FEE,
    ledger::INVOICE_PAYMENT,
    ledger::CUSTOMER_BALANCE_TRANSACTION,
    ledger::PROMOTION_CODE,
    ledger::TAX_RATE,
    ledger::QUOTE,
    ledger::REVIEW,
    ledger::BILLING_METER,
    ledger::ENTITLEMENT_FEATURE,
    // 0.9.0
    entitlements::ENTITLEMENT_SUMMARY,
];

/// Child rows that Stripe embeds in no object: listed under each parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedChildren {
    /// Stripe's `object` value of the rows, the name `backfill()` takes.
    pub object: &'static str,
    /// The parent's table; its live rows are the parents listed.
    pub parent_table: &'static str,
    pub child: ChildSpec,
}

/// Every listed child table (0.9.0: a product's features).
pub const LISTED: &[ListedChildren] = &[entitlements::PRODUCT_FEATURES];

/// The listed child table whose rows are `object`s.
pub fn listed_for(object: &str) -> Option<&'static ListedChildren> {
    LISTED.iter().find(|l| l.object == object)
}

/// What marks an object gone when Stripe no longer has it: a deleted stub,
/// `{"id", "object", "deleted": true}`, with the object's key besides its id
/// where that is another field (a summary's `customer`).
pub fn tombstone(object: &str, id: &str) -> serde_json::Value {
    let mut stub = serde_json::json!({"id": id, "object": object, "deleted": true});
    if let Some(key) = spec_for(object).map(|s| s.key).filter(|k| *k != "id") {
        stub[key] = serde_json::Value::from(id);
    }
    stub
}

/// The spec for a Stripe `object` value, if we mirror it.
pub fn spec_for(object: &str) -> Option<&'static ObjectSpec> {
    SPECS.iter().find(|s| s.object == object)
}

/// The `object` values we mirror, for the queue's processed/skipped decision.
pub fn mirrored_objects() -> Vec<&'static str> {
    SPECS.iter().map(|s| s.object).collect()
}

/// SQL expression reading `column` from the jsonb object in `src`.
fn read_expr(column: &Column, src: &str) -> String {
    let one_path = [column.name];
    let default: [&[&str]; 1] = [&one_path];
    let paths: &[&[&str]] = if column.paths.is_empty() { &default } else { column.paths };
    let reads: Vec<String> = paths.iter().map(|p| read_path(column.kind, src, p)).collect();
    if reads.len() == 1 {
        reads.into_iter().next().unwrap_or_default()
    } else {
        format!("coalesce({})", reads.join(", "))
    }
}

fn read_path(kind: Kind, src: &str, path: &[&str]) -> String {
    let (json, text) = if path.len() == 1 {
        (format!("{src}->'{}'", path[0]), format!("{src}->>'{}'", path[0]))
    } else {
        let p = path.join(",");
        (format!("{src}#>'{{{p}}}'::text[]"), format!("{src}#>>'{{{p}}}'::text[]"))
    };
    match kind {
        Kind::Text => text,
        Kind::BigInt => format!("({text})::bigint"),
        Kind::Numeric => format!("({text})::numeric"),
        Kind::Bool => format!("({text})::boolean"),
        Kind::Timestamp => format!("to_timestamp(({text})::double precision)"),
        Kind::Jsonb => json,
        Kind::Ref => format!("coalesce({json}->>'id', {text})"),
    }
}

/// The statement that recomputes `columns` of `table` (a mirrored table or
/// a child table) from each row's `data`: for columns a later version adds,
/// so that existing rows get them without reading Stripe again. None when
/// the table is not mirrored or a column is not one of its typed columns.
pub fn refill_sql(table: &str, columns: &[&str]) -> Option<String> {
    let own = SPECS.iter().find(|s| s.table == table).map(|s| s.columns).or_else(|| {
        SPECS.iter().flat_map(|s| s.children).find(|c| c.table == table).map(|c| c.columns)
    })?;
    let sets = columns
        .iter()
        .map(|n| {
            own.iter().find(|c| c.name == *n).map(|c| format!("{n} = {}", read_expr(c, "data")))
        })
        .collect::<Option<Vec<_>>>()?;
    (!sets.is_empty()).then(|| {
        format!("UPDATE stripe_sync.{table} SET {} WHERE data IS NOT NULL", sets.join(", "))
    })
}

/// The statements that write the child rows of every row of `parent_table`
/// from the lists its stored objects embed: for a child table a later version
/// adds, so that existing parents get their children without a re-read. Rows
/// already there are kept. Empty when the table has no children.
pub fn refill_children_sql(parent_table: &str) -> Vec<String> {
    let Some(spec) = SPECS.iter().find(|s| s.table == parent_table) else { return Vec::new() };
    spec.children
        .iter()
        .map(|c| {
            let names: Vec<&str> = c.columns.iter().map(|x| x.name).collect();
            let reads: Vec<String> = c.columns.iter().map(|x| read_expr(x, "o")).collect();
            format!(
                "INSERT INTO stripe_sync.{child} (id, {parent_column}, {cols}, data, _account_id)
SELECT o->>'id', p.id, {reads}, o, p._account_id
  FROM stripe_sync.{parent_table} p
 CROSS JOIN LATERAL jsonb_array_elements(p.data #> '{{{list},data}}'::text[]) AS l(o)
 WHERE NOT p._deleted AND o->>'id' IS NOT NULL
ON CONFLICT (_account_id, id) DO NOTHING",
                child = c.table,
                parent_column = c.parent_column,
                cols = names.join(", "),
                reads = reads.join(", "),
                list = c.list,
            )
        })
        .collect()
}

/// The statement that replaces listed children parent by parent: `$1` a
/// jsonb array of `{"parent": id, "items": [every child of that parent]}`,
/// `$2` the account (NULL or `''` for the platform). Each parent's listed
/// rows are upserted and its other rows deleted, as when a parent's embedded
/// list is applied (the same statements, [`child_sql`]). Returns the rows
/// written.
pub fn listed_children_sql(child: &ChildSpec) -> String {
    format!(
        "WITH full_objects AS (
    SELECT g->>'parent' AS id, coalesce($2::text, '') AS _account_id,
           jsonb_build_object('data', g->'items') AS list0
      FROM jsonb_array_elements($1::jsonb) AS g
     WHERE g->>'parent' IS NOT NULL AND jsonb_typeof(g->'items') = 'array'
){}
SELECT count(*) FROM child0_upsert",
        child_sql(0, child)
    )
}

/// What waits to be re-read and is due, up to `$1` of each kind: requests
/// whose time has come (oldest first), and, for every type with embedded
/// child lists, the rows whose list arrived partial (`has_more`) and that no
/// deferred request holds back. Rows: account, id, object type.
pub fn due_rereads_sql() -> String {
    let mut parts = vec![
        "(SELECT account, id, object FROM stripe_sync.refresh_requests
      WHERE requested_at <= now() ORDER BY requested_at LIMIT $1)"
            .to_owned(),
    ];
    for s in SPECS.iter().filter(|s| !s.children.is_empty()) {
        parts.push(format!(
            "(SELECT p._account_id, p.id, '{object}' FROM stripe_sync.{table} p
      WHERE NOT p._children_complete AND NOT p._deleted
        AND NOT EXISTS (SELECT 1 FROM stripe_sync.refresh_requests r
                         WHERE r.account = p._account_id AND r.id = p.id AND r.requested_at > now())
      LIMIT $1)",
            object = s.object,
            table = s.table,
        ));
    }
    parts.join("\n    UNION\n    ")
}

/// Where a batch of objects comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Events in `stripe_sync.events` whose ids are `$1` (text[]).
    Events,
    /// Objects fetched from the API: `$1` a jsonb array of objects, `$2` the
    /// time of the fetch (timestamptz), `$3` the connected account (text;
    /// NULL or `''` for the platform). A fetched object ranks as an update made at fetch time, compared
    /// in whole seconds as Stripe's event times are (see [`order_key`]), so an
    /// event created later, or in the same second, still wins over it.
    Objects,
}

/// The pseudo event type recorded on rows written from fetched objects.
pub const FETCHED: &str = "stripe_sync.fetched";

fn batch_sql(spec: &ObjectSpec, source: Source) -> String {
    let (object, key) = (spec.object, spec.key);
    match source {
        // The object is read out of the event only for the newest event of
        // each object, and once: every `e.data` in an expression would
        // detoast (and decompress) the whole event again, and `OFFSET 0`
        // keeps the planner from copying the expression into each use.
        Source::Events => format!(
            "SELECT b.event_id, b.event_type, b.event_created, coalesce(b.account, '') AS account, x.o,
           stripe_sync._is_deletion(b.event_type, x.o) AS is_deletion, b.tied
      FROM (SELECT DISTINCT ON (e.account, e.object_id)
                   e.id AS event_id, e.type AS event_type, e.created AS event_created, e.account, e.data,
                   count(*) OVER (PARTITION BY e.account, e.object_id, e.created, stripe_sync._event_rank(e.type)) > 1 AS tied
              FROM stripe_sync.events e
             WHERE e.id = ANY($1) AND e.object_type = '{object}' AND e.object_id IS NOT NULL
             ORDER BY e.account, e.object_id, e.created DESC, stripe_sync._event_rank(e.type) DESC, e.id DESC) b
     CROSS JOIN LATERAL (SELECT b.data #> '{{data,object}}'::text[] AS o OFFSET 0) x"
        ),
        Source::Objects => format!(
            "SELECT DISTINCT ON (o->>'{key}')
           ''::text AS event_id, '{FETCHED}'::text AS event_type, $2::timestamptz AS event_created,
           coalesce($3::text, '') AS account, o, stripe_sync._is_deletion(NULL, o) AS is_deletion, false AS tied
      FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(o, position)
     WHERE o->>'object' = '{object}' AND o->>'{key}' IS NOT NULL
     ORDER BY o->>'{key}', position DESC"
        ),
    }
}

/// The statement that applies a batch (see [`Source`]) to this spec's table.
/// For each object only its newest version in the batch is used; full objects
/// are upserted, deleted stubs (`{"id", "object", "deleted": true}`) only mark
/// the row deleted, children are replaced. Returns the number of rows written.
pub fn apply_sql(spec: &ObjectSpec, source: Source) -> String {
    let table = spec.table;
    let names: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
    let reads: Vec<String> = spec.columns.iter().map(|c| read_expr(c, "o")).collect();
    let sets: Vec<String> = names.iter().map(|n| format!("{n} = excluded.{n}")).collect();
    format!(
        "WITH batch AS (
    {batch}
), full_objects AS (
    INSERT INTO stripe_sync.{table} AS t
           (id, {cols}, data, _account_id, _last_event_at, _last_event_type, _last_event_id, _deleted, _synced_at)
    SELECT o->>'{key}', {reads}, o, account, event_created, event_type, event_id, is_deletion, now()
      FROM batch
     WHERE NOT stripe_sync._is_stub(o)
    ON CONFLICT (_account_id, id) DO UPDATE SET {sets},
           data = excluded.data,
           _last_event_at = excluded._last_event_at, _last_event_type = excluded._last_event_type,
           _last_event_id = excluded._last_event_id, _deleted = excluded._deleted,
           _synced_at = excluded._synced_at
     WHERE {newer}
    RETURNING t.id, t._account_id{lists}
), stubs AS (
    INSERT INTO stripe_sync.{table} AS t
           (id, data, _account_id, _last_event_at, _last_event_type, _last_event_id, _deleted, _synced_at)
    SELECT o->>'{key}', o, account, event_created, event_type, event_id, true, now()
      FROM batch
     WHERE stripe_sync._is_stub(o)
    ON CONFLICT (_account_id, id) DO UPDATE SET
           _last_event_at = excluded._last_event_at, _last_event_type = excluded._last_event_type,
           _last_event_id = excluded._last_event_id, _deleted = true, _synced_at = excluded._synced_at
     WHERE {newer}
    RETURNING 1
){ties}{children}
SELECT (SELECT count(*) FROM full_objects) + (SELECT count(*) FROM stubs)",
        ties = if source == Source::Events { ties_sql(spec) } else { String::new() },
        batch = batch_sql(spec, source),
        key = spec.key,
        children = spec.children.iter().enumerate().map(|(i, c)| child_sql(i, c)).collect::<String>(),
        // Only the embedded lists go on to the children's statements, not the whole objects.
        lists = spec.children.iter().enumerate()
            .map(|(i, c)| format!(", t.data->'{}' AS list{i}", c.list))
            .collect::<String>(),
        cols = names.join(", "),
        reads = reads.join(", "),
        sets = sets.join(", "),
        newer = newer(),
    )
}

/// The CTE that records objects whose newest event cannot be told apart from
/// another by the ordering key alone: same second and same rank, different
/// events (in this batch, or the one that wrote the row). The worker re-reads
/// them from the API when a key is configured; otherwise the event id decides.
/// A request already waiting is stamped anew: a re-read fetched before this
/// batch began does not settle it (refresh.rs drops only requests older than
/// its fetch).
fn ties_sql(spec: &ObjectSpec) -> String {
    let (object, table, key) = (spec.object, spec.table, spec.key);
    format!(
        ", ties AS (
    INSERT INTO stripe_sync.refresh_requests (account, id, object)
    SELECT b.account, b.o->>'{key}', '{object}'
      FROM batch b
      LEFT JOIN stripe_sync.{table} t ON t._account_id = b.account AND t.id = b.o->>'{key}'
     WHERE b.tied
        OR (t._last_event_at = b.event_created AND t._last_event_id <> b.event_id
            AND t._last_event_type <> '{FETCHED}'
            AND stripe_sync._event_rank(t._last_event_type) = stripe_sync._event_rank(b.event_type))
    ON CONFLICT (account, id) DO UPDATE SET requested_at = excluded.requested_at
    RETURNING 1
)"
    )
}

/// CTEs that replace the children of every parent written by `full_objects`:
/// upsert the listed ones, delete the parent's other rows unless the embedded
/// list is partial (`has_more`), in which case rows are only added.
fn child_sql(i: usize, child: &ChildSpec) -> String {
    let table = child.table;
    let parent = child.parent_column;
    let names: Vec<&str> = child.columns.iter().map(|c| c.name).collect();
    let reads: Vec<String> = child.columns.iter().map(|c| read_expr(c, "o")).collect();
    let sets: String = names.iter().map(|n| format!("{n} = excluded.{n}, ")).collect();
    let (cols, reads) = if names.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("{}, ", names.join(", ")), format!("{}, ", reads.join(", ")))
    };
    format!(
        ", child{i}_upsert AS (
    INSERT INTO stripe_sync.{table} AS t (id, {parent}, {cols}data, _account_id, _synced_at)
    SELECT DISTINCT ON (p._account_id, o->>'id') o->>'id', p.id, {reads}o, p._account_id, now()
      FROM full_objects p
     CROSS JOIN LATERAL jsonb_array_elements(
           CASE WHEN jsonb_typeof(p.list{i}->'data') = 'array' THEN p.list{i}->'data' ELSE '[]' END) AS o
     WHERE o->>'id' IS NOT NULL
     ORDER BY p._account_id, o->>'id', p.id
    ON CONFLICT (_account_id, id) DO UPDATE SET {parent} = excluded.{parent}, {sets}data = excluded.data,
           _synced_at = excluded._synced_at
    RETURNING 1
), child{i}_delete AS (
    DELETE FROM stripe_sync.{table} x
     USING full_objects p
     WHERE x._account_id = p._account_id AND x.{parent} = p.id
       AND jsonb_typeof(p.list{i}->'data') = 'array'
       AND NOT coalesce((p.list{i}->>'has_more')::boolean, false)
       AND x.id <> ALL (ARRAY(SELECT e->>'id' FROM jsonb_array_elements(p.list{i}->'data') AS e))
    RETURNING 1
)"
    )
}

/// The ordering key of a row (`t`, the existing one, or `excluded`, the incoming
/// one). Times compare in whole seconds, as Stripe's event times are: a fetch
/// (stamped with microseconds, event id '') made in the second of an event
/// loses to it in either order, and only two fetches of the same second are
/// told apart by their exact times. A fetch that found the object deleted ranks
/// as a deletion (2), as a `*.deleted` event does, so no update of its second
/// revives the row.
fn order_key(row: &str) -> String {
    format!(
        "(date_trunc('second', coalesce({row}._last_event_at, '-infinity')),
            CASE WHEN {row}._deleted AND {row}._last_event_type = '{FETCHED}' THEN 2
                 ELSE stripe_sync._event_rank({row}._last_event_type) END,
            coalesce({row}._last_event_id, ''), coalesce({row}._last_event_at, '-infinity'))"
    )
}

/// The ordering rule as a condition over the existing row `t` and the incoming `excluded`.
fn newer() -> String {
    format!("{} >= {}", order_key("excluded"), order_key("t"))
}

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
                assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}.{c}", s.table);
            }
        }
    }

    #[test]
    fn read_expressions_by_kind() {
        let c = |name, kind| read_expr(&col(name, kind), "o");
        assert_eq!(c("email", Kind::Text), "o->>'email'");
        assert_eq!(c("balance", Kind::BigInt), "(o->>'balance')::bigint");
        assert_eq!(c("livemode", Kind::Bool), "(o->>'livemode')::boolean");
        assert_eq!(
            c("created", Kind::Timestamp),
            "to_timestamp((o->>'created')::double precision)"
        );
        assert_eq!(c("metadata", Kind::Jsonb), "o->'metadata'");
        assert_eq!(c("customer", Kind::Ref), "coalesce(o->'customer'->>'id', o->>'customer')");
        let moved = col_at(
            "subscription",
            Kind::Ref,
            &[&["parent", "subscription_details", "subscription"], &["subscription"]],
        );
        assert_eq!(
            read_expr(&moved, "o"),
            "coalesce(coalesce(o#>'{parent,subscription_details,subscription}'::text[]->>'id', \
             o#>>'{parent,subscription_details,subscription}'::text[]), coalesce(o->'subscription'->>'id', o->>'subscription'))"
        );
    }

    #[test]
    fn children_are_replaced_unless_the_list_is_partial() {
        let children: Vec<_> = SPECS.iter().filter(|s| !s.children.is_empty()).collect();
        let objects: Vec<&str> = children.iter().map(|s| s.object).collect();
        assert_eq!(
            objects,
            vec![
                "subscription",
                "invoice",
                "credit_note",
                "transfer",
                "application_fee",
                "entitlements.active_entitlement_summary"
            ]
        );
        for spec in &children {
            let sql = apply_sql(spec, Source::Events);
            for (i, child) in spec.children.iter().enumerate() {
                assert!(sql.contains(&format!("t.data->'{}' AS list{i}", child.list)));
                assert!(sql.contains(&format!("INSERT INTO stripe_sync.{} AS t", child.table)));
                assert!(sql.contains(&format!("DELETE FROM stripe_sync.{} x", child.table)));
                let partial = format!("NOT coalesce((p.list{i}->>'has_more')::boolean, false)");
                assert!(sql.contains(&partial));
            }
        }
    }

    #[test]
    fn apply_sql_lists_every_column_once_and_takes_ids_as_a_parameter() {
        let sql = apply_sql(spec_for("customer").unwrap(), Source::Events);
        assert!(sql.contains("INSERT INTO stripe_sync.customers AS t"));
        assert!(sql.contains("e.id = ANY($1)"));
        assert!(sql.contains("e.object_type = 'customer'"));
        for c in customers::CUSTOMER.columns {
            assert_eq!(
                sql.matches(&format!("{n} = excluded.{n}", n = c.name)).count(),
                1,
                "{}",
                c.name
            );
        }
        assert!(!sql.contains("$2"));
    }

    #[test]
    fn the_ordering_rule_names_the_fetched_type_as_written() {
        assert_eq!(newer().matches(&format!("'{FETCHED}'")).count(), 2);
    }

    #[test]
    fn only_event_batches_record_ties() {
        let spec = spec_for("customer").unwrap();
        assert!(
            apply_sql(spec, Source::Events).contains("INSERT INTO stripe_sync.refresh_requests")
        );
        assert!(!apply_sql(spec, Source::Objects).contains("refresh_requests"));
    }

    #[test]
    fn partial_child_lists_of_every_parent_are_due_for_a_re_read() {
        let sql = due_rereads_sql();
        for s in SPECS.iter().filter(|s| !s.children.is_empty()) {
            assert!(
                sql.contains(&format!("'{}' FROM stripe_sync.{} p", s.object, s.table)),
                "{}",
                s.table
            );
        }
        assert_eq!(sql.matches(" UNION").count(), 6, "requests and six parents: {sql}");
    }

    #[test]
    fn added_columns_are_refilled_from_data() {
        let sql = refill_sql("subscriptions", &["billing_mode", "days_until_due"]).unwrap();
        assert_eq!(
            sql,
            "UPDATE stripe_sync.subscriptions SET billing_mode = data#>>'{billing_mode,type}'::text[], \
             days_until_due = (data->>'days_until_due')::bigint WHERE data IS NOT NULL"
        );
        let child = refill_sql("credit_note_line_items", &["amount"]).unwrap();
        assert!(child.starts_with("UPDATE stripe_sync.credit_note_line_items SET amount = "));
        assert_eq!(refill_sql("subscriptions", &["no_such_column"]), None);
        assert_eq!(refill_sql("events", &["id"]), None);
        assert_eq!(refill_sql("subscriptions", &[]), None);
        let lines = refill_children_sql("credit_notes");
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with(
            "INSERT INTO stripe_sync.credit_note_line_items (id, credit_note, type, invoice_line_item,"
        ));
        assert!(lines[0].contains("jsonb_array_elements(p.data #> '{lines,data}'::text[])"));
        assert!(refill_children_sql("customers").is_empty());
        assert!(refill_children_sql("nothing").is_empty());
    }

    #[test]
    fn a_summary_is_keyed_by_its_customer() {
        let spec = spec_for("entitlements.active_entitlement_summary").unwrap();
        for source in [Source::Events, Source::Objects] {
            let sql = apply_sql(spec, source);
            assert!(sql.contains("SELECT o->>'customer', "), "{sql}");
            assert!(!sql.contains("SELECT o->>'id', "), "{sql}");
        }
        assert!(apply_sql(spec, Source::Objects).contains("DISTINCT ON (o->>'customer')"));
        assert!(apply_sql(spec, Source::Events).contains("b.o->>'customer', 'entitlements"));
    }

    #[test]
    fn listed_children_replace_each_parents_rows() {
        let sql = listed_children_sql(&LISTED[0].child);
        assert!(sql.starts_with("WITH full_objects AS ("));
        assert!(sql.contains("INSERT INTO stripe_sync.product_features AS t (id, product, "));
        assert!(sql.contains("DELETE FROM stripe_sync.product_features x"));
        assert!(sql.contains("jsonb_array_elements($1::jsonb) AS g"));
        assert!(sql.ends_with("SELECT count(*) FROM child0_upsert"));
        assert_eq!(listed_for("product_feature").map(|l| l.parent_table), Some("products"));
        assert!(listed_for("product").is_none());
    }

    #[test]
    fn tombstones_carry_the_key() {
        assert_eq!(
            tombstone("customer", "cus_1"),
            serde_json::json!({"id": "cus_1", "object": "customer", "deleted": true})
        );
        let t = tombstone("entitlements.active_entitlement_summary", "cus_2");
        assert_eq!(t["customer"], "cus_2");
        assert_eq!(t["deleted"], true);
    }

    #[test]
    fn unknown_objects_are_not_mirrored() {
        assert!(spec_for("customer").is_some());
        assert!(spec_for("issuing.card").is_none());
        assert_eq!(mirrored_objects().len(), SPECS.len());
    }
}
