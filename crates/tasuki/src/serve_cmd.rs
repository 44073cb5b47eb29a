//! `tasuki run` and `tasuki serve`: the HTTP API, with or without workers in
//! the same process, until a signal; then stop accepting, finish in-flight
//! requests and jobs, and exit.

use std::net::SocketAddr;

use tasuki_api::{ApiConfig, AppState, Application};
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, ServeArgs, WorkerArgs};
use crate::{config, worker_cmd};

pub(crate) async fn run(
    global: &GlobalArgs,
    args: &ServeArgs,
    workers: Option<&WorkerArgs>,
) -> anyhow::Result<()> {
    let pool_size = config::default_pool_size(true, workers.map(WorkerArgs::slots));
    let database = config::database(global, pool_size)?;
    workers.map(worker_cmd::check).transpose()?;
    let schedules = config::schedules(global)?;
    let clock = config::clock(global)?;
    let stores = config::open(&database).await?;
    config::sync_schedules(&*stores.queue, schedules, &*clock).await?;
    let registry = stores.registry();
    let store = stores.queue.clone();
    let worker = workers
        .map(|w| worker_cmd::build(global, w, store.clone(), registry.clone(), clock.clone()));
    let shutdown = CancellationToken::new();
    let state = AppState {
        store,
        registry,
        clock: clock.clone(),
        shutdown: shutdown.clone(),
    };
    let api = ApiConfig {
        addr: SocketAddr::new(args.host, args.port),
        mode: args.validation_mode,
        max_body: args.max_body_size,
        request_timeout: args.request_timeout,
        admin_token: args.admin_token.clone(),
    };
    let app = Application::build(&api, state, tasuki_app::routes(stores.app, clock)).await?;
    tokio::spawn(worker_cmd::stop_on_signal(shutdown.clone()));

    let server = {
        let shutdown = shutdown.clone();
        let limit = global.shutdown_timeout;
        async move {
            let serving = app.run(shutdown.clone());
            tokio::pin!(serving);
            tokio::select! {
                result = &mut serving => return result,
                () = shutdown.cancelled() => {}
            }
            match tokio::time::timeout(limit, serving).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("requests still running at the shutdown timeout were dropped");
                    Ok(())
                }
            }
        }
    };
    match worker {
        Some(worker) => {
            let (served, worked) = tokio::join!(server, worker.run(shutdown.clone()));
            served?;
            worked?;
        }
        None => server.await?,
    }
    Ok(())
}
