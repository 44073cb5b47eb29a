//! The real app on 127.0.0.1:0 with its own database, driven over HTTP.
//! Every response is checked against the contract.

mod helpers;
mod jobs;
mod modes;
mod monitor;
mod ops;
mod queues;
mod schedules;
mod users;
