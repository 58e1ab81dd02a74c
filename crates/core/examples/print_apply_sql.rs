//! Prints the generated SQL of every mirrored object type, for checking the
//! mapping against a scratch database without building the extension.
//!
//! ```text
//! cargo run -p stripe_sync_core --example print_apply_sql            # psql script: PREPAREs per spec
//! cargo run -p stripe_sync_core --example print_apply_sql -- columns # table, column, SQL type, JSON paths (TSV)
//! ```
//!
//! Per table two PREPAREd statements: `apply_<table>(text[])` applies the events with
//! those ids (`EXECUTE apply_customers(ARRAY['evt_1', 'evt_2'])`), and
//! `apply_fetched_<table>(jsonb, timestamptz, text)` applies objects as fetched from the
//! API (a jsonb array, the fetch time, the connected account or NULL).

use stripe_sync_core::mapping::{Column, SPECS, Source, apply_sql};

fn paths(c: &Column) -> String {
    if c.paths.is_empty() {
        c.name.to_string()
    } else {
        c.paths.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(" | ")
    }
}

fn main() {
    let columns = std::env::args().nth(1).as_deref() == Some("columns");
    for spec in SPECS {
        if columns {
            for c in spec.columns {
                println!("{}\t{}\t{}\t{}", spec.table, c.name, c.kind.sql_type(), paths(c));
            }
            for child in spec.children {
                for c in child.columns {
                    println!("{}\t{}\t{}\t{}", child.table, c.name, c.kind.sql_type(), paths(c));
                }
            }
        } else {
            println!("-- {} ({})", spec.table, spec.object);
            let events = apply_sql(spec, Source::Events);
            println!("PREPARE apply_{}(text[]) AS\n{events};\n", spec.table);
            let fetched = apply_sql(spec, Source::Objects);
            println!(
                "PREPARE apply_fetched_{}(jsonb, timestamptz, text) AS\n{fetched};\n",
                spec.table
            );
        }
    }
}
