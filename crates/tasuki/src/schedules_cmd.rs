//! `tasuki schedules …`: list, pause, resume.

use anyhow::bail;
use tasuki_core::{ScheduleQuery, ScheduleView, Store, StoreError, Timestamp};

use crate::cli::{GlobalArgs, NameArgs, SchedulesCommand};
use crate::config;

/// How many of each schedule's newest jobs are listed.
const RECENT_JOBS: u32 = 10;

pub(crate) async fn run(global: &GlobalArgs, command: SchedulesCommand) -> anyhow::Result<()> {
    let database = config::database(global, 2)?;
    let now = config::clock(global)?.now();
    let store = config::open(&database).await?.queue;
    match command {
        SchedulesCommand::List(json) => {
            let views = views(&*store, None, now).await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                print_table(&views);
            }
            Ok(())
        }
        SchedulesCommand::Pause(args) => {
            found(store.schedule_pause(&args.name).await, &args.name)?;
            show(&*store, &args, now).await
        }
        SchedulesCommand::Resume(args) => {
            found(store.schedule_resume(&args.name, now).await, &args.name)?;
            show(&*store, &args, now).await
        }
    }
}

fn found(changed: Result<(), StoreError>, name: &str) -> anyhow::Result<()> {
    match changed {
        Err(StoreError::NotFound) => bail!("no schedule named `{name}`"),
        other => Ok(other?),
    }
}

/// Every schedule, or the one named, as seen at `now`.
async fn views(
    store: &dyn Store,
    name: Option<String>,
    now: Timestamp,
) -> anyhow::Result<Vec<ScheduleView>> {
    let query = ScheduleQuery {
        name,
        recent_jobs: RECENT_JOBS,
    };
    let schedules = store.schedule_list(query).await?;
    Ok(schedules.iter().map(|s| s.view(now)).collect())
}

/// Prints one schedule, as `list` would.
async fn show(store: &dyn Store, args: &NameArgs, now: Timestamp) -> anyhow::Result<()> {
    let views = views(store, Some(args.name.clone()), now).await?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&views[0])?);
    } else {
        print_table(&views);
    }
    Ok(())
}

fn print_table(views: &[ScheduleView]) {
    let opt = |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    println!(
        "{:<20} {:<16} {:<14} {:<16} {:<7} {:<21} {:<21} recent jobs",
        "name", "cron", "timezone", "job_type", "paused", "last_slot", "next_run"
    );
    for view in views {
        let jobs: Vec<String> = view.recent_jobs.iter().map(ToString::to_string).collect();
        println!(
            "{:<20} {:<16} {:<14} {:<16} {:<7} {:<21} {:<21} {}",
            view.name,
            view.cron,
            view.timezone,
            view.job_type,
            view.paused,
            opt(view.last_slot),
            opt(view.next_run),
            jobs.join(",")
        );
    }
}
