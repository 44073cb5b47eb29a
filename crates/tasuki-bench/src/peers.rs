//! The peer benchmark: tasuki against apalis, effectum and graphile_worker on
//! the same machine, in the same run, with the same work.
//!
//! Each peer is a package of its own under `bench/peers/<dir>/` (the SQLite
//! peers link other SQLite versions, so they cannot share a lock file), built
//! here in release mode and driven through one command-line protocol:
//! `throughput --url U --jobs N --concurrency C [--durability D]` and
//! `latency --url U --jobs N --rate R [--durability D]`, each printing one
//! JSON line. tasuki runs through the same code as `bench queue`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};

use crate::queue::{self, Target, median};

#[derive(clap::Args)]
pub(crate) struct PeersArgs {
    /// A smaller run (fewer jobs, one run each) that ends in a few minutes.
    #[arg(long)]
    quick: bool,
    /// Writes one JSON record per measurement to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the SVG chart goes.
    #[arg(long, default_value = "bench/peers/chart.svg")]
    chart: PathBuf,
    /// The PostgreSQL server's maintenance database; runs get databases of their own.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
}

/// How much work each measurement gets.
struct Plan {
    jobs: usize,
    concurrency: usize,
    runs: usize,
    latency_jobs: usize,
    latency_rate: u32,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                jobs: 5_000,
                concurrency: 64,
                runs: 1,
                latency_jobs: 300,
                latency_rate: 100,
            }
        } else {
            // 20,000, not the queue bench's 100,000: apalis-sqlite's drain
            // slows with the square of the backlog and would not finish.
            Plan {
                jobs: 20_000,
                concurrency: 64,
                runs: 3,
                latency_jobs: 2_000,
                latency_rate: 200,
            }
        }
    }
}

struct Peer {
    system: &'static str,
    engine: &'static str,
    dir: &'static str,
    /// The settings it runs under: as shipped, then each normalization.
    durabilities: &'static [&'static str],
}

const PEERS: &[Peer] = &[
    Peer {
        system: "apalis",
        engine: "sqlite",
        dir: "apalis-sqlite",
        durabilities: &["as-shipped", "normalized"],
    },
    Peer {
        system: "effectum",
        engine: "sqlite",
        dir: "effectum",
        // `wal`: WAL with effectum's own NORMAL, the level of tasuki's
        // claims and completions; `normalized`: WAL with FULL, the level of
        // tasuki's acknowledged writes.
        durabilities: &["as-shipped", "normalized", "wal"],
    },
    Peer {
        system: "graphile_worker",
        engine: "postgres",
        dir: "graphile-worker",
        durabilities: &["as-shipped"],
    },
    Peer {
        system: "apalis",
        engine: "postgres",
        dir: "apalis-postgres",
        durabilities: &["as-shipped"],
    },
];

/// One measurement, as `--json` writes it.
#[derive(Clone, Serialize)]
struct Record {
    system: String,
    engine: &'static str,
    workload: &'static str,
    jobs_per_sec: Option<f64>,
    enqueue_jobs_per_sec: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    settings: Value,
}

impl Record {
    fn throughput(
        system: &str,
        engine: &'static str,
        drain: f64,
        enqueue: f64,
        settings: Value,
    ) -> Self {
        Record {
            system: system.to_owned(),
            engine,
            workload: "throughput",
            jobs_per_sec: Some(drain),
            enqueue_jobs_per_sec: Some(enqueue),
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            settings,
        }
    }

    fn latency(system: &str, engine: &'static str, p: [f64; 3], settings: Value) -> Self {
        Record {
            system: system.to_owned(),
            engine,
            workload: "latency",
            jobs_per_sec: None,
            enqueue_jobs_per_sec: None,
            p50_ms: Some(p[0]),
            p95_ms: Some(p[1]),
            p99_ms: Some(p[2]),
            settings,
        }
    }

    /// A measurement that did not complete; `settings.error` says why.
    fn failed(system: &str, engine: &'static str, workload: &'static str, settings: Value) -> Self {
        Record {
            system: system.to_owned(),
            engine,
            workload,
            jobs_per_sec: None,
            enqueue_jobs_per_sec: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            settings,
        }
    }

    /// The durability the row ran with, for tables and the chart.
    fn durability(&self) -> &str {
        self.settings["durability"].as_str().unwrap_or("")
    }

