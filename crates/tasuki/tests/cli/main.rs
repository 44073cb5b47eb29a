//! The `tasuki` binary as users run it: commands, worker processes, signals, crashes.

mod commands;
mod crash;
mod dashboard;
mod helpers;
mod multiprocess;
mod multiprocess_postgres;
mod queues;
mod schedules;
mod serve;
mod shutdown;
