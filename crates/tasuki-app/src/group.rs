//! Work that callers queue and wait on, done in groups on PostgreSQL. One
//! task takes what a group is done with first (a connection, a
//! transaction), then every item that queued until it had it, and hands
//! them all to one call: signups commit together (one transaction, one
//! flush to disk), `send_email` jobs read their messages together (one
//! statement, one round trip). Every caller gets its own answer.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_channel::oneshot;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use tasuki_core::{StoreError, StoreResult};

/// The most items one group takes.
const GROUP: usize = 512;
/// How many items may wait; callers beyond it wait to queue (backpressure).
const QUEUE: usize = 8 * GROUP;

struct Queued<T, R> {
    item: T,
    reply: oneshot::Sender<StoreResult<R>>,
}

/// Where callers queue their items.
pub(crate) struct Group<T, R> {
    queue: mpsc::Sender<Queued<T, R>>,
    /// What the items are, for errors: "signup", "email read".
    what: &'static str,
}

impl<T: Send + 'static, R: Send + 'static> Group<T, R> {
    /// The queue, and the task that does its groups, which the store
    /// spawns. Once an item waits, `acquire` takes what a group is done
    /// with: the items that queue while it waits for it join the group
    /// instead of waiting for the next one. `run` does one group with it
    /// and answers each item, in order; when either fails or panics, every
    /// caller in the group gets the error.
    ///
    /// One group is done at a time: `run` bounds its own time where a
    /// stuck call must not hold up the groups behind it.
    pub(crate) fn new<A, AFut, C, F, Fut>(
        what: &'static str,
        acquire: A,
        run: F,
    ) -> (Self, impl Future<Output = ()> + Send)
    where
        A: Fn() -> AFut + Send + Sync,
        AFut: Future<Output = StoreResult<C>> + Send,
        C: Send,
        F: Fn(C, Vec<T>) -> Fut + Send + Sync,
        Fut: Future<Output = StoreResult<Vec<StoreResult<R>>>> + Send,
    {
        let (queue, mut queued) = mpsc::channel::<Queued<T, R>>(QUEUE);
        let task = async move {
            while let Some(first) = queued.recv().await {
                let resource = AssertUnwindSafe(async { acquire().await })
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Database("acquiring panicked".into())));
                let mut group = vec![first];
                while group.len() < GROUP {
                    match queued.try_recv() {
                        Ok(next) => group.push(next),
                        // Nothing more queued, or the queue closed.
                        Err(_) => break,
                    }
                }
                // A caller that stopped waiting (its request timed out) is
                // not served: nobody would learn that it was.
                group.retain(|q| !q.reply.is_canceled());
                if group.is_empty() {
                    continue;
                }
                tracing::debug!(items = group.len(), what, "running a group");
                let (items, replies): (Vec<_>, Vec<_>) =
                    group.into_iter().map(|q| (q.item, q.reply)).unzip();
                let done = async { run(resource?, items).await };
                let error = match AssertUnwindSafe(done).catch_unwind().await {
                    Ok(Ok(results)) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(result);
                        }
                        continue;
                    }
                    Ok(Err(error)) => format!("{error:?}"),
                    Err(_) => "it panicked".to_owned(),
                };
                tracing::error!(error = %error, what, "a group failed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database(
                        format!("the {what} group failed: {error}").into(),
                    )));
                }
            }
        };
        (Self { queue, what }, task)
    }

    /// Queues an item, waiting while the queue is full, and waits for its
    /// answer.
    pub(crate) async fn submit(&self, item: T) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        let what = self.what;
        self.queue
            .send(Queued { item, reply })
            .await
            .map_err(|_| StoreError::Database(format!("the {what} queue has stopped").into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database(format!("the {what} queue dropped an item").into()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn items_that_queue_while_the_resource_is_taken_join_the_group() {
        // The first acquire waits until the test lets it have the resource.
        let acquiring = Arc::new(Notify::new());
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let acquire = {
            let acquiring = acquiring.clone();
            move || {
                acquiring.notify_one();
                let released = released.lock().unwrap().take();
                async move {
                    if let Some(released) = released {
                        released.await.unwrap();
                    }
                    Ok(())
                }
            }
        };
        let groups = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let groups = groups.clone();
            move |(), items: Vec<u32>| {
                groups.lock().unwrap().push(items.clone());
                let results = items.iter().map(|i| Ok(i * 10)).collect();
                async move { Ok(results) }
            }
        };
        let (group, task) = Group::new("test", acquire, run);
        tokio::spawn(task);
        let group = Arc::new(group);
        let submit = |item: u32| {
            let group = group.clone();
            tokio::spawn(async move { group.submit(item).await })
        };

        let a = submit(1);
        acquiring.notified().await;
        let (b, c) = (submit(2), submit(3));
        // On this one-thread runtime the yield lets both queue their item.
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        let answers = [a.await, b.await, c.await].map(|a| a.unwrap().unwrap());
        assert_eq!(answers, [10, 20, 30], "each caller gets its own answer");
        assert_eq!(
            *groups.lock().unwrap(),
            [[1, 2, 3]],
            "one group for all three"
        );
    }

    #[tokio::test]
    async fn a_group_whose_run_panics_fails_and_the_next_is_served() {
        let acquire = || async { Ok(()) };
        // It panics before it makes its future, on the item 0.
        let run = |(), items: Vec<u32>| {
            assert_ne!(items, [0], "the test's panic");
            std::future::ready(Ok(items.into_iter().map(Ok).collect()))
        };
        let (group, task) = Group::new("test", acquire, run);
        tokio::spawn(task);
        assert!(matches!(
            group.submit(0).await,
            Err(StoreError::Database(_))
        ));
        assert_eq!(group.submit(1).await.unwrap(), 1, "the queue goes on");
    }

    #[tokio::test]
    async fn every_caller_of_a_failed_group_gets_the_error() {
        let acquire = || async { Ok(()) };
        let run = |(), _: Vec<u32>| async {
            Err::<Vec<StoreResult<u32>>, _>(StoreError::Database("down".into()))
        };
        let (group, task) = Group::new("test", acquire, run);
        tokio::spawn(task);
        match group.submit(1).await {
            Err(StoreError::Database(error)) => assert!(
                error.to_string().starts_with("the test group failed"),
                "{error}"
            ),
            other => panic!("expected the group's error, got {other:?}"),
        }
    }
}
