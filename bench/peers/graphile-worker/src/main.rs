//! graphile_worker (Rust, PostgreSQL) under the peer benchmark's protocol:
//!   throughput --url URL --jobs N --concurrency C [--profile P]
//!   latency --url URL --jobs N --rate R [--profile P]
//!   enqueue-steady --url URL --jobs N --rate R   (the latency run's child)
//! Each of the first two prints one JSON line on stdout.
//!
//! Profiles (both keep the default schema, 1 s poll interval, LISTEN/NOTIFY,
//! 20-connection pool and the server's synchronous_commit):
//! - `as-shipped`: only `concurrency` set. Each job slot claims one job per
//!   wake-up (poll tick or NOTIFY), so a backlog drains at C jobs per poll
//!   interval. The default for `latency`.
//! - `batched`: adds the crate's documented throughput options, a local queue
//!   (batch claims of up to C jobs) and 5 ms completion batching. The default
//!   for `throughput`; its local queue adds tens of ms to pickup latency.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graphile_worker::{
    IntoTaskHandlerResult, JobSpec, LocalQueueConfig, RawJobSpec, TaskHandler, WorkerContext,
    WorkerOptions, WorkerUtils,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DEADLINE: Duration = Duration::from_secs(600);
const LATENCY_CONCURRENCY: usize = 16;

/// The throughput job: no payload, counts its runs.
#[derive(Serialize, Deserialize)]
struct Noop {}

#[derive(Clone, Debug)]
struct Done(Arc<AtomicUsize>);

impl TaskHandler for Noop {
    const IDENTIFIER: &'static str = "noop";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        if let Some(done) = ctx.get_ext::<Done>() {
            done.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<(), String>(())
    }
}

/// The latency job: reports (key, start µs since the Unix epoch).
#[derive(Serialize, Deserialize)]
struct Probe {
    key: u64,
}

#[derive(Clone, Debug)]
struct Starts(mpsc::UnboundedSender<(u64, u128)>);

impl TaskHandler for Probe {
    const IDENTIFIER: &'static str = "probe";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let now = micros();
        if let Some(starts) = ctx.get_ext::<Starts>() {
            let _ = starts.0.send((self.key, now));
        }
        Ok::<(), String>(())
    }
}

fn micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

struct Args {
    mode: String,
    url: String,
    jobs: usize,
    concurrency: usize,
    rate: f64,
    /// `as-shipped`, or `batched` (the peer's documented throughput options).
    /// Throughput runs default to `batched`, latency runs to `as-shipped`.
    profile: String,
}

fn parse_args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("usage: throughput|latency|enqueue-steady --url URL --jobs N [--concurrency C] [--rate R] [--profile as-shipped|batched]")?;
    let mut flags = HashMap::new();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        flags.insert(flag, value);
    }
    let get = |name: &str| flags.get(name).cloned().ok_or(format!("missing {name}"));
    Ok(Args {
        url: get("--url")?,
        jobs: get("--jobs")?.parse()?,
        concurrency: flags
            .get("--concurrency")
            .map_or(Ok(LATENCY_CONCURRENCY), |c| c.parse())?,
        rate: flags.get("--rate").map_or(Ok(100.0), |r| r.parse())?,
        profile: flags.get("--profile").cloned().unwrap_or_else(|| {
            if mode == "throughput" {
                "batched"
            } else {
                "as-shipped"
            }
            .into()
        }),
        mode,
    })
}

#[tokio::main]
async fn main() {
    let outcome = async {
        let args = parse_args()?;
        match args.mode.as_str() {
            "throughput" => throughput(&args).await,
            "latency" => latency(&args).await,
            "enqueue-steady" => enqueue_steady(&args).await,
            other => Err(format!("unknown mode {other}").into()),
        }
    };
    let code = match tokio::time::timeout(DEADLINE, outcome).await {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("peer-graphile-worker: {e}");
            1
        }
        Err(_) => {
            eprintln!("peer-graphile-worker: deadline of {DEADLINE:?} passed");
            2
        }
    };
    std::process::exit(code);
}

