//! Requests in flight from threads of this process: the threads only send
//! HTTP requests through a [`Client`] (settings read beforehand, the budget
//! an atomic in shared memory) and hand the answers back; every PostgreSQL
//! call stays on the backend's own thread, which takes the answers with
//! [`Pool::next`] and checks for interrupts while it waits. The threads block
//! the signals PostgreSQL handles, so a cancel or SIGTERM reaches the
//! backend's thread. Dropping the pool asks the threads to stop after their
//! request: the backend does not wait for them.

use crate::stripe::Client;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A waiting function for the threads: sleeps in short steps, and stops
/// sleeping once the pool is dropped.
pub struct Sleep(Arc<AtomicBool>);

impl Sleep {
    pub fn sleep(&self, d: Duration) {
        let until = std::time::Instant::now() + d;
        while !self.0.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

pub struct Pool<J, R> {
    jobs: Option<Sender<J>>,
    answers: Receiver<R>,
    stop: Arc<AtomicBool>,
}

impl<J: Send + 'static, R: Send + 'static> Pool<J, R> {
    /// `threads` threads, each running `work` on the jobs it takes.
    pub fn new(
        threads: usize,
        client: &Client,
        work: impl Fn(&Client, &Sleep, J) -> R + Send + Sync + 'static,
    ) -> Pool<J, R> {
        let (jobs, queue) = channel::<J>();
        let (reply, answers) = channel::<R>();
        let queue = Arc::new(Mutex::new(queue));
        let stop = Arc::new(AtomicBool::new(false));
        let work = Arc::new(work);
        // The threads inherit the signal mask: PostgreSQL's signals stay the backend's.
        unsafe { pg_sys::BackgroundWorkerBlockSignals() };
        for _ in 0..threads.max(1) {
            let (queue, reply, work, client) =
                (queue.clone(), reply.clone(), work.clone(), client.clone());
            let sleep = Sleep(stop.clone());
            std::thread::spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if sleep.0.load(Ordering::Relaxed) {
                        return;
                    }
                    if reply.send(work(&client, &sleep, job)).is_err() {
                        return;
                    }
                }
            });
        }
        unsafe { pg_sys::BackgroundWorkerUnblockSignals() };
        Pool { jobs: Some(jobs), answers, stop }
    }

    pub fn submit(&self, job: J) {
        if let Some(jobs) = &self.jobs {
            // The threads outlive nothing but a dropped pool: a send cannot fail before.
            let _ = jobs.send(job);
        }
    }

    /// The next answer, waiting for it with interrupts checked.
    pub fn next(&self) -> R {
        loop {
            match self.answers.recv_timeout(Duration::from_millis(20)) {
                Ok(answer) => return answer,
                Err(RecvTimeoutError::Timeout) => {
                    check_for_interrupts!();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stripe_sync: the request threads are gone")
                }
            }
        }
    }
}

impl<J, R> Drop for Pool<J, R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
    }
}
