//! Every `stripe_sync.*` setting: registration and one typed getter each. No
//! other module spells a setting's name.
//!
//! Who may set what is a security decision: secrets and `api_base` are
//! superuser-only (a session that could set its own webhook secret could sign
//! forged events; one that could set `api_base` could send the key anywhere),
//! and the secrets are also hidden from SHOW and pg_settings for non-superusers.
//! Members of `pg_read_all_settings` can still read them: see README, Security.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, pg_guard};
use std::ffi::{CStr, CString};
use std::time::Duration;

static API_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static WEBHOOK_SECRET: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static API_BASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://api.stripe.com"));
static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
static SIGNATURE_TOLERANCE: GucSetting<i32> = GucSetting::<i32>::new(300);
static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(2000);
static APPLY_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);
static BACKFILL_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(1);
static POLL_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(1000);
static BATCH_WAIT: GucSetting<i32> = GucSetting::<i32>::new(20);
static MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(8);
static RETRY_BASE_DELAY: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static API_VERSION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"2026-07-29.dahlia"));
static CONNECT_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5_000);
static READ_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30_000);
static MAX_NETWORK_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);
static API_RATE_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(25);
static EVENT_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(30 * 24 * 60);
static SLACK_WEBHOOK_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ALERT_EVENTS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(
    c"invoice.payment_failed,charge.dispute.created,customer.subscription.deleted,radar.early_fraud_warning.created,dead_letter",
));
static ALERT_BURST: GucSetting<i32> = GucSetting::<i32>::new(10);
static CATCH_UP_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(300);

const SECRET: GucFlags = GucFlags::SUPERUSER_ONLY.union(GucFlags::NO_SHOW_ALL);