/// A one-connection pool of our own for observing the database.
async fn observer(url: &str) -> Res<PgPool> {
    Ok(PgPoolOptions::new().max_connections(1).connect(url).await?)
}

/// The worker's options: the defaults, the given concurrency, and for the
/// `batched` profile a local queue of `concurrency` jobs plus completion batching.
fn options(args: &Args, concurrency: usize) -> Res<WorkerOptions> {
    let options = WorkerOptions::default()
        .database_url(&args.url)
        .concurrency(concurrency);
    match args.profile.as_str() {
        "as-shipped" => Ok(options),
        "batched" => Ok(options
            .local_queue(LocalQueueConfig::default().with_size(concurrency))
            .complete_job_batch_delay(Duration::from_millis(5))),
        other => Err(format!("unknown profile {other}").into()),
    }
}

async fn settings(db: &PgPool, args: &Args, concurrency: usize) -> Res<Value> {
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(db)
        .await?;
    let batched = args.profile == "batched";
    Ok(json!({
        "profile": args.profile,
        "synchronous_commit": sync,
        "durability": format!("synchronous_commit={sync} (server default, not changed)"),
        "poll_interval": "1000 ms (default)",
        "listen_notify": "yes: LISTEN jobs:insert; add_job(s) calls pg_notify (default)",
        "claiming": if batched {
            format!("batch: local queue claims up to {concurrency} jobs per query (changed; off by default)")
        } else {
            "single: each job slot claims one job (limit 1 for update skip locked) per wake-up (default)".into()
        },
        "completion": if batched { "batched DELETEs, 5 ms batch delay (changed; off by default)" } else { "one DELETE per job (default)" },
        "pool": "20 connections (default max_pg_conn)",
        "concurrency": concurrency.to_string(),
        "changed_from_defaults": if batched {
            format!("concurrency; local_queue(size {concurrency}); complete_job_batch_delay(5 ms)")
        } else {
            "concurrency only".into()
        },
    }))
}

