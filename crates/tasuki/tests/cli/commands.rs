//! One-shot commands: results, errors, and nothing written on bad input.

use serde_json::json;

use crate::helpers::{Db, output};

#[test]
fn enqueue_get_cancel_retry_and_stats() {
    let db = Db::new();
    let job = db.json(&[
        "jobs",
        "enqueue",
        "probe",
        r#"{"sleep_ms": 5}"#,
        "--priority",
        "4",
        "--max-retries",
        "2",
        "--delay",
        "1h",
        "--json",
    ]);
    assert_eq!(job["status"], "pending");
    assert_eq!(job["payload"], json!({"sleep_ms": 5}));
    assert_eq!(
        (job["priority"].as_i64(), job["max_retries"].as_i64()),
        (Some(4), Some(2))
    );
    let id = job["id"].to_string();
    let mut job = job;
    assert_eq!(job["duplicate"], false);
    job.as_object_mut().unwrap().remove("duplicate");

    let got = db.json(&["jobs", "get", &id, "--json"]);
    assert_eq!(got, job);
    let cancelled = db.json(&["jobs", "cancel", &id, "--json"]);
    assert_eq!(cancelled["status"], "cancelled");
    let retried = db.json(&["jobs", "retry", &id, "--json"]);
    assert_eq!(retried["status"], "pending");

    let many = db.json(&[
        "jobs",
        "enqueue",
        "data_analysis",
        r#"{"values": [1, 2]}"#,
        "--count",
        "250",
        "--json",
    ]);
    assert_eq!(many["count"], 250);
    let stats = db.json(&["jobs", "stats", "--json"]);
    assert_eq!(stats["by_status"]["pending"], 251);
    assert_eq!(stats["by_type"]["data_analysis"]["pending"], 250);

    let page = db.json(&[
        "jobs",
        "list",
        "--type",
        "data_analysis",
        "--limit",
        "100",
        "--json",
    ]);
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    let next = page["next_after"].to_string();
    let page2 = db.json(&[
        "jobs",
        "list",
        "--type",
        "data_analysis",
        "--limit",
        "200",
        "--after",
        &next,
        "--json",
    ]);
    assert_eq!(page2["items"].as_array().unwrap().len(), 150);
    assert!(
        db.run(&["jobs", "list", "--status", "cancelled"])
            .lines()
            .count()
            == 1,
        "only the header"
    );
}

#[test]
fn bad_input_is_one_line_on_stderr_a_failure_and_no_write() {
    let db = Db::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["jobs", "enqueue", "no_such_type"],
            "error: unknown job type `no_such_type`",
        ),
        (
            &["jobs", "enqueue", "probe", "{not json"],
            "error: the payload is not valid JSON",
        ),
        (
            &["jobs", "enqueue", "probe", r#"{"sleep_ms": "soon"}"#],
            "error: the payload of a `probe` job does not match its schema: /sleep_ms",
        ),
        (
            &["jobs", "enqueue", "probe", "--run-at", "tomorrow"],
            "error: --run-at `tomorrow` is not an RFC 3339 time",
        ),
    ];
    for (args, expected) in cases {
        let out = output(db.command().args(*args));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!db.path.exists(), "{args:?} must not create the database");
    }
    let out = output(
        db.command()
            .args(["jobs", "list"])
            .env("DATABASE_URL", "mysql://localhost/x"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .starts_with("error: DATABASE_URL: unsupported scheme `mysql`")
    );
    let out = output(db.command().args(["worker"]).env("LEASE_TIMEOUT", "0s"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a lease too short to renew is refused"
    );
    let out = output(db.command().args(["worker"]).env("RETRY_BASE_DELAY", "2h"));
    assert_eq!(out.status.code(), Some(1));
    assert!(!db.path.exists(), "a refused worker opens no database");
    let out = output(db.command().args(["worker"]).env("WORKER_COUNT", "many"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap rejects a malformed setting"
    );
    let out = output(db.command().args(["jobs", "get", "12"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: no job with id 12\n"
    );
}

#[test]
fn help_is_there_for_every_command() {
    let db = Db::new();
    for args in [
        &["--help"][..],
        &["worker", "--help"],
        &["jobs", "enqueue", "--help"],
        &["jobs", "list", "--help"],
        &["migrate", "--help"],
    ] {
        let text = db.run(args);
        assert!(text.contains("Usage: tasuki"), "{args:?}: {text}");
    }
    assert!(
        db.run(&["worker", "--help"])
            .contains("[env: WORKER_COUNT=]")
    );
    assert!(db.run(&["migrate"]).contains("is migrated"));
    assert!(db.path.exists());
}
