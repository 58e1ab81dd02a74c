//! `#[pg_test]`s of the background worker as it runs beside the tests.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;

    #[pg_test]
    fn the_worker_runs_and_is_named() {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            Spi::run("SELECT pg_stat_clear_snapshot()").unwrap();
            let n = count(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stripe_sync worker'",
            );
            if n == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no stripe_sync worker in pg_stat_activity"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let info = crate::shmem::worker_info();
        assert!(matches!(info, Some((pid, _)) if pid > 0), "{info:?}");
        let row = text(
            "SELECT concat_ws('|', worker_pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'stripe_sync worker'),
                    worker_heartbeat > now() - interval '1 minute', pending, failed)
               FROM stripe_sync.status",
        );
        assert_eq!(row.as_deref(), Some("t|t|0|0"));
    }
}
