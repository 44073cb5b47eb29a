//! The command line. Every setting also comes from the environment; a flag
//! overrides its variable.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tasuki",
    version,
    about = "Durable background jobs: an HTTP API, a queue in the database, workers."
)]
#[command(after_help = "With no command, tasuki runs the API and the workers (`tasuki run`).")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Args, Debug)]
pub(crate) struct GlobalArgs {
    /// The database: a file path or sqlite://PATH (SQLite), or
    /// postgres://USER@HOST:PORT/DATABASE (PostgreSQL).
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "users.db")]
    pub(crate) database_url: String,
    /// PostgreSQL: the most connections this process opens (default: 16 for
    /// the API, 4 + WORKER_COUNT for the workers, the sum for both).
    #[arg(long, global = true, env = "DATABASE_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) database_pool_size: Option<u32>,
    /// SQLite's durability: `full` survives power loss, `normal` a process crash.
    #[arg(
        long,
        global = true,
        env = "SQLITE_SYNCHRONOUS",
        default_value = "full"
    )]
    pub(crate) synchronous: String,
    /// A level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
    /// Log format; `auto` is JSON unless the log goes to a terminal.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub(crate) log_format: LogFormat,
    /// How long in-flight requests and jobs may take to finish after SIGTERM or SIGINT.
    #[arg(long, global = true, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub(crate) shutdown_timeout: Duration,
    /// A TOML file of periodic jobs; `run`, `serve`, `worker` and `migrate`
    /// make the database's schedules exactly these at start.
    #[arg(long, global = true, env = "SCHEDULES_FILE")]
    pub(crate) schedules_file: Option<std::path::PathBuf>,
    /// For tests only: the process's clock stands still at this RFC 3339 time.
    #[arg(long, global = true, env = "TASUKI_TEST_NOW", hide = true)]
    pub(crate) test_now: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Runs the HTTP API and the workers in one process (the default).
    Run(RunArgs),
    /// Runs the HTTP API alone; workers run elsewhere as `tasuki worker`.
    Serve(ServeArgs),
    /// Applies pending database migrations (they also run at every start).
    Migrate,
    /// Runs workers until SIGTERM or SIGINT (with `/health` and `/metrics` on METRICS_PORT).
    Worker(WorkerArgs),
    /// Enqueues, inspects and manages jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Lists queues; pauses, resumes and limits them across every process.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// Lists, pauses and resumes periodic jobs (declared in SCHEDULES_FILE).
    #[command(subcommand)]
    Schedules(SchedulesCommand),
}

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 500ms or 30s: {e}"))?;
    if d < Duration::from_millis(1) {
        return Err(format!("`{text}` is too short: at least 1ms"));
    }
    Ok(d)
}

/// A lease must outlast a few heartbeats' worth of scheduling noise.
fn lease(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d < Duration::from_millis(100) {
        return Err(format!("`{text}` is too short for a lease: at least 100ms"));
    }
    Ok(d)
}

#[derive(Args, Debug)]
pub(crate) struct WorkerArgs {
    /// How many jobs run at once (when QUEUES is not set).
    #[arg(long, env = "WORKER_COUNT", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,
    /// The queues to serve, each with how many of its jobs run at once here,
    /// like `default:3,email:10`; unset: every queue, WORKER_COUNT at once.
    #[arg(long, env = "QUEUES", value_parser = queue_slots)]
    pub(crate) queues: Option<QueueSlots>,
    /// How long a claimed job stays leased without a heartbeat.
    #[arg(long, env = "LEASE_TIMEOUT", default_value = "30s", value_parser = lease)]
    pub(crate) lease_timeout: Duration,
    /// How long one attempt may run before it is failed.
    #[arg(long, env = "JOB_TIMEOUT", default_value = "5m", value_parser = duration)]
    pub(crate) job_timeout: Duration,
    /// The first retry's backoff ceiling; it doubles with every retry.
    #[arg(long, env = "RETRY_BASE_DELAY", default_value = "1s", value_parser = duration)]
    pub(crate) retry_base_delay: Duration,
    /// The largest backoff.
    #[arg(long, env = "RETRY_MAX_DELAY", default_value = "1h", value_parser = duration)]
    pub(crate) retry_max_delay: Duration,
    /// How long completed and cancelled jobs are kept before they are deleted.
    #[arg(long, env = "JOB_RETENTION", default_value = "7d", value_parser = duration)]
    pub(crate) job_retention: Duration,
    /// Exit once no job is pending, running or waiting to retry.
    #[arg(long)]
    pub(crate) until_empty: bool,
    /// Serve `/health` and `/metrics` on this port (worker command only).
    #[arg(long, env = "METRICS_PORT")]
    pub(crate) metrics_port: Option<u16>,
}

