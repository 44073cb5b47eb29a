//! Named queues and unique jobs across processes: 8 processes enqueue one
//! unique key at once; 3 workers share a queue limited to 2 jobs at once,
//! and 2 carry on after a third that held both places is SIGKILLed; a
//! resume reaches every worker within a second; the queue commands.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tasuki_core::Timestamp;

use crate::helpers::{Db, Worker, output, wait_all};

const ENQUEUERS: usize = 8;

/// Every enqueuer, racing, is told the one job's id; one of them added it.
async fn one_unique_job_from_eight_processes(db: Db) {
    db.run(&["migrate"]);
    let enqueuers: Vec<std::process::Child> = (0..ENQUEUERS)
        .map(|_| {
            db.command()
                .args([
                    "jobs",
                    "enqueue",
                    "probe",
                    "{}",
                    "--unique-key",
                    "nightly",
                    "--json",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let answers: Vec<Value> = enqueuers
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    let ids: BTreeSet<i64> = answers.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let added = answers.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(added, 1, "{answers:?}");
    let pool = db.any_pool().await;
    assert_eq!(pool.count("SELECT count(*) FROM job_queue").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_unique_job_from_eight_processes() {
    one_unique_job_from_eight_processes(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_unique_job_from_eight_processes() {
    if let Some(db) = Db::postgres().await {
        one_unique_job_from_eight_processes(db).await;
    }
}

const LIMITED_JOBS: usize = 24;

/// Three workers, each with four slots for the queue, never run more than
/// two of its jobs at once (read from the probes' own start and end times,
/// which lie inside each attempt's claim), and run them all.
async fn a_concurrency_limit_holds_across_worker_processes(db: Db) {
    db.run(&["queues", "limit", "limited", "--concurrency", "2"]);
    db.run(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 100}"#,
        "--queue",
        "limited",
        "--count",
        &LIMITED_JOBS.to_string(),
    ]);
    let env = [("QUEUES", "limited:4"), ("DATABASE_POOL_SIZE", "6")];
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::spawn(&db, &env, &["--until-empty"]))
        .collect();
    for status in wait_all(workers, Duration::from_secs(120)) {
        assert_eq!(status.code(), Some(0));
    }
    let pool = db.any_pool().await;
    let done = "SELECT count(*) FROM job_queue WHERE status = 'completed' AND queue = 'limited'";
    assert_eq!(pool.count(done).await, LIMITED_JOBS as i64);
    let most = most_runs_at_once(&db).await;
    assert!((1..=2).contains(&most), "{most} runs at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_concurrency_limit_holds_across_worker_processes() {
    a_concurrency_limit_holds_across_worker_processes(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_concurrency_limit_holds_across_worker_processes() {
    if let Some(db) = Db::postgres().await {
        a_concurrency_limit_holds_across_worker_processes(db).await;
    }
}

/// The most probe runs under way at once, over the runs' own start and end
/// times; a run that never ended (its worker was killed) lasts until its
/// job's next attempt starts.
async fn most_runs_at_once(db: &Db) -> i64 {
    db.any_pool()
        .await
        .count(
            "SELECT CAST(max(n) AS BIGINT) FROM (SELECT (SELECT count(*) FROM probe_runs AS o \
             WHERE o.started_at <= r.started_at AND COALESCE(o.ended_at, (SELECT a.started_at \
             FROM probe_runs AS a WHERE a.job_id = o.job_id AND a.attempt = o.attempt + 1)) \
             > r.started_at) AS n FROM probe_runs AS r) AS at_start",
        )
        .await
}

fn time(value: &Value) -> Timestamp {
    serde_json::from_value(value.clone()).unwrap()
}

/// A worker that holds both places of a queue limited to 2 is SIGKILLed.
/// Its jobs keep counting until they are rescued: no other job of the queue
/// starts before. Then two other workers run them again (first, for their
/// priority) and run the rest, never more than 2 at once.
async fn a_concurrency_limit_holds_after_a_worker_is_killed(db: Db) {
    db.run(&["queues", "limit", "limited", "--concurrency", "2"]);
    for (payload, priority, count) in [(r#"{"sleep_ms": 4000}"#, "5", "2"), ("{}", "0", "10")] {
        db.run(&[
            "jobs",
            "enqueue",
            "probe",
            payload,
            "--queue",
            "limited",
            "--priority",
            priority,
            "--count",
            count,
        ]);
    }
    let env = [("QUEUES", "limited:4"), ("LEASE_TIMEOUT", "2s")];
    let debug = [env[0], env[1], ("LOG_LEVEL", "info,tasuki_worker=debug")];
    let killed = Worker::spawn(&db, &debug, &[]);
    killed.wait_for("job started", 2, Duration::from_secs(30));
    killed.signal("-KILL");
    let survivors: Vec<Worker> = (0..2)
        .map(|_| Worker::spawn(&db, &env, &["--until-empty"]))
        .collect();
    for status in wait_all(survivors, Duration::from_secs(120)) {
        assert_eq!(status.code(), Some(0));
    }

    let jobs = db.json(&[
        "jobs", "list", "--queue", "limited", "--limit", "100", "--json",
    ]);
    let jobs = jobs["items"].as_array().unwrap();
    assert_eq!(jobs.len(), 12);
    assert!(
        jobs.iter().all(|job| job["status"] == "completed"),
        "{jobs:?}"
    );
    let (rescued, rest): (Vec<&Value>, Vec<&Value>) =
        jobs.iter().partition(|job| job["priority"] == 5);
    assert_eq!((rescued.len(), rest.len()), (2, 10));
    for job in rescued {
        assert_eq!(job["attempt"], 2, "{job}");
        let errors = job["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{job}");
        assert_eq!(errors[0]["error"], "lease expired");
    }
    // Every run's start is read by its handler, after its claim committed:
    // no other job ran before the rescued ones ran again. (A job's own
    // `started_at` is read before its claim waits for the queue's lock, so
    // it may precede a rescue that the claim came after.)
    let early = "SELECT count(*) FROM probe_runs AS o JOIN job_queue AS j ON j.id = o.job_id \
        WHERE j.priority = 0 AND o.started_at < (SELECT min(r.started_at) FROM probe_runs AS r \
        JOIN job_queue AS k ON k.id = r.job_id WHERE k.priority = 5 AND r.attempt = 2)";
    assert_eq!(db.any_pool().await.count(early).await, 0);
    let most = most_runs_at_once(&db).await;
    assert!((1..=2).contains(&most), "{most} runs at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_concurrency_limit_holds_after_a_worker_is_killed() {
    a_concurrency_limit_holds_after_a_worker_is_killed(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_concurrency_limit_holds_after_a_worker_is_killed() {
    if let Some(db) = Db::postgres().await {
        a_concurrency_limit_holds_after_a_worker_is_killed(db).await;
    }
}

/// A resume reaches every worker process at once: two idle workers with one
/// slot each start the paused queue's two jobs within a second of the
/// command's return. Left
/// to themselves they would look again only after their 5 s idle wait.
async fn a_resume_reaches_every_worker_within_a_second(db: Db) {
    db.run(&["queues", "pause", "email"]);
    db.run(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 5000}"#,
        "--queue",
        "email",
        "--count",
        "2",
    ]);
    let env = [
        ("QUEUES", "email:1"),
        ("LOG_LEVEL", "info,tasuki_worker=debug"),
    ];
    let workers: Vec<Worker> = (0..2).map(|_| Worker::spawn(&db, &env, &[])).collect();
    for worker in &workers {
        worker.wait_for("worker started", 1, Duration::from_secs(30));
    }
    db.run(&["queues", "resume", "email"]);
    let resumed = Timestamp::now();
    for worker in &workers {
        worker.wait_for("job started", 1, Duration::from_secs(30));
    }
    let jobs = db.json(&["jobs", "list", "--queue", "email", "--json"]);
    let jobs = jobs["items"].as_array().unwrap();
    let owners: BTreeSet<&str> = jobs
        .iter()
        .map(|job| job["lease_owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners.len(), 2, "one job in each worker: {jobs:?}");
    for job in jobs {
        let waited = time(&job["started_at"]).since(resumed);
        assert!(
            waited < Duration::from_secs(1),
            "{job} started {waited:?} after the resume"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_resume_reaches_every_worker_within_a_second() {
    a_resume_reaches_every_worker_within_a_second(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_resume_reaches_every_worker_within_a_second() {
    if let Some(db) = Db::postgres().await {
        a_resume_reaches_every_worker_within_a_second(db).await;
    }
}

#[test]
fn queue_commands_pause_resume_limit_and_list() {
    let db = Db::new();
    db.run(&["jobs", "enqueue", "send_email", r#"{"outbox_id": 1}"#]);
    let paused = db.json(&["queues", "pause", "email", "--json"]);
    assert_eq!(
        (paused["paused"].as_bool(), paused["waiting"].as_i64()),
        (Some(true), Some(1))
    );
    let limited = db.json(&["queues", "limit", "email", "--rate", "10/1s", "--json"]);
    assert_eq!(
        limited["rate_limit"],
        serde_json::json!({"limit": 10, "period_ms": 1000})
    );
    assert_eq!(limited["paused"], true, "a limit keeps the pause");
    db.run(&["queues", "resume", "email"]);
    let list = db.json(&["queues", "list", "--json"]);
    assert_eq!(list[0]["name"], "email");
    assert_eq!(list[0]["paused"], false);
    let table = db.run(&["queues", "list"]);
    assert!(
        table.contains("email") && table.contains("10/1s"),
        "{table}"
    );
}

#[test]
fn bad_queue_settings_are_refused_with_a_message() {
    let db = Db::new();
    for (args, message) in [
        (&["queues", "pause", "no spaces"][..], "is not a queue name"),
        (&["queues", "limit", "q", "--rate", "10"][..], "N/PERIOD"),
        (&["queues", "limit", "q"][..], "say what to limit"),
        (&["worker", "--queues", "default"][..], "QUEUE:SLOTS"),
        (&["worker", "--queues", "a:1,a:2"][..], "named twice"),
        (
            &["jobs", "enqueue", "probe", "--unique-states", "completed"][..],
            "--unique-key",
        ),
    ] {
        let out = output(db.command().args(args));
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
