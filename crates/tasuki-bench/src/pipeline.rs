//! The pipeline benchmark, on the release binary alone: signups whose jobs
//! write (`user_created`, then the `send_email` it enqueues) drained by
//! `tasuki worker` beside jobs that write nothing of their own; then
//! `tasuki run` under signups offered at fixed rates, open loop.
//!
//! It reads the tables, never the store's API, which this module must outlive.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use serde_json::json;
use tokio::task::JoinSet;

use crate::cpu;
use crate::http::{Server, free_port, wait_ready};
use crate::queue::{Target, percentile};

#[derive(clap::Args)]
pub(crate) struct PipelineArgs {
    /// The release build of the tasuki binary.
    #[arg(long, default_value = "target/release/tasuki")]
    tasuki: PathBuf,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    engine: String,
    /// The PostgreSQL server's maintenance database; the bench makes its own schemas in it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Signups, and as many no-write jobs, per drain.
    #[arg(long, default_value_t = 50_000)]
    users: usize,
    /// The WORKER_COUNT of each drain.
    #[arg(long, value_delimiter = ',', default_value = "3,64")]
    worker_counts: Vec<u16>,
    /// Signups per second offered to `tasuki run`, each on a fresh database.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2500,5000,7500,10000"
    )]
    rates: Vec<u32>,
    /// How long each rate is offered.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The WORKER_COUNT of `tasuki run` (unset: the binary's default, 3).
    #[arg(long)]
    worker_count: Option<u16>,
}

/// Concurrent signups while a drain's database is seeded.
const SEED_CONNECTIONS: usize = 32;
/// How often a drain counts the jobs left.
const POLL: Duration = Duration::from_millis(50);
/// A signup that starts later than this after its due time was not sent on time.
const LATE: Duration = Duration::from_millis(10);
/// How long after the window an email may still be sent and count.
const GRACE: Duration = Duration::from_secs(2);

