//! The dashboard's reads on a big table: 1,000,000 jobs in four queues
//! (85 % completed, 3 % failed, 2 % cancelled, 256 running, the rest (about
//! 100,000) due or scheduled half and half), an hour of rollup minutes and eight workers; then every
//! request the dashboard makes, one at a time against `tasuki serve`, with
//! its latency percentiles.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;
use tasuki_core::{
    Metric, NewJob, RollupCount, Store, Timestamp, WorkerInfo, WorkerQueue, minute_of,
};

use crate::http::{Server, free_port, wait_ready};
use crate::pipeline::tasuki;
use crate::queue::{Target, open, percentile};

#[derive(clap::Args)]
pub(crate) struct DashboardArgs {
    /// The release build of the tasuki binary.
    #[arg(long, default_value = "target/release/tasuki")]
    tasuki: PathBuf,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    engine: String,
    /// The PostgreSQL server's maintenance database; the bench makes its own schema in it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Jobs in the table.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: usize,
    /// Requests of each kind, after ten to warm up.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Only the requests whose path starts with one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The aim: every request of the dashboard answers within this at the
/// 99th percentile.
const AIM_MS: f64 = 50.0;

/// Marks a request that the dashboard does not make, timed for comparison.
const API_ONLY: &str = "(API) ";

const TYPES: [&str; 4] = ["noop", "probe", "mail", "report"];

pub(crate) async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let targets = Target::chosen(&args.engine, &["full"], &args.postgres)?;
    println!(
        "dashboard benchmark: {} jobs, {} requests of each kind, one at a time (aim: p99 under {AIM_MS} ms)",
        args.jobs, args.requests
    );
    for target in &targets {
        let dir = tempfile::tempdir()?;
        let url = target.fresh(&dir, "dashboard").await?;
        let seeding = Instant::now();
        let failed_id = seed(&url, args.jobs).await?;
        println!(
            "\n{}: seeded in {:.0} s",
            target.label(),
            seeding.elapsed().as_secs_f64()
        );
        let port = free_port()?;
        let _serve = Server(
            tasuki(&args.tasuki, &url)
                .arg("serve")
                .env("PORT", port.to_string())
                .spawn()?,
        );
        wait_ready(port).await?;
        let client = reqwest::Client::new();
        let middle = args.jobs / 2;
        let paths = [
            "/dashboard".to_owned(),
            "/overview".to_owned(),
            "/queues".to_owned(),
            "/workers".to_owned(),
            "/schedules".to_owned(),
            "/jobs?order=newest&limit=50".to_owned(),
            "/jobs?order=newest&status=failed&limit=50".to_owned(),
            "/jobs?limit=50".to_owned(),
            format!("/jobs?limit=50&after={middle}"),
            "/jobs?status=failed&limit=50".to_owned(),
            "/jobs?status=processing&limit=50".to_owned(),
            "/jobs?status=pending&queue=q2&limit=50".to_owned(),
            "/jobs?job_type=probe&limit=50".to_owned(),
            // A filter that matches nothing: the dashboard bounds it (scan),
            // a window at a time.
            "/jobs?order=newest&job_type=none&limit=50&scan=100000".to_owned(),
            format!("/jobs/{failed_id}"),
            // Not the dashboard's: polled as often, or the API unbounded.
            format!("{API_ONLY}/health"),
            format!("{API_ONLY}/metrics"),
            format!("{API_ONLY}/jobs?order=newest&job_type=none&limit=50"),
        ];
        let paths = paths.into_iter().filter(|p| {
            let p = p.trim_start_matches(API_ONLY);
            args.only.is_empty() || args.only.iter().any(|o| p.starts_with(o.as_str()))
        });
        println!(
            "  {:<56} {:>8} {:>8} {:>8}",
            "request", "p50 ms", "p99 ms", "max ms"
        );
        let mut worst = (0.0, String::new());
        for label in paths {
            let path = label.trim_start_matches(API_ONLY);
            let mut ms = Vec::with_capacity(args.requests);
            for i in 0..args.requests + 10 {
                let started = Instant::now();
                let response = client
                    .get(format!("http://127.0.0.1:{port}{path}"))
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                ensure!(status.is_success(), "GET {path}: {status}");
                if i >= 10 {
                    ms.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            ms.sort_by(f64::total_cmp);
            let p99 = percentile(&ms, 99.0);
            if p99 > worst.0 && !label.starts_with(API_ONLY) {
                worst = (p99, path.to_owned());
            }
            println!(
                "  {label:<56} {:>8.2} {p99:>8.2} {:>8.2}",
                percentile(&ms, 50.0),
                ms[ms.len() - 1]
            );
        }
        println!(
            "  the dashboard's slowest p99: {:.2} ms ({}): {}",
            worst.0,
            worst.1,
            if worst.0 < AIM_MS {
                "within the aim"
            } else {
                "OVER the aim"
            }
        );
    }
    Ok(())
}

/// Fills the database; returns the id of a failed job.
async fn seed(url: &str, jobs: usize) -> anyhow::Result<i64> {
    let store = open(url, "full").await?;
    let now = Timestamp::now();
    let mut inserted = 0;
    while inserted < jobs {
        let chunk = (jobs - inserted).min(100_000);
        let new_jobs = (inserted..inserted + chunk)
            .map(|i| {
                NewJob::new(TYPES[i % 4], json!({"n": i}), now).queue(format!("q{}", i / 7 % 4))
            })
            .collect();
        store.job_insert_many(new_jobs).await?;
        inserted += chunk;
    }
    // 256 running: ids 90..99 of each hundred up to 2,560.
    let statuses = "UPDATE job_queue SET
        status = CASE WHEN id % 100 < 85 THEN 'completed' WHEN id % 100 < 88 THEN 'failed'
            WHEN id % 100 < 90 THEN 'cancelled' WHEN id <= 2560 THEN 'processing' ELSE status END,
        attempt = CASE WHEN id % 100 < 90 OR id <= 2560 THEN 1 ELSE 0 END,
        lease_owner = CASE WHEN id % 100 < 90 OR id <= 2560 THEN 'bench-worker' END,
        error_message = CASE WHEN id % 100 BETWEEN 85 AND 87 THEN 'boom' END";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::raw_sql(&format!(
            "{statuses},
                started_at = CASE WHEN id % 100 < 90 OR id <= 2560 THEN scheduled_at END,
                completed_at = CASE WHEN id % 100 < 90 THEN scheduled_at END,
                lease_expires_at = CASE WHEN id % 100 >= 90 AND id <= 2560 THEN scheduled_at + interval '1 day' END,
                scheduled_at = CASE WHEN id % 100 >= 95 THEN scheduled_at + interval '1 hour' ELSE scheduled_at END"
        ))
        .execute(&pool)
        .await?;
        // Apart: VACUUM runs in no transaction.
        sqlx::raw_sql("VACUUM ANALYZE job_queue")
            .execute(&pool)
            .await?;
    } else {
        let conn = rusqlite::Connection::open(url)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.execute_batch(&format!(
            "{statuses},
                started_at = CASE WHEN id % 100 < 90 OR id <= 2560 THEN scheduled_at END,
                completed_at = CASE WHEN id % 100 < 90 THEN scheduled_at END,
                lease_expires_at = CASE WHEN id % 100 >= 90 AND id <= 2560 THEN scheduled_at + 86400000000 END,
                scheduled_at = CASE WHEN id % 100 >= 95 THEN scheduled_at + 3600000000 ELSE scheduled_at END;
             ANALYZE"
        ))?;
    }
    rollup_and_workers(&*store, now).await?;
    // Ids start at 1 in a fresh table; those with id % 100 in 85..=87 failed.
    Ok(85)
}

/// An hour of minutes over the four queues, and eight workers.
async fn rollup_and_workers(store: &dyn Store, now: Timestamp) -> anyhow::Result<()> {
    let mut counts = Vec::new();
    for minute in 0..60u64 {
        let at = minute_of(now.saturating_sub(Duration::from_secs(60 * minute)));
        for queue in 0..4 {
            for metric in [Metric::Wait, Metric::Run, Metric::Failed] {
                for bucket in 20..50 {
                    counts.push(RollupCount {
                        minute: at,
                        queue: format!("q{queue}"),
                        metric,
                        bucket,
                        count: 10,
                    });
                }
            }
        }
    }
    store.rollup_add(counts).await?;
    for w in 0..8 {
        store
            .worker_beat(&WorkerInfo {
                id: format!("bench-host-{w}"),
                host: "bench-host".into(),
                pid: 1000 + w,
                queues: vec![WorkerQueue {
                    name: "*".into(),
                    slots: 32,
                }],
                slots: 32,
                running: 7,
                started_at: now,
                heartbeat_at: Timestamp::now(),
            })
            .await?;
    }
    Ok(())
}
