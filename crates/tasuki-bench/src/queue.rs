//! The queue benchmark: enqueue, drain, the raw-SQL ceiling, and pickup
//! latency across processes, on SQLite and PostgreSQL.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use async_trait::async_trait;
use serde_json::{Value, json};
use tasuki_core::{
    ClaimParams, Completion, JobId, JobStatus, NewJob, Store, SystemClock, Timestamp,
};
use tasuki_postgres::{PgConfig, PgStore};
use tasuki_sqlite::{SqliteConfig, SqliteStore};
use tasuki_worker::{Done, Handler, JobContext, JobError, Registry, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::raw;

#[derive(clap::Args)]
pub(crate) struct QueueArgs {
    /// Jobs per throughput run.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker slots (and the ceiling's batch size).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    engine: String,
    /// SQLite's `normal`, `full` or `both`.
    #[arg(long, default_value = "both")]
    durability: String,
    /// Throughput runs per setting; the summary gives each metric's median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The PostgreSQL server's maintenance database; the bench makes its own schemas in it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Jobs of the pickup-latency run (0 skips it).
    #[arg(long, default_value_t = 2_000)]
    latency_jobs: usize,
    /// Their rate, jobs per second, enqueued one at a time.
    #[arg(long, default_value_t = 200)]
    latency_rate: u32,
}

/// One throughput run's numbers.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) enqueue: f64,
    pub(crate) drain: f64,
    /// Claim and complete through the store, with no worker.
    pub(crate) ceiling: f64,
    /// The same statements with no driver either (SQLite only).
    pub(crate) raw_ceiling: Option<f64>,
    rss_mib: f64,
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Where a run's databases go: a fresh file per database, or a fresh schema.
#[derive(Clone)]
pub(crate) enum Target {
    /// `normal` or `full`.
    Sqlite(&'static str),
    Postgres(String),
}

impl Target {
    /// The targets that `--engine` (`sqlite`, `postgres` or `both`) names:
    /// SQLite at each of `modes`, PostgreSQL on `postgres`.
    pub(crate) fn chosen(
        engine: &str,
        modes: &[&'static str],
        postgres: &str,
    ) -> anyhow::Result<Vec<Target>> {
        let mut targets = Vec::new();
        if matches!(engine, "sqlite" | "both") {
            targets.extend(modes.iter().map(|mode| Target::Sqlite(mode)));
        }
        if matches!(engine, "postgres" | "both") {
            targets.push(Target::Postgres(postgres.to_owned()));
        }
        ensure!(
            !targets.is_empty(),
            "--engine takes sqlite, postgres or both"
        );
        Ok(targets)
    }

    pub(crate) fn label(&self) -> String {
        match self {
            Target::Sqlite(mode) => format!("SQLite synchronous={}", mode.to_uppercase()),
            Target::Postgres(_) => "PostgreSQL".to_owned(),
        }
    }

    fn durability(&self) -> &'static str {
        match self {
            Target::Sqlite(mode) => mode,
            Target::Postgres(_) => "full",
        }
    }

    /// A new, empty database named `name` (a file in `dir`, or a schema).
    pub(crate) async fn fresh(
        &self,
        dir: &tempfile::TempDir,
        name: &str,
    ) -> anyhow::Result<String> {
        match self {
            Target::Sqlite(..) => Ok(dir.path().join(format!("{name}.db")).display().to_string()),
            Target::Postgres(server) => {
                use sqlx::Connection;
                let mut admin = sqlx::PgConnection::connect(server).await?;
                let schema = format!("tasuki_bench_{name}");
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await?;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut admin)
                    .await?;
                Ok(format!("{server}?options=-csearch_path%3D{schema}"))
            }
        }
    }
}

/// Opens a database by URL (a path is SQLite).
pub(crate) async fn open(url: &str, durability: &str) -> anyhow::Result<Arc<dyn Store>> {
    if PgConfig::is_postgres_url(url) {
        let mut config = PgConfig::new(url);
        config.max_connections = 8;
        return Ok(Arc::new(PgStore::open(&config).await?));
    }
    let mut config = SqliteConfig::new(url);
    config.durability = durability.parse().map_err(anyhow::Error::msg)?;
    Ok(Arc::new(SqliteStore::open(&config).await?))
}

#[derive(clap::Args)]
pub(crate) struct DrainArgs {
    #[arg(long)]
    url: String,
    #[arg(long)]
    jobs: usize,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    durability: String,
    /// Report each job's start time instead of the total (the latency run).
    #[arg(long)]
    starts: bool,
}

pub(crate) async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let modes = match args.durability.as_str() {
        "both" => vec!["normal", "full"],
        "normal" => vec!["normal"],
        _ => vec!["full"],
    };
    let targets = Target::chosen(&args.engine, &modes, &args.postgres)?;
    println!(
        "queue benchmark: {} no-op jobs, {} worker slots; SQLite in WAL mode, PostgreSQL at {}",
        args.jobs,
        args.concurrency,
        args.postgres.rsplit_once('@').map_or("?", |(_, host)| host)
    );
    for target in &targets {
        let mut samples = Vec::new();
        for run in 1..=args.runs.max(1) {
            let sample = sample(target, args.jobs, args.concurrency).await?;
            println!(
                "  {} run {run}: enqueue {:.0}/s, drain {:.0}/s, ceiling {:.0}/s{}, peak RSS {:.1} MiB",
                target.label(),
                sample.enqueue,
                sample.drain,
                sample.ceiling,
                raw_label(sample.raw_ceiling),
                sample.rss_mib
            );
            samples.push(sample);
        }
        let of = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let ratio = median(samples.iter().map(|s| s.drain / s.ceiling).collect());
        let raw = raw_ceilings(&samples);
        let raw_ratio = raw.as_ref().map_or(String::new(), |raw| {
            let ratios = samples.iter().zip(raw).map(|(s, raw)| s.drain / raw);
            format!(
                " | drain/raw ceiling {:.0}%",
                100.0 * median(ratios.collect())
            )
        });
        println!(
            "{} (median of {}): enqueue {:.0} jobs/s | drain {:.0} jobs/s | ceiling {:.0} jobs/s{} | drain/ceiling {:.0}%{raw_ratio} | worker peak RSS {:.1} MiB",
            target.label(),
            samples.len(),
            of(|s| s.enqueue),
            of(|s| s.drain),
            of(|s| s.ceiling),
            raw_label(raw.map(median)),
            100.0 * ratio,
            of(|s| s.rss_mib),
        );
    }
    if args.latency_jobs > 0 {
        for target in targets.iter().filter(|t| t.durability() == "full") {
            let l = latency(target, args.latency_jobs, args.latency_rate).await?;
            println!(
                "{} pickup latency across processes ({} jobs at {}/s): p50 {:.2} ms | p95 {:.2} ms | p99 {:.2} ms | max {:.2} ms",
                target.label(),
                args.latency_jobs,
                args.latency_rate,
                l.p50,
                l.p95,
                l.p99,
                l.max,
            );
        }
    }
    Ok(())
}

