//! The idle benchmark: what a `tasuki run` and a `tasuki worker` with nothing
//! to do cost, in CPU time and memory, on each engine.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::cpu;
use crate::http::{Server, free_port, wait_ready};
use crate::queue::Target;

#[derive(clap::Args)]
pub(crate) struct IdleArgs {
    /// The release build of the tasuki binary.
    #[arg(long, default_value = "target/release/tasuki")]
    tasuki: PathBuf,
    /// How long the processes are watched once started.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    engine: String,
    /// The PostgreSQL server's maintenance database; the bench makes its own schema in it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
}

/// CPU time (user and system, every thread) and peak RSS of a process.
fn usage(pid: u32) -> anyhow::Result<(Duration, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("VmHWM")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok((cpu::process(pid)?, hwm_kib / 1024.0))
}

pub(crate) async fn run(args: IdleArgs) -> anyhow::Result<()> {
    ensure!(
        args.tasuki.exists(),
        "{} is missing: build it with cargo build --release -p tasuki",
        args.tasuki.display()
    );
    let targets = Target::chosen(&args.engine, &["full"], &args.postgres)?;
    println!(
        "idle benchmark: `tasuki run` and `tasuki worker` with nothing to do, watched for {} s after start-up",
        args.duration.as_secs()
    );
    let dir = tempfile::tempdir()?;
    for target in &targets {
        let url = target.fresh(&dir, "idle").await?;
        let port = free_port()?;
        let metrics = free_port()?;
        let spawn = |command: &str, port: u16, port_var: &str| {
            Command::new(&args.tasuki)
                .arg(command)
                .env_clear()
                .env("DATABASE_URL", &url)
                .env(port_var, port.to_string())
                .env("LOG_LEVEL", "warn")
                .stdout(Stdio::null())
                .spawn()
        };
        let run = Server(spawn("run", port, "PORT")?);
        wait_ready(port).await?;
        let worker = Server(spawn("worker", metrics, "METRICS_PORT")?);
        wait_ready(metrics).await?;
        let processes = [("tasuki run", &run), ("tasuki worker", &worker)];
        let before = processes
            .iter()
            .map(|(_, p)| usage(p.0.id()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let started = Instant::now();
        tokio::time::sleep(args.duration).await;
        let elapsed = started.elapsed();
        for ((name, process), (cpu_before, _)) in processes.iter().zip(before) {
            let (cpu, rss) = usage(process.0.id())?;
            let used = cpu.saturating_sub(cpu_before);
            println!(
                "{} {name}: {:.3} CPU-seconds in {:.0} s = {:.3} % of a core | peak RSS {rss:.1} MiB",
                target.label(),
                used.as_secs_f64(),
                elapsed.as_secs_f64(),
                100.0 * used.as_secs_f64() / elapsed.as_secs_f64(),
            );
        }
    }
    Ok(())
}
