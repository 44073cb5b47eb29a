//! The `tasuki` binary as users run it: commands, worker processes, signals.

mod commands;
mod helpers;
mod multiprocess;
mod multiprocess_postgres;
mod serve;
mod shutdown;
