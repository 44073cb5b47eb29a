//! Contract fuzzing: schemathesis (from PyPI, in a venv under `target/`)
//! against a running `tasuki run`, with all of its checks, bounded in time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use crate::cargo;

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The runs against one server, in order, each with its seconds of
/// generated requests; the whole step stays within a few minutes. The
/// stateful phase (a resource that one call creates must be there for the
/// next) goes first and without `bulkJobs`: a bulk delete that an earlier
/// fuzzed request started goes on in the background and may delete, rightly,
/// a job that the phase has just created and is about to read.
const RUNS: [(&[&str], &str); 2] = [
    (
        &["--phases", "stateful", "--exclude-operation-id", "bulkJobs"],
        "30",
    ),
    (&["--phases", "examples,coverage,fuzzing"], "100"),
];

pub(crate) fn contract(root: &Path) -> Result<()> {
    let venv = root.join("target").join("schemathesis-venv");
    let st = venv.join("bin").join("st");
    if !st.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", SCHEMATHESIS]))?;
    }
    cargo(root, &["build", "--quiet", "--package", "tasuki"], &[])?;

    let scratch = tempdir(root)?;
    // Where cargo put it: `CARGO_TARGET_DIR` when set, else `target/`.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut server = Command::new(target.join("debug").join("tasuki"))
        .arg("run")
        .env("DATABASE_URL", scratch.join("fuzz.db"))
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .env("SQLITE_SYNCHRONOUS", "normal")
        .env("SHUTDOWN_TIMEOUT", "2s")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting tasuki run")?;
    let addr = listening_addr(server.stdout.take().context("no stdout")?)?;
    let mut passed = true;
    for (phases, budget_secs) in RUNS {
        let status = Command::new(&st)
            .current_dir(&scratch)
            .args(["run", root.join("openapi.yaml").to_str().context("path")?])
            .args(["--url", &format!("http://{addr}")])
            .args(phases)
            .args([
                "--max-examples",
                "50",
                "--max-time",
                budget_secs,
                "--request-timeout",
                "10",
            ])
            .arg("--no-color")
            .status()
            .context("running schemathesis")?;
        passed &= status.success();
    }
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let exit = server.wait()?;
    ensure!(passed, "schemathesis found contract violations (see above)");
    ensure!(exit.success(), "tasuki run exited with {exit} after SIGINT");
    println!("schemathesis: no violations; tasuki run stopped cleanly");
    Ok(())
}

/// Reads the server's JSON log until it says where it listens; the rest of
/// the log is drained in the background.
fn listening_addr(stdout: std::process::ChildStdout) -> Result<String> {
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if line.contains("\"listening\"") {
            let start = line.find("\"addr\":\"").context("no addr")? + 8;
            let end = line[start..].find('"').context("no addr end")? + start;
            let addr = line[start..end].to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(addr);
        }
    }
    bail!("tasuki run exited before it listened")
}

fn tempdir(root: &Path) -> Result<std::path::PathBuf> {
    let dir = root.join("target").join("schemathesis-run");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("schemathesis.toml"), "")?;
    Ok(dir)
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(status.success(), "{command:?} failed");
    Ok(())
}
