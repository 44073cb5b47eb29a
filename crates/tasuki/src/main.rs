//! The `tasuki` binary: parses the command line and the environment, sets up
//! logging, opens the store and hands over to the library crates.

mod cli;
mod config;
mod jobs_cmd;
mod logging;
mod queues_cmd;
mod schedules_cmd;
mod serve_cmd;
mod worker_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Under load glibc's allocator took about a quarter of the process's CPU
/// (BENCHMARKS.md, "The allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let service = matches!(
        cli.command,
        None | Some(Command::Run(_) | Command::Serve(_) | Command::Worker(_))
    );
    logging::init(&cli.global.log_level, cli.global.log_format, service)?;
    match cli.command {
        None => {
            let args: cli::RunArgs = cli::from_env()?;
            serve_cmd::run(&cli.global, &args.serve, Some(&args.worker)).await
        }
        Some(Command::Run(args)) => {
            serve_cmd::run(&cli.global, &args.serve, Some(&args.worker)).await
        }
        Some(Command::Serve(args)) => serve_cmd::run(&cli.global, &args, None).await,
        Some(Command::Worker(args)) => worker_cmd::run(&cli.global, &args).await,
        Some(Command::Migrate) => {
            let database = config::database(&cli.global, 1)?;
            let schedules = config::schedules(&cli.global)?;
            let clock = config::clock(&cli.global)?;
            let stores = config::open(&database).await?;
            config::sync_schedules(&*stores.queue, schedules, &*clock).await?;
            println!("database {} is migrated", database.describe());
            Ok(())
        }
        Some(Command::Jobs(command)) => jobs_cmd::run(&cli.global, command).await,
        Some(Command::Queues(command)) => queues_cmd::run(&cli.global, command).await,
        Some(Command::Schedules(command)) => schedules_cmd::run(&cli.global, command).await,
    }
}