    /// The durability's label alone (`as-shipped`, `normalized`, `wal`, or tasuki's).
    fn setting_label(&self) -> &str {
        self.durability().split(':').next().unwrap_or("").trim()
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) async fn run(args: PeersArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args.quick);
    let root = workspace_root();
    let peers: Vec<&Peer> = PEERS
        .iter()
        .filter(|p| {
            let present = root
                .join("bench/peers")
                .join(p.dir)
                .join("Cargo.toml")
                .exists();
            if !present {
                println!(
                    "note: bench/peers/{} is missing; {} on {} is left out",
                    p.dir, p.system, p.engine
                );
            }
            present
        })
        .collect();
    for peer in &peers {
        println!("building bench/peers/{} (release)", peer.dir);
        build(&root, peer)?;
    }
    println!(
        "peer benchmark: throughput {} no-op jobs at concurrency {}, median of {}; latency {} jobs at {}/s",
        plan.jobs, plan.concurrency, plan.runs, plan.latency_jobs, plan.latency_rate
    );
    let mut records = Vec::new();
    let mut ceilings = Vec::new();
    for engine in ["sqlite", "postgres"] {
        let target = match engine {
            "sqlite" => Target::Sqlite("full"),
            _ => Target::Postgres(args.postgres.clone()),
        };
        let (tasuki, ceiling) = tasuki_records(&plan, &target, engine).await?;
        ceilings.push(ceiling);
        records.extend(tasuki);
        for peer in peers.iter().filter(|p| p.engine == engine) {
            for durability in peer.durabilities {
                records.extend(peer_records(&root, &args.postgres, &plan, peer, durability).await?);
            }
        }
    }
    report(&records, &ceilings);
    if let Some(path) = &args.json {
        let mut text = String::new();
        for record in &records {
            writeln!(text, "{}", serde_json::to_string(record)?)?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("records written to {}", path.display());
    }
    let chart = root.join(&args.chart);
    std::fs::write(&chart, svg(&records))
        .with_context(|| format!("writing {}", chart.display()))?;
    println!("chart written to {}", args.chart.display());
    Ok(())
}

fn build(root: &Path, peer: &Peer) -> anyhow::Result<()> {
    let manifest = root.join("bench/peers").join(peer.dir).join("Cargo.toml");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "building {} failed", manifest.display());
    Ok(())
}

/// An engine's ceilings, medians: tasuki's claim and complete through its
/// store with no worker, and (SQLite) the same statements with no driver.
struct Ceiling {
    engine: &'static str,
    store: f64,
    raw: Option<f64>,
}

async fn tasuki_records(
    plan: &Plan,
    target: &Target,
    engine: &'static str,
) -> anyhow::Result<(Vec<Record>, Ceiling)> {
    let mut samples = Vec::new();
    for _ in 0..plan.runs {
        samples.push(queue::sample(target, plan.jobs, plan.concurrency).await?);
    }
    let of = |f: fn(&queue::Sample) -> f64| median(samples.iter().map(f).collect());
    let durability = match engine {
        "sqlite" => "WAL, synchronous=FULL (the default; bookkeeping commits NORMAL)",
        _ => "synchronous_commit=on (bookkeeping connections off)",
    };
    let settings = json!({
        "durability": durability,
        "wake_up": if engine == "sqlite" { "in process: at once; across processes: an inotify watch on the WAL file, then PRAGMA data_version" } else { "LISTEN/NOTIFY; 5 s fallback poll" },
        "claiming": if engine == "sqlite" { "batch UPDATE ... RETURNING sized to free slots" } else { "batch UPDATE ... FOR UPDATE SKIP LOCKED sized to free slots" },
    });
    let ceiling = Ceiling {
        engine,
        store: of(|s| s.ceiling),
        raw: queue::raw_ceilings(&samples).map(median),
    };
    let throughput = Record::throughput(
        "tasuki",
        engine,
        of(|s| s.drain),
        of(|s| s.enqueue),
        settings.clone(),
    );
    let l = queue::latency(target, plan.latency_jobs, plan.latency_rate).await?;
    let latency = Record::latency("tasuki", engine, [l.p50, l.p95, l.p99], settings);
    Ok((vec![throughput, latency], ceiling))
}

