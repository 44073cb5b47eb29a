//! `tasuki worker`: workers until a signal, then a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tasuki_api::{AppState, Application};
use tasuki_core::{Clock, JobStatus, RetryPolicy, Store};
use tasuki_worker::{Registry, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, WorkerArgs};
use crate::config;

pub(crate) async fn run(global: &GlobalArgs, args: &WorkerArgs) -> anyhow::Result<()> {
    let database = config::database(global, config::default_pool_size(false, Some(args.slots())))?;
    check(args)?;
    let schedules = config::schedules(global)?;
    let clock = config::clock(global)?;
    let stores = config::open(&database).await?;
    config::sync_schedules(&*stores.queue, schedules, &*clock).await?;
    let registry = stores.registry();
    let store = stores.queue;
    let worker = build(global, args, store.clone(), registry.clone(), clock.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    if args.until_empty {
        tokio::spawn(stop_when_empty(store.clone(), shutdown.clone()));
    }
    if let Some(port) = args.metrics_port {
        let state = AppState {
            store,
            registry,
            clock,
            shutdown: shutdown.clone(),
        };
        let ops = tasuki_api::ops_router(state);
        let app = Application::bind(SocketAddr::from(([0, 0, 0, 0], port)), ops).await?;
        tokio::spawn(app.run(shutdown.clone()));
    }
    worker.run(shutdown).await?;
    Ok(())
}

/// What clap cannot check alone; called before the database is opened.
pub(crate) fn check(args: &WorkerArgs) -> anyhow::Result<()> {
    if args.retry_base_delay > args.retry_max_delay {
        anyhow::bail!("RETRY_BASE_DELAY must not exceed RETRY_MAX_DELAY");
    }
    Ok(())
}

/// A worker with the settings of the command line and the environment.
pub(crate) fn build(
    global: &GlobalArgs,
    args: &WorkerArgs,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
) -> Worker {
    let host = host_name();
    let mut config = WorkerConfig::new(worker_id(&host));
    config.host = host.into();
    config.concurrency = usize::from(args.concurrency);
    if let Some(queues) = &args.queues {
        config.queues.clone_from(&queues.0);
    }
    config.lease = args.lease_timeout;
    config.shutdown_timeout = global.shutdown_timeout;
    config.job_timeout = args.job_timeout;
    config.retention = args.job_retention;
    config.retry = RetryPolicy {
        base: args.retry_base_delay,
        max: args.retry_max_delay,
    };
    Worker::new(config, store, registry, clock)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tasuki".to_owned())
}

/// Unique among live and dead workers: host, process and a random tag, so a
/// restarted process never inherits the leases of the one before.
fn worker_id(host: &str) -> String {
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

/// Cancels `shutdown` at SIGTERM or SIGINT. It listens from the call on,
/// not from the future's first poll: a signal sent as soon as the process
/// says it started still stops it gracefully.
pub(crate) fn stop_on_signal(shutdown: CancellationToken) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        let listening = signal(kind);
        async move {
            match listening {
                Ok(mut signal) => {
                    signal.recv().await;
                    tracing::info!("{name} received");
                }
                Err(error) => {
                    tracing::error!(error = %error, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    let interrupt = listen(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
        shutdown.cancel();
    }
}

/// Cancels `shutdown` once no job is pending, running or waiting to retry.
/// It looks four times a second; the store's change signal is left to the
/// worker, whose wake-ups it would otherwise consume.
async fn stop_when_empty(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
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
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
