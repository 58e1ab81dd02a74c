//! The Stripe API client: Bearer auth with stripe_sync.api_key, a pinned
//! Stripe-Version, form-encoded POSTs with an Idempotency-Key, Stripe-Account
//! for connected accounts, the shared request budget, timeouts, and retries
//! with capped, jittered backoff that honour Retry-After and
//! Stripe-Should-Retry. Blocking (ureq) on the calling thread; every wait
//! checks for interrupts, so pg_cancel_backend and statement_timeout work.
//! Callers must not hold row locks that others wait on while calling.

use crate::{config, shmem};
use pgrx::prelude::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use stripe_sync_core::backoff::{Backoff, parse_retry_after};
use stripe_sync_core::form;
use stripe_sync_core::http::{ApiError, redact, should_retry};

/// Largest response body read (a page of 100 expanded invoices is well under).
const MAX_BODY: u64 = 32 * 1024 * 1024;
const RETRY: Backoff = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) };
const BURST: i64 = 5;

/// A request's method and body.
pub enum Method<'a> {
    Get,
    /// Form parameters, and the idempotency key the POST is sent with.
    Post(&'a Value, &'a str),
}

/// Sends one request, retrying what Stripe says can be retried. `query` is
/// appended to the URL; `account` is sent as Stripe-Account.
pub fn request(
    method: Method,
    path: &str,
    query: &[(String, String)],
    account: Option<&str>,
) -> Result<Value, ApiError> {
    request_with(method, path, query, account, |body| {
        serde_json::from_str(&body).map_err(|e| e.to_string())
    })
}

/// The configured API key, or the error every API-facing function gives without one.
fn configured_key() -> Result<String, ApiError> {
    let key = config::api_key();
    if key.is_empty() {
        return Err(ApiError::NotConfigured(
            "no Stripe API key is configured (set stripe_sync.api_key)".into(),
        ));
    }
    Ok(key)
}

/// Raises that error (55000) now when no key is configured: for a caller that
/// would otherwise record a run and start a job worker before its first request.
pub fn require_key() {
    if let Err(e) = configured_key() {
        crate::errors::raise_api(e)
    }
}

/// Refuses a call whose job worker would use other API settings than this
/// session. A job worker sees the server's configuration (postgresql.conf,
/// ALTER SYSTEM, the command line) and ALTER DATABASE; a value from any other
/// source (SET, ALTER ROLE, connection options) it would silently ignore, and
/// list another account or server. The key is hidden from pg_settings: for it,
/// a superuser's value is compared with what RESET would give (a SET is caught;
/// only a superuser can SET it).
pub fn require_server_settings() {
    let unseen: Option<(String, String)> = Spi::connect(|c| {
        c.select(
            "SELECT name, source FROM pg_catalog.pg_settings
              WHERE name IN ('stripe_sync.api_base', 'stripe_sync.api_version')
                AND source NOT IN ('default', 'environment variable', 'configuration file',
                                   'command line', 'global', 'database')
              ORDER BY name LIMIT 1",
            None,
            &[],
        )
        .expect("read the API settings' sources")
        .next()
        .map(|r| {
            (
                r.get::<String>(1).ok().flatten().unwrap_or_default(),
                r.get::<String>(2).ok().flatten().unwrap_or_default(),
            )
        })
    })
    .or_else(|| key_set_in_session().then(|| ("stripe_sync.api_key".into(), "session".into())));
    if let Some((name, source)) = unseen {
        crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "stripe_sync: {name} is set for this session ({source}), but backfill and catch_up run in a job worker, which only sees the server's configuration"
            ),
            format!(
                "RESET {name}, or set it in postgresql.conf, with ALTER SYSTEM or ALTER DATABASE, and reload."
            ),
        );
    }
}

/// Whether a superuser's session has an API key other than the one RESET gives.
fn key_set_in_session() -> bool {
    if !unsafe { pg_sys::superuser() } {
        return false;
    }
    let reset = unsafe { pg_sys::GetConfigOptionResetString(c"stripe_sync.api_key".as_ptr()) };
    let reset = if reset.is_null() {
        String::new()
    } else {
        unsafe { std::ffi::CStr::from_ptr(reset) }.to_string_lossy().into_owned()
    };
    config::api_key() != reset
}

/// [`request`], with the 2xx body read by `parse` (a body it refuses is a
/// garbled answer, retried like a transport fault).
pub fn request_with<T>(
    method: Method,
    path: &str,
    query: &[(String, String)],
    account: Option<&str>,
    parse: impl Fn(String) -> Result<T, String>,
) -> Result<T, ApiError> {
    Client::new()?.send(method, path, query, account, parse, wait)
}

/// What a request needs from the settings, read once on the backend's own
/// thread: a `Client` then sends from any thread and touches no PostgreSQL
/// state (the budget is an atomic in shared memory), so a backfill keeps
/// several requests in flight from threads of its job worker.
#[derive(Clone)]
pub struct Client {
    key: String,
    base: String,
    version: String,
    agent: ureq::Agent,
    retries: u32,
    interval_us: i64,
    budget: &'static std::sync::atomic::AtomicI64,
}

impl Client {
    /// Reads the settings (the key, the API base and version, timeouts,
    /// retries, the request budget); the backend's main thread only.
    pub fn new() -> Result<Client, ApiError> {
        Ok(Client {
            key: configured_key()?,
            base: config::api_base(),
            version: config::api_version(),
            agent: agent(),
            retries: config::max_network_retries(),
            interval_us: stripe_sync_core::ratelimit::interval_for(config::api_rate_limit()),
            budget: shmem::budget_cell(),
        })
    }

    /// The request budget in requests per second.
    pub fn rate(&self) -> f64 {
        1e6 / self.interval_us.max(1) as f64
    }

