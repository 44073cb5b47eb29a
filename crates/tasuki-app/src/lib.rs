//! The application that tasuki ships, the first user of its queue: users,
//! their profiles, the email outbox and signup statistics, on either engine;
//! the `/users` routes; and the job types, one file each, registered in
//! [`registry`].
//!
//! The queue's crates know nothing of any of it. The application keeps its
//! tables beside the queue's, with migrations of its own per engine
//! (`sqlite/`, `postgres/`), and commits a job's writes with its completion
//! (`tasuki_sqlite::writes`, `tasuki_postgres::writes`).
//!
//! To add a job type: write a [`Handler`](tasuki_worker::Handler) in its own
//! file and add one `.register(...)` line below.

mod data_analysis;
mod email;
mod group;
mod model;
mod postgres;
mod probe;
mod routes;
mod signup;
mod sqlite;
mod user_created;

pub use data_analysis::{DataAnalysis, Summary};
pub use email::{EMAIL_QUEUE, EmailSender, LogEmailSender, SEND_EMAIL_PRIORITY, SendEmail};
pub use model::{
    AgeFilter, AppStore, EmailMessage, JobFor, NewUser, Onboarding, User, UserProfile,
};
pub use postgres::PgApp;
pub use probe::Probe;
pub use routes::routes;
pub use sqlite::SqliteApp;
pub use user_created::{UserCreated, derive_profile};

use std::sync::Arc;

use tasuki_worker::Registry;

/// The largest id a payload may name: 2^53 - 1, exact in every JSON reader.
pub const MAX_ID: i64 = 9_007_199_254_740_991;

/// Every shipped job type, wired to the application's store and services.
pub fn registry(app: Arc<dyn AppStore>, email: Arc<dyn EmailSender>) -> Registry {
    Registry::new()
        .register(UserCreated::new(app.clone()))
        .register(DataAnalysis::new(app.clone()))
        .register(SendEmail::new(app.clone(), email))
        .register(Probe::new(app))
}

/// The shipped job types with no database behind them, to check payloads
/// before one is opened (as the CLI does, so that bad input writes
/// nothing). Their handlers fail if run.
pub fn schemas() -> Registry {
    registry(Arc::new(model::Unopened), Arc::new(LogEmailSender))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tasuki_api::Contract;
    use tasuki_sqlite::{SqliteConfig, SqliteStore};

    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        for (engine, migrations) in [
            ("sqlite", &sqlite::MIGRATIONS),
            ("postgres", &postgres::MIGRATIONS),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(engine)
                .join("migrations");
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let listed: Vec<String> = migrations
                .list
                .iter()
                .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
                .collect();
            assert_eq!(files, listed, "{engine}");
        }
    }

    #[tokio::test]
    async fn the_contract_states_each_job_types_payload_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("app.db")))
            .await
            .unwrap();
        let app = SqliteApp::open(Arc::new(store)).await.unwrap();
        let registry = registry(Arc::new(app), Arc::new(LogEmailSender));
        let contract = Contract::load().unwrap();
        for job_type in registry.job_types() {
            let name: String = job_type
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .chain(["Payload".to_owned()])
                .collect();
            let stated = contract
                .schema(&name)
                .unwrap_or_else(|| panic!("no {name} in the contract"));
            assert_eq!(
                stated,
                registry.schema(job_type).unwrap(),
                "{name} differs from the code"
            );
        }
        let enum_types = &contract.schema("JobRequest").unwrap()["properties"]["job_type"]["enum"];
        let mut types: Vec<&str> = registry.job_types().collect();
        types.sort_unstable();
        let mut stated: Vec<&str> = enum_types
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        stated.sort_unstable();
        assert_eq!(stated, types);
    }
}
