//! SIGTERM: jobs in flight finish (or are handed back), then exit 0.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tasuki_core::Timestamp;

use crate::helpers::{Db, Worker, read_to_end, wait_all};

const DEADLINE: Duration = Duration::from_secs(30);

/// What SIGTERM guarantees, whenever it lands: the jobs claimed before the
/// stop all complete (none handed back, none retried), nothing is claimed
/// after it, and the rest stay pending, never claimed.
///
/// How many ran is up to the timing: the signal is sent once three jobs have
/// started, but a loaded machine may deliver it after they finish and more
/// are claimed; with twelve jobs of 700 ms on three slots, some stay pending
/// unless it comes more than two seconds late.
#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_claims_no_more() {
    let db = Db::new();
    db.run(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 700}"#,
        "--count",
        "12",
    ]);
    let mut worker = Worker::spawn(&db, &[("WORKER_COUNT", "3"), ("LOG_LEVEL", "debug")], &[]);
    let running: BTreeSet<i64> = worker
        .wait_for("job started", 3, DEADLINE)
        .iter()
        .map(|line| line["job_id"].as_i64().unwrap())
        .collect();
    worker.signal("-TERM");
    let logs = worker.take_logs();
    let status = wait_all(vec![worker], DEADLINE);
    assert_eq!(status[0].code(), Some(0));
    let lines = read_to_end(&logs, DEADLINE);
    let with = |message: &str| -> Vec<&Value> {
        lines.iter().filter(|l| l["message"] == message).collect()
    };
    let stopping = with("worker stopping");
    assert_eq!(stopping.len(), 1, "{lines:?}");
    // The loop claims, then stops: every claim is older than this line.
    let stopped_claiming = Timestamp::parse_rfc3339(stopping[0]["timestamp"].as_str().unwrap())
        .unwrap()
        .as_micros();
    assert_eq!(
        with("jobs still running at the shutdown timeout were handed back"),
        Vec::<&Value>::new()
    );

    let jobs: Vec<(i64, String, i64, i64, Option<i64>)> = db
        .sqlite()
        .prepare("SELECT id, status, attempt, retry_count, started_at FROM job_queue ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut completed = BTreeSet::new();
    for (id, status, attempt, retries, started_at) in jobs {
        match status.as_str() {
            "completed" => {
                assert_eq!((attempt, retries), (1, 0), "job {id} ran once");
                assert!(
                    started_at.is_some_and(|at| at <= stopped_claiming),
                    "job {id} was claimed before the worker stopped claiming"
                );
                completed.insert(id);
            }
            "pending" => assert_eq!(attempt, 0, "pending job {id} was never claimed"),
            other => panic!("job {id} ends {other}: neither completed nor left pending"),
        }
    }
    assert!(
        running.is_subset(&completed),
        "the jobs running at the signal finished: {running:?} of {completed:?}"
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

    let rows: Vec<(String, i64, i64, Option<i64>)> = db
        .sqlite()
        .prepare("SELECT status, retry_count, attempt, lease_expires_at FROM job_queue")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![("pending".to_owned(), 0, 1, None); 2],
        "back in line, no retry spent"
    );
}