/// Every run's raw ceiling, when every run has one (SQLite).
pub(crate) fn raw_ceilings(samples: &[Sample]) -> Option<Vec<f64>> {
    samples.iter().map(|s| s.raw_ceiling).collect()
}

/// `, raw ceiling N/s` when there is one.
fn raw_label(raw: Option<f64>) -> String {
    raw.map_or(String::new(), |raw| format!(", raw ceiling {raw:.0}/s"))
}

/// Pickup latency percentiles, in milliseconds.
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// Jobs enqueued one at a time at a steady rate by this process, run by a
/// worker in another: the time from each enqueue's commit to its handler's start.
pub(crate) async fn latency(target: &Target, jobs: usize, rate: u32) -> anyhow::Result<Latency> {
    let dir = tempfile::tempdir()?;
    let url = target.fresh(&dir, "latency").await?;
    let store = open(&url, target.durability()).await?;
    let child = Command::new(std::env::current_exe()?)
        .args(["drain-child", "--starts", "--url", &url])
        .args(["--jobs", &jobs.to_string()])
        .args(["--concurrency", "16", "--durability", target.durability()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the worker")?;
    // Let the worker start and go idle before the first job.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut committed = std::collections::HashMap::with_capacity(jobs);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    for _ in 0..jobs {
        tick.tick().await;
        let job = NewJob::new(Noop::JOB_TYPE, json!({}), Timestamp::now());
        let id = store.job_insert(job).await?.job.id;
        committed.insert(id, Timestamp::now().as_micros());
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    ensure!(output.status.success(), "the latency worker failed");
    let starts: Vec<(i64, i64)> = serde_json::from_slice(&output.stdout)?;
    let mut waits: Vec<f64> = starts
        .into_iter()
        .map(|(id, started)| (started - committed[&JobId(id)]) as f64 / 1_000.0)
        .collect();
    waits.sort_by(f64::total_cmp);
    Ok(Latency {
        p50: percentile(&waits, 50.0),
        p95: percentile(&waits, 95.0),
        p99: percentile(&waits, 99.0),
        max: waits[waits.len() - 1],
    })
}

/// Enqueue and drain in one database, the ceiling in another, side by side.
pub(crate) async fn sample(
    target: &Target,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<Sample> {
    let dir = tempfile::tempdir()?;
    let url = target.fresh(&dir, "drain").await?;
    let store = open(&url, target.durability()).await?;
    let enqueue = enqueue(&store, jobs).await?;
    drop(store);
    let drain = spawn_drain(&url, jobs, concurrency, target.durability())?;

    let url = target.fresh(&dir, "ceiling").await?;
    let store = open(&url, target.durability()).await?;
    enqueue_jobs(&store, jobs).await?;
    let ceiling = ceiling(&store, jobs, concurrency).await?;
    drop(store);
    let raw_ceiling = match target {
        Target::Sqlite(..) => {
            let url = target.fresh(&dir, "raw").await?;
            enqueue_jobs(&open(&url, target.durability()).await?, jobs).await?;
            let raw = tokio::task::spawn_blocking(move || raw::ceiling(&url, jobs, concurrency));
            Some(raw.await??)
        }
        Target::Postgres(_) => None,
    };
    Ok(Sample {
        enqueue: jobs as f64 / enqueue.as_secs_f64(),
        drain: jobs as f64 / drain.secs,
        ceiling,
        raw_ceiling,
        rss_mib: drain.peak_rss_kib as f64 / 1024.0,
    })
}

fn noops(n: usize) -> Vec<NewJob> {
    let now = Timestamp::now();
    (0..n)
        .map(|_| NewJob::new(Noop::JOB_TYPE, json!({}), now))
        .collect()
}

async fn enqueue_jobs(store: &Arc<dyn Store>, n: usize) -> anyhow::Result<()> {
    let ids = store.job_insert_many(noops(n)).await?;
    ensure!(ids.len() == n, "inserted {} of {n}", ids.len());
    Ok(())
}

/// Times one set-based insert of `n` jobs (building the rows is not timed).
async fn enqueue(store: &Arc<dyn Store>, n: usize) -> anyhow::Result<Duration> {
    let jobs = noops(n);
    let started = Instant::now();
    let ids = store.job_insert_many(jobs).await?;
    let took = started.elapsed();
    ensure!(ids.len() == n, "inserted {} of {n}", ids.len());
    Ok(took)
}

/// Batched claim and complete with no worker: what the SQL allows.
async fn ceiling(store: &Arc<dyn Store>, n: usize, batch: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut done = 0;
    loop {
        let now = Timestamp::now();
        let claim = ClaimParams {
            owner: "ceiling",
            queue: None,
            limit: batch as u32,
            now,
            lease_expires_at: now.saturating_add(Duration::from_secs(30)),
        };
        let jobs = store.job_claim(claim).await?;
        if jobs.is_empty() {
            break;
        }
        let completions = jobs
            .iter()
            .map(|j| Completion {
                id: j.id,
                attempt: j.attempt,
                result: None,
                writes: None,
            })
            .collect();
        done += store
            .job_complete_many(Timestamp::now(), completions)
            .await?
            .ids
            .len();
    }
    ensure!(done == n, "completed {done} of {n}");
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

struct DrainReport {
    secs: f64,
    peak_rss_kib: u64,
}

/// Drains a prepared database in a child process.
fn spawn_drain(
    url: &str,
    jobs: usize,
    concurrency: usize,
    mode: &str,
) -> anyhow::Result<DrainReport> {
    let output = Command::new(std::env::current_exe()?)
        .args(["drain-child", "--url", url])
        .args([
            "--jobs",
            &jobs.to_string(),
            "--concurrency",
            &concurrency.to_string(),
            "--durability",
            mode,
        ])
        .output()
        .context("running the drain")?;
    ensure!(
        output.status.success(),
        "drain failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout)?;
    Ok(DrainReport {
        secs: report["secs"].as_f64().context("secs")?,
        peak_rss_kib: report["peak_rss_kib"].as_u64().context("peak_rss_kib")?,
    })
}

/// Drains the database through a worker and prints the time and peak
/// memory, or (`--starts`) each job's id and start time.
pub(crate) async fn drain_child(args: DrainArgs) -> anyhow::Result<()> {
    let store = open(&args.url, &args.durability).await?;
    let ran = Arc::new(AtomicUsize::new(0));
    let all_ran = CancellationToken::new();
    let starts = Arc::new(Mutex::new(Vec::with_capacity(args.jobs)));
    let registry = Registry::new().register(Noop {
        ran: ran.clone(),
        target: args.jobs,
        all_ran: all_ran.clone(),
        starts: args.starts.then(|| starts.clone()),
    });
    let mut config = WorkerConfig::new("bench");
    config.concurrency = args.concurrency;
    let worker = Worker::new(
        config,
        store.clone(),
        Arc::new(registry),
        Arc::new(SystemClock),
    );
    let started = Instant::now();
    // The worker stops claiming once every job has run; its shutdown then
    // waits for the last outcomes to be written, so the time covers them.
    worker.run(all_ran).await?;
    let secs = started.elapsed().as_secs_f64();
    let stats = store.job_stats(Timestamp::now()).await?;
    ensure!(
        stats.count(JobStatus::Completed) as usize == args.jobs,
        "completed {} of {}",
        stats.count(JobStatus::Completed),
        args.jobs
    );
    if args.starts {
        let starts = std::mem::take(&mut *starts.lock().expect("not poisoned"));
        println!("{}", serde_json::to_string(&starts)?);
    } else {
        println!("{}", json!({"secs": secs, "peak_rss_kib": peak_rss_kib()?}));
    }
    Ok(())
}

fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}

/// Job ids and their handlers' start times, in microseconds.
pub(crate) type Starts = Arc<Mutex<Vec<(i64, i64)>>>;

/// A job that does nothing but count itself (and note when it started).
pub(crate) struct Noop {
    pub(crate) ran: Arc<AtomicUsize>,
    pub(crate) target: usize,
    pub(crate) all_ran: CancellationToken,
    pub(crate) starts: Option<Starts>,
}

#[async_trait]
impl Handler for Noop {
    const JOB_TYPE: &'static str = "noop";
    type Payload = Value;

    fn schema() -> Value {
        json!({})
    }

    async fn handle(&self, ctx: &JobContext, _: Value) -> Result<Done, JobError> {
        if let Some(starts) = &self.starts {
            let now = Timestamp::now().as_micros();
            starts
                .lock()
                .expect("not poisoned")
                .push((ctx.job_id.0, now));
        }
        if self.ran.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.all_ran.cancel();
        }
        Ok(Done::default())
    }
}