    /// Sends one request, retrying what Stripe says can be retried, waiting
    /// (for the budget and between attempts) with `sleep`.
    pub fn send<T>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        account: Option<&str>,
        parse: impl Fn(String) -> Result<T, String>,
        sleep: impl Fn(Duration),
    ) -> Result<T, ApiError> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&form::to_query(query));
        }
        let mut attempt = 0;
        loop {
            sleep(shmem::reserve_in(self.budget, self.interval_us, BURST));
            let (result, retry_after) = self.send_once(&method, &url, account, &parse);
            let retry = match &result {
                Ok(_) => false,
                Err((e, header)) => {
                    attempt < self.retries && should_retry(e.status(), header.as_deref())
                }
            };
            if !retry {
                return result.map_err(|(mut e, header)| {
                    if header.as_deref() == Some("false") {
                        e.message_mut().push_str(" (not retried: Stripe-Should-Retry: false)");
                    } else if attempt > 0 {
                        e.message_mut().push_str(&format!(" (after {} attempts)", attempt + 1));
                    }
                    clean(e, &self.key)
                });
            }
            attempt += 1;
            sleep(RETRY.delay_with_retry_after(
                attempt,
                stripe_sync_core::backoff::random_unit(),
                retry_after,
            ));
        }
    }
}

type Attempt<T> = (Result<T, (ApiError, Option<String>)>, Option<Duration>);

impl Client {
    fn send_once<T>(
        &self,
        method: &Method,
        url: &str,
        account: Option<&str>,
        parse: impl Fn(String) -> Result<T, String>,
    ) -> Attempt<T> {
        let agent = &self.agent;
        let auth = format!("Bearer {}", self.key);
        let version = &self.version;
        let response = match method {
            Method::Get => {
                let mut req =
                    agent.get(url).header("Authorization", &auth).header("Stripe-Version", version);
                if let Some(a) = account {
                    req = req.header("Stripe-Account", a);
                }
                req.call()
            }
            Method::Post(params, idempotency_key) => {
                let mut req = agent
                    .post(url)
                    .header("Authorization", &auth)
                    .header("Stripe-Version", version)
                    .header("Idempotency-Key", *idempotency_key);
                if let Some(a) = account {
                    req = req.header("Stripe-Account", a);
                }
                let pairs = form::encode(params);
                req.send_form(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
        };
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                let hint = if matches!(e, ureq::Error::Timeout(_)) {
                    " (stripe_sync.read_timeout / connect_timeout)"
                } else {
                    ""
                };
                return (Err((ApiError::network(format!("{e}{hint}")), None)), None);
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let request_id = header("Request-Id");
        let should_retry_header = header("Stripe-Should-Retry");
        let retry_after = header("Retry-After").as_deref().and_then(parse_retry_after);
        let body = match response.body_mut().with_config().limit(MAX_BODY).read_to_string() {
            Ok(b) => b,
            Err(e) => {
                let err = ApiError::network(format!("reading the answer failed: {e}"));
                return (Err((err, should_retry_header)), retry_after);
            }
        };
        if (200..300).contains(&status) {
            return match parse(body) {
                Ok(v) => (Ok(v), None),
                Err(e) => {
                    let err = ApiError::Unreachable {
                        message: format!("the answer is not JSON: {e}"),
                        status: Some(status),
                        request_id,
                    };
                    // A garbled 2xx is a transport fault: retry it like one.
                    (Err((err, Some("true".into()))), retry_after)
                }
            };
        }
        (
            Err((
                ApiError::from_response(status, &body, request_id.as_deref()),
                should_retry_header,
            )),
            retry_after,
        )
    }
}

/// An HTTP agent with the configured connect and read timeouts. One per
/// process while the timeouts stay the same, so its connections are kept
/// alive and reused from request to request (a backfill's pages).
pub fn agent() -> ureq::Agent {
    thread_local! {
        static AGENT: std::cell::RefCell<Option<((Duration, Duration), ureq::Agent)>> =
            const { std::cell::RefCell::new(None) };
    }
    let timeouts = (config::connect_timeout(), config::read_timeout());
    AGENT.with_borrow_mut(|cached| match cached {
        Some((t, agent)) if *t == timeouts => agent.clone(),
        _ => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(timeouts.0))
                .timeout_recv_response(Some(timeouts.1))
                .timeout_recv_body(Some(timeouts.1))
                .user_agent(concat!("stripe_sync/", env!("CARGO_PKG_VERSION")))
                .build()
                .into();
            *cached = Some((timeouts, agent.clone()));
            agent
        }
    })
}

/// Masks the key wherever an error message might echo it.
fn clean(mut e: ApiError, key: &str) -> ApiError {
    let message = e.message_mut();
    *message = redact(message, &[key]);
    e
}

/// The time of a fetch, as the apply records it.
pub fn now() -> pgrx::datum::TimestampWithTimeZone {
    pgrx::datum::TimestampWithTimeZone::try_from(unsafe { pg_sys::GetCurrentTimestamp() })
        .expect("now")
}

/// Sleeps in short latch waits so a cancel, statement_timeout or shutdown
/// interrupts it.
pub fn wait(d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            check_for_interrupts!();
            return;
        }
        wait_for_latch(left.min(Duration::from_millis(100)));
    }
}

/// Waits until this backend's latch is set (by a signal such as the
/// postmaster's notice that a worker it started has exited) or `d` has passed,
/// whichever comes first. A cancel or statement_timeout interrupts it.
pub fn wait_for_latch(d: Duration) {
    check_for_interrupts!();
    let ms = d.as_millis().max(1) as i64;
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            ms,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    check_for_interrupts!();
}