async fn throughput(args: &Args) -> Res<()> {
    let db = observer(&args.url).await?;
    let done = Arc::new(AtomicUsize::new(0));
    // init() runs the migrations in the fresh database.
    let worker = options(args, args.concurrency)?
        .define_job::<Noop>()
        .add_extension(Done(done.clone()))
        .init()
        .await?;
    let worker = Arc::new(worker);

    // Enqueue: one set-based add_raw_jobs call (building the specs is not timed).
    let specs: Vec<RawJobSpec> = (0..args.jobs)
        .map(|_| RawJobSpec {
            identifier: Noop::IDENTIFIER.into(),
            payload: json!({}),
            spec: JobSpec::default(),
        })
        .collect();
    let utils = worker.create_utils();
    let started = Instant::now();
    let added = utils.add_raw_jobs(&specs).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    if added.len() != args.jobs {
        return Err(format!("added {} of {} jobs", added.len(), args.jobs).into());
    }

    // Drain: from worker start until every handler ran and the jobs table is empty.
    let started = Instant::now();
    let runner = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run().await }
    });
    loop {
        if runner.is_finished() {
            return Err(format!("worker stopped early: {:?}", runner.await?).into());
        }
        if done.load(Ordering::Relaxed) >= args.jobs {
            let left: i64 =
                sqlx::query_scalar("select count(*) from graphile_worker._private_jobs")
                    .fetch_one(&db)
                    .await?;
            if left == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    stop(&worker, runner).await?;
    let ran = done.load(Ordering::Relaxed);
    if ran != args.jobs {
        return Err(format!("{ran} handler runs for {} jobs", args.jobs).into());
    }

    let line = json!({
        "enqueue_jobs_per_sec": args.jobs as f64 / enqueue_secs,
        "drain_jobs_per_sec": args.jobs as f64 / drain_secs,
        "settings": settings(&db, args, args.concurrency).await?,
    });
    println!("{line}");
    Ok(())
}

async fn stop(
    worker: &graphile_worker::Worker,
    runner: tokio::task::JoinHandle<Result<(), graphile_worker::runner::WorkerRuntimeError>>,
) -> Res<()> {
    worker.request_shutdown();
    match tokio::time::timeout(Duration::from_secs(30), runner).await {
        Ok(joined) => joined?.map_err(|e| format!("worker: {e}"))?,
        Err(_) => return Err("worker did not stop within 30 s".into()),
    }
    Ok(())
}

async fn latency(args: &Args) -> Res<()> {
    let db = observer(&args.url).await?;
    let (tx, mut starts) = mpsc::unbounded_channel();
    let worker = options(args, LATENCY_CONCURRENCY)?
        .define_job::<Probe>()
        .add_extension(Starts(tx))
        .init()
        .await?;
    let worker = Arc::new(worker);
    let runner = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run().await }
    });
    // Let the worker open its LISTEN connection before the first enqueue.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["enqueue-steady", "--url", &args.url])
        .args([
            "--jobs",
            &args.jobs.to_string(),
            "--rate",
            &args.rate.to_string(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let reader = tokio::spawn(async move {
        let mut commits = HashMap::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            let mut parts = line.split_whitespace();
            if let (Some(k), Some(t)) = (parts.next(), parts.next()) {
                commits.insert(k.parse::<u64>()?, t.parse::<u128>()?);
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(commits)
    });

    // Every job's handler must start before the deadline (the enqueue time plus a minute).
    let until = Instant::now()
        + Duration::from_secs_f64(args.jobs as f64 / args.rate)
        + Duration::from_secs(60);
    let mut started = HashMap::new();
    while started.len() < args.jobs {
        match tokio::time::timeout_at(until.into(), starts.recv()).await {
            Ok(Some((key, at))) => {
                started.entry(key).or_insert(at);
            }
            Ok(None) => return Err("worker dropped its handlers' channel".into()),
            Err(_) => {
                return Err(format!(
                    "only {} of {} jobs started in time",
                    started.len(),
                    args.jobs
                )
                .into())
            }
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    if !status.success() {
        return Err(format!("enqueue-steady failed: {status}").into());
    }
    let commits = reader.await??;
    stop(&worker, runner).await?;

    let mut waits = Vec::with_capacity(args.jobs);
    for (key, start) in &started {
        let commit = commits
            .get(key)
            .ok_or(format!("no commit time for job {key}"))?;
        waits.push((*start as f64 - *commit as f64) / 1000.0);
    }
    waits.sort_by(f64::total_cmp);
    let mut settings = settings(&db, args, LATENCY_CONCURRENCY).await?;
    settings["enqueue"] = json!("add_raw_job, one per call, from a child process");
    let line = json!({
        "p50_ms": percentile(&waits, 50.0),
        "p95_ms": percentile(&waits, 95.0),
        "p99_ms": percentile(&waits, 99.0),
        "max_ms": waits.last().copied().unwrap_or(0.0),
        "settings": settings,
    });
    println!("{line}");
    Ok(())
}

/// Nearest rank, as tasuki's bench computes it.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Enqueues one job at a time at `rate` per second, printing `KEY COMMIT_MICROS`.
async fn enqueue_steady(args: &Args) -> Res<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.url)
        .await?;
    let utils = WorkerUtils::new(pool, graphile_worker::Schema::default());
    let begin = tokio::time::Instant::now();
    for key in 0..args.jobs as u64 {
        tokio::time::sleep_until(begin + Duration::from_secs_f64(key as f64 / args.rate)).await;
        utils
            .add_raw_job(Probe::IDENTIFIER, Probe { key }, JobSpec::default())
            .await?;
        println!("{key} {}", micros());
    }
    Ok(())
}
