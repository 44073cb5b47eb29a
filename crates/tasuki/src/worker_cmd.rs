//! `tasuki worker`: workers until a signal, then a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use tasuki_core::{JobStatus, RetryPolicy, Store, SystemClock};
use tasuki_jobs::LogEmailSender;
use tasuki_worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, WorkerArgs};
use crate::config;

pub(crate) async fn run(global: &GlobalArgs, args: &WorkerArgs) -> anyhow::Result<()> {
    if args.retry_base_delay > args.retry_max_delay {
        anyhow::bail!("RETRY_BASE_DELAY must not exceed RETRY_MAX_DELAY");
    }
    let store = config::open(&config::database(global)?).await?;
    let registry = Arc::new(tasuki_jobs::registry(Arc::new(LogEmailSender)));
    let mut worker_config = WorkerConfig::new(worker_id());
    worker_config.concurrency = usize::from(args.concurrency);
    worker_config.lease = args.lease_timeout;
    worker_config.shutdown_timeout = args.shutdown_timeout;
    worker_config.job_timeout = args.job_timeout;
    worker_config.retry = RetryPolicy {
        base: args.retry_base_delay,
        max: args.retry_max_delay,
    };
    let worker = Worker::new(
        worker_config,
        store.clone(),
        registry,
        Arc::new(SystemClock),
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    if args.until_empty {
        tokio::spawn(stop_when_empty(store, shutdown.clone()));
    }
    worker.run(shutdown).await?;
    Ok(())
}

/// Unique among live and dead workers: host, process and a random tag, so a
/// restarted process never inherits the leases of the one before.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tasuki".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
    shutdown.cancel();
}

async fn stop_when_empty(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        store.job_wait_for_change(Duration::from_secs(1)).await;
        match store.job_stats(tasuki_core::Timestamp::now()).await {
            Ok(stats)
                if [
                    JobStatus::Pending,
                    JobStatus::Processing,
                    JobStatus::RetryPending,
                ]
                .into_iter()
                .all(|s| stats.count(s) == 0) =>
            {
                tracing::info!("no job left to run; stopping");
                shutdown.cancel();
                return;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = ?error, "cannot read job counts"),
        }
    }
}
