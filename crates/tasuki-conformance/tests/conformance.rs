//! Both stores against the conformance suite; SQLite at both durabilities.

mod sqlite {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::Sqlite);
}

mod sqlite_normal {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::SqliteNormal);
}

mod postgres {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::Postgres);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_writes_run_together_and_fail_alone() {
        if let Some(db) = tasuki_conformance::fresh(tasuki_conformance::Engine::Postgres).await {
            tasuki_conformance::set_writes_run_together_and_fail_alone(&db).await;
        }
    }
}
