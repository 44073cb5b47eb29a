//! `tasuki run` and a worker's `METRICS_PORT`, over real sockets.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Db, Worker, http, post_json, wait_all};

const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn listening(worker: &Worker) -> String {
    worker.wait_for("listening", 1, DEADLINE)[0]["addr"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn run_serves_the_api_runs_the_jobs_and_stops_on_sigterm() {
    let db = Db::new();
    let server = Worker::spawn_command(&db, "run", &[("PORT", "0"), ("LOG_LEVEL", "info")]);
    let addr = listening(&server);
    let body = r#"{"email": "run@example.com", "age": 40, "name": "Run"}"#;
    let (status, created) = post_json(&addr, "/users", body);
    assert_eq!(status, 201, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["email"], "run@example.com");
    // The user's job and the email delivery it enqueues both complete in this process.
    let done = server.wait_for("job completed", 2, DEADLINE);
    let mut types: Vec<&str> = done
        .iter()
        .map(|l| l["job_type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["send_email", "user_created"]);
    let (status, health) = http(&addr, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200, "{health}");

    server.signal("-TERM");
    let status = wait_all(vec![server], DEADLINE);
    assert_eq!(status[0].code(), Some(0));
}

#[test]
fn a_worker_serves_health_and_metrics_on_its_metrics_port() {
    let db = Db::new();
    db.run(&["jobs", "enqueue", "probe"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let worker = Worker::spawn(&db, &[("METRICS_PORT", &port)], &[]);
    let addr = format!(
        "127.0.0.1:{}",
        listening(&worker).rsplit(':').next().unwrap()
    );
    worker.wait_for("job completed", 1, DEADLINE);
    let (status, health) = http(&addr, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200, "{health}");
    let (status, metrics) = http(&addr, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"jobs_processed_total{job_type="probe",status="completed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("job_duration_seconds_bucket"), "{metrics}");
    worker.signal("-TERM");
    assert_eq!(wait_all(vec![worker], DEADLINE)[0].code(), Some(0));
}

/// Prometheus's own linter finds nothing in a live `/metrics`: every metric
/// has its `# HELP` and `# TYPE`. Needs `promtool` (Debian's `prometheus`);
/// skipped without it, except in CI.
#[test]
fn live_metrics_pass_promtool() {
    let Some(promtool) = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing: apt-get install prometheus"
        );
        eprintln!("skipped: promtool is missing (apt-get install prometheus)");
        return;
    };
    let db = Db::new();
    let server = Worker::spawn_command(&db, "run", &[("PORT", "0"), ("LOG_LEVEL", "info")]);
    let addr = listening(&server);
    let body = r#"{"email": "metrics@example.com", "age": 40, "name": "M"}"#;
    assert_eq!(post_json(&addr, "/users", body).0, 201);
    // Every metric has a sample: requests, enqueues, finished attempts.
    server.wait_for("job completed", 2, DEADLINE);
    let (status, metrics) = http(&addr, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "jobs_enqueued_total",
        "jobs_queue_depth",
        "jobs_processed_total",
        "job_duration_seconds",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name} has no help: {metrics}"
        );
    }
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    server.signal("-TERM");
    wait_all(vec![server], DEADLINE);
}