impl WorkerArgs {
    /// How many jobs run at once in all.
    pub(crate) fn slots(&self) -> usize {
        self.queues
            .as_ref()
            .map_or(usize::from(self.concurrency), QueueSlots::total)
    }
}

/// `QUEUES`: queues and their slots, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueSlots(pub(crate) Vec<(String, usize)>);

impl QueueSlots {
    pub(crate) fn total(&self) -> usize {
        self.0.iter().map(|(_, slots)| slots).sum()
    }
}

fn queue_slots(text: &str) -> Result<QueueSlots, String> {
    let mut queues: Vec<(String, usize)> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, slots) = entry
            .split_once(':')
            .ok_or_else(|| format!("`{entry}` is not QUEUE:SLOTS (like default:3,email:10)"))?;
        if !tasuki_core::is_queue_name(name) {
            return Err(format!(
                "`{name}` is not a queue name (1 to 100 letters, digits, `_`, `-` or `.`)"
            ));
        }
        let slots: usize = slots
            .parse()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| format!("`{slots}` slots for `{name}`: expected 1 to 10000"))?;
        if queues.iter().any(|(q, _)| q == name) {
            return Err(format!("`{name}` is named twice"));
        }
        queues.push((name.to_owned(), slots));
    }
    if queues.is_empty() {
        return Err("name at least one queue, like default:3".into());
    }
    Ok(QueueSlots(queues))
}

fn queue_name(text: &str) -> Result<String, String> {
    if tasuki_core::is_queue_name(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a queue name (1 to 100 letters, digits, `_`, `-` or `.`)"
        ))
    }
}

/// A command's arguments as the environment and the defaults give them.
pub(crate) fn from_env<T: Args>() -> anyhow::Result<T> {
    #[derive(Parser)]
    struct Only<T: Args> {
        #[command(flatten)]
        args: T,
    }
    Ok(Only::<T>::try_parse_from(["tasuki"])?.args)
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub(crate) host: std::net::IpAddr,
    /// The port to listen on; 0 picks a free one.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub(crate) port: u16,
    /// default (unknown body fields are refused), flexible (kept) or strict.
    #[arg(long, env = "VALIDATION_MODE", default_value = "default")]
    pub(crate) validation_mode: tasuki_api::ValidationMode,
    /// The largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_SIZE", default_value_t = 1024 * 1024)]
    pub(crate) max_body_size: usize,
    /// The longest a request may take.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub(crate) request_timeout: Duration,
    /// When set, POST /jobs, retry and cancel need `Authorization: Bearer <token>`.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
    #[command(flatten)]
    pub(crate) worker: WorkerArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum JobsCommand {
    /// Enqueues a job (or --count copies of it) after checking its payload.
    Enqueue(EnqueueArgs),
    /// Lists jobs, oldest first.
    List(ListArgs),
    /// Shows one job with its attempt history and result.
    Get(IdArgs),
    /// Counts jobs by status and type.
    Stats(JsonArg),
    /// Makes a failed or cancelled job due again with fresh retries.
    Retry(IdArgs),
    /// Cancels a job that has not started.
    Cancel(IdArgs),
}

#[derive(Args, Debug)]
pub(crate) struct EnqueueArgs {
    /// The job type, such as probe or data_analysis.
    pub(crate) job_type: String,
    /// The payload, a JSON object.
    #[arg(default_value = "{}")]
    pub(crate) payload: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    pub(crate) priority: i32,
    /// Run after this long, like 10s or 5m.
    #[arg(long, value_parser = duration, conflicts_with = "run_at")]
    pub(crate) delay: Option<Duration>,
    /// Run at this time (RFC 3339).
    #[arg(long)]
    pub(crate) run_at: Option<String>,
    /// Retries after the first attempt (default: the job type's).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=1000))]
    pub(crate) max_retries: Option<i32>,
    /// The queue (default: the job type's).
    #[arg(long, value_parser = queue_name)]
    pub(crate) queue: Option<String>,
    /// At most one job of this type with this key is live; a duplicate
    /// prints the job that holds the key.
    #[arg(long)]
    pub(crate) unique_key: Option<String>,
    /// Final statuses in which the unique key also holds: completed, failed, cancelled.
    #[arg(long, value_delimiter = ',', requires = "unique_key")]
    pub(crate) unique_states: Vec<tasuki_core::JobStatus>,
    /// How many identical jobs to enqueue, in one statement.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub(crate) count: u32,
    #[command(flatten)]
    pub(crate) json: JsonArg,
}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Only jobs in this status.
    #[arg(long)]
    pub(crate) status: Option<tasuki_core::JobStatus>,
    /// Only jobs of this type.
    #[arg(long = "type")]
    pub(crate) job_type: Option<String>,
    /// Only jobs in this queue.
    #[arg(long, value_parser = queue_name)]
    pub(crate) queue: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,
    /// Only jobs after this id (the cursor a previous page printed).
    #[arg(long)]
    pub(crate) after: Option<i64>,
    #[command(flatten)]
    pub(crate) json: JsonArg,
}

