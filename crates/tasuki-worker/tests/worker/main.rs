//! The worker against a real SQLite store: driven step by step with a pinned
//! clock, and run as a loop with signals and deadlines.

mod helpers;
mod run_loop;
mod steps;