/// A fresh place for one peer run: a file path, or a new database.
async fn fresh_url(
    postgres: &str,
    engine: &str,
    dir: &tempfile::TempDir,
    n: usize,
) -> anyhow::Result<String> {
    if engine == "sqlite" {
        return Ok(dir
            .path()
            .join(format!("peer-{n}.db"))
            .display()
            .to_string());
    }
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(postgres).await?;
    let name = "tasuki_peer_bench";
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let server = postgres
        .rsplit_once('/')
        .map_or(postgres, |(server, _)| server);
    Ok(format!("{server}/{name}"))
}

async fn peer_records(
    root: &Path,
    postgres: &str,
    plan: &Plan,
    peer: &Peer,
    durability: &str,
) -> anyhow::Result<Vec<Record>> {
    let bin = root
        .join("bench/peers")
        .join(peer.dir)
        .join("target/release")
        .join(format!("peer-{}", peer.dir));
    let dir = tempfile::tempdir()?;
    let mut drains = Vec::new();
    let mut enqueues = Vec::new();
    let mut settings = Value::Null;
    let jobs = plan.jobs.to_string();
    let concurrency = plan.concurrency.to_string();
    for n in 0..plan.runs {
        let url = fresh_url(postgres, peer.engine, &dir, n).await?;
        let args = [
            "throughput",
            "--url",
            &url,
            "--jobs",
            &jobs,
            "--concurrency",
            &concurrency,
        ];
        match call(&bin, &args, peer, durability) {
            Ok(line) => {
                drains.push(number(&line, "drain_jobs_per_sec")?);
                enqueues.push(number(&line, "enqueue_jobs_per_sec")?);
                settings = line["settings"].clone();
            }
            Err(error) => {
                settings = json!({ "error": format!("{error:#}") });
                break;
            }
        }
    }
    let settings = with_durability(settings, durability);
    let throughput = if drains.len() == plan.runs {
        Record::throughput(
            peer.system,
            peer.engine,
            median(drains),
            median(enqueues),
            settings,
        )
    } else {
        Record::failed(peer.system, peer.engine, "throughput", settings)
    };
    let url = fresh_url(postgres, peer.engine, &dir, plan.runs).await?;
    let (latency_jobs, rate) = (plan.latency_jobs.to_string(), plan.latency_rate.to_string());
    let args = [
        "latency",
        "--url",
        &url,
        "--jobs",
        &latency_jobs,
        "--rate",
        &rate,
    ];
    let latency = match call(&bin, &args, peer, durability) {
        Ok(line) => {
            let p = [
                number(&line, "p50_ms")?,
                number(&line, "p95_ms")?,
                number(&line, "p99_ms")?,
            ];
            let settings = with_durability(line["settings"].clone(), durability);
            Record::latency(peer.system, peer.engine, p, settings)
        }
        Err(error) => {
            let settings = with_durability(json!({ "error": format!("{error:#}") }), durability);
            Record::failed(peer.system, peer.engine, "latency", settings)
        }
    };
    for record in [&throughput, &latency] {
        match record.settings.get("error") {
            Some(error) => println!(
                "  {} on {} ({durability}) {}: FAILED: {error}",
                peer.system, peer.engine, record.workload
            ),
            None => println!(
                "  {} on {} ({durability}) {}: drain {:?} jobs/s, enqueue {:?} jobs/s, p50 {:?} ms, p99 {:?} ms",
                peer.system,
                peer.engine,
                record.workload,
                record.jobs_per_sec.map(f64::round),
                record.enqueue_jobs_per_sec.map(f64::round),
                record.p50_ms,
                record.p99_ms
            ),
        }
    }
    Ok(vec![throughput, latency])
}

