//! Benchmark peer: apalis 1.0 + apalis-sqlite 1.0 (SQLite engine), driven by the
//! tasuki bench orchestrator. Prints one JSON line on stdout; errors go to stderr, exit != 0.
//!
//! `<bin> throughput --url PATH --jobs N --concurrency C [--durability D] [--poll-ms P]`
//! `<bin> latency --url PATH --jobs N --rate R [--durability D] [--poll-ms P]`
//! `<bin> enqueue-steady --url PATH --jobs N --rate R [--durability D]` (spawned by `latency`)
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis::prelude::*;
use apalis_sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteStorage};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
const DEADLINE: Duration = Duration::from_secs(590); // inner waits; the watchdog fires at 600 s
const LATENCY_CONCURRENCY: usize = 16;

struct Args {
    url: String,
    jobs: usize,
    concurrency: usize,
    rate: f64,
    normalized: bool,
    poll_ms: u64,
}

fn parse(argv: &[String]) -> Res<Args> {
    let mut a = Args { url: String::new(), jobs: 0, concurrency: 1, rate: 100.0, normalized: false, poll_ms: 100 };
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("missing value for {k}"))?;
        match k.as_str() {
            "--url" => a.url = v.clone(),
            "--jobs" => a.jobs = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--poll-ms" => a.poll_ms = v.parse()?,
            "--durability" => match v.as_str() {
                "as-shipped" => a.normalized = false,
                "normalized" => a.normalized = true,
                _ => return Err(format!("unknown durability {v}").into()),
            },
            _ => return Err(format!("unknown flag {k}").into()),
        }
    }
    if a.url.is_empty() || a.jobs == 0 || a.concurrency == 0 || a.rate <= 0.0 {
        return Err("need --url and positive --jobs/--concurrency/--rate".into());
    }
    Ok(a)
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Open the store the way the peer documents it (README: pool, then `SqliteStorage::setup`).
/// `setup()` (apalis-sqlite src/lib.rs:149-171) sets journal_mode=WAL (persistent) and
/// synchronous=OFF, but the latter only on the one pooled connection it happens to run on.
/// as-shipped: keep that pool as is. normalized: run setup on a throwaway pool, close it, and
/// open a fresh pool whose every connection is opened with journal_mode=WAL, synchronous=FULL.
async fn open(a: &Args) -> Res<SqlitePool> {
    let base = SqliteConnectOptions::new().filename(&a.url).create_if_missing(true);
    if !a.normalized {
        let pool = SqlitePoolOptions::new().connect_with(base).await?;
        SqliteStorage::setup(&pool).await?;
        return Ok(pool);
    }
    let opts = base.pragma("journal_mode", "WAL").pragma("synchronous", "FULL");
    let setup_pool = SqlitePoolOptions::new().connect_with(opts.clone()).await?;
    SqliteStorage::setup(&setup_pool).await?;
    setup_pool.close().await;
    Ok(SqlitePoolOptions::new().connect_with(opts).await?)
}

/// Read journal_mode and synchronous back from every idle pooled connection.
async fn pragmas(pool: &SqlitePool) -> Res<(String, String)> {
    for _ in 0..200 {
        if pool.num_idle() >= pool.size() as usize {
            break; // wait (max 1 s) until released connections are back in the idle queue
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut conns = Vec::new();
    while let Some(c) = pool.try_acquire() {
        conns.push(c);
    }
    let (mut journal, mut sync) = (Vec::new(), Vec::new());
    for c in conns.iter_mut() {
        let j: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut **c).await?;
        let s: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut **c).await?;
        journal.push(j);
        sync.push(["OFF", "NORMAL", "FULL", "EXTRA"].get(s as usize).unwrap_or(&"?").to_string());
    }
    let n = conns.len();
    Ok((
        format!("{} (read back on {n} pooled connection(s))", journal.join(",")),
        format!("{} (read back on {n} pooled connection(s))", sync.join(",")),
    ))
}

