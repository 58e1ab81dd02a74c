//! Shared memory between backends and the worker: where the worker's latch is
//! (so ingest can wake it), its pid and its heartbeat. Exists only when the
//! library is preloaded; every accessor is a no-op otherwise.

use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgAtomic, pg_shmem_init};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

#[derive(Default)]
pub struct WorkerState {
    /// The worker's `pgprocno` + 1; 0 while no worker runs.
    procno: AtomicI32,
    pid: AtomicI32,
    /// Unix milliseconds of the worker's last loop.
    heartbeat_ms: AtomicI64,
    /// The Stripe request budget: theoretical arrival time in Unix µs (GCRA).
    request_tat_us: AtomicI64,
}

// SAFETY: only atomics, no pointers.
unsafe impl PGRXSharedMemory for WorkerState {}

static STATE: PgAtomic<WorkerState> = unsafe { PgAtomic::new(c"stripe_sync_worker_state") };

/// Set in the postmaster when shared memory was requested; inherited by fork.
static PRELOADED: AtomicBool = AtomicBool::new(false);

pub fn init() {
    pg_shmem_init!(STATE = WorkerState::default());
    PRELOADED.store(true, Ordering::Relaxed);
}

fn state() -> Option<&'static WorkerState> {
    PRELOADED.load(Ordering::Relaxed).then(|| STATE.get())
}

/// Called by the worker once connected: makes it wakeable.
pub fn worker_started() {
    if let Some(s) = state() {
        let procno = my_procno();
        s.pid.store(unsafe { pg_sys::MyProcPid }, Ordering::Relaxed);
        s.procno.store(procno + 1, Ordering::Release);
    }
}

/// This process's index into `ProcGlobal->allProcs`.
fn my_procno() -> i32 {
    // SAFETY: MyProc is set for every connected backend, workers included.
    #[cfg(not(feature = "pg18"))]
    return unsafe { (*pg_sys::MyProc).pgprocno };
    // 17 and later keep it in MyProcNumber (PGPROC.pgprocno is gone).
    #[cfg(feature = "pg18")]
    return unsafe { pg_sys::MyProcNumber };
}

pub fn worker_stopped() {
    if let Some(s) = state() {
        s.procno.store(0, Ordering::Release);
        s.pid.store(0, Ordering::Relaxed);
    }
}

pub fn heartbeat() {
    if let Some(s) = state() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        s.heartbeat_ms.store(now, Ordering::Relaxed);
    }
}

/// The worker's pid and last heartbeat (Unix ms), if a worker runs.
pub fn worker_info() -> Option<(i32, i64)> {
    let s = state()?;
    let pid = s.pid.load(Ordering::Relaxed);
    (pid != 0).then(|| (pid, s.heartbeat_ms.load(Ordering::Relaxed)))
}

/// Sets the worker's latch now.
pub fn wake_worker() {
    let Some(s) = state() else { return };
    let procno = s.procno.load(Ordering::Acquire);
    if procno > 0 {
        // SAFETY: procno was the worker's index into allProcs; a stale index
        // points at another PGPROC whose latch gets a harmless spurious wake.
        unsafe {
            let proc = (*pg_sys::ProcGlobal).allProcs.add((procno - 1) as usize);
            pg_sys::SetLatch(&raw mut (*proc).procLatch);
        }
    }
}

thread_local! {
    static WAKE_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Wakes the worker when the current transaction commits: woken earlier, it
/// would find nothing visible and sleep again. Registered once per transaction.
pub fn wake_worker_after_commit() {
    if state().is_none() || WAKE_REGISTERED.get() {
        return;
    }
    WAKE_REGISTERED.set(true);
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || {
        WAKE_REGISTERED.set(false);
        wake_worker();
    });
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
        WAKE_REGISTERED.set(false);
    });
}

/// The request budget shared by every backend and worker (its GCRA arrival
/// time in Unix µs); without shared memory (library not preloaded), this
/// process's own. An atomic: any thread of the process may draw from it.
pub fn budget_cell() -> &'static AtomicI64 {
    static LOCAL_TAT: AtomicI64 = AtomicI64::new(0);
    state().map_or(&LOCAL_TAT, |s| &s.request_tat_us)
}

/// Reserves a slot in the budget `cell`; returns how long to wait before
/// sending.
pub fn reserve_in(cell: &AtomicI64, interval_us: i64, burst: i64) -> std::time::Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let (next, wait) = stripe_sync_core::ratelimit::reserve(current, now, interval_us, burst);
        match cell.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return std::time::Duration::from_micros(wait as u64),
            Err(seen) => current = seen,
        }
    }
}
