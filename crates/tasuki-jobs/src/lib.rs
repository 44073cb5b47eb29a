//! The job types tasuki ships, one file each, registered in [`registry`].
//!
//! To add one: write a [`Handler`](tasuki_worker::Handler) in its own file
//! and add one `.register(...)` line below.

mod data_analysis;
mod email;
mod probe;
mod user_created;

use std::sync::Arc;

pub use data_analysis::{DataAnalysis, Summary};
pub use email::{EmailSender, LogEmailSender, SEND_EMAIL_PRIORITY, SendEmail};
pub use probe::Probe;
pub use user_created::{UserCreated, derive_profile};

use tasuki_worker::Registry;

/// The largest id a payload may name: 2^53 - 1, exact in every JSON reader.
pub const MAX_ID: i64 = 9_007_199_254_740_991;

/// Every shipped job type, wired to its services.
pub fn registry(email: Arc<dyn EmailSender>) -> Registry {
    Registry::new()
        .register(UserCreated)
        .register(DataAnalysis)
        .register(SendEmail::new(email))
        .register(Probe)
}
