//! Project automation, run as `cargo xtask <task>`.
//!
//! - `sqlx-prepare`: regenerates the PostgreSQL store's `.sqlx/` offline query data
//!   from a scratch database built by the crate's own migrations.
//! - `sqlx-check`: fails when the committed `.sqlx/` data is not current.
//! - `check-layers`: fails when the core crate depends on I/O (sqlx, tokio,
//!   axum…), or a queue crate depends on the application or names one of its
//!   tables.
//! - `fuzz-contract`: schemathesis against a running `tasuki run`, all checks.
//! - `bench queue|queues|http|peers|idle|pipeline|dashboard [ARGS]`: the benchmarks, built in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

mod fuzz;
mod sqlx_data;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("sqlx-prepare") => sqlx_data::prepare(&root),
        Some("sqlx-check") => sqlx_data::check(&root),
        Some("check-layers") => check_layers(&root),
        Some("fuzz-contract") => fuzz::contract(&root),
        Some("bench") => bench(&root, &args[1..]),
        _ => bail!(
            "usage: cargo xtask <sqlx-prepare | sqlx-check | check-layers | fuzz-contract | bench queue|queues|http|peers|idle|pipeline|dashboard [ARGS]>"
        ),
    }
}

/// The layers' rules, stated in ARCHITECTURE.md:
/// - the core crate does no I/O: its dependency tree names no I/O crate;
/// - the queue's crates know nothing of the application: none depends on
///   `tasuki-app`, and none of their statements, migrations or code names
///   an application table.
fn check_layers(root: &Path) -> Result<()> {
    const IO: &[&str] = &["sqlx", "tokio", "axum", "hyper", "mio", "reqwest", "tower"];
    const QUEUE: &[&str] = &[
        "tasuki-core",
        "tasuki-sqlite",
        "tasuki-postgres",
        "tasuki-worker",
        "tasuki-api",
    ];
    const APP_TABLES: &[&str] = &[
        "users",
        "user_profiles",
        "signup_stats_daily",
        "email_outbox",
        "probe_runs",
    ];
    let core_io: Vec<String> = dependencies(root, "tasuki-core")?
        .into_iter()
        .filter(|name| {
            IO.iter()
                .any(|io| name == io || name.starts_with(&format!("{io}-")))
        })
        .collect();
    ensure!(
        core_io.is_empty(),
        "tasuki-core depends on I/O crates: {}",
        core_io.join(", ")
    );
    let mut broken = Vec::new();
    for krate in QUEUE {
        if dependencies(root, krate)?.iter().any(|d| d == "tasuki-app") {
            broken.push(format!("{krate} depends on tasuki-app"));
        }
        for dir in ["src", "queries", "migrations"] {
            for file in files(&root.join("crates").join(krate).join(dir))? {
                let text = std::fs::read_to_string(&file)?;
                let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
                for table in words.filter(|w| APP_TABLES.contains(w)) {
                    broken.push(format!("{} names the table {table}", file.display()));
                }
            }
        }
    }
    broken.dedup();
    ensure!(
        broken.is_empty(),
        "the queue's crates must know nothing of the application:\n{}",
        broken.join("\n")
    );
    println!("tasuki-core does no I/O; the queue's crates know nothing of the application");
    Ok(())
}

/// The packages in the normal dependency tree of `package`, itself included.
fn dependencies(root: &Path, package: &str) -> Result<Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["tree", "--package", package, "--edges", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .context("running cargo tree")?;
    ensure!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Every file under `dir`, at any depth; none when it does not exist.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                found.extend(files(&path)?);
            } else {
                found.push(path);
            }
        }
    }
    Ok(found)
}

/// Benchmarks run in release mode from their own crate, which xtask does not
/// link: xtask must build even when the store crates do not.
fn bench(root: &Path, args: &[String]) -> Result<()> {
    let mut cargo_args = vec![
        "run",
        "--quiet",
        "--release",
        "--package",
        "tasuki-bench",
        "--",
    ];
    cargo_args.extend(args.iter().map(String::as_str));
    cargo(root, &cargo_args, &[])
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Runs `cargo` with the given arguments and environment, failing on a non-zero exit.
fn cargo(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "cargo {} failed", args.join(" "));
    Ok(())
}
