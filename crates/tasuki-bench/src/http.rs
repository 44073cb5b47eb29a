//! The HTTP benchmark: `POST /users` under wrk, tasuki against a baseline.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::{Arc, Mutex};

use tasuki_sqlite::{SqliteConfig, SqliteStore};

#[derive(clap::Args)]
pub(crate) struct HttpArgs {
    /// The release build of the tasuki binary.
    #[arg(long, default_value = "target/release/tasuki")]
    tasuki: PathBuf,
    /// How long each load runs.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Open connections.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    threads: u32,
}

#[derive(clap::Args)]
pub(crate) struct BaselineArgs {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    port: u16,
}

/// One load's numbers, read from wrk's report.
struct Load {
    created_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

pub(crate) async fn run(args: HttpArgs) -> anyhow::Result<()> {
    ensure!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is not installed (apt-get install wrk)"
    );
    ensure!(
        args.tasuki.exists(),
        "{} is missing: build it with cargo build --release -p tasuki",
        args.tasuki.display()
    );
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("users.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    println!(
        "http benchmark: POST /users, wrk -t{} -c{} -d{}s, synchronous=FULL, on loopback",
        args.threads,
        args.connections,
        args.duration.as_secs()
    );

    let port = free_port()?;
    let db = dir.path().join("tasuki.db");
    let server = Server(
        Command::new(&args.tasuki)
            .arg("run")
            .env_clear()
            .env("DATABASE_URL", &db)
            .env("PORT", port.to_string())
            .env("SQLITE_SYNCHRONOUS", "full")
            .env("LOG_LEVEL", "warn")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_ready(port).await?;
    let tasuki = load(&args, &script, port, "tasuki")?;
    let (users, jobs_done) = count_work(&db).await?;
    drop(server);

    let port = free_port()?;
    let base_db = dir.path().join("baseline.db");
    let baseline_server = Server(
        Command::new(std::env::current_exe()?)
            .args(["baseline", "--db"])
            .arg(&base_db)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_ready(port).await?;
    let baseline = load(&args, &script, port, "baseline")?;
    drop(baseline_server);

    for (name, l) in [("tasuki", &tasuki), ("baseline", &baseline)] {
        println!(
            "{name:>8}: {:.0} users created/s | p50 {:.2} ms | p99 {:.2} ms | non-2xx {}",
            l.created_per_sec, l.p50_ms, l.p99_ms, l.errors
        );
    }
    println!(
        "tasuki / baseline: {:.0}% of the throughput; {} users in tasuki's database",
        100.0 * tasuki.created_per_sec / baseline.created_per_sec,
        users
    );
    // The workers share the writer with the signups; this shows how much
    // of the jobs' work kept up while the load ran.
    println!(
        "jobs completed by tasuki's workers during the load: {jobs_done} ({:.0}/s; every user brings 2)",
        jobs_done as f64 / args.duration.as_secs_f64()
    );
    Ok(())
}

const WRK_SCRIPT: &str = r#"
local counter = 0
local id = 0
function setup(thread)
  id = id + 1
  thread:set("tid", id)
end
function request()
  counter = counter + 1
  local body = string.format('{"email":"u%d-%d@example.com","age":30,"name":"Load"}', tid, counter)
  return wrk.format("POST", "/users", {["Content-Type"] = "application/json"}, body)
end
"#;

pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on {addr}")
}

fn load(args: &HttpArgs, script: &Path, port: u16, name: &str) -> anyhow::Result<Load> {
    let output = Command::new("wrk")
        .args([
            "-t",
            &args.threads.to_string(),
            "-c",
            &args.connections.to_string(),
        ])
        .args([
            "-d",
            &format!("{}s", args.duration.as_secs()),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/users"))
        .output()
        .context("running wrk")?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "wrk failed on {name}: {report}");
    let field = |prefix: &str| -> Option<&str> {
        report
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().last())
    };
    let requests: f64 = field("Requests/sec:").context("no Requests/sec")?.parse()?;
    let errors: u64 = field("Non-2xx or 3xx responses:").map_or(Ok(0), str::parse)?;
    let total: f64 = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .context("no request count")?
        .parse()?;
    let created = requests * (total - errors as f64) / total;
    Ok(Load {
        created_per_sec: created,
        p50_ms: millis(field("50%").context("no p50")?)?,
        p99_ms: millis(field("99%").context("no p99")?)?,
        errors,
    })
}

/// wrk prints latencies like `812.00us`, `3.21ms` or `1.02s`.
fn millis(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else {
        bail!("unknown latency {text}")
    };
    Ok(number.parse::<f64>()? * factor)
}

/// The users in the database, and the jobs completed so far.
async fn count_work(db: &Path) -> anyhow::Result<(i64, i64)> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM users), \
            (SELECT count(*) FROM job_queue WHERE status = 'completed')",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}

#[derive(serde::Deserialize)]
struct NewUser {
    email: String,
    age: i64,
    name: Option<String>,
}

/// The baseline: the same table and pragmas, one insert per request in its
/// own commit on one connection, no validation, no job, no middleware.
pub(crate) async fn baseline(args: BaselineArgs) -> anyhow::Result<()> {
    drop(SqliteStore::open(&SqliteConfig::new(&args.db)).await?); // the schema
    let conn = rusqlite::Connection::open(&args.db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    let app = axum::Router::new()
        .route("/users", axum::routing::post(create))
        .with_state(Arc::new(Mutex::new(conn)));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn create(
    State(conn): State<Arc<Mutex<rusqlite::Connection>>>,
    Json(user): Json<NewUser>,
) -> Result<(StatusCode, Json<serde_json::Value>), StatusCode> {
    let now = tasuki_core::Timestamp::now().as_micros();
    let (email, age, name) = (user.email.clone(), user.age, user.name.clone());
    // The insert blocks on its fsync: off the async threads, as a driver would.
    let id: i64 = tokio::task::spawn_blocking(move || {
        let conn = conn.lock().expect("not poisoned");
        conn.prepare_cached(
            "INSERT INTO users (email, age, name, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row((email, age, name, now), |row| row.get(0))
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
    .map_err(|_| StatusCode::CONFLICT)?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"id": id, "email": user.email, "age": user.age, "name": user.name}),
        ),
    ))
}
