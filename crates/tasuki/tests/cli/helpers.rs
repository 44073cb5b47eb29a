//! Running `tasuki` processes, reading their JSON logs, waiting with deadlines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tasuki_conformance::{Engine, TestDb};

/// How many long probe jobs `Db::enqueue_long_probes` adds.
pub(crate) const LONG_PROBES: usize = 12;

/// The lease of the multi-process tests, whose workers heartbeat every third
/// of it: a survivor stalled by a loaded machine for up to two thirds of it
/// keeps its jobs (a rescue of a job it still runs would read as an
/// overlap), and a killed worker's job runs again once its lease expires,
/// this long after its last heartbeat.
pub(crate) const LEASE_TIMEOUT: (&str, &str) = ("LEASE_TIMEOUT", "5s");

/// The database that the processes of a test share.
pub(crate) struct Db {
    /// The SQLite file (unused on PostgreSQL).
    pub(crate) path: PathBuf,
    pub(crate) url: String,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<TestDb>,
}

impl Db {
    /// A SQLite file that does not exist yet.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasuki.db");
        Self {
            url: path.display().to_string(),
            path,
            _dir: Some(dir),
            _postgres: None,
        }
    }

    /// A migrated schema of its own on PostgreSQL; `None` (the test skips,
    /// saying why) when PostgreSQL is unreachable outside CI.
    pub(crate) async fn postgres() -> Option<Self> {
        let db = tasuki_conformance::fresh(Engine::Postgres).await?;
        Some(Self {
            path: PathBuf::new(),
            url: db.url.clone(),
            _dir: None,
            _postgres: Some(db),
        })
    }

    pub(crate) fn command(&self) -> Command {
        tasuki(&self.url)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "tasuki {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Enqueues `LONG_PROBES` probe jobs of 5 s at priority 5: a worker
    /// killed right after it starts one dies inside a job, however fast the
    /// machine runs the short ones.
    pub(crate) fn enqueue_long_probes(&self) {
        self.run(&[
            "jobs",
            "enqueue",
            "probe",
            r#"{"sleep_ms": 5000}"#,
            "--count",
            &LONG_PROBES.to_string(),
            "--priority",
            "5",
        ]);
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.run(args)).unwrap()
    }

    /// A connection to the database, whichever its engine.
    pub(crate) async fn any_pool(&self) -> Pool {
        if self._postgres.is_some() {
            Pool::Postgres(sqlx::PgPool::connect(&self.url).await.unwrap())
        } else {
            Pool::Sqlite(self.sqlite())
        }
    }

    /// A connection to the SQLite file.
    pub(crate) fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }
}

/// A connection to either engine, for queries that read the same on both.
pub(crate) enum Pool {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgPool),
}

impl Pool {
    /// The one integer that `sql` selects (write sums as `CAST(… AS BIGINT)`:
    /// PostgreSQL sums bigints as numeric).
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(conn) => conn
                .query_row(sql, [], |row| row.get(0))
                .map_err(|e| e.to_string()),
            Self::Postgres(pool) => sqlx::query_scalar(sql)
                .fetch_one(pool)
                .await
                .map_err(|e| e.to_string()),
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }
}

pub(crate) fn tasuki(db: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasuki"));
    command
        .env_clear()
        .env("DATABASE_URL", db)
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null());
    command
}

pub(crate) fn output(command: &mut Command) -> Output {
    command.output().unwrap()
}

/// A worker process whose JSON log lines arrive on a channel.
pub(crate) struct Worker {
    pub(crate) child: Child,
    pub(crate) logs: mpsc::Receiver<Value>,
}

impl Worker {
    pub(crate) fn spawn(db: &Db, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::spawn_with(db, "worker", env, args)
    }

    /// Another long-running command (`run`, `serve`), its log read the same way.
    pub(crate) fn spawn_command(db: &Db, command: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_with(db, command, env, &[])
    }

    fn spawn_with(db: &Db, command: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut built = db.command();
        built.arg(command).args(args).envs(env.iter().copied());
        Self::from_command(built)
    }

    /// A command built by the caller (`Db::command` and more), its log read the same way.
    pub(crate) fn from_command(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // Read to the end even when nobody listens, so the process
                // never writes into a closed pipe.
                if let Ok(value) = serde_json::from_str(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        Self { child, logs }
    }

    /// Reads log lines until `count` of them have this message; returns them.
    pub(crate) fn wait_for(&self, message: &str, count: usize, deadline: Duration) -> Vec<Value> {
        let until = std::time::Instant::now() + deadline;
        let mut seen = Vec::new();
        while seen.len() < count {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let line = self.logs.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "saw {} of {count} `{message}` lines before the deadline",
                    seen.len()
                )
            });
            if line["message"] == message {
                seen.push(line);
            }
        }
        seen
    }

    /// Takes the log's channel, to read it to its end once the process is gone
    /// (`wait_all` takes the process).
    pub(crate) fn take_logs(&mut self) -> mpsc::Receiver<Value> {
        std::mem::replace(&mut self.logs, mpsc::channel().1)
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Every line left on `logs` once its process has exited and its stdout is
/// read to the end; fails the test if that takes longer than `deadline`.
pub(crate) fn read_to_end(logs: &mpsc::Receiver<Value>, deadline: Duration) -> Vec<Value> {
    let until = std::time::Instant::now() + deadline;
    let mut lines = Vec::new();
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match logs.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the log ends before the deadline"),
        }
    }
}

/// A minimal HTTP/1.0 exchange: status code and body.
pub(crate) fn http(addr: &str, request: &str) -> (u16, String) {
    try_http(addr, request).unwrap()
}

/// `http`, with an error instead of a panic when the server is gone or
/// its answer is cut short before the status line.
pub(crate) fn try_http(addr: &str, request: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `POST path` with a JSON body.
pub(crate) fn post_json(addr: &str, path: &str, body: &str) -> (u16, String) {
    try_post_json(addr, path, body).unwrap()
}

/// `post_json`, with an error instead of a panic (see `try_http`).
pub(crate) fn try_post_json(addr: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    try_http(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A test that fails leaves no process behind.
impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for every process to exit, failing the test after the deadline.
pub(crate) fn wait_all(
    processes: Vec<Worker>,
    deadline: Duration,
) -> Vec<std::process::ExitStatus> {
    let (tx, rx) = mpsc::channel();
    let count = processes.len();
    for (index, mut process) in processes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let status = process.child.wait().unwrap();
            let _ = tx.send((index, status));
        });
    }
    let until = std::time::Instant::now() + deadline;
    let mut statuses = vec![None; count];
    for _ in 0..count {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let (index, status) = rx
            .recv_timeout(left)
            .expect("every process exits before the deadline");
        statuses[index] = Some(status);
    }
    statuses.into_iter().map(Option::unwrap).collect()
}

/// Every log line of several processes, tagged with the process's index.
pub(crate) fn merge(processes: &mut [Worker]) -> mpsc::Receiver<(usize, Value)> {
    let (tx, merged) = mpsc::channel();
    for (index, process) in processes.iter_mut().enumerate() {
        let (_, logs) = mpsc::channel();
        let logs = std::mem::replace(&mut process.logs, logs);
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in logs {
                if tx.send((index, line)).is_err() {
                    return;
                }
            }
        });
    }
    merged
}
