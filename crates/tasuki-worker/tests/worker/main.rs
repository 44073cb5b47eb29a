//! The worker against a real store on each engine: driven step by step with a
//! pinned clock, and run as a loop with signals and deadlines.

mod helpers;
mod leases;
mod queues;
mod run_loop;
mod steps;
