//! Many processes on one PostgreSQL database, as on many hosts: two API
//! servers and three workers. 1,000 signups are spread over both servers and
//! one worker is SIGKILLed mid-run. Every user ends with exactly one
//! completed `user_created` job and one welcome email, sent; no attempt of a
//! job overlaps another attempt of it (read from the workers' logs).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tasuki_core::Timestamp;

use crate::helpers::{Db, LEASE_TIMEOUT, LONG_PROBES, Worker, merge, post_json, wait_all};
use crate::serve::listening;

const USERS: usize = 1_000;
const DEADLINE: Duration = Duration::from_secs(120);
/// Five processes stay well inside the server's 100 connections.
const POOL: (&str, &str) = ("DATABASE_POOL_SIZE", "6");

fn micros(line: &Value) -> i64 {
    Timestamp::parse_rfc3339(line["timestamp"].as_str().unwrap())
        .unwrap()
        .as_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_three_workers_one_killed_every_user_onboarded_once() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let servers: Vec<Worker> = (0..2)
        .map(|_| Worker::spawn_command(&db, "serve", &[("PORT", "0"), ("LOG_LEVEL", "info"), POOL]))
        .collect();
    let addrs: Vec<String> = servers.iter().map(listening).collect();
    let env = [
        POOL,
        ("WORKER_COUNT", "4"),
        LEASE_TIMEOUT,
        ("LOG_LEVEL", "warn,tasuki_worker=debug"),
    ];
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::spawn(&db, &env, &[])).collect();
    let logs = merge(&mut workers);

    // Signups from four clients, alternating between the two servers.
    let posting = std::thread::spawn(move || {
        let clients: Vec<_> = (0..4)
            .map(|client| {
                let addrs = addrs.clone();
                std::thread::spawn(move || {
                    for n in (client..USERS).step_by(4) {
                        let body = format!(
                            r#"{{"email": "user{n}@example.com", "age": 30, "name": "User {n}"}}"#
                        );
                        let (status, reply) = post_json(&addrs[n % 2], "/users", &body);
                        assert_eq!(status, 201, "{reply}");
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
    });

    // Once worker 0 has done some signups' jobs, enqueue the long jobs and
    // kill it right after it starts one.
    let until = Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    let mut victim_done = 0;
    let mut long_enqueued = false;
    let killed_at = loop {
        let (index, line) = logs
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .expect("worker 0 runs jobs before the deadline");
        let (message, job_type) = (line["message"].clone(), line["job_type"].clone());
        lines.push((index, line));
        if index != 0 {
            continue;
        }
        if message == "job completed" {
            victim_done += 1;
        }
        if victim_done >= 20 && !long_enqueued {
            db.enqueue_long_probes();
            long_enqueued = true;
        }
        if message == "job started" && job_type == "probe" {
            workers[0].child.kill().unwrap();
            workers[0].child.wait().unwrap();
            break Timestamp::now().as_micros();
        }
    };
    posting.join().expect("every signup is answered 201");

    // Until every job is final: the database says when; the workers' log
    // lines pace the looking (a quiet second looks too).
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let unfinished =
        "SELECT count(*) FROM job_queue WHERE status IN ('pending', 'processing', 'retry_pending')";
    while count(unfinished).await > 0
        || count("SELECT count(*) FROM job_queue").await < (2 * USERS + LONG_PROBES) as i64
    {
        assert!(
            Instant::now() < until,
            "every job is final before the deadline"
        );
        if let Ok(line) = logs.recv_timeout(Duration::from_secs(1)) {
            lines.push(line);
        }
    }
    // The log lines that the last outcomes wrote.
    lines.extend(logs.try_iter());

    for process in workers.iter().skip(1).chain(&servers) {
        process.signal("-TERM");
    }
    let children = workers.into_iter().skip(1).chain(servers).collect();
    for status in wait_all(children, DEADLINE) {
        assert_eq!(status.code(), Some(0), "a graceful stop");
    }

    let users = USERS as i64;
    assert_eq!(count("SELECT count(*) FROM users").await, users);
    assert_eq!(
        count("SELECT count(DISTINCT payload->>'user_id') FROM job_queue WHERE job_type = 'user_created' AND status = 'completed'").await,
        users,
        "every user's job completed"
    );
    assert_eq!(
        count("SELECT count(*) FROM job_queue WHERE job_type = 'user_created'").await,
        users,
        "one job per user"
    );
    assert_eq!(
        count("SELECT count(*) FROM users WHERE onboarded_at IS NOT NULL").await,
        users
    );
    assert_eq!(
        count("SELECT count(*) FROM email_outbox WHERE kind = 'welcome' AND status = 'sent'").await,
        users,
        "one welcome email per user (the outbox allows one), sent"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM job_queue WHERE job_type = 'send_email' AND status = 'completed'"
        )
        .await,
        users
    );

    // Attempts from the logs: start, and end (completion, failure, or the kill).
    let mut attempts: HashMap<(i64, i64), (i64, Option<i64>, usize)> = HashMap::new();
    for (index, line) in &lines {
        let (Some(job), Some(attempt)) = (line["job_id"].as_i64(), line["attempt"].as_i64()) else {
            continue;
        };
        let at = micros(line);
        let entry = attempts
            .entry((job, attempt))
            .or_insert((i64::MAX, None, *index));
        match line["message"].as_str().unwrap_or_default() {
            "job started" => entry.0 = at,
            m if m.starts_with("job") => entry.1 = Some(at),
            _ => {}
        }
    }
    let mut by_job: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for ((job, attempt), (start, end, index)) in attempts {
        assert!(
            start < i64::MAX,
            "job {job} attempt {attempt} was logged as started"
        );
        let end = end.unwrap_or_else(|| {
            assert_eq!(
                index, 0,
                "only the killed worker leaves attempts unfinished"
            );
            killed_at
        });
        by_job.entry(job).or_default().push((start, end));
    }
    assert!(
        count("SELECT count(*) FROM job_queue WHERE job_type = 'probe' AND attempt > 1 AND status = 'completed'").await >= 1,
        "the killed worker's job in flight ran again"
    );
    for (job, runs) in &mut by_job {
        runs.sort_unstable();
        for pair in runs.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "attempts of job {job} overlap: {runs:?}"
            );
        }
    }
}
