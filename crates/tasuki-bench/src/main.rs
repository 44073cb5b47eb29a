//! `tasuki-bench`: measurements that `cargo xtask bench` runs in release mode.
//!
//! `queue` bulk-enqueues no-op jobs, drains them through the worker pool in a
//! child process (so that its peak memory is the worker's own), and measures
//! in the same run the ceiling of the SQL itself: batched claim and complete
//! with no worker around them.

mod queue;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tasuki-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue and drain throughput on SQLite, with the raw-SQL ceiling.
    Queue(queue::QueueArgs),
    /// Internal: drains a prepared database and reports on stdout.
    DrainChild(queue::DrainArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Queue(args) => runtime.block_on(queue::run(args)),
        Command::DrainChild(args) => runtime.block_on(queue::drain_child(args)),
    }
}
