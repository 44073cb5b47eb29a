//! `tasuki run` SIGKILLed while it takes signups, on each engine, with the
//! default durability. After a restart on the same database, every signup
//! that was acknowledged (`201`) is there with its `user_created` job, every
//! job has completed once, and each user was onboarded exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Db, Worker, http, read_to_end, try_post_json, wait_all};
use crate::serve::listening;

const CLIENTS: usize = 4;
/// The most signups one client sends: the load stays bounded, kill or not.
const PER_CLIENT: usize = 1_000;
/// The kill comes once this many signups are acknowledged...
const ACKED_BEFORE_KILL: usize = 150;
/// ...and this many jobs have completed, so that it hits the workers too.
const DONE_BEFORE_KILL: usize = 20;
const DEADLINE: Duration = Duration::from_secs(60);

/// A signup that the server answered `201`.
struct Acked {
    user: i64,
    job: i64,
    email: String,
}

/// `tasuki run` on the database with its default durability.
fn run(db: &Db) -> Worker {
    let mut command = db.command();
    command.arg("run").envs([
        ("PORT", "0"),
        ("LOG_LEVEL", "info"),
        // The killed process's leases expire soon after the restart.
        ("LEASE_TIMEOUT", "3s"),
        // PostgreSQL only: stay well inside the server's connections.
        ("DATABASE_POOL_SIZE", "8"),
    ]);
    Worker::from_command(command)
}

