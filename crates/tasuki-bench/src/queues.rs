//! Named queues, limits and unique jobs, measured in one process per engine:
//! a drain spread over ten queues (a pool of slots per queue, or one worker
//! for every queue) against the same jobs in one queue, a rate
//! limit's observed starts against its limit, and unique enqueues against
//! plain ones, one at a time and in bulk.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;
use tasuki_core::{
    JobFilter, JobStatus, NewJob, QueueChange, RateLimit, Store, SystemClock, Timestamp,
    UniqueStates,
};
use tasuki_worker::{Registry, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::queue::{Noop, Target, median, open};

#[derive(clap::Args)]
pub(crate) struct QueuesArgs {
    /// Jobs per drain and per enqueue run.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker slots in all (split evenly over the ten queues).
    #[arg(long, default_value_t = 250)]
    concurrency: usize,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    engine: String,
    /// Runs per measurement; the table gives medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The rate limit's starts per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds of rate-limited starts (the jobs enqueued: rate × seconds).
    #[arg(long, default_value_t = 10)]
    rate_secs: u32,
    /// The PostgreSQL server's maintenance database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
}

pub(crate) async fn run(args: QueuesArgs) -> anyhow::Result<()> {
    let targets = Target::chosen(&args.engine, &["full"], &args.postgres)?;
    let dir = tempfile::tempdir()?;
    println!(
        "queues benchmark: {} jobs, {} slots, median of {}; rate limit {}/s for {} s",
        args.jobs, args.concurrency, args.runs, args.rate, args.rate_secs
    );
    for target in &targets {
        let mut one = Vec::new();
        let mut ten = Vec::new();
        let mut ten_every = Vec::new();
        let mut enqueue = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for run in 0..args.runs {
            // Alternate which goes first, so drift favours neither.
            let mut order = [(1, false), (10, true), (10, false)];
            if run % 2 == 1 {
                order.reverse();
            }
            for (queues, pools) in order {
                let url = target
                    .fresh(&dir, &format!("q{queues}_{pools}_{run}"))
                    .await?;
                let rate = drain(&url, args.jobs, args.concurrency, queues, pools).await?;
                match (queues, pools) {
                    (1, _) => one.push(rate),
                    (_, true) => ten.push(rate),
                    (_, false) => ten_every.push(rate),
                }
            }
            let url = target.fresh(&dir, &format!("enqueue_{run}")).await?;
            let store = open(&url, "full").await?;
            for (i, (unique, bulk)) in [(false, false), (true, false), (false, true), (true, true)]
                .into_iter()
                .enumerate()
            {
                enqueue[i].push(enqueue_rate(&store, args.jobs, unique, bulk, i).await?);
            }
        }
        let url = target.fresh(&dir, "rate").await?;
        let rated = rate_limited(&url, args.rate, args.rate_secs, args.concurrency).await?;
        let [single, single_unique, bulk, bulk_unique] = enqueue.map(median);
        let (one, ten, ten_every) = (median(one), median(ten), median(ten_every));
        println!("\n{}", target.label());
        println!("  drain, one queue:                {one:>10.0} jobs/s");
        println!(
            "  drain, ten queues (QUEUES):      {ten:>10.0} jobs/s ({:.2}x)",
            ten / one
        );
        println!(
            "  drain, ten queues (every queue): {ten_every:>10.0} jobs/s ({:.2}x)",
            ten_every / one
        );
        println!("  enqueue one at a time, plain:    {single:>10.0} jobs/s");
        println!(
            "  enqueue one at a time, unique:   {single_unique:>10.0} jobs/s ({:.2}x)",
            single_unique / single
        );
        println!("  enqueue in bulk, plain:          {bulk:>10.0} jobs/s");
        println!(
            "  enqueue in bulk, unique:         {bulk_unique:>10.0} jobs/s ({:.2}x)",
            bulk_unique / bulk
        );
        println!(
            "  rate limit {}/s: {} starts, most in any 1 s window {}, observed {:.1}/s after the first window ({:+.1} %)",
            args.rate,
            rated.starts,
            rated.most_in_a_window,
            rated.per_sec,
            (rated.per_sec / f64::from(args.rate) - 1.0) * 100.0
        );
    }
    Ok(())
}

/// Drains `jobs` no-op jobs spread over `queues` queues with a worker that
/// serves each with its share of the slots (`pools`, as `QUEUES` does), or
/// one that serves every queue with all of them (no `QUEUES`); jobs per
/// second.
async fn drain(
    url: &str,
    jobs: usize,
    slots: usize,
    queues: usize,
    pools: bool,
) -> anyhow::Result<f64> {
    let store = open(url, "full").await?;
    let now = Timestamp::now();
    let new_jobs = (0..jobs)
        .map(|i| NewJob::new("noop", json!({}), now).queue(format!("q{}", i % queues)))
        .collect();
    store.job_insert_many(new_jobs).await?;
    let all_ran = CancellationToken::new();
    let mut config = WorkerConfig::new("bench");
    config.concurrency = slots;
    if pools {
        config.queues = (0..queues)
            .map(|q| (format!("q{q}"), slots / queues))
            .collect();
    }
    let worker = worker(&store, config, jobs, &all_ran);
    let started = Instant::now();
    worker.run(all_ran).await?;
    let secs = started.elapsed().as_secs_f64();
    let done = store
        .job_stats(Timestamp::now())
        .await?
        .count(JobStatus::Completed);
    ensure!(done as usize == jobs, "completed {done} of {jobs}");
    Ok(jobs as f64 / secs)
}

fn worker(
    store: &Arc<dyn Store>,
    config: WorkerConfig,
    target: usize,
    all_ran: &CancellationToken,
) -> Worker {
    let registry = Registry::new().register(Noop {
        ran: Arc::new(AtomicUsize::new(0)),
        target,
        all_ran: all_ran.clone(),
        starts: None,
    });
    Worker::new(
        config,
        store.clone(),
        Arc::new(registry),
        Arc::new(SystemClock),
    )
}

/// Enqueues `jobs` jobs, each with a key of its own when `unique`; jobs per
/// second.
async fn enqueue_rate(
    store: &Arc<dyn Store>,
    jobs: usize,
    unique: bool,
    bulk: bool,
    run: usize,
) -> anyhow::Result<f64> {
    let now = Timestamp::now();
    let new_jobs: Vec<NewJob> = (0..jobs)
        .map(|i| {
            let job = NewJob::new("noop", json!({}), now);
            if unique {
                job.unique(format!("{run}-{i}"), UniqueStates::LIVE)
            } else {
                job
            }
        })
        .collect();
    let started = Instant::now();
    if bulk {
        let inserted = store.job_insert_many(new_jobs).await?;
        ensure!(
            inserted.iter().all(|i| !i.duplicate),
            "a fresh key was a duplicate"
        );
    } else {
        // As an API server does: many enqueues in flight at once.
        let mut pending = tokio::task::JoinSet::new();
        for job in new_jobs {
            let store = store.clone();
            pending.spawn(async move { store.job_insert(job).await });
            while pending.len() >= 64 {
                pending.join_next().await.expect("not empty")??;
            }
        }
        while let Some(done) = pending.join_next().await {
            done??;
        }
    }
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}

struct Rated {
    starts: usize,
    most_in_a_window: usize,
    per_sec: f64,
}

/// Runs `rate × secs` jobs through a queue limited to `rate` starts per
/// second, and reads when each started (the claim's time, which the limit
/// counts).
async fn rate_limited(url: &str, rate: u32, secs: u32, slots: usize) -> anyhow::Result<Rated> {
    let store = open(url, "full").await?;
    let limit = RateLimit {
        limit: rate,
        period: Duration::from_secs(1),
    };
    let change = QueueChange {
        rate_limit: Some(Some(limit)),
        ..QueueChange::default()
    };
    store
        .queue_update("rated", change, Timestamp::now())
        .await?;
    let jobs = (rate * secs) as usize;
    let now = Timestamp::now();
    store
        .job_insert_many(
            (0..jobs)
                .map(|_| NewJob::new("noop", json!({}), now).queue("rated"))
                .collect(),
        )
        .await?;
    let all_ran = CancellationToken::new();
    let mut config = WorkerConfig::new("bench");
    config.queues = vec![("rated".into(), slots)];
    worker(&store, config, jobs, &all_ran).run(all_ran).await?;
    let mut starts = Vec::with_capacity(jobs);
    let mut after = None;
    loop {
        let page = store
            .job_list(JobFilter {
                queue: Some("rated".into()),
                after,
                limit: 1_000,
                ..JobFilter::default()
            })
            .await?;
        starts.extend(
            page.items
                .iter()
                .filter_map(|j| j.started_at)
                .map(Timestamp::as_micros),
        );
        match page.next_after {
            Some(next) => after = Some(tasuki_core::JobId(next)),
            None => break,
        }
    }
    ensure!(
        starts.len() == jobs,
        "{} of {jobs} jobs started",
        starts.len()
    );
    starts.sort_unstable();
    let mut first = 0;
    let mut most = 0;
    for (i, start) in starts.iter().enumerate() {
        while start - starts[first] >= 1_000_000 {
            first += 1;
        }
        most = most.max(i - first + 1);
    }
    let span = (starts[jobs - 1] - starts[0]) as f64 / 1e6;
    // The first window's starts come at once; the rest at the limit's pace.
    let per_sec = (jobs - rate as usize) as f64 / span;
    Ok(Rated {
        starts: jobs,
        most_in_a_window: most,
        per_sec,
    })
}
