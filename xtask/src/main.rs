//! Project automation, run as `cargo xtask <task>`.
//!
//! - `sqlx-prepare`: regenerates each store crate's `.sqlx/` offline query data
//!   from a scratch database built by the crate's own migrations.
//! - `sqlx-check`: fails when the committed `.sqlx/` data is not current.
//! - `bench queue [ARGS]`: the queue benchmark, built in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

mod sqlx_data;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("sqlx-prepare") => sqlx_data::prepare(&root),
        Some("sqlx-check") => sqlx_data::check(&root),
        Some("bench") => bench(&root, &args[1..]),
        _ => bail!("usage: cargo xtask <sqlx-prepare | sqlx-check | bench queue [ARGS]>"),
    }
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
