//! `stripe_sync.accounts`: the platform (`''`) and every connected account
//! the mirror has met. The apply records accounts from events (mark_done.sql);
//! this module records what backfill and catch-up did for one, and the
//! Account objects `backfill('account')` lists. No HTTP here.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// What a run did for an account, as a column of `stripe_sync.accounts`.
#[derive(Debug, Clone, Copy)]
pub enum Done {
    CatchUp,
    Backfill,
}

/// Records that a catch-up or a backfill of `account` (`''`: the platform)
/// completed now, adding the account if it is new.
pub fn touch(account: &str, done: Done) {
    let sql = match done {
        Done::CatchUp => {
            "INSERT INTO stripe_sync.accounts AS a (id, last_catch_up_at) VALUES ($1, now())
             ON CONFLICT (id) DO UPDATE SET last_catch_up_at = excluded.last_catch_up_at"
        }
        Done::Backfill => {
            "INSERT INTO stripe_sync.accounts AS a (id, last_backfill_at) VALUES ($1, now())
             ON CONFLICT (id) DO UPDATE SET last_backfill_at = excluded.last_backfill_at"
        }
    };
    Spi::run_with_args(sql, &[account.into()]).expect("record the account");
}

/// Stores the Account objects of a list page of `/v1/accounts` (`page`: the
/// page's JSON text). Returns how many.
pub fn apply_listed(page: &str) -> i64 {
    let args: [DatumWithOid; 1] = [page.into()];
    Spi::get_one_with_args::<i64>(
        "WITH listed AS (
             INSERT INTO stripe_sync.accounts AS a (id, data, _synced_at)
             SELECT o->>'id', o, now()
               FROM jsonb_array_elements(($1::jsonb)->'data') AS o
              WHERE o->>'object' = 'account' AND o->>'id' LIKE 'acct\\_%'
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, _synced_at = excluded._synced_at
             RETURNING 1)
         SELECT count(*) FROM listed",
        &args,
    )
    .expect("store accounts")
    .unwrap_or(0)
}

/// The accounts a catch-up of everything covers, platform first.
pub fn known() -> Vec<String> {
    Spi::connect(|c| {
        c.select("SELECT '' UNION SELECT id FROM stripe_sync.accounts ORDER BY 1", None, &[])
            .expect("known accounts")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect()
    })
}

/// The account as messages name it.
pub fn describe(account: &str) -> String {
    if account.is_empty() { "the platform account".into() } else { format!("account {account}") }
}