#[derive(Subcommand, Debug)]
pub(crate) enum QueuesCommand {
    /// Lists the queues with live jobs or settings.
    List(JsonArg),
    /// Stops a queue's jobs from starting, in every process.
    Pause(QueueArgs),
    /// Lets a paused queue's jobs start again.
    Resume(QueueArgs),
    /// Sets a queue's limits across every process.
    Limit(LimitArgs),
}

#[derive(Args, Debug)]
pub(crate) struct QueueArgs {
    #[arg(value_parser = queue_name)]
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) json: JsonArg,
}

#[derive(Args, Debug)]
pub(crate) struct LimitArgs {
    #[arg(value_parser = queue_name)]
    pub(crate) name: String,
    /// The most jobs of the queue processing at once over every process, or `none`.
    #[arg(long, value_parser = concurrency)]
    pub(crate) concurrency: Option<Limit<u32>>,
    /// At most N starts in any window of PERIOD, like `100/1s`, or `none`.
    #[arg(long, value_parser = rate_limit)]
    pub(crate) rate: Option<Limit<tasuki_core::RateLimit>>,
    #[command(flatten)]
    pub(crate) json: JsonArg,
}

/// A limit to set, or `none` to lift it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit<T>(pub(crate) Option<T>);

fn concurrency(text: &str) -> Result<Limit<u32>, String> {
    if text == "none" {
        return Ok(Limit(None));
    }
    text.parse()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .map(|n| Limit(Some(n)))
        .ok_or_else(|| format!("`{text}`: expected 1 to 1000000, or none"))
}

fn rate_limit(text: &str) -> Result<Limit<tasuki_core::RateLimit>, String> {
    if text == "none" {
        return Ok(Limit(None));
    }
    let (limit, period) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not N/PERIOD (like 100/1s), or none"))?;
    let limit = limit
        .parse()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| format!("`{limit}`: expected 1 to 1000000 starts"))?;
    let period = duration(period)?;
    if period > Duration::from_secs(86_400) {
        return Err(format!("`{text}`: the period is at most 1d"));
    }
    Ok(Limit(Some(tasuki_core::RateLimit { limit, period })))
}

#[derive(Args, Debug)]
pub(crate) struct IdArgs {
    pub(crate) id: i64,
    #[command(flatten)]
    pub(crate) json: JsonArg,
}

#[derive(Args, Debug)]
pub(crate) struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SchedulesCommand {
    /// Lists schedules with their last slot, next run and newest jobs.
    List(JsonArg),
    /// Stops a schedule from firing until it is resumed.
    Pause(NameArgs),
    /// Fires a paused schedule again from now on; the slots it slept through stay unfired.
    Resume(NameArgs),
}

#[derive(Args, Debug)]
pub(crate) struct NameArgs {
    /// The schedule's name, as SCHEDULES_FILE declares it.
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) json: JsonArg,
}
