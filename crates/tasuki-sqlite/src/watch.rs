//! Notices commits made by other processes, without busy work.
//!
//! `PRAGMA data_version` on one dedicated connection changes whenever another
//! connection commits. Polling it costs about a microsecond inside SQLite; the
//! poll starts at 1 ms and backs off to 10 ms while nothing changes.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::Mutex;

const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(10);

pub(crate) struct Watch {
    options: SqliteConnectOptions,
    state: Mutex<Option<State>>,
}

struct State {
    conn: SqliteConnection,
    /// The version seen when the last wait ended; a change since then ends
    /// the next wait at once, so a commit between two waits is never missed.
    seen: i64,
}

impl Watch {
    pub(crate) fn new(options: SqliteConnectOptions) -> Self {
        Self {
            options,
            state: Mutex::new(None),
        }
    }

    /// Returns once another connection has committed; pends forever if the
    /// database cannot be read (the caller's timeout then takes over).
    pub(crate) async fn changed(&self) {
        let mut state = self.state.lock().await;
        let mut poll = FIRST_POLL;
        loop {
            match self.check(&mut state).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "cannot read the data version; polling stops until the next wait");
                    *state = None;
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    async fn check(&self, state: &mut Option<State>) -> Result<bool, sqlx::Error> {
        match state {
            Some(state) => {
                let version = data_version(&mut state.conn).await?;
                let changed = version != state.seen;
                state.seen = version;
                Ok(changed)
            }
            None => {
                let mut conn = self.options.connect().await?;
                let seen = data_version(&mut conn).await?;
                *state = Some(State { conn, seen });
                // A fresh connection has no past to compare with: report a
                // change so that the caller looks once.
                Ok(true)
            }
        }
    }
}

async fn data_version(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
}
