//! `tasuki jobs …`: enqueue, list, get, stats, retry, cancel.

use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;
use tasuki_core::{
    Job, JobFilter, JobId, JobStats, NewJob, ScheduleError, Store, StoreError, Timestamp,
    UniqueStates, due_at,
};

use crate::cli::{EnqueueArgs, GlobalArgs, JobsCommand};
use crate::config;

pub(crate) async fn run(global: &GlobalArgs, command: JobsCommand) -> anyhow::Result<()> {
    // Everything is checked before the database is opened: a bad command writes nothing.
    let database = config::database(global, 2)?;
    let open = async || Ok::<_, anyhow::Error>(config::open(&database).await?.queue);
    let now = Timestamp::now();
    match command {
        JobsCommand::Enqueue(args) => {
            let jobs = new_jobs(&args)?;
            enqueue(&open().await?, jobs, args.json.json).await
        }
        JobsCommand::List(args) => {
            let filter = JobFilter {
                status: args.status,
                job_type: args.job_type,
                queue: args.queue,
                after: args.after.map(JobId),
                newest_first: false,
                scan: None,
                limit: args.limit,
            };
            let page = open().await?.job_list(filter).await?;
            if args.json.json {
                return print_json(&page);
            }
            print_table(&page.items);
            if let Some(next) = page.next_after {
                println!("more: --after {next}");
            }
            Ok(())
        }
        JobsCommand::Get(args) => show(
            open().await?.job_get(JobId(args.id)).await,
            args.id,
            args.json.json,
        ),
        JobsCommand::Stats(args) => {
            let stats = open().await?.job_stats(now).await?;
            if args.json {
                print_json(&stats)
            } else {
                print_stats(&stats)
            }
        }
        JobsCommand::Retry(args) => show(
            open().await?.job_retry(JobId(args.id), now).await,
            args.id,
            args.json.json,
        ),
        JobsCommand::Cancel(args) => show(
            open().await?.job_cancel(JobId(args.id), now).await,
            args.id,
            args.json.json,
        ),
    }
}

/// The jobs an `enqueue` asks for, checked against their type's schema.
fn new_jobs(args: &EnqueueArgs) -> anyhow::Result<Vec<NewJob>> {
    let payload: serde_json::Value = serde_json::from_str(&args.payload)
        .with_context(|| format!("the payload is not valid JSON: {}", args.payload))?;
    let now = Timestamp::now();
    let scheduled_at = due_at(now, args.run_at.as_deref(), args.delay).map_err(|e| match e {
        ScheduleError::RunAt => anyhow::anyhow!(
            "--run-at `{}` is not an RFC 3339 time such as 2026-01-01T09:00:00Z",
            args.run_at.as_deref().unwrap_or_default()
        ),
        ScheduleError::TooLate => anyhow::anyhow!("the job would be due after the year 9999"),
    })?;
    let mut job = NewJob::new(&args.job_type, payload, now)
        .priority(args.priority)
        .scheduled_at(scheduled_at);
    job.max_retries = args.max_retries;
    job.queue.clone_from(&args.queue);
    if let Some(key) = &args.unique_key {
        let states = UniqueStates::with(args.unique_states.iter().copied());
        job = job.unique(key, states);
    }
    tasuki_app::schemas().check(&mut job)?;
    Ok(vec![job; args.count as usize])
}

async fn enqueue(store: &Arc<dyn Store>, mut jobs: Vec<NewJob>, json: bool) -> anyhow::Result<()> {
    if jobs.len() == 1 {
        let enqueued = store.job_insert(jobs.remove(0)).await?;
        let job = &enqueued.job;
        return if json {
            print_json(&enqueued)
        } else if enqueued.duplicate {
            println!(
                "not enqueued: job {} ({}, {}) holds the unique key",
                job.id, job.job_type, job.status
            );
            Ok(())
        } else {
            println!(
                "enqueued job {} ({}) in queue {}, due {}",
                job.id, job.job_type, job.queue, job.scheduled_at
            );
            Ok(())
        };
    }
    let inserted = store.job_insert_many(jobs).await?;
    let added: Vec<i64> = inserted
        .iter()
        .filter(|i| !i.duplicate)
        .map(|i| i.id.0)
        .collect();
    let (first, last) = (added.first(), added.last());
    let duplicates = inserted.len() - added.len();
    if json {
        print_json(&serde_json::json!({
            "count": added.len(), "first_id": first, "last_id": last, "duplicates": duplicates
        }))
    } else {
        println!(
            "enqueued {} jobs, ids {} to {}{}",
            added.len(),
            first.unwrap_or(&0),
            last.unwrap_or(&0),
            match duplicates {
                0 => String::new(),
                n => format!("; {n} duplicates not enqueued"),
            }
        );
        Ok(())
    }
}

fn show(job: Result<Job, StoreError>, id: i64, json: bool) -> anyhow::Result<()> {
    let job = match job {
        Ok(job) => job,
        Err(StoreError::NotFound) => bail!("no job with id {id}"),
        Err(StoreError::Conflict(why)) => bail!("{why}"),
        Err(other) => return Err(other.into()),
    };
    if json {
        return print_json(&job);
    }
    let opt = |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    println!("id:            {}", job.id);
    println!("type:          {}", job.job_type);
    println!("queue:         {}", job.queue);
    if let Some(key) = &job.unique_key {
        println!("unique key:    {key}");
    }
    println!("status:        {}", job.status);
    println!("priority:      {}", job.priority);
    println!(
        "attempt:       {} (retries {} of {})",
        job.attempt, job.retry_count, job.max_retries
    );
    println!("payload:       {}", job.payload);
    println!("scheduled at:  {}", job.scheduled_at);
    println!("created at:    {}", job.created_at);
    println!("started at:    {}", opt(job.started_at));
    println!("completed at:  {}", opt(job.completed_at));
    if let Some(owner) = &job.lease_owner {
        println!(
            "worker:        {owner} (lease until {})",
            opt(job.lease_expires_at)
        );
    }
    if let Some(result) = &job.result {
        println!("result:        {result}");
    }
    for error in &job.errors {
        println!(
            "attempt {} failed at {}: {}",
            error.attempt, error.at, error.error
        );
    }
    Ok(())
}

fn print_table(jobs: &[Job]) {
    println!(
        "{:>8}  {:<16} {:<12} {:<13} {:>4} {:>7}  {:<27} error",
        "id", "type", "queue", "status", "prio", "attempt", "scheduled_at"
    );
    for job in jobs {
        println!(
            "{:>8}  {:<16} {:<12} {:<13} {:>4} {:>7}  {:<27} {}",
            job.id,
            job.job_type,
            job.queue,
            job.status.as_str(),
            job.priority,
            job.attempt,
            job.scheduled_at.to_string(),
            job.error_message.as_deref().unwrap_or("")
        );
    }
}

fn print_stats(stats: &JobStats) -> anyhow::Result<()> {
    for (status, count) in &stats.by_status {
        println!("{:<14} {count}", status.as_str());
    }
    match stats.oldest_ready_age_ms {
        Some(ms) => println!("oldest due job waited {ms} ms"),
        None => println!("no job is due"),
    }
    for (job_type, counts) in &stats.by_type {
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
        println!("{job_type}: {}", counts.join(" "));
    }
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
