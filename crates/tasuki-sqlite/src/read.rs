//! Reads, on read-only connections beside the writer (WAL lets them read
//! while it writes). A read runs on tokio's blocking pool with a connection
//! taken from the idle ones, or a new one when none is idle.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tasuki_core::{StoreError, StoreResult};

use crate::rows::Error;

#[derive(Clone)]
pub(crate) struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    open: Box<dyn Fn() -> rusqlite::Result<Connection> + Send + Sync>,
    idle: Mutex<Vec<Connection>>,
    /// The most idle connections kept open.
    keep: usize,
}

impl Readers {
    pub(crate) fn new(
        open: impl Fn() -> rusqlite::Result<Connection> + Send + Sync + 'static,
        keep: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                open: Box::new(open),
                idle: Mutex::new(Vec::new()),
                keep: keep.max(1),
            }),
        }
    }

    pub(crate) async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idle = inner
                .idle
                .lock()
                .expect("the reader lock is never poisoned")
                .pop();
            let conn = match idle {
                Some(conn) => conn,
                None => (inner.open)().map_err(Error::from)?,
            };
            let result = read(&conn);
            let mut idle = inner
                .idle
                .lock()
                .expect("the reader lock is never poisoned");
            if idle.len() < inner.keep {
                idle.push(conn);
            }
            result.map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?
    }
}
