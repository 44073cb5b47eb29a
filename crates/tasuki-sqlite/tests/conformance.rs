//! The SQLite store against the conformance suite.

use std::sync::Arc;

use tasuki_core::Store;
use tasuki_sqlite::{SqliteConfig, SqliteStore};

async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("test.db")))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

tasuki_conformance::conformance_tests!(fresh);