fn settings(a: &Args, pool_pragmas: (String, String), extra: &[(&str, String)]) -> Value {
    let mut s = serde_json::Map::new();
    let mut put = |k: &str, v: String| s.insert(k.into(), Value::String(v));
    put("peer", "apalis 1.0.0 + apalis-sqlite 1.0.0 (sqlx 0.9 sqlite, bundled libsqlite3)".into());
    put("journal_mode", pool_pragmas.0);
    put("synchronous", pool_pragmas.1);
    put("durability", if a.normalized {
        "CHANGED: every pooled connection opened with PRAGMA journal_mode=WAL, synchronous=FULL; SqliteStorage::setup() ran on a separate pool that was then closed (setup sets synchronous=OFF on the connection it runs on)"
    } else {
        "peer defaults untouched: SqliteStorage::setup() sets journal_mode=WAL, temp_store=MEMORY, synchronous=OFF, cache_size=64000, journal_size_limit=64MiB on the ONE pooled connection it runs on; the pool's other connections keep SQLite's default synchronous=FULL, so commits are OFF or FULL depending on which connection runs them"
    }.into());
    put("pool", "sqlx SqlitePool defaults: max_connections=10, busy_timeout=5s".into());
    put("worker_config", "apalis_sqlite::Config::default(): batch_size=10, lock_tasks=true, persist_results=true, heartbeat 30s; queue = Rust type name (u64)".into());
    put("claim", "single worker; fetch_next = one tx: UPDATE Jobs SET status='Queued', lock_by=worker WHERE ROWID IN (SELECT .. status='Pending' ORDER BY priority,run_at,id LIMIT batch_size) RETURNING *; Lock (status=Running) and Complete (status=Done) events buffered in a channel (batch_size*4) and written in one tx per drain between fetches".into());
    put("poll", format!("poll_with_interval({} ms) (CHANGED: apalis-sqlite has no poll strategy by default: an idle plain SqliteStorage only re-fetches when a task completes or on the 30 s heartbeat; 100 ms is the value in the crate's examples/config.rs)", a.poll_ms));
    for (k, v) in extra {
        put(k, v.clone());
    }
    Value::Object(s)
}

/// Count handlers; the last one asks the worker to stop gracefully (it then waits for in-flight
/// tasks and flushes the buffered Lock/Complete events to SQLite before `run()` returns).
async fn count_job(_key: u64, done: Data<Arc<(AtomicUsize, usize)>>, wrk: WorkerContext) -> Result<(), BoxDynError> {
    let (count, target) = &**done;
    if count.fetch_add(1, Ordering::SeqCst) + 1 == *target {
        wrk.stop()?;
    }
    Ok(())
}

async fn throughput(a: Args) -> Res<Value> {
    let pool = open(&a).await?;
    let mut storage = SqliteStorage::<u64>::new(&pool);
    let t0 = Instant::now();
    storage.push_bulk((0..a.jobs as u64).collect()).await?; // one transaction, N INSERTs
    let enqueue = a.jobs as f64 / t0.elapsed().as_secs_f64();

    let done = Arc::new((AtomicUsize::new(0), a.jobs));
    let worker = WorkerBuilder::new("bench-worker")
        .backend(storage.clone().poll_with_interval(Duration::from_millis(a.poll_ms)))
        .data(done.clone())
        .concurrency(a.concurrency)
        .build(count_job);
    let t1 = Instant::now();
    tokio::time::timeout(DEADLINE, worker.run()).await.map_err(|_| "drain deadline")??;
    let drain_secs = t1.elapsed().as_secs_f64();

    let handled = done.0.load(Ordering::SeqCst);
    let done_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").fetch_one(&pool).await?;
    if handled != a.jobs || done_rows != a.jobs as i64 {
        return Err(format!("handled {handled}, Done rows {done_rows}, expected {}", a.jobs).into());
    }
    let extra = [
        ("enqueue", "TaskSink::push_bulk(Vec of N): all N INSERTs in one transaction".to_string()),
        ("concurrency", format!("{} (tower ConcurrencyLimit via WorkerBuilder::concurrency)", a.concurrency)),
        ("drain_end", "last handler calls WorkerContext::stop(); timed until worker.run() returns (events flushed), then verified all N rows status='Done'".into()),
    ];
    let s = settings(&a, pragmas(&pool).await?, &extra);
    pool.close().await;
    Ok(json!({ "enqueue_jobs_per_sec": enqueue, "drain_jobs_per_sec": a.jobs as f64 / drain_secs, "settings": s }))
}

async fn enqueue_steady(a: Args) -> Res<()> {
    let pool = open(&a).await?;
    let mut storage = SqliteStorage::<u64>::new(&pool);
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let start = Instant::now();
    for key in 0..a.jobs as u64 {
        tokio::time::sleep_until((start + interval * key as u32).into()).await;
        storage.push(key).await?; // one transaction per job
        let mut out = std::io::stdout().lock();
        writeln!(out, "{key} {}", now_us())?;
        out.flush()?;
    }
    let (j, s) = pragmas(&pool).await?;
    println!("PRAGMAS\t{j}\t{s}");
    pool.close().await;
    Ok(())
}

