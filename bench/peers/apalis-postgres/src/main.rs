//! Peer benchmark harness: apalis 1.0 on PostgreSQL (apalis-postgres 1.0).
//!
//! `throughput --url U --jobs N --concurrency C`
//! `latency --url U --jobs N --rate R`
//! `enqueue-steady --url U --jobs N --rate R` (the child process of `latency`)
//!
//! Each of the first two prints one JSON line on stdout. An optional
//! `--batch-size B` overrides the fetch batch (default: the peer's own, 10).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis::prelude::*;
use apalis_postgres::{Config, PgPool, PostgresStorage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Every run ends by itself within this time.
const DEADLINE: Duration = Duration::from_secs(600);
/// Jobs the latency worker runs at once.
const LATENCY_CONCURRENCY: usize = 16;
/// The fallback poll beside LISTEN/NOTIFY, as in apalis-postgres's README pubsub example.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The no-op job; `key` identifies it in the latency run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    key: u64,
}

/// Shared by the handlers: how many ran, and when each key started (µs, 0 = not yet).
struct Tally {
    jobs: usize,
    ran: AtomicUsize,
    started_us: Vec<AtomicU64>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The no-op handler: records its key's start time once, and stops the worker
/// gracefully (in-flight jobs finish, buffered acks are flushed) after the last one.
async fn handle(
    job: Job,
    tally: Data<Arc<Tally>>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let first = match tally.started_us.get(job.key as usize) {
        Some(slot) => slot
            .compare_exchange(0, now_us(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok(),
        None => return Err(format!("job key {} out of range", job.key).into()),
    };
    if first && tally.ran.fetch_add(1, Ordering::SeqCst) + 1 == tally.jobs {
        worker.stop()?;
    }
    Ok(())
}

struct Args {
    mode: String,
    url: String,
    jobs: usize,
    concurrency: usize,
    rate: f64,
    /// None: the peer's default (Config::default().batch_size, 10).
    batch_size: Option<usize>,
}

fn parse_args() -> Result<Args, Error> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: throughput|latency|enqueue-steady --url U --jobs N ...")?;
    let (mut url, mut jobs, mut concurrency, mut rate, mut batch_size) =
        (None, None, None, None, None);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--jobs" => jobs = Some(value.parse()?),
            "--concurrency" => concurrency = Some(value.parse()?),
            "--rate" => rate = Some(value.parse()?),
            "--batch-size" => batch_size = Some(value.parse()?),
            "--durability" => {} // only the SQLite peers take it; PostgreSQL runs as shipped
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let args = Args {
        mode,
        url: url.ok_or("--url is required")?,
        jobs: jobs.ok_or("--jobs is required")?,
        concurrency: concurrency.unwrap_or(LATENCY_CONCURRENCY),
        rate: rate.unwrap_or(0.0),
        batch_size,
    };
    if args.jobs == 0 || args.concurrency == 0 || args.batch_size == Some(0) {
        return Err("--jobs, --concurrency and --batch-size must be positive".into());
    }
    if args.mode != "throughput" && args.rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    Ok(args)
}

/// What this peer runs with, for the JSON line.
async fn settings(
    pool: &PgPool,
    concurrency: usize,
    batch_size: Option<usize>,
) -> Result<Value, Error> {
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(pool)
        .await?;
    let batch = batch_size.unwrap_or(Config::default().batch_size);
    let defaults = if batch_size.is_some() {
        "batch_size set by --batch-size; otherwise"
    } else {
        "otherwise"
    };
    Ok(json!({
        "durability": format!("synchronous_commit={sync} (server setting, not changed)"),
        "synchronous_commit": sync,
        "poll_interval": "5 s (Strategy::new().interval, as in the README's pubsub example; the peer's default has none and only the 30 s heartbeat re-polls an idle worker)",
        "listen_notify": "yes: with_pubsub() (LISTEN apalis::job::insert; an AFTER INSERT trigger sends pg_notify per row)",
        "fetch_batch": format!("{batch} (Config::default batch_size is 10); one fetch in flight, the next when the batch is handed out"),
        "claiming": format!("apalis.get_jobs(): UPDATE ... SET status='Queued' FROM (SELECT ... ORDER BY priority DESC, run_at LIMIT {batch} FOR UPDATE SKIP LOCKED) RETURNING; per-job Lock event, then acks (UPDATE ... status, done_at) batched by the worker loop"),
        "enqueue": "throughput: push_bulk (one INSERT ... SELECT unnest(...) for all jobs); latency: push, one job per transaction",
        "concurrency": concurrency.to_string(),
        "pool": "PgPool::connect defaults (max 10 connections; the LISTEN connection holds one)",
        "changed_from_defaults": format!("with_pubsub() plus a 5 s interval strategy (opt-in; the README's pubsub example); concurrency limit set; {defaults} Config::default() (batch_size 10, lock_tasks true, persist_results true, heartbeat 30 s), no parallelize()"),
        "known_issue": "apalis-core 1.0.0 PollWith drops a Ready from its wake-up strategy: a NOTIFY taken in the same poll in which an empty fetch completes is lost, and the worker waits for the next interval tick (5 s) or heartbeat",
    }))
}

async fn connect(url: &str) -> Result<PgPool, Error> {
    Ok(PgPool::connect(url).await?)
}

/// Runs the worker until the handlers stop it after the last job.
async fn drain(
    pool: PgPool,
    batch_size: Option<usize>,
    tally: Arc<Tally>,
    concurrency: usize,
) -> Result<(), Error> {
    let mut storage = PostgresStorage::<Job>::new(&pool);
    if let Some(size) = batch_size {
        let config = storage.config().clone().batch_size(size);
        storage = storage.with_config(config);
    }
    let backend = storage
        .with_pubsub()
        .poll_with_strategy(Strategy::new().interval(POLL_INTERVAL));
    let worker = WorkerBuilder::new("peer-bench-worker")
        .backend(backend)
        .data(tally)
        .concurrency(concurrency)
        .build(handle);
    worker.run().await?;
    Ok(())
}

fn tally(jobs: usize) -> Arc<Tally> {
    Arc::new(Tally {
        jobs,
        ran: AtomicUsize::new(0),
        started_us: (0..jobs).map(|_| AtomicU64::new(0)).collect(),
    })
}

async fn throughput(args: &Args) -> Result<Value, Error> {
    let pool = connect(&args.url).await?;
    PostgresStorage::setup(&pool).await?;

    let mut storage = PostgresStorage::<Job>::new(&pool);
    let jobs: Vec<Job> = (0..args.jobs as u64).map(|key| Job { key }).collect();
    let start = Instant::now();
    storage.push_bulk(jobs).await?;
    let enqueue_secs = start.elapsed().as_secs_f64();

    let tally = tally(args.jobs);
    let start = Instant::now();
    drain(
        pool.clone(),
        args.batch_size,
        tally.clone(),
        args.concurrency,
    )
    .await?;
    let drain_secs = start.elapsed().as_secs_f64();

    let ran = tally.ran.load(Ordering::SeqCst);
    if ran != args.jobs {
        return Err(format!("worker stopped after {ran} of {} jobs", args.jobs).into());
    }
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE done_at IS NULL")
        .fetch_one(&pool)
        .await?;
    if open != 0 {
        return Err(
            format!("{open} jobs have no recorded completion after the worker stopped").into(),
        );
    }
    Ok(json!({
        "enqueue_jobs_per_sec": args.jobs as f64 / enqueue_secs,
        "drain_jobs_per_sec": args.jobs as f64 / drain_secs,
        "settings": settings(&pool, args.concurrency, args.batch_size).await?,
    }))
}

/// The child of `latency`: one job per transaction at a steady rate, printing `KEY COMMIT_MICROS`.
async fn enqueue_steady(args: &Args) -> Result<(), Error> {
    let pool = connect(&args.url).await?;
    let mut storage = PostgresStorage::<Job>::new(&pool);
    let start = tokio::time::Instant::now();
    for key in 0..args.jobs as u64 {
        tokio::time::sleep_until(start + Duration::from_secs_f64(key as f64 / args.rate)).await;
        storage.push(Job { key }).await?;
        println!("{key} {}", now_us());
    }
    Ok(())
}

async fn latency(args: &Args) -> Result<Value, Error> {
    let pool = connect(&args.url).await?;
    PostgresStorage::setup(&pool).await?;
    let tally = tally(args.jobs);
    let worker = tokio::spawn(drain(
        pool.clone(),
        args.batch_size,
        tally.clone(),
        LATENCY_CONCURRENCY,
    ));
    // Let the worker register and its LISTEN connection come up before the first insert.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args([
            "enqueue-steady",
            "--url",
            &args.url,
            "--jobs",
            &args.jobs.to_string(),
        ])
        .args(["--rate", &args.rate.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let mut commits = vec![0u64; args.jobs];
    while let Some(line) = lines.next_line().await? {
        let mut parts = line.split_whitespace();
        let key: usize = parts.next().ok_or("empty line")?.parse()?;
        let at: u64 = parts.next().ok_or("no commit time")?.parse()?;
        *commits.get_mut(key).ok_or("key out of range")? = at;
    }
    let status = child.wait().await?;
    if !status.success() {
        return Err(format!("enqueue-steady failed: {status}").into());
    }
    // The last job was committed; give the worker a minute to start the stragglers.
    match tokio::time::timeout(Duration::from_secs(60), worker).await {
        Ok(done) => done??,
        Err(_) => {
            let ran = tally.ran.load(Ordering::SeqCst);
            return Err(format!(
                "only {ran} of {} jobs started within 60 s of the last commit",
                args.jobs
            )
            .into());
        }
    }

    let mut ms: Vec<f64> = Vec::with_capacity(args.jobs);
    for (key, &commit) in commits.iter().enumerate() {
        let started = tally.started_us[key].load(Ordering::SeqCst);
        if commit == 0 || started == 0 {
            return Err(format!("job {key} has no commit or start time").into());
        }
        ms.push((started as f64 - commit as f64) / 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Ok(json!({
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": ms[ms.len() - 1],
        "settings": settings(&pool, LATENCY_CONCURRENCY, args.batch_size).await?,
    }))
}

#[tokio::main]
async fn main() {
    let run = async {
        let args = parse_args()?;
        match args.mode.as_str() {
            "throughput" => println!("{}", throughput(&args).await?),
            "latency" => println!("{}", latency(&args).await?),
            "enqueue-steady" => enqueue_steady(&args).await?,
            other => return Err(format!("unknown mode {other}").into()),
        }
        Ok::<(), Error>(())
    };
    let code = match tokio::time::timeout(DEADLINE, run).await {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            1
        }
        Err(_) => {
            eprintln!("error: deadline of {} s passed", DEADLINE.as_secs());
            2
        }
    };
    std::process::exit(code);
}