fn with_durability(settings: Value, durability: &str) -> Value {
    let mut settings = match settings {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let stated = settings
        .get("durability")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let label = match stated {
        Some(detail) => format!("{durability}: {detail}"),
        None => durability.to_owned(),
    };
    settings.insert("durability".into(), Value::String(label));
    Value::Object(settings)
}

/// Runs one peer measurement; returns its JSON line.
fn call(bin: &Path, args: &[&str], peer: &Peer, durability: &str) -> anyhow::Result<Value> {
    let mut command = Command::new(bin);
    command.args(args);
    if peer.engine == "sqlite" {
        command.args(["--durability", durability]);
    }
    let output = command
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            peer.dir,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON line")?;
    Ok(serde_json::from_str(line)?)
}

fn number(line: &Value, key: &str) -> anyhow::Result<f64> {
    line[key]
        .as_f64()
        .with_context(|| format!("`{key}` missing in {line}"))
}

fn report(records: &[Record], ceilings: &[Ceiling]) {
    for &Ceiling {
        engine,
        store: ceiling,
        raw,
    } in ceilings
    {
        let tasuki = records
            .iter()
            .find(|r| r.system == "tasuki" && r.engine == engine && r.workload == "throughput")
            .and_then(|r| r.jobs_per_sec)
            .unwrap_or(f64::NAN);
        println!(
            "\n{engine} (ceiling of tasuki's claim+complete through its store, no worker: {ceiling:.0} jobs/s)"
        );
        if let Some(raw) = raw {
            // The fastest peer setting, and what the raw statements make of it.
            let fastest = records
                .iter()
                .filter(|r| {
                    r.engine == engine && r.system != "tasuki" && r.workload == "throughput"
                })
                .filter_map(|r| r.jobs_per_sec)
                .fold(f64::NAN, f64::max);
            println!(
                "the same statements with no driver, worker or handler: {raw:.0} jobs/s, {:.2}× the fastest peer ({fastest:.0} jobs/s)",
                raw / fastest
            );
        }
        println!(
            "| system | durability | enqueue jobs/s | drain jobs/s | tasuki ÷ system | drain ÷ ceiling | pickup p50 | p95 | p99 |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for t in records
            .iter()
            .filter(|r| r.engine == engine && r.workload == "throughput")
        {
            let l = records.iter().find(|r| {
                r.engine == t.engine
                    && r.system == t.system
                    && r.workload == "latency"
                    && r.setting_label() == t.setting_label()
            });
            if let Some(error) = t.settings.get("error") {
                let why = error
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default();
                println!(
                    "| {} | {} | failed: {why} | | | | | | |",
                    t.system,
                    t.durability()
                );
                continue;
            }
            let drain = t.jobs_per_sec.unwrap_or(f64::NAN);
            let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} ms"));
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.2}× | {:.0} % | {} | {} | {} |",
                t.system,
                t.durability(),
                t.enqueue_jobs_per_sec.unwrap_or(f64::NAN),
                drain,
                tasuki / drain,
                100.0 * drain / ceiling,
                ms(l.and_then(|l| l.p50_ms)),
                ms(l.and_then(|l| l.p95_ms)),
                ms(l.and_then(|l| l.p99_ms)),
            );
        }
    }
}

/// Two bar charts: drain throughput and pickup p99, one bar per system and setting.
fn svg(records: &[Record]) -> String {
    let bars = |workload: &str, value: fn(&Record) -> Option<f64>| -> Vec<(String, f64)> {
        records
            .iter()
            .filter(|r| r.workload == workload)
            .filter_map(|r| {
                let label = if r.system == "tasuki" {
                    format!("tasuki ({})", r.engine)
                } else {
                    format!("{} ({}, {})", r.system, r.engine, r.setting_label())
                };
                value(r).map(|v| (label, v))
            })
            .collect()
    };
    let panels = [
        (
            "Drain, jobs/s (higher is better)",
            bars("throughput", |r| r.jobs_per_sec),
        ),
        (
            "Pickup latency p99, ms (lower is better)",
            bars("latency", |r| r.p99_ms),
        ),
    ];
    let (width, label_w, bar_h) = (760.0, 300.0, 22.0);
    let mut y = 20.0;
    let mut body = String::new();
    for (title, rows) in &panels {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{title}</text>"#
        );
        y += 12.0;
        let max = rows
            .iter()
            .map(|(_, v)| *v)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        for (label, value) in rows {
            let w = (width - label_w - 90.0) * value / max;
            let fill = if label.starts_with("tasuki") {
                "#2b6cb0"
            } else {
                "#a0aec0"
            };
            let _ = writeln!(
                body,
                r#"<text x="10" y="{ty}">{label}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="{h}" fill="{fill}"/><text x="{tx:.1}" y="{ty}">{value:.2}</text>"#,
                ty = y + 15.0,
                h = bar_h - 4.0,
                tx = label_w + w + 6.0,
            );
            y += bar_h;
        }
        y += 24.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}
