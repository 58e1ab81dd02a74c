//! Customers (`object: "customer"`), fields as in Stripe's API reference
//! (shared/stripe/openapi/resources.json).

use super::{Column, Kind::*, ObjectSpec};

pub const CUSTOMER: ObjectSpec = ObjectSpec {
    object: "customer",
    table: "customers",
    columns: &[
        Column {
            name: "email",
            kind: Text,
        },
        Column {
            name: "name",
            kind: Text,
        },
        Column {
            name: "description",
            kind: Text,
        },
        Column {
            name: "phone",
            kind: Text,
        },
        Column {
            name: "currency",
            kind: Text,
        },
        Column {
            name: "balance",
            kind: BigInt,
        },
        Column {
            name: "delinquent",
            kind: Bool,
        },
        Column {
            name: "default_source",
            kind: Ref,
        },
        Column {
            name: "invoice_prefix",
            kind: Text,
        },
        Column {
            name: "tax_exempt",
            kind: Text,
        },
        Column {
            name: "address",
            kind: Jsonb,
        },
        Column {
            name: "metadata",
            kind: Jsonb,
        },
        Column {
            name: "livemode",
            kind: Bool,
        },
        Column {
            name: "created",
            kind: Timestamp,
        },
    ],
};
