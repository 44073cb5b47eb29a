//! The dashboard in a real Chromium: `browser/dashboard.test.mjs` run by
//! node against this build's binary. Skips, saying how to install what is
//! missing, when node, playwright-core or Chromium is absent (fails under
//! `CI=true`).

use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What is missing to run the browser tests, with how to install it.
fn missing(root: &Path) -> Vec<&'static str> {
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("node (apt-get install -y nodejs npm)");
    }
    if !root.join("browser/node_modules/playwright-core").is_dir() {
        missing.push("playwright-core (cd browser && npm ci)");
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push("Chromium (apt-get install -y chromium chromium-driver)");
    }
    missing
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let root = repo_root();
    let missing = missing(&root);
    if !missing.is_empty() {
        let message = format!("the browser tests need: {}", missing.join("; "));
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipped: {message}");
        return;
    }
    let screens = std::env::var_os("DASHBOARD_SCREENS")
        .map_or_else(|| root.join("target/dashboard-screens"), PathBuf::from);
    let output = Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "browser/dashboard.test.mjs",
        ])
        .current_dir(&root)
        .env("TASUKI_BIN", env!("CARGO_BIN_EXE_tasuki"))
        .env("CHROMIUM", CHROMIUM)
        .env("DASHBOARD_SCREENS", &screens)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the browser tests failed:\n{report}"
    );
    eprintln!("{report}\nscreenshots in {}", screens.display());
}
