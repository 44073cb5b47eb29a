//! Notices commits made by other processes, and costs nothing while none come.
//!
//! On Linux an inotify watch on the database's WAL file wakes the watcher
//! when another connection writes to it; `PRAGMA data_version` on a
//! connection of its own then says whether a commit is visible. A writer
//! appends its frames (and, syncing `FULL`, flushes them) before it publishes
//! the commit in the shared index, so after a write the watcher looks again,
//! every millisecond at first, for about half a second before it goes back to
//! sleep. Where inotify is unavailable, it polls the version
//! every [`FALLBACK_POLL`].

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// How often the version is read when no file notification can be had.
const FALLBACK_POLL: Duration = Duration::from_millis(100);

/// After a write to the WAL, the pauses between looks for its commit to
/// become visible: every millisecond while a commit's fsync may still be
/// running, then less and less often, for about half a second in all.
fn settle() -> impl Iterator<Item = Duration> {
    let fast = std::iter::repeat_n(Duration::from_millis(1), 20);
    let slow = (2..9).map(|i| Duration::from_millis(1 << i));
    std::iter::once(Duration::ZERO).chain(fast).chain(slow)
}

pub(crate) struct Watch {
    state: tokio::sync::Mutex<State>,
}

struct State {
    open: Box<dyn Fn() -> rusqlite::Result<Connection> + Send + Sync>,
    conn: Option<Connection>,
    /// The version seen when the last wait ended; a change since then ends
    /// the next wait at once, so a commit between two waits is never missed.
    seen: i64,
    events: Option<Events>,
}

impl Watch {
    /// Watches the database at `path`, reading its version on connections
    /// that `open` makes.
    pub(crate) fn new(
        path: &Path,
        open: impl Fn() -> rusqlite::Result<Connection> + Send + Sync + 'static,
    ) -> Self {
        let events = Events::new(path);
        if events.is_none() {
            tracing::info!(
                poll_ms = FALLBACK_POLL.as_millis() as u64,
                "no file notifications for the database; other processes' jobs are noticed by polling"
            );
        }
        Self {
            state: tokio::sync::Mutex::new(State {
                open: Box::new(open),
                conn: None,
                seen: 0,
                events,
            }),
        }
    }

    /// Returns once another connection may have committed; pends while the
    /// database cannot be read (the caller's timeout then takes over).
    pub(crate) async fn changed(&self) {
        let mut state = self.state.lock().await;
        loop {
            if state.check() {
                return;
            }
            match state.events.as_mut() {
                Some(events) => {
                    if !events.next().await {
                        state.events = None;
                        continue;
                    }
                    for pause in settle() {
                        tokio::time::sleep(pause).await;
                        if state.check() {
                            return;
                        }
                    }
                }
                None => tokio::time::sleep(FALLBACK_POLL).await,
            }
        }
    }
}

impl State {
    /// True when the version moved since the last look (or the connection is
    /// new, with no past to compare with: the caller then looks once).
    fn check(&mut self) -> bool {
        let fresh = self.conn.is_none();
        if fresh {
            match (self.open)() {
                Ok(conn) => self.conn = Some(conn),
                Err(error) => {
                    tracing::warn!(error = %error, "cannot open the database to watch it");
                    return false;
                }
            }
        }
        let conn = self.conn.as_ref().expect("opened above");
        match conn.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0)) {
            Ok(version) => {
                let changed = fresh || version != self.seen;
                self.seen = version;
                changed
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the data version");
                self.conn = None;
                false
            }
        }
    }
}

#[cfg(target_os = "linux")]
struct Events {
    stream: inotify::EventStream<Vec<u8>>,
}

#[cfg(target_os = "linux")]
impl Events {
    /// Writes to `<path>-wal`; `None` when inotify cannot watch it.
    fn new(path: &Path) -> Option<Self> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let watch = || -> std::io::Result<Self> {
            let inotify = inotify::Inotify::init()?;
            inotify.watches().add(&wal, inotify::WatchMask::MODIFY)?;
            Ok(Self {
                stream: inotify.into_event_stream(vec![0; 4096])?,
            })
        };
        watch()
            .inspect_err(|error| tracing::warn!(error = %error, "cannot watch the WAL file"))
            .ok()
    }

    /// Waits for the next write; false when the watch broke.
    async fn next(&mut self) -> bool {
        use futures_util::StreamExt;
        match self.stream.next().await {
            Some(Ok(_)) => true,
            other => {
                tracing::warn!(event = ?other.map(|e| e.map(|_| ())), "the WAL watch ended; polling instead");
                false
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
struct Events;

#[cfg(not(target_os = "linux"))]
impl Events {
    fn new(_path: &Path) -> Option<Self> {
        None
    }

    async fn next(&mut self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::Watch;

    #[tokio::test]
    async fn a_commit_by_another_connection_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watch.db");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .unwrap();
        let open = path.clone();
        let watch = Watch::new(&path, move || Connection::open(&open));
        #[cfg(target_os = "linux")]
        assert!(
            watch.state.lock().await.events.is_some(),
            "the WAL file is watched"
        );
        // The first wait has no past to compare with: it returns at once.
        watch.changed().await;

        let wait = watch.changed();
        tokio::pin!(wait);
        let nothing = tokio::time::timeout(Duration::from_millis(50), &mut wait).await;
        assert!(nothing.is_err(), "no commit, no wake-up");
        other.execute("INSERT INTO t (x) VALUES (1)", []).unwrap();
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the commit ends the wait");
    }
}
