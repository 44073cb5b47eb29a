//! Three worker processes on one file, one of them SIGKILLed mid-run: every
//! job completes, and no two attempts of one job ever overlap.
//!
//! The victim is killed while it runs one of a few long jobs enqueued
//! mid-run, so that it surely dies with a job in flight however slow the
//! machine is.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::helpers::{Db, LEASE_TIMEOUT, LONG_PROBES, Worker, wait_all};

const JOBS: i64 = 2_000;
/// The long jobs, enqueued mid-run ahead of the rest; the victim dies in one.
const LONG: i64 = LONG_PROBES as i64;

#[tokio::test]
async fn a_killed_worker_loses_its_leases_and_nothing_runs_twice_at_once() {
    let db = Db::new();
    db.run(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 10}"#,
        "--count",
        &JOBS.to_string(),
    ]);
    let env = [("WORKER_COUNT", "4"), LEASE_TIMEOUT];
    // The victim logs each job's start, so it can be killed in the middle of one.
    let victim_env = [env[0], env[1], ("LOG_LEVEL", "info,tasuki_worker=debug")];
    let workers: Vec<Worker> = (0..3)
        .map(|n| {
            Worker::spawn(
                &db,
                if n == 0 { &victim_env[..] } else { &env[..] },
                &["--until-empty"],
            )
        })
        .collect();

    let victim_id =
        workers[0].wait_for("worker started", 1, Duration::from_secs(30))[0]["worker_id"]
            .as_str()
            .unwrap()
            .to_owned();
    workers[0].wait_for("job completed", 50, Duration::from_secs(60));
    db.enqueue_long_probes();
    // Their ids follow the short jobs'.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let killed_job = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let id = workers[0].wait_for("job started", 1, left)[0]["job_id"]
            .as_i64()
            .unwrap();
        if id > JOBS {
            break id;
        }
    };
    let mut workers = workers.into_iter();
    let mut victim = workers.next().unwrap();
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let killed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;

    let survivors: Vec<_> = workers.collect();
    for status in wait_all(survivors, Duration::from_secs(120)) {
        assert_eq!(status.code(), Some(0));
    }

    let conn = db.sqlite();
    let done: i64 = conn
        .query_row(
            "SELECT count(*) FROM job_queue WHERE status = 'completed'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(done, JOBS + LONG, "every job ends completed");

    let runs: Vec<(i64, i64, String, i64, Option<i64>)> = conn
        .prepare(
            "SELECT job_id, attempt, worker, started_at, ended_at FROM probe_runs ORDER BY job_id, started_at",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut by_job: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for (job_id, attempt, worker, started, ended) in runs {
        let ended = match ended {
            Some(ended) => ended,
            None => {
                assert_eq!(
                    worker, victim_id,
                    "only the killed worker leaves attempts unfinished"
                );
                killed_at
            }
        };
        assert!(ended >= started, "job {job_id} attempt {attempt}");
        by_job.entry(job_id).or_default().push((started, ended));
    }
    assert_eq!(by_job.len() as i64, JOBS + LONG);
    for (job_id, attempts) in &by_job {
        for pair in attempts.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "attempts of job {job_id} overlap: {attempts:?}"
            );
        }
    }
    // The claim was committed before the job started: the killed attempt
    // counts, whether or not its probe row was written before the kill.
    let (attempt, status): (i64, String) = conn
        .query_row(
            "SELECT attempt, status FROM job_queue WHERE id = ?1",
            [killed_job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        attempt >= 2 && status == "completed",
        "the job the killed worker was running ran again and completed: attempt {attempt}, {status}"
    );
}
