//! Both stores against the conformance suite; SQLite at both durabilities.

mod sqlite {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::Sqlite);
}

mod sqlite_normal {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::SqliteNormal);
}

mod postgres {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::Postgres);
    tasuki_conformance::conformance_tests!(@each_db tasuki_conformance::Engine::Postgres;
        set_writes_run_together_and_fail_alone);
}
