//! The queue benchmark: enqueue, drain, and the raw-SQL ceiling.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use async_trait::async_trait;
use serde_json::{Value, json};
use tasuki_core::{ClaimParams, Completion, JobStatus, NewJob, Store, SystemClock, Timestamp};
use tasuki_sqlite::{Durability, SqliteConfig, SqliteStore};
use tasuki_worker::{Handler, JobContext, JobError, Registry, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub(crate) struct QueueArgs {
    /// Jobs per run.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker slots (and the ceiling's batch size).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// `normal`, `full` or `both`.
    #[arg(long, default_value = "both")]
    durability: String,
    /// Runs per durability; the summary gives each metric's median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One run's numbers.
#[derive(Clone, Copy)]
struct Sample {
    enqueue: f64,
    drain: f64,
    ceiling: f64,
    rss_mib: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[derive(clap::Args)]
pub(crate) struct DrainArgs {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    jobs: usize,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    durability: String,
}

pub(crate) async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let modes = match args.durability.as_str() {
        "both" => vec!["normal", "full"],
        one => vec![one],
    };
    println!(
        "queue benchmark: {} no-op jobs, {} worker slots, SQLite WAL",
        args.jobs, args.concurrency
    );
    for mode in modes {
        let durability: Durability = mode.parse().map_err(anyhow::Error::msg)?;
        let mut samples = Vec::new();
        for run in 1..=args.runs.max(1) {
            let sample = sample(&args, durability, mode).await?;
            println!(
                "  synchronous={} run {run}: enqueue {:.0}/s, drain {:.0}/s, ceiling {:.0}/s, peak RSS {:.1} MiB",
                mode.to_uppercase(),
                sample.enqueue,
                sample.drain,
                sample.ceiling,
                sample.rss_mib
            );
            samples.push(sample);
        }
        let of = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let (drain, ceiling) = (of(|s| s.drain), of(|s| s.ceiling));
        let ratio = median(samples.iter().map(|s| s.drain / s.ceiling).collect());
        println!(
            "synchronous={} (median of {}): enqueue {:.0} jobs/s | drain {:.0} jobs/s | ceiling {:.0} jobs/s | drain/ceiling {:.0}% | worker peak RSS {:.1} MiB",
            mode.to_uppercase(),
            samples.len(),
            of(|s| s.enqueue),
            drain,
            ceiling,
            100.0 * ratio,
            of(|s| s.rss_mib),
        );
    }
    Ok(())
}

/// Enqueue and drain in one database, the ceiling in another, side by side.
async fn sample(args: &QueueArgs, durability: Durability, mode: &str) -> anyhow::Result<Sample> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let store = open(&db, durability).await?;
    let enqueue = enqueue(&store, args.jobs).await?;
    drop(store);
    let drain = spawn_drain(&db, args.jobs, args.concurrency, mode)?;

    let store = open(&dir.path().join("ceiling.db"), durability).await?;
    enqueue_jobs(&store, args.jobs).await?;
    let ceiling = ceiling(&store, args.jobs, args.concurrency).await?;
    Ok(Sample {
        enqueue: args.jobs as f64 / enqueue.as_secs_f64(),
        drain: args.jobs as f64 / drain.secs,
        ceiling,
        rss_mib: drain.peak_rss_kib as f64 / 1024.0,
    })
}

async fn open(path: &Path, durability: Durability) -> anyhow::Result<Arc<dyn Store>> {
    let mut config = SqliteConfig::new(path);
    config.durability = durability;
    Ok(Arc::new(SqliteStore::open(&config).await?))
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
            })
            .collect();
        done += store
            .job_complete_many(Timestamp::now(), completions)
            .await?
            .len();
    }
    ensure!(done == n, "completed {done} of {n}");
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

struct DrainReport {
    secs: f64,
    peak_rss_kib: u64,
}

fn spawn_drain(
    db: &Path,
    jobs: usize,
    concurrency: usize,
    mode: &str,
) -> anyhow::Result<DrainReport> {
    let output = Command::new(std::env::current_exe()?)
        .args(["drain-child", "--db"])
        .arg(db)
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

/// Drains the database through a worker and prints the time and peak memory.
pub(crate) async fn drain_child(args: DrainArgs) -> anyhow::Result<()> {
    let store = open(
        &args.db,
        args.durability.parse().map_err(anyhow::Error::msg)?,
    )
    .await?;
    let ran = Arc::new(AtomicUsize::new(0));
    let all_ran = CancellationToken::new();
    let registry = Registry::new().register(Noop {
        ran: ran.clone(),
        target: args.jobs,
        all_ran: all_ran.clone(),
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
    println!("{}", json!({"secs": secs, "peak_rss_kib": peak_rss_kib()?}));
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

/// A job that does nothing but count itself.
struct Noop {
    ran: Arc<AtomicUsize>,
    target: usize,
    all_ran: CancellationToken,
}

#[async_trait]
impl Handler for Noop {
    const JOB_TYPE: &'static str = "noop";
    type Payload = Value;

    fn schema() -> Value {
        json!({})
    }

    async fn handle(&self, _: &JobContext, _: Value) -> Result<Option<Value>, JobError> {
        if self.ran.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.all_ran.cancel();
        }
        Ok(None)
    }
}
