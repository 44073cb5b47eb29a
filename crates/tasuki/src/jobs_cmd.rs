//! `tasuki jobs …`: enqueue, list, get, stats, retry, cancel.

use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;
use tasuki_core::{
    Job, JobFilter, JobId, JobStats, NewJob, ScheduleError, Store, StoreError, Timestamp, due_at,
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
                after: args.after.map(JobId),
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
    let payload = tasuki_app::schemas().prepare(&args.job_type, payload)?;
    let now = Timestamp::now();
    let scheduled_at = due_at(now, args.run_at.as_deref(), args.delay).map_err(|e| match e {
        ScheduleError::RunAt => anyhow::anyhow!(
            "--run-at `{}` is not an RFC 3339 time such as 2026-01-01T09:00:00Z",
            args.run_at.as_deref().unwrap_or_default()
        ),
        ScheduleError::TooLate => anyhow::anyhow!("the job would be due after the year 9999"),
    })?;
    let job = NewJob::new(&args.job_type, payload, now)
        .priority(args.priority)
        .max_retries(args.max_retries)
        .scheduled_at(scheduled_at);
    Ok(vec![job; args.count as usize])
}

async fn enqueue(store: &Arc<dyn Store>, mut jobs: Vec<NewJob>, json: bool) -> anyhow::Result<()> {
    if jobs.len() == 1 {
        let job = store.job_insert(jobs.remove(0)).await?;
        return if json {
            print_json(&job)
        } else {
            println!(
                "enqueued job {} ({}), due {}",
                job.id, job.job_type, job.scheduled_at
            );
            Ok(())
        };
    }
    let ids = store.job_insert_many(jobs).await?;
    let (first, last) = (ids.first().map(|id| id.0), ids.last().map(|id| id.0));
    if json {
        print_json(&serde_json::json!({"count": ids.len(), "first_id": first, "last_id": last}))
    } else {
        println!(
            "enqueued {} jobs, ids {} to {}",
            ids.len(),
            first.unwrap_or(0),
            last.unwrap_or(0)
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
        "{:>8}  {:<16} {:<13} {:>4} {:>7}  {:<27} error",
        "id", "type", "status", "prio", "attempt", "scheduled_at"
    );
    for job in jobs {
        println!(
            "{:>8}  {:<16} {:<13} {:>4} {:>7}  {:<27} {}",
            job.id,
            job.job_type,
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

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