pub(crate) async fn run(args: PipelineArgs) -> anyhow::Result<()> {
    ensure!(
        args.tasuki.exists(),
        "{} is missing: build it with cargo build --release -p tasuki",
        args.tasuki.display()
    );
    let targets = Target::chosen(&args.engine, &["full"], &args.postgres)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    println!(
        "pipeline benchmark, part 1: jobs that write, alone. `tasuki worker` drains {} signups' \
         user_created jobs (and the send_email jobs they enqueue), then {} data_analysis jobs \
         that write nothing of their own, each kind from a fresh database; jobs/s from the first \
         start to the last completion; CPU: of the worker and the PostgreSQL server, per job \
         that writes and per no-write job",
        args.users, args.users
    );
    println!(
        "{:<24} {:>7} {:>15} {:>17} {:>15} {:>15} {:>20}",
        "engine",
        "workers",
        "user_created/s",
        "+send_email jobs/s",
        "no-write jobs/s",
        "writes/no-write",
        "CPU µs/job w/no-w"
    );
    for target in &targets {
        for &workers in &args.worker_counts {
            let (users, _users_dir) = fresh(target, "users").await?;
            seed_users(&args.tasuki, &users, args.users, &client).await?;
            let (nowrite, _nowrite_dir) = fresh(target, "nowrite").await?;
            let enqueued = tasuki(&args.tasuki, &nowrite)
                .args(["jobs", "enqueue", "data_analysis", r#"{"values":[1,2,3]}"#])
                .args(["--count", &args.users.to_string()])
                .status()?;
            ensure!(enqueued.success(), "tasuki jobs enqueue failed");

            let (mut db, cpu_writes) = drain(&args.tasuki, &users, workers, 2 * args.users).await?;
            let user_created = rate(&mut db, "'user_created'").await?;
            let pipeline = rate(&mut db, "'user_created', 'send_email'").await?;
            let (mut db, cpu_no_write) = drain(&args.tasuki, &nowrite, workers, args.users).await?;
            let no_write = rate(&mut db, "'data_analysis'").await?;
            println!(
                "{:<24} {workers:>7} {user_created:>15.0} {pipeline:>17.0} {no_write:>15.0} {:>14.0}% {:>13.0}/{:<6.0}",
                target.label(),
                100.0 * pipeline / no_write,
                cpu_writes,
                cpu_no_write
            );
        }
    }

    println!(
        "\npipeline benchmark, part 2: end to end. `tasuki run` (WORKER_COUNT {}) on a fresh \
         database per rate; signups offered open loop for {} s, each on its own task \
         (late: started over {} ms behind schedule); accepted: 2xx answers received within \
         the window; errors: requests never answered 2xx; depth: jobs not finished, at mid-window \
         and at its end; email: users.created_at to email_outbox.sent_at for the window's \
         signups, unsent {} s after the window counted as never; cores: CPU over the window of \
         tasuki run, the PostgreSQL server, this bench, and the machine's left idle",
        args.worker_count
            .map_or("3, the default".to_owned(), |n| n.to_string()),
        args.duration.as_secs_f64(),
        LATE.as_millis(),
        GRACE.as_secs()
    );
    println!(
        "{:<24} {:>9} {:>10} {:>6} {:>6} {:>11} {:>15} {:>9} {:>9} {:>7} {:>8} {:>19}",
        "engine",
        "offered/s",
        "accepted/s",
        "errors",
        "late",
        "jobs done/s",
        "depth mid/end",
        "email p50",
        "email p99",
        "unsent",
        "keeps up",
        "cores t/db/bench/idle"
    );
    for target in &targets {
        let mut highest = None;
        for &rate in &args.rates {
            let w = window(&args, target, rate, &client).await?;
            let keeps_up = w.keeps_up(rate);
            if keeps_up {
                highest = Some(highest.unwrap_or(0).max(rate));
            }
            let depth = format!("{}/{}", w.depth_mid, w.depth_end);
            println!(
                "{:<24} {rate:>9} {:>10.0} {:>6} {:>6} {:>11.0} {depth:>15} {:>9} {:>9} {:>7} {:>8} {:>21}",
                target.label(),
                w.accepted,
                w.errors,
                w.late,
                w.jobs_done,
                millis(w.p50),
                millis(w.p99),
                w.unsent,
                if keeps_up { "yes" } else { "no" },
                w.cores
            );
        }
        println!(
            "{}: highest rate where the workers keep up: {}",
            target.label(),
            highest.map_or("none of those offered".to_owned(), |r| format!(
                "{r} signups/s"
            ))
        );
    }
    println!(
        "keeps up: accepted is at least 95% of offered, and the depth at the end is under one \
         second's worth of jobs (two per signup) and no more than at mid-window plus a tenth of that"
    );
    Ok(())
}

/// A fresh database for one run (a new file, or the schema recreated), and
/// the directory that must outlive it.
async fn fresh(target: &Target, name: &str) -> anyhow::Result<(String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let url = target.fresh(&dir, &format!("pipeline_{name}")).await?;
    Ok((url, dir))
}

/// The tasuki binary on `url`, quiet but for warnings.
pub(crate) fn tasuki(path: &Path, url: &str) -> Command {
    let mut command = Command::new(path);
    command
        .env_clear()
        .env("DATABASE_URL", url)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null());
    command
}

async fn signup(client: &reqwest::Client, port: u16, n: usize) -> reqwest::Result<bool> {
    let body = json!({"email": format!("u{n}@example.com"), "age": 30, "name": "Load"});
    let response = client
        .post(format!("http://127.0.0.1:{port}/users"))
        .json(&body)
        .send()
        .await?;
    let created = response.status().is_success();
    response.bytes().await?; // read to the end, so the connection is kept
    Ok(created)
}

/// `users` signups through `tasuki serve`, a few dozen at a time.
async fn seed_users(
    path: &Path,
    url: &str,
    users: usize,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    let port = free_port()?;
    let _serve = Server(
        tasuki(path, url)
            .arg("serve")
            .env("PORT", port.to_string())
            .spawn()?,
    );
    wait_ready(port).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..SEED_CONNECTIONS {
        let (next, client) = (next.clone(), client.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= users {
                    return anyhow::Ok(());
                }
                ensure!(signup(&client, port, n).await?, "signup {n} was refused");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Runs `tasuki worker` until no job is left to run, and checks that all
/// `jobs` completed; answers with the CPU time that the worker and the
/// PostgreSQL server spent per job, in microseconds.
async fn drain(path: &Path, url: &str, workers: u16, jobs: usize) -> anyhow::Result<(Db, f64)> {
    let mut db = Db::open(url).await?;
    let mut worker = Server(
        tasuki(path, url)
            .arg("worker")
            .env("WORKER_COUNT", workers.to_string())
            .spawn()?,
    );
    let cpu_before = Cpu::read(worker.0.id())?;
    // Each test stops at the first entry of a partial index, so that polling
    // costs the drain little (counting them cost PostgreSQL 15 ms a poll).
    let left = "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM job_queue \
        WHERE status IN ('pending', 'retry_pending')) \
        OR EXISTS (SELECT 1 FROM job_queue WHERE status = 'processing') THEN 1 ELSE 0 END AS BIGINT)";
    while db.row::<1>(left).await?[0] > 0 {
        ensure!(worker.0.try_wait()?.is_none(), "tasuki worker exited");
        tokio::time::sleep(POLL).await;
    }
    let cpu_after = Cpu::read(worker.0.id())?;
    let spent = (cpu_after.tasuki - cpu_before.tasuki) + (cpu_after.db - cpu_before.db);
    drop(worker);
    let [completed, total] = db
        .row("SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM job_queue")
        .await?;
    ensure!(
        completed == total && total == jobs as i64,
        "{completed} of {total} jobs completed, {jobs} expected"
    );
    Ok((db, spent.as_secs_f64() * 1e6 / jobs as f64))
}

/// Completed jobs of `types` (quoted, comma-separated) per second, from the
/// first one's start to the last one's completion.
async fn rate(db: &mut Db, types: &str) -> anyhow::Result<f64> {
    let sql = format!(
        "SELECT count(*), min({}), max({}) FROM job_queue WHERE job_type IN ({types})",
        db.micros("started_at"),
        db.micros("completed_at")
    );
    let [jobs, first, last] = db.row(&sql).await?;
    Ok(jobs as f64 / ((last - first) as f64 / 1e6))
}

/// One rate's window of `tasuki run`.
struct Window {
    /// 2xx answers received within the window, per second.
    accepted: f64,
    errors: usize,
    late: usize,
    /// Per second, over the window.
    jobs_done: f64,
    depth_mid: i64,
    depth_end: i64,
    /// Milliseconds; infinite when the share of unsent emails reaches it.
    p50: f64,
    p99: f64,
    unsent: usize,
    /// `tasuki/db/bench/idle` cores over the window.
    cores: String,
}

impl Window {
    fn keeps_up(&self, rate: u32) -> bool {
        let jobs_per_sec = 2.0 * f64::from(rate);
        self.accepted >= 0.95 * f64::from(rate)
            && (self.depth_end as f64) < jobs_per_sec
            && self.depth_end as f64 <= self.depth_mid as f64 + jobs_per_sec / 10.0
    }
}

/// Offers `rate` signups per second to a fresh `tasuki run` for the
/// duration, each on its own task whatever the answers before it.
async fn window(
    args: &PipelineArgs,
    target: &Target,
    rate: u32,
    client: &reqwest::Client,
) -> anyhow::Result<Window> {
    let (url, _dir) = fresh(target, "run").await?;
    let port = free_port()?;
    let mut command = tasuki(&args.tasuki, &url);
    command.arg("run").env("PORT", port.to_string());
    if let Some(workers) = args.worker_count {
        command.env("WORKER_COUNT", workers.to_string());
    }
    let server = Server(command.spawn()?);
    wait_ready(port).await?;

    let offered = (f64::from(rate) * args.duration.as_secs_f64()) as usize;
    let mut tasks = JoinSet::new();
    let cpu_at_start = Cpu::read(server.0.id())?;
    let (start, start_us) = (Instant::now(), micros_now()?);
    for n in 0..offered {
        let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let client = client.clone();
        tasks.spawn(async move {
            let late = due.elapsed() > LATE;
            let created = signup(&client, port, n).await.unwrap_or(false);
            (late, created.then(Instant::now))
        });
    }
    let end = start + args.duration;
    tokio::time::sleep_until(end.into()).await;
    let cores = cpu_at_start.cores(&Cpu::read(server.0.id())?);
    tokio::time::sleep_until((end + GRACE).into()).await;
    let (mut accepted, mut errors, mut late) = (0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (was_late, created) = done?;
        late += usize::from(was_late);
        match created {
            Some(at) => accepted += usize::from(at <= end),
            None => errors += 1,
        }
    }
    drop(server);

    let end_us = start_us + args.duration.as_micros() as i64;
    let mut db = Db::open(&url).await?;
    let (created, completed) = (db.micros("created_at"), db.micros("completed_at"));
    let depth = |at: i64| {
        format!(
            "SELECT count(*) FROM job_queue WHERE {created} <= {at} \
             AND (completed_at IS NULL OR {completed} > {at})"
        )
    };
    let [depth_mid] = db.row(&depth((start_us + end_us) / 2)).await?;
    let [depth_end] = db.row(&depth(end_us)).await?;
    let [done] = db
        .row(&format!(
            "SELECT count(*) FROM job_queue WHERE status = 'completed' \
             AND {completed} BETWEEN {start_us} AND {end_us}"
        ))
        .await?;
    let emails = format!(
        "SELECT {}, {} FROM users u LEFT JOIN email_outbox o ON o.user_id = u.id \
         WHERE {} BETWEEN {start_us} AND {end_us}",
        db.micros("u.created_at"),
        db.micros("o.sent_at"),
        db.micros("u.created_at")
    );
    let sent_by = end_us + GRACE.as_micros() as i64;
    let mut latencies: Vec<f64> = db
        .rows(&emails)
        .await?
        .into_iter()
        .map(|row| match row[..] {
            [Some(created), Some(sent)] if sent <= sent_by => (sent - created) as f64 / 1e3,
            _ => f64::INFINITY,
        })
        .collect();
    ensure!(!latencies.is_empty(), "no signup was accepted");
    latencies.sort_by(f64::total_cmp);
    let secs = args.duration.as_secs_f64();
    Ok(Window {
        accepted: accepted as f64 / secs,
        errors,
        late,
        jobs_done: done as f64 / secs,
        depth_mid,
        depth_end,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        unsent: latencies.iter().filter(|l| l.is_infinite()).count(),
        cores,
    })
}

/// CPU time so far: of the tasuki process, of the PostgreSQL server's
/// processes (none on SQLite), of this bench, and of the whole machine.
struct Cpu {
    tasuki: Duration,
    db: Duration,
    bench: Duration,
    busy: Duration,
    all: Duration,
    at: Instant,
}

impl Cpu {
    fn read(tasuki: u32) -> anyhow::Result<Cpu> {
        let (busy, all) = cpu::machine()?;
        Ok(Cpu {
            tasuki: cpu::process(tasuki)?,
            db: cpu::server("postgres")?,
            bench: cpu::process(std::process::id())?,
            busy,
            all,
            at: Instant::now(),
        })
    }

    /// The cores each used from this reading to `later`'s, and the machine's
    /// that none used: `tasuki/db/bench/idle`.
    fn cores(&self, later: &Cpu) -> String {
        let wall = (later.at - self.at).as_secs_f64();
        let per = |a: Duration, b: Duration| (b - a).as_secs_f64() / wall;
        let idle = per(self.all - self.busy, later.all - later.busy);
        format!(
            "{:.2}/{:.2}/{:.2}/{idle:.2}",
            per(self.tasuki, later.tasuki),
            per(self.db, later.db),
            per(self.bench, later.bench),
        )
    }
}

fn micros_now() -> anyhow::Result<i64> {
    Ok(SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_micros() as i64)
}

fn millis(ms: f64) -> String {
    if ms.is_finite() {
        format!("{ms:.1} ms")
    } else {
        "unsent".to_owned()
    }
}

/// A database that the tasuki binary writes, read directly.
enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn open(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("postgres") {
            use sqlx::Connection;
            return Ok(Db::Postgres(sqlx::PgConnection::connect(url).await?));
        }
        let conn = rusqlite::Connection::open(url)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Db::Sqlite(conn))
    }

    /// A time column as microseconds since the epoch, as SQLite stores it.
    fn micros(&self, column: &str) -> String {
        match self {
            Db::Sqlite(_) => column.to_owned(),
            Db::Postgres(_) => format!("(extract(epoch FROM {column}) * 1000000)::bigint"),
        }
    }

    /// The rows of a query whose columns are all integers.
    async fn rows(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Option<i64>>>> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare(sql)?;
                let columns = statement.column_count();
                let rows =
                    statement.query_map([], |row| (0..columns).map(|i| row.get(i)).collect())?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Db::Postgres(conn) => {
                use sqlx::Row;
                let rows = sqlx::query(sql).fetch_all(conn).await?;
                let values = rows
                    .iter()
                    .map(|row| (0..row.len()).map(|i| row.try_get(i)).collect());
                Ok(values.collect::<Result<_, _>>()?)
            }
        }
    }

    /// The first row of a query whose `N` columns are all non-null integers.
    async fn row<const N: usize>(&mut self, sql: &str) -> anyhow::Result<[i64; N]> {
        let row = self.rows(sql).await?.into_iter().next().context("no row")?;
        let values: Option<Vec<i64>> = row.into_iter().collect();
        let values = values.with_context(|| format!("a NULL from {sql}"))?;
        values
            .try_into()
            .map_err(|_| anyhow::anyhow!("not {N} columns from {sql}"))
    }
}
