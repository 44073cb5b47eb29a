//! Both stores against the conformance suite.

mod sqlite {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::Sqlite);
}

mod postgres {
    tasuki_conformance::conformance_tests!(tasuki_conformance::Engine::Postgres);
}