async fn latency(a: Args) -> Res<Value> {
    let pool = open(&a).await?;
    let storage = SqliteStorage::<u64>::new(&pool);
    let starts: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    async fn record(key: u64, starts: Data<Arc<Mutex<HashMap<u64, u64>>>>) -> Result<(), BoxDynError> {
        starts.lock().unwrap().insert(key, now_us());
        Ok(())
    }
    let worker = WorkerBuilder::new("bench-latency-worker")
        .backend(storage.poll_with_interval(Duration::from_millis(a.poll_ms)))
        .data(starts.clone())
        .concurrency(LATENCY_CONCURRENCY)
        .build(record);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run_until(async move { stop_rx.await.map_err(std::io::Error::other) }));

    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["enqueue-steady", "--url", &a.url, "--jobs", &a.jobs.to_string(), "--rate", &a.rate.to_string()]);
    cmd.args(["--durability", if a.normalized { "normalized" } else { "as-shipped" }]);
    let mut child = cmd.stdout(std::process::Stdio::piped()).kill_on_drop(true).spawn()?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + DEADLINE.min(Duration::from_secs_f64(a.jobs as f64 / a.rate + 120.0));
    let mut commits = HashMap::new();
    let mut child_pragmas = ("?".to_string(), "?".to_string());
    let read = async {
        while let Some(l) = lines.next_line().await? {
            if let Some(rest) = l.strip_prefix("PRAGMAS\t") {
                let mut p = rest.splitn(2, '\t');
                child_pragmas = (p.next().unwrap_or("?").into(), p.next().unwrap_or("?").into());
            } else if let Some((k, t)) = l.split_once(' ') {
                commits.insert(k.parse::<u64>()?, t.parse::<u64>()?);
            }
        }
        Res::Ok(())
    };
    tokio::time::timeout_at(deadline.into(), read).await.map_err(|_| "deadline reading enqueuer")??;
    let status = child.wait().await?;
    if !status.success() || commits.len() != a.jobs {
        return Err(format!("enqueuer failed ({status}), {} of {} commits", commits.len(), a.jobs).into());
    }
    while starts.lock().unwrap().len() < a.jobs {
        if Instant::now() > deadline {
            return Err(format!("deadline: {} of {} jobs started", starts.lock().unwrap().len(), a.jobs).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(60), run).await.map_err(|_| "worker stop deadline")???;

    let starts = starts.lock().unwrap().clone();
    let mut lat: Vec<f64> = commits.iter().map(|(k, c)| (starts[k] as f64 - *c as f64) / 1000.0).collect();
    lat.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| lat[((p / 100.0 * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1];
    let extra = [
        ("enqueue", format!("child process: TaskSink::push(key) one at a time at {} jobs/s (one transaction each)", a.rate)),
        ("enqueuer_journal_mode", child_pragmas.0),
        ("enqueuer_synchronous", child_pragmas.1),
        ("concurrency", format!("{LATENCY_CONCURRENCY} (tower ConcurrencyLimit via WorkerBuilder::concurrency)")),
    ];
    let s = settings(&a, pragmas(&pool).await?, &extra);
    pool.close().await;
    Ok(json!({ "p50_ms": pct(50.0), "p95_ms": pct(95.0), "p99_ms": pct(99.0), "max_ms": lat[lat.len() - 1], "settings": s }))
}

#[tokio::main]
async fn main() {
    // Never hang: a hard 10-minute watchdog for the whole process.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(600));
        eprintln!("error: watchdog deadline exceeded");
        std::process::exit(3);
    });
    let argv: Vec<String> = std::env::args().collect();
    let result = async {
        let mode = argv.get(1).map(String::as_str).unwrap_or("");
        if !["throughput", "latency", "enqueue-steady"].contains(&mode) {
            return Err("usage: throughput|latency|enqueue-steady --url PATH --jobs N ...".into());
        }
        let a = parse(&argv[2..])?;
        match mode {
            "throughput" => Ok(Some(throughput(a).await?)),
            "latency" => Ok(Some(latency(a).await?)),
            "enqueue-steady" => enqueue_steady(a).await.map(|_| None),
            _ => unreachable!(),
        }
    };
    match result.await {
        Ok(Some(v)) => println!("{v}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