pub fn init() {
    secret(
        c"stripe_sync.api_key",
        c"Stripe secret (sk_) or restricted (rk_) API key.",
        &API_KEY,
        GucContext::Suset,
        SECRET,
    );
    secret(
        c"stripe_sync.webhook_secret",
        c"Webhook signing secret(s) (whsec_...); comma-separated while a secret is rotated.",
        &WEBHOOK_SECRET,
        GucContext::Suset,
        SECRET,
    );
    string(
        c"stripe_sync.api_base",
        c"Base URL of the Stripe API; tests point it at a local stand-in.",
        &API_BASE,
        GucContext::Suset,
        GucFlags::default(),
    );
    string(
        c"stripe_sync.database",
        c"Database the background worker attaches to.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.signature_tolerance",
        c"Largest accepted distance between a signature's timestamp and now.",
        &SIGNATURE_TOLERANCE,
        (1, 86_400),
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    int(
        c"stripe_sync.max_payload_bytes",
        c"Largest accepted webhook body.",
        &MAX_PAYLOAD_BYTES,
        (1024, 64 * 1024 * 1024),
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    int(
        c"stripe_sync.batch_size",
        c"Events claimed and applied per transaction.",
        &BATCH_SIZE,
        (1, 100_000),
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.apply_workers",
        c"Processes that apply a backlog of events at once: the worker and up to this many minus one helpers.",
        &APPLY_WORKERS,
        (1, 64),
        GucContext::Sighup,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.backfill_workers",
        c"Job workers that apply one backfill's pages at once, each through its own slices of created time (one keeps the request budget busy by itself).",
        &BACKFILL_WORKERS,
        (1, 16),
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.catch_up_interval",
        c"How often the worker runs catch_up() for every known account by itself (0: never; pg_cron may call it instead).",
        &CATCH_UP_INTERVAL,
        (0, 7 * 86_400),
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    int(
        c"stripe_sync.poll_interval",
        c"How long the worker sleeps when nothing wakes it.",
        &POLL_INTERVAL,
        (10, 3_600_000),
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"stripe_sync.batch_wait",
        c"After a batch that was not full, how long from its start the worker lets new events gather before it claims the next.",
        &BATCH_WAIT,
        (0, 10_000),
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"stripe_sync.max_attempts",
        c"Tries before an event that fails to apply is left failed.",
        &MAX_ATTEMPTS,
        (1, 1000),
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.retry_base_delay",
        c"Delay before the first retry of a failed event; doubles per attempt, capped at one hour.",
        &RETRY_BASE_DELAY,
        (0, 3_600_000),
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    string(
        c"stripe_sync.api_version",
        c"Stripe API version the mapping is written for; sent as Stripe-Version, and events of other versions are counted in stripe_sync.status.",
        &API_VERSION,
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.connect_timeout",
        c"Timeout for connecting to the Stripe API, per attempt.",
        &CONNECT_TIMEOUT,
        (100, 600_000),
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    int(
        c"stripe_sync.read_timeout",
        c"Timeout for a Stripe API answer (headers, then body), per attempt.",
        &READ_TIMEOUT,
        (100, 600_000),
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    int(
        c"stripe_sync.max_network_retries",
        c"Retries of a Stripe request after a network error, 409, 429 or 5xx (never after another 4xx).",
        &MAX_NETWORK_RETRIES,
        (0, 100),
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.api_rate_limit",
        c"Requests per second that all sessions and workers together may send to Stripe (live mode allows 100).",
        &API_RATE_LIMIT,
        (1, 10_000),
        GucContext::Sighup,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.event_retention",
        c"Processed and skipped events older than this are purged (hourly by the worker, or by purge_events()).",
        &EVENT_RETENTION,
        (1, i32::MAX),
        GucContext::Sighup,
        GucFlags::UNIT_MIN,
    );
    secret(
        c"stripe_sync.slack_webhook_url",
        c"Slack incoming webhook the worker posts alerts to; alerts are queued only while it is set.",
        &SLACK_WEBHOOK_URL,
        GucContext::Suset,
        SECRET,
    );
    string(
        c"stripe_sync.alert_events",
        c"Event types that raise a Slack alert, comma-separated; dead_letter stands for events that end failed.",
        &ALERT_EVENTS,
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"stripe_sync.alert_burst",
        c"Slack messages a minute above which due alerts are folded into one digest.",
        &ALERT_BURST,
        (1, 10_000),
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// A secret: superuser-only, hidden from SHOW ALL and pg_settings, and refused
/// wherever PostgreSQL would store it in a catalog every role can read (see
/// [`refuse_catalog_sources`]).
fn secret(
    name: &'static CStr,
    description: &'static CStr,
    setting: &'static GucSetting<Option<CString>>,
    context: GucContext,
    flags: GucFlags,
) {
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            name,
            description,
            description,
            setting,
            context,
            flags,
            Some(refuse_catalog_sources),
            None,
            None,
        );
    }
}

/// Check hook of the secrets. `ALTER DATABASE/ROLE ... SET` stores a value in
/// pg_db_role_setting and `CREATE FUNCTION ... SET` in pg_proc.proconfig, and
/// every role can read both: those commands are refused (they validate with
/// source "test"), and a value stored there before 0.6.0 is ignored when a
/// session starts, with a WARNING that names the setting but never its value.
#[pg_guard]
unsafe extern "C-unwind" fn refuse_catalog_sources(
    _newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    source: pgrx::pg_sys::GucSource::Type,
) -> bool {
    use pgrx::pg_sys::GucSource::*;
    // GLOBAL: ALTER ROLE ALL ... SET, stored in pg_db_role_setting too.
    if !matches!(
        source,
        PGC_S_TEST | PGC_S_GLOBAL | PGC_S_DATABASE | PGC_S_USER | PGC_S_DATABASE_USER
    ) {
        return true;
    }
    unsafe {
        pgrx::pg_sys::GUC_check_errcode(
            pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32,
        );
        pgrx::pg_sys::GUC_check_errmsg_string = pgrx::pg_sys::pstrdup(
            c"stripe_sync: a secret cannot be set with ALTER DATABASE, ALTER ROLE or a function's SET clause: every role can read those values".as_ptr(),
        );
        pgrx::pg_sys::GUC_check_errhint_string = pgrx::pg_sys::pstrdup(
            c"Set it in postgresql.conf or with ALTER SYSTEM, and reload; remove a stored value with ALTER DATABASE ... RESET or ALTER ROLE ... RESET.".as_ptr(),
        );
    }
    false
}

fn string(
    name: &'static CStr,
    description: &'static CStr,
    setting: &'static GucSetting<Option<CString>>,
    context: GucContext,
    flags: GucFlags,
) {
    GucRegistry::define_string_guc(name, description, description, setting, context, flags);
}

fn int(
    name: &'static CStr,
    description: &'static CStr,
    setting: &'static GucSetting<i32>,
    (min, max): (i32, i32),
    context: GucContext,
    flags: GucFlags,
) {
    GucRegistry::define_int_guc(name, description, description, setting, min, max, context, flags);
}

fn text(setting: &GucSetting<Option<CString>>) -> String {
    setting.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The configured webhook secrets, comma-separated (may be empty).
pub fn webhook_secret_list() -> String {
    text(&WEBHOOK_SECRET)
}

pub fn worker_database() -> String {
    text(&DATABASE)
}

pub fn signature_tolerance_seconds() -> i64 {
    i64::from(SIGNATURE_TOLERANCE.get())
}

pub fn max_payload_bytes() -> usize {
    MAX_PAYLOAD_BYTES.get() as usize
}

pub fn batch_size() -> usize {
    BATCH_SIZE.get() as usize
}

/// How many processes may drain one backlog together (the worker included).
pub fn apply_workers() -> usize {
    APPLY_WORKERS.get().max(1) as usize
}

/// How many job workers one backfill may page with (the job included).
pub fn backfill_workers() -> usize {
    BACKFILL_WORKERS.get().max(1) as usize
}

/// The worker's own catch-up period; None when off.
pub fn catch_up_interval() -> Option<Duration> {
    let s = CATCH_UP_INTERVAL.get();
    (s > 0).then(|| Duration::from_secs(s as u64))
}

pub fn poll_interval() -> Duration {
    Duration::from_millis(POLL_INTERVAL.get() as u64)
}

/// How long, from the start of a short batch, new events gather before the
/// worker claims the next.
pub fn batch_wait() -> Duration {
    Duration::from_millis(BATCH_WAIT.get().max(0) as u64)
}

pub fn max_attempts() -> i32 {
    MAX_ATTEMPTS.get()
}

pub fn retry_base_delay() -> Duration {
    Duration::from_millis(RETRY_BASE_DELAY.get() as u64)
}

pub fn api_version() -> String {
    text(&API_VERSION)
}

pub fn event_retention() -> pgrx::datum::Interval {
    pgrx::datum::Interval::from_minutes(EVENT_RETENTION.get())
}

pub fn api_key_configured() -> bool {
    API_KEY.get().is_some_and(|k| !k.as_bytes().is_empty())
}

/// The API key; empty when not configured.
pub fn api_key() -> String {
    text(&API_KEY)
}

/// The API base URL without a trailing slash.
pub fn api_base() -> String {
    text(&API_BASE).trim_end_matches('/').to_owned()
}

pub fn connect_timeout() -> Duration {
    Duration::from_millis(CONNECT_TIMEOUT.get() as u64)
}

pub fn read_timeout() -> Duration {
    Duration::from_millis(READ_TIMEOUT.get() as u64)
}

pub fn max_network_retries() -> u32 {
    MAX_NETWORK_RETRIES.get() as u32
}

pub fn api_rate_limit() -> f64 {
    f64::from(API_RATE_LIMIT.get())
}

/// The Slack incoming webhook URL; empty when not configured. A secret.
pub fn slack_webhook_url() -> String {
    text(&SLACK_WEBHOOK_URL)
}

/// The event types that raise an alert (none while no Slack URL is set);
/// `dead_letter` stands for events that end failed.
pub fn alert_events() -> Vec<String> {
    if slack_webhook_url().is_empty() {
        return Vec::new();
    }
    text(&ALERT_EVENTS).split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
}

pub fn alert_burst() -> i64 {
    i64::from(ALERT_BURST.get())
}

/// Settings a session may change for one call that a job worker must follow
/// (its configuration is the server's): retries, read and connect timeouts,
/// backfill workers, as `"5,30000,5000,1"` (bgw_extra has only 128 bytes).
pub fn session_settings() -> String {
    format!(
        "{},{},{},{}",
        MAX_NETWORK_RETRIES.get(),
        READ_TIMEOUT.get(),
        CONNECT_TIMEOUT.get(),
        BACKFILL_WORKERS.get()
    )
}

/// Applies what [`session_settings`] wrote, in a job worker.
pub fn apply_session_settings(settings: &str) {
    let names = [
        c"stripe_sync.max_network_retries",
        c"stripe_sync.read_timeout",
        c"stripe_sync.connect_timeout",
        c"stripe_sync.backfill_workers",
    ];
    for (name, value) in names.iter().zip(settings.split(',')) {
        let Ok(value) = CString::new(value) else { continue };
        if value.as_bytes().is_empty() || !value.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        unsafe {
            pgrx::pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pgrx::pg_sys::GucContext::PGC_SUSET,
                pgrx::pg_sys::GucSource::PGC_S_SESSION,
            );
        }
    }
}
