//! Project automation, run as `cargo xtask <task>`.
//!
//! - `sqlx-prepare`: regenerates the PostgreSQL store's `.sqlx/` offline query data
//!   from a scratch database built by the crate's own migrations.
//! - `sqlx-check`: fails when the committed `.sqlx/` data is not current.
//! - `check-core`: fails when the core crate depends on I/O (sqlx, tokio, axum…).
//! - `fuzz-contract`: schemathesis against a running `tasuki run`, all checks.
//! - `bench queue|http|peers|idle|pipeline [ARGS]`: the benchmarks, built in release mode.

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
        Some("check-core") => check_core(&root),
        Some("fuzz-contract") => fuzz::contract(&root),
        Some("bench") => bench(&root, &args[1..]),
        _ => bail!(
            "usage: cargo xtask <sqlx-prepare | sqlx-check | check-core | fuzz-contract | bench queue|http|peers|idle|pipeline [ARGS]>"
        ),
    }
}

/// The core crate holds the model and the traits; I/O belongs to backends
/// and runtimes. Its normal dependency tree must not name any of these.
fn check_core(root: &Path) -> Result<()> {
    const IO: &[&str] = &["sqlx", "tokio", "axum", "hyper", "mio", "reqwest", "tower"];
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "--package",
            "tasuki-core",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .context("running cargo tree")?;
    ensure!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout)?;
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            IO.iter()
                .any(|io| name == io || name.starts_with(&format!("{io}-")))
        })
        .collect();
    ensure!(
        found.is_empty(),
        "tasuki-core depends on I/O crates: {}",
        found.join(", ")
    );
    println!("tasuki-core depends on no I/O crate");
    Ok(())
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