/// Sends signups from `CLIENTS` threads until each has sent `PER_CLIENT` or
/// `killed` is set; each thread returns whether the kill stopped it. Before
/// the kill, every signup must be answered `201`.
fn sign_up(
    addr: &str,
    acked: &mpsc::Sender<Acked>,
    killed: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<bool>> {
    (0..CLIENTS)
        .map(|client| {
            let (addr, acked, killed) = (addr.to_owned(), acked.clone(), killed.clone());
            std::thread::spawn(move || {
                for n in 0..PER_CLIENT {
                    if killed.load(Ordering::SeqCst) {
                        return true;
                    }
                    let email = format!("c{client}n{n}@example.com");
                    let body =
                        format!(r#"{{"email": "{email}", "age": 30, "name": "C{client} N{n}"}}"#);
                    let reply = try_post_json(&addr, "/users", &body);
                    // A whole `201` acknowledges; anything else is the kill's
                    // doing only once it has come.
                    let user = match &reply {
                        Ok((201, body)) => serde_json::from_str::<Value>(body).ok(),
                        _ => None,
                    };
                    let Some(user) = user else {
                        assert!(
                            killed.load(Ordering::SeqCst),
                            "a signup before the kill was answered {reply:?}"
                        );
                        return true;
                    };
                    let _ = acked.send(Acked {
                        user: user["id"].as_i64().unwrap(),
                        job: user["job_id"].as_i64().unwrap(),
                        email,
                    });
                }
                false
            })
        })
        .collect()
}

/// How many jobs are neither completed, failed nor cancelled, from `GET /jobs/stats`.
fn unfinished(addr: &str) -> i64 {
    let (status, stats) = http(addr, "GET /jobs/stats HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200, "{stats}");
    let stats: Value = serde_json::from_str(&stats).unwrap();
    ["pending", "processing", "retry_pending"]
        .iter()
        .map(|s| stats["by_status"][s].as_i64().unwrap_or(0))
        .sum()
}

fn get(addr: &str, path: &str) -> Value {
    let (status, body) = http(addr, &format!("GET {path} HTTP/1.0\r\n\r\n"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn acknowledged_signups_survive_a_sigkill(db: Db) {
    let mut first = run(&db);
    let addr = listening(&first);
    let killed = Arc::new(AtomicBool::new(false));
    let (acked_tx, acked_rx) = mpsc::channel();
    let clients = sign_up(&addr, &acked_tx, &killed);
    drop(acked_tx);

    let until = Instant::now() + DEADLINE;
    let mut acked: Vec<Acked> = Vec::new();
    while acked.len() < ACKED_BEFORE_KILL {
        let left = until.saturating_duration_since(Instant::now());
        acked.push(acked_rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "{} of {ACKED_BEFORE_KILL} signups acknowledged before the deadline",
                acked.len()
            )
        }));
    }
    let mut first_lines = first.wait_for("job completed", DONE_BEFORE_KILL, DEADLINE);
    // Set first: a failed signup is the kill's only once this is set.
    killed.store(true, Ordering::SeqCst);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let cut_off = clients
        .into_iter()
        .map(|client| {
            client
                .join()
                .expect("a client thread fails only on a bad answer")
        })
        .filter(|&cut_off| cut_off)
        .count();
    assert!(cut_off > 0, "the kill came while signups were being sent");
    acked.extend(acked_rx.try_iter());
    first_lines.extend(read_to_end(&first.logs, DEADLINE));

    // The restart takes the killed process's jobs back once their leases
    // expire, and runs every job that is left.
    let mut second = run(&db);
    let addr = listening(&second);
    let mut second_lines = Vec::new();
    let until = Instant::now() + DEADLINE;
    while unfinished(&addr) > 0 {
        assert!(
            Instant::now() < until,
            "every job is final before the deadline"
        );
        // The log paces the looking: new lines, or a quiet quarter second.
        if let Ok(line) = second.logs.recv_timeout(Duration::from_millis(250)) {
            second_lines.push(line);
            second_lines.extend(second.logs.try_iter());
        }
    }
    for Acked { user, job, email } in &acked {
        let got = get(&addr, &format!("/users/{user}"));
        assert_eq!(got["email"], *email, "acknowledged user {user} is there");
        let got = get(&addr, &format!("/jobs/{job}"));
        assert_eq!(
            (&got["job_type"], &got["status"], &got["payload"]["user_id"]),
            (&"user_created".into(), &"completed".into(), &(*user).into()),
            "the job of acknowledged user {user} completed"
        );
    }
    second.signal("-TERM");
    let logs = second.take_logs();
    assert_eq!(wait_all(vec![second], DEADLINE)[0].code(), Some(0));
    second_lines.extend(read_to_end(&logs, DEADLINE));

    // No job is recorded as completed twice, across the kill and the restart.
    let mut completions: HashMap<i64, usize> = HashMap::new();
    for line in first_lines.iter().chain(&second_lines) {
        if line["message"] == "job completed" {
            *completions
                .entry(line["job_id"].as_i64().unwrap())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = completions.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "jobs completed more than once: {twice:?}");

    // Every user, acknowledged or committed just before the kill, was
    // onboarded exactly once: one job, one welcome
    // email, delivered by one job.
    let pool = db.any_pool().await;
    let users = pool.count("SELECT count(*) FROM users").await;
    assert!(
        users >= acked.len() as i64,
        "{users} users, {} acknowledged",
        acked.len()
    );
    let expect = [
        (
            "SELECT count(*) FROM users WHERE onboarded_at IS NOT NULL",
            users,
        ),
        (
            "SELECT count(*) FROM job_queue WHERE job_type = 'user_created'",
            users,
        ),
        (
            "SELECT count(*) FROM job_queue WHERE job_type = 'send_email'",
            users,
        ),
        (
            "SELECT count(*) FROM job_queue WHERE status <> 'completed'",
            0,
        ),
        (
            "SELECT count(*) FROM email_outbox WHERE kind = 'welcome' AND status = 'sent'",
            users,
        ),
    ];
    for (sql, want) in expect {
        assert_eq!(pool.count(sql).await, want, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_signups_survive_a_sigkill() {
    acknowledged_signups_survive_a_sigkill(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_signups_survive_a_sigkill() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    acknowledged_signups_survive_a_sigkill(db).await;
}
