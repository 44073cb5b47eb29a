//! Every statement of the store: its `.sql` file under `queries/`, and the
//! columns the code reads from it, in order. `tests` prepares each against the
//! migrated schema and checks those columns, and that every file is listed, so
//! a statement that no longer fits the schema fails CI.

use crate::rows::{JOB, USER};

pub(crate) struct Query {
    // The path and the columns are read by the check, not by the store.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) path: &'static str,
    pub(crate) sql: &'static str,
    /// The columns the code reads, in order; empty for a statement that
    /// returns none.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) columns: &'static [&'static str],
}

macro_rules! queries {
    ($($name:ident = $path:literal => $columns:expr;)*) => {
        $(pub(crate) const $name: Query = Query {
            path: $path,
            sql: include_str!(concat!("../queries/", $path)),
            columns: $columns,
        };)*
        /// All of them, for the check.
        #[cfg(test)]
        pub(crate) const ALL: &[Query] = &[$($name),*];
    };
}

queries! {
    JOB_INSERT = "job/insert.sql" => JOB;
    JOB_INSERT_MANY = "job/insert_many.sql" => &[];
    JOB_CLAIM = "job/claim.sql" => JOB;
    JOB_COMPLETE_MANY = "job/complete_many.sql" => &["id"];
    JOB_HELD = "job/held.sql" => &["id"];
    JOB_FAIL_MANY = "job/fail_many.sql" => &["id"];
    JOB_RELEASE_MANY = "job/release_many.sql" => &["id"];
    JOB_HEARTBEAT = "job/heartbeat.sql" => &[];
    JOB_RESCUE_EXPIRED = "job/rescue_expired.sql" => &["id"];
    JOB_PRUNE = "job/prune.sql" => &[];
    JOB_RETRY = "job/retry.sql" => JOB;
    JOB_CANCEL = "job/cancel.sql" => JOB;
    JOB_GET = "job/get.sql" => JOB;
    JOB_LIST = "job/list.sql" => JOB;
    JOB_STATS = "job/stats.sql" => &["job_type", "status", "count"];
    JOB_OLDEST_READY = "job/oldest_ready.sql" => &["oldest"];
    JOB_NEXT_SCHEDULED = "job/next_scheduled.sql" => &["next"];
    LEADER_ACQUIRE = "leader/acquire.sql" => &["owner"];
    LEADER_RELEASE = "leader/release.sql" => &[];
    USER_INSERT = "user/insert.sql" => USER;
    USER_GET = "user/get.sql" => USER;
    USER_LIST = "user/list.sql" => USER;
    USER_AGES = "user/ages.sql" => &["age"];
    USER_PROFILE_GET = "user/profile_get.sql" => &["recommendation_tags", "region", "rank"];
    ONBOARD_PROFILE = "user/onboard/profile.sql" => &[];
    ONBOARD_MARK = "user/onboard/mark.sql" => &[];
    ONBOARD_EMAIL = "user/onboard/email.sql" => &["id"];
    ONBOARD_COUNT = "user/onboard/count.sql" => &[];
    SIGNUP_STATS = "signup/stats.sql" => &["day", "signups"];
    EMAIL_GET = "email/get.sql" => &["id", "user_id", "kind", "recipient", "subject", "body", "sent_at"];
    EMAIL_MARK_SENT = "email/mark_sent.sql" => &[];
    PROBE_START = "probe/start.sql" => &[];
    PROBE_END = "probe/end.sql" => &[];
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::ALL;

    fn sql_files(dir: &Path, under: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sql_files(&path, under, found);
            } else if path.extension().is_some_and(|e| e == "sql") {
                let relative = path.strip_prefix(under).unwrap();
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_statement_prepares_against_the_schema_and_returns_the_columns_read() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("schema.db")).unwrap();
        crate::migrate::run(&conn).unwrap();
        for query in ALL {
            let statement = conn
                .prepare(query.sql)
                .unwrap_or_else(|e| panic!("{} does not prepare: {e}", query.path));
            assert_eq!(
                statement.column_names(),
                query.columns,
                "{}: the columns it returns are not the ones the code reads",
                query.path
            );
        }
    }

    #[test]
    fn every_sql_file_is_a_listed_statement() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
        let mut files = BTreeSet::new();
        sql_files(&root, &root, &mut files);
        let listed: BTreeSet<String> = ALL.iter().map(|q| q.path.to_owned()).collect();
        assert_eq!(files, listed, "queries/ and the list in queries.rs differ");
        assert_eq!(listed.len(), ALL.len(), "a file is listed twice");
    }
}
