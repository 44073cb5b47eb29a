//! SIGTERM: jobs in flight finish (or are handed back), then exit 0.

use std::time::Duration;

use crate::helpers::{Db, Worker, wait_all};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_claims_no_more() {
    let db = Db::new();
    db.run(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 700}"#,
        "--count",
        "5",
    ]);
    let worker = Worker::spawn(&db, &[("WORKER_COUNT", "3"), ("LOG_LEVEL", "debug")], &[]);
    worker.wait_for("job started", 3, DEADLINE);
    worker.signal("-TERM");
    let status = wait_all(vec![worker], DEADLINE);
    assert_eq!(status[0].code(), Some(0));

    let pool = db.pool().await;
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM job_queue GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        counts,
        [("completed".to_owned(), 3), ("pending".to_owned(), 2)]
    );
}

#[tokio::test]
async fn sigterm_hands_back_jobs_that_outlast_the_shutdown_timeout() {
    let db = Db::new();
    db.run(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 30000}"#,
        "--count",
        "2",
    ]);
    let env = [
        ("WORKER_COUNT", "2"),
        ("LOG_LEVEL", "debug"),
        ("SHUTDOWN_TIMEOUT", "200ms"),
    ];
    let worker = Worker::spawn(&db, &env, &[]);
    worker.wait_for("job started", 2, DEADLINE);
    worker.signal("-INT");
    let status = wait_all(vec![worker], DEADLINE);
    assert_eq!(status[0].code(), Some(0));

    let pool = db.pool().await;
    let rows: Vec<(String, i64, i64, Option<i64>)> =
        sqlx::query_as("SELECT status, retry_count, attempt, lease_expires_at FROM job_queue")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![("pending".to_owned(), 0, 1, None); 2],
        "back in line, no retry spent"
    );
}
