//! `tasuki-bench`: measurements that `cargo xtask bench` runs in release mode.
//!
//! `queue` bulk-enqueues no-op jobs, drains them through the worker pool in a
//! child process (so that its peak memory is the worker's own), and measures
//! in the same run the ceiling of the SQL itself: batched claim and complete
//! with no worker around them, through the store and, on SQLite, with no
//! driver either.
//!
//! `peers` runs the same throughput and latency work on tasuki and on the
//! peer queues of `bench/peers/`, each built as a package of its own.
//!
//! `idle` watches an idle `tasuki run` and `tasuki worker`: CPU time and
//! peak memory with nothing to do.
//!
//! `http` loads `POST /users` of the real `tasuki run` with wrk, and in the
//! same run a baseline server that this crate builds: a bare axum handler
//! doing the same insert, with no validation and no job.
//!
//! `pipeline` drives the release binary alone: the signup jobs (which
//! write) drained beside jobs that write nothing, then `tasuki run` under
//! signups offered open loop at fixed rates, to the email sent.
//!
//! `dashboard` seeds 1,000,000 jobs and times every request the dashboard
//! makes against `tasuki serve`, one at a time.
//!
//! `queues` measures named queues in one process per engine: a drain over
//! ten queues against one, a rate limit's observed starts, and unique
//! enqueues against plain ones.

mod cpu;
mod dashboard;
mod http;
mod idle;
mod peers;
mod pipeline;
mod queue;
mod queues;
mod raw;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tasuki-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue and drain throughput with the raw-SQL ceiling, and pickup latency, on both engines.
    Queue(queue::QueueArgs),
    /// Internal: drains a prepared database and reports on stdout.
    DrainChild(queue::DrainArgs),
    /// POST /users under load: tasuki against a bare baseline, side by side.
    Http(http::HttpArgs),
    /// Internal: the baseline server of the HTTP benchmark.
    Baseline(http::BaselineArgs),
    /// tasuki against apalis, effectum and graphile_worker, side by side.
    Peers(peers::PeersArgs),
    /// CPU and memory of an idle `tasuki run` and `tasuki worker`.
    Idle(idle::IdleArgs),
    /// The signup pipeline of the release binary: its drain against no-write jobs, then open-loop load end to end.
    Pipeline(pipeline::PipelineArgs),
    /// Named queues, a rate limit and unique enqueues, on both engines.
    Queues(queues::QueuesArgs),
    /// The dashboard's requests on a table of 1,000,000 jobs, on both engines.
    Dashboard(dashboard::DashboardArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Queue(args) => runtime.block_on(queue::run(args)),
        Command::DrainChild(args) => runtime.block_on(queue::drain_child(args)),
        Command::Http(args) => runtime.block_on(http::run(args)),
        Command::Baseline(args) => runtime.block_on(http::baseline(args)),
        Command::Peers(args) => runtime.block_on(peers::run(args)),
        Command::Idle(args) => runtime.block_on(idle::run(args)),
        Command::Pipeline(args) => runtime.block_on(pipeline::run(args)),
        Command::Queues(args) => runtime.block_on(queues::run(args)),
        Command::Dashboard(args) => runtime.block_on(dashboard::run(args)),
    }
}
