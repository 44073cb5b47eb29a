//! Peer benchmark for effectum 0.7 (SQLite job queue), speaking the peer protocol:
//!   throughput     --url PATH --jobs N --concurrency C [--durability as-shipped|normalized|wal]
//!   latency        --url PATH --jobs N --rate R [--durability D] [--in-process]
//!   enqueue-steady --url PATH --jobs N --rate R [--durability D]   (latency's child)
//! `--in-process` is an extra outside the protocol: the enqueuer is a task in the worker's
//! process, the only setup effectum 0.7 serves (it never polls the database).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use effectum::{Job, JobRunner, Queue, RunningJob, Worker};
use rusqlite::ffi;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::time::{sleep, sleep_until, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const JOB: &str = "noop";
const DEADLINE: Duration = Duration::from_secs(600);
/// How long the latency run still waits for pickups after the last enqueue.
const GRACE: Duration = Duration::from_secs(10);
const CLOSE: Option<Duration> = Some(Duration::from_secs(10));

struct Args {
    cmd: String,
    path: PathBuf,
    jobs: usize,
    concurrency: u16,
    rate: f64,
    durability: String,
    in_process: bool,
}

fn parse_args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or("missing subcommand")?;
    let (mut path, mut jobs, mut concurrency, mut rate) = (None, None, 16, 100.0f64);
    let (mut durability, mut in_process) = ("as-shipped".to_string(), false);
    while let Some(flag) = it.next() {
        if flag == "--in-process" {
            in_process = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => path = Some(PathBuf::from(v.trim_start_matches("sqlite://"))),
            "--jobs" => jobs = Some(v.parse()?),
            "--concurrency" => concurrency = v.parse()?,
            "--rate" => rate = v.parse()?,
            "--durability" => durability = v,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if !["as-shipped", "normalized", "wal"].contains(&durability.as_str()) {
        let takes = "as-shipped, normalized (WAL, FULL) or wal (WAL, effectum's NORMAL)";
        return Err(format!("--durability takes {takes}, not {durability}").into());
    }
    if concurrency == 0 || rate <= 0.0 || rate.is_nan() {
        return Err("--concurrency and --rate must be positive".into());
    }
    let (path, jobs) = (path.ok_or("missing --url")?, jobs.ok_or("missing --jobs")?);
    Ok(Args { cmd, path, jobs, concurrency, rate, durability, in_process })
}

#[tokio::main]
async fn main() {
    let result = match parse_args() {
        Ok(args) => tokio::time::timeout(DEADLINE, run(args))
            .await
            .unwrap_or_else(|_| Err(format!("deadline of {DEADLINE:?} passed").into())),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        eprintln!("peer-effectum: {e}");
    }
    std::process::exit(result.is_err() as i32); // effectum's background thread won't hold us
}

async fn run(a: Args) -> Res<()> {
    let child = a.cmd == "enqueue-steady";
    if !child && a.path.exists() {
        return Err(format!("{} already exists", a.path.display()).into());
    }
    if a.durability != "as-shipped" {
        if !child {
            // journal_mode=WAL is stored in the file: every later connection opens in WAL.
            let conn = rusqlite::Connection::open(&a.path)?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if mode != "wal" {
                return Err(format!("could not set WAL: journal_mode is {mode}").into());
            }
        }
        NORMALIZED.store(a.durability == "normalized", Relaxed);
    }
    // Registered after our own connection, so the first handle seen is effectum's writer.
    if unsafe { ffi::sqlite3_auto_extension(Some(on_open)) } != ffi::SQLITE_OK {
        return Err("sqlite3_auto_extension failed".into());
    }
    match a.cmd.as_str() {
        "throughput" => throughput(&a).await,
        "latency" => latency(&a).await,
        "enqueue-steady" => {
            let queue = Arc::new(Queue::new(&a.path).await?);
            let (tx, mut rx) = unbounded_channel();
            let enqueuer = tokio::spawn(enqueue_steady(queue.clone(), a.jobs, a.rate, tx));
            while let Some((key, micros)) = rx.recv().await {
                println!("{key} {micros}"); // println! flushes: Rust's stdout is line-buffered
            }
            enqueuer.await??;
            Ok(queue.close(CLOSE.unwrap()).await?)
        }
        other => Err(format!("unknown subcommand {other}").into()),
    }
}

// ---- durability. effectum opens its connections itself, so `normalized` reaches them
// through an SQLite auto-extension, which runs on every connection this process opens.

static NORMALIZED: AtomicBool = AtomicBool::new(false);
static IGNORED: AtomicUsize = AtomicUsize::new(0);
static HANDLES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_open(
    db: *mut ffi::sqlite3,
    _: *mut *const c_char,
    _: *const ffi::sqlite3_api_routines,
) -> c_int {
    HANDLES.lock().unwrap().push(db as usize);
    if NORMALIZED.load(Relaxed) {
        let (sql, null) = (c"PRAGMA synchronous=FULL".as_ptr(), std::ptr::null_mut());
        let rc = ffi::sqlite3_exec(db, sql, None, null, null as _);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // effectum then runs `PRAGMA synchronous = normal` (local_queue.rs:76): make it a no-op.
        ffi::sqlite3_set_authorizer(db, Some(keep_synchronous), null);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn keep_synchronous(
    _: *mut c_void,
    action: c_int,
    name: *const c_char,
    value: *const c_char,
    _: *const c_char,
    _: *const c_char,
) -> c_int {
    if action == ffi::SQLITE_PRAGMA
        && !value.is_null()
        && CStr::from_ptr(name).to_bytes().eq_ignore_ascii_case(b"synchronous")
    {
        IGNORED.fetch_add(1, Relaxed);
        return ffi::SQLITE_IGNORE;
    }
    ffi::SQLITE_OK
}

/// The settings object, with what is in effect read back from effectum's writer connection.
fn settings(a: &Args, extra: &[(&str, String)]) -> Res<Value> {
    let writer = *HANDLES.lock().unwrap().first().ok_or("effectum opened no connection")?;
    // Not owned: dropping it leaves effectum's connection open.
    let conn = unsafe { rusqlite::Connection::from_handle(writer as *mut ffi::sqlite3)? };
    let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    let sync: usize = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    let sync = ["OFF", "NORMAL", "FULL", "EXTRA"].get(sync).unwrap_or(&"?");
    let (durability, changed) = if a.durability == "normalized" {
        let changed = format!(
            "yes: PRAGMA journal_mode=WAL on the new file before effectum opened it; \
             PRAGMA synchronous=FULL on every connection (SQLite auto-extension), effectum's own \
             `PRAGMA synchronous = normal` made a no-op by an authorizer (ignored {}x)",
            IGNORED.load(Relaxed)
        );
        (format!("journal_mode={journal}, synchronous={sync} (set by this harness)"), changed)
    } else if a.durability == "wal" {
        let changed = "yes: PRAGMA journal_mode=WAL on the new file before effectum opened it; \
             synchronous left as effectum sets it";
        let d = format!(
            "journal_mode={journal} (set by this harness), synchronous={sync} (effectum's own)"
        );
        (d, changed.to_string())
    } else {
        let d = format!("journal_mode={journal}, synchronous={sync} (effectum's own)");
        (d, "no".to_string())
    };
    let mut s = json!({
        "peer": format!("effectum 0.7.0, SQLite {} bundled (rusqlite 0.31)", rusqlite::version()),
        "durability": durability,
        "journal_mode": journal,
        "journal_mode_note": "effectum runs `PRAGMA journal = wal` (local_queue.rs:74): no such \
            pragma, silently ignored, so as shipped the file keeps the rollback journal (delete)",
        "synchronous": format!("{sync} on effectum's writer connection (local_queue.rs:76 sets normal)"),
        "busy_timeout": "5000 ms (rusqlite's default; effectum sets none)",
        "changed_from_defaults": changed,
        "wakeup": "in-process tokio Notify on add through the same Queue value, or when one of \
            the worker's jobs finishes; jobs added by another process are seen only then",
        "poll_interval": "none: effectum 0.7 never polls the database",
        "writes": "all writes (add, claim, complete) go through one writer thread, up to 50 \
            queued operations per transaction, one savepoint each (db_writer.rs:201)",
        "claim": "while running < min_concurrency (default max_concurrency) the worker has the \
            writer SELECT up to max_concurrency - running ready jobs ORDER BY priority DESC, \
            run_at and UPDATE active_jobs SET active_worker_id each (ready_jobs.rs)",
        "completion": "DELETE FROM active_jobs + UPDATE jobs, through the writer; the worker's \
            `finished` count rises after that transaction committed",
    });
    for (k, v) in extra {
        s[*k] = json!(v);
    }
    Ok(s)
}

// ---- throughput

async fn throughput(a: &Args) -> Res<()> {
    let queue = Queue::new(&a.path).await?;
    let jobs: Vec<Job> = (0..a.jobs).map(|_| Job::builder(JOB).build()).collect();
    let t = Instant::now();
    let ids = queue.add_jobs(jobs).await?;
    let enqueue = t.elapsed().as_secs_f64();
    if ids.len() != a.jobs {
        return Err(format!("enqueued {} of {}", ids.len(), a.jobs).into());
    }

    let ran = Arc::new(AtomicUsize::new(0));
    let noop = JobRunner::builder(JOB, |_: RunningJob, ran: Arc<AtomicUsize>| async move {
        ran.fetch_add(1, Relaxed);
        Ok::<_, effectum::Error>(())
    });
    let t = Instant::now();
    let worker = Worker::builder(&queue, ran.clone())
        .max_concurrency(a.concurrency)
        .jobs([noop.build()])
        .build()
        .await?;
    // `finished` counts the jobs whose completion effectum has committed.
    while (worker.counts().finished as usize) < a.jobs {
        sleep(Duration::from_millis(1)).await;
    }
    let drain = t.elapsed().as_secs_f64();
    if ran.load(Relaxed) != a.jobs {
        return Err(format!("{} handlers ran for {} jobs", ran.load(Relaxed), a.jobs).into());
    }
    // Settings are read on effectum's writer connection, which is opened
    // without SQLite's mutex: only once the worker is gone and it is idle.
    worker.unregister(CLOSE).await?;
    let settings = settings(
        a,
        &[
            ("enqueue", format!("one Queue::add_jobs of all {} jobs: one transaction", a.jobs)),
            (
                "worker",
                format!("one Worker, max_concurrency={}, min_concurrency default", a.concurrency),
            ),
            ("drain_end", "Worker::counts().finished == N, checked every 1 ms".into()),
        ],
    )?;
    queue.close(CLOSE.unwrap()).await?;
    let n = a.jobs as f64;
    let (enqueue, drain) = (n / enqueue, n / drain);
    println!(
        "{}",
        json!({ "enqueue_jobs_per_sec": enqueue, "drain_jobs_per_sec": drain, "settings": settings })
    );
    Ok(())
}

// ---- latency

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// Enqueues jobs one at a time at `rate` per second; sends (key, commit time) for each.
async fn enqueue_steady(
    queue: Arc<Queue>,
    jobs: usize,
    rate: f64,
    out: UnboundedSender<(u64, i64)>,
) -> Res<()> {
    let start = Instant::now();
    for key in 0..jobs as u64 {
        sleep_until(start + Duration::from_secs_f64(key as f64 / rate)).await;
        Job::builder(JOB).json_payload(&json!({ "key": key }))?.add_to(&queue).await?;
        out.send((key, now_micros()))?;
    }
    Ok(())
}

async fn latency(a: &Args) -> Res<()> {
    let queue = Arc::new(Queue::new(&a.path).await?);
    let (start_tx, mut starts_rx) = unbounded_channel::<(u64, i64)>();
    let record =
        JobRunner::builder(JOB, |job: RunningJob, tx: UnboundedSender<(u64, i64)>| async move {
            let started = now_micros();
            let payload: Value = job.json_payload().map_err(|e| e.to_string())?;
            let key = payload["key"].as_u64().ok_or("payload without key")?;
            tx.send((key, started)).map_err(|e| e.to_string())
        });
    let worker = Worker::builder(&queue, start_tx)
        .max_concurrency(16)
        .jobs([record.build()])
        .build()
        .await?;
    sleep(Duration::from_secs(1)).await; // let the worker start and go idle

    let (commit_tx, mut commits_rx) = unbounded_channel::<(u64, i64)>();
    let producer = if a.in_process {
        tokio::spawn(enqueue_steady(queue.clone(), a.jobs, a.rate, commit_tx))
    } else {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["enqueue-steady", "--url"])
            .arg(&a.path)
            .args(["--jobs", &a.jobs.to_string(), "--rate", &a.rate.to_string()])
            .args(["--durability", &a.durability])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Some(line) = lines.next_line().await? {
                let (key, micros) = line.split_once(' ').ok_or("bad line from enqueue-steady")?;
                commit_tx.send((key.parse()?, micros.parse()?))?;
            }
            match child.wait().await? {
                s if s.success() => Ok(()),
                s => Err(format!("enqueue-steady failed: {s}").into()),
            }
        })
    };

    let (mut commits, mut starts) = (HashMap::new(), HashMap::new());
    let mut producer = Some(producer);
    let mut give_up = Instant::now() + DEADLINE;
    while starts.len() < a.jobs || commits.len() < a.jobs {
        tokio::select! {
            Some((key, t)) = starts_rx.recv() => { starts.entry(key).or_insert(t); }
            c = commits_rx.recv(), if producer.is_some() => match c {
                Some((key, t)) => { commits.insert(key, t); }
                None => {
                    producer.take().unwrap().await??;
                    give_up = Instant::now() + GRACE;
                }
            },
            _ = sleep_until(give_up) => break,
        }
    }

    let mut waits: Vec<f64> = (starts.iter())
        .filter_map(|(k, s)| commits.get(k).map(|c| (s - c) as f64 / 1000.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let rank = ((p / 100.0) * waits.len() as f64).ceil() as usize;
        waits.get(rank.clamp(1, waits.len().max(1)) - 1).copied()
    };
    let enqueuer = match a.in_process {
        true => "a task in this process on the same Queue value (--in-process)",
        false => "child process enqueue-steady with a Queue of its own on the same file",
    };
    worker.unregister(CLOSE).await.ok();
    let settings = settings(
        a,
        &[
            ("enqueue", format!("{enqueuer}: Job::add_to one at a time, {} jobs/s", a.rate)),
            ("worker", "one Worker in this process, max_concurrency=16".into()),
            ("started", format!("{} of {} jobs started", starts.len(), a.jobs)),
        ],
    )?;
    queue.close(CLOSE.unwrap()).await.ok();
    let (p50, p95, p99, max) = (pct(50.0), pct(95.0), pct(99.0), waits.last());
    println!(
        "{}",
        json!({ "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max, "settings": settings })
    );
    if starts.len() < a.jobs {
        return Err(format!(
            "{} of {} jobs started by {GRACE:?} after the last enqueue: effectum 0.7 never polls \
             the database, so its worker does not see jobs that another process adds",
            starts.len(),
            a.jobs
        )
        .into());
    }
    Ok(())
}
