//! `tasuki queues …`: list, pause, resume, limit.

use tasuki_core::{QueueChange, QueueInfo, Timestamp};

use crate::cli::{GlobalArgs, QueuesCommand};
use crate::config;
use crate::jobs_cmd::print_json;

pub(crate) async fn run(global: &GlobalArgs, command: QueuesCommand) -> anyhow::Result<()> {
    let database = config::database(global, 2)?;
    let store = config::open(&database).await?.queue;
    let (name, change, json) = match command {
        QueuesCommand::List(args) => {
            let queues = store.queue_list().await?;
            return if args.json {
                print_json(&queues)
            } else {
                print_table(&queues);
                Ok(())
            };
        }
        QueuesCommand::Pause(args) => (args.name, paused(true), args.json.json),
        QueuesCommand::Resume(args) => (args.name, paused(false), args.json.json),
        QueuesCommand::Limit(args) => {
            if args.concurrency.is_none() && args.rate.is_none() {
                anyhow::bail!("say what to limit: --concurrency N|none, --rate N/PERIOD|none");
            }
            let change = QueueChange {
                concurrency: args.concurrency.map(|c| c.0),
                rate_limit: args.rate.map(|r| r.0),
                ..QueueChange::default()
            };
            (args.name, change, args.json.json)
        }
    };
    let queue = store.queue_update(&name, change, Timestamp::now()).await?;
    if json {
        print_json(&queue)
    } else {
        print_table(&[queue]);
        Ok(())
    }
}

fn paused(paused: bool) -> QueueChange {
    QueueChange {
        paused: Some(paused),
        ..QueueChange::default()
    }
}

fn print_table(queues: &[QueueInfo]) {
    println!(
        "{:<20} {:<8} {:>8} {:>8} {:>11}  rate limit",
        "queue", "state", "waiting", "running", "concurrency"
    );
    for q in queues {
        let rate = q.settings.rate_limit.map_or_else(
            || "-".to_owned(),
            |r| format!("{}/{}", r.limit, humantime::format_duration(r.period)),
        );
        println!(
            "{:<20} {:<8} {:>8} {:>8} {:>11}  {rate}",
            q.name,
            if q.settings.paused {
                "paused"
            } else {
                "running"
            },
            q.waiting,
            q.running,
            q.settings
                .concurrency
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        );
    }
}
