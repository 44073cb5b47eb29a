//! Group commit for signups on PostgreSQL. Callers queue their
//! signup and wait; one task takes the database's writer first, then every
//! signup that queued until it had it, and hands them to the engine's batch
//! insert: one transaction, one flush to disk for all of them. Every caller
//! is answered after the commit that holds its rows.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_channel::{mpsc, oneshot};
use futures_util::{FutureExt, StreamExt};

use tasuki_core::{JobId, NewJob, StoreError, StoreResult, Timestamp};

use crate::model::{JobFor, NewUser, User};

/// The most signups one transaction takes.
const BATCH: usize = 512;
/// How many signups may wait; callers beyond it wait to queue (backpressure).
const QUEUE: usize = 8 * BATCH;

/// One caller's signup: the user and the builder of its job.
pub(crate) struct Signup {
    pub(crate) user: NewUser,
    pub(crate) job: JobFor,
    pub(crate) now: Timestamp,
}

/// What a signup gets: the user and its job, or why not.
pub(crate) type SignupResult = StoreResult<(User, JobId)>;

struct Queued {
    signup: Signup,
    reply: oneshot::Sender<SignupResult>,
}

/// Where a store's `user_insert_with_job` queues its signups.
#[derive(Clone)]
pub(crate) struct SignupQueue {
    queue: mpsc::Sender<Queued>,
}

impl SignupQueue {
    /// The queue, and the task that commits its batches, which the store
    /// spawns. Once a signup waits, `acquire` takes what a batch is written
    /// with (the writer connection, a transaction): the signups that queue
    /// while it waits for it join the batch instead of waiting for the next
    /// one. `insert` writes one batch with it in one transaction and answers
    /// each signup in order (see [`assign_users`] and [`answers`]); when
    /// either fails or a job builder panics, the batch is rolled back and
    /// every caller in it gets the error.
    pub(crate) fn new<A, AFut, C, F, Fut>(
        acquire: A,
        insert: F,
    ) -> (Self, impl Future<Output = ()> + Send)
    where
        A: Fn() -> AFut + Send,
        AFut: Future<Output = StoreResult<C>> + Send,
        C: Send,
        F: Fn(C, Vec<Signup>) -> Fut + Send,
        Fut: Future<Output = StoreResult<Vec<SignupResult>>> + Send,
    {
        let (queue, mut queued) = mpsc::channel::<Queued>(QUEUE);
        let task = async move {
            while let Some(first) = queued.next().await {
                let writer = acquire().await;
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match queued.try_recv() {
                        Ok(next) => batch.push(next),
                        // Nothing more queued, or the queue closed.
                        Err(_) => break,
                    }
                }
                // A caller that stopped waiting (its request timed out) is
                // not written: nobody would learn that it was.
                batch.retain(|q| !q.reply.is_canceled());
                if batch.is_empty() {
                    continue;
                }
                tracing::debug!(signups = batch.len(), "committing a signup batch");
                let (signups, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|q| (q.signup, q.reply)).unzip();
                let written = writer.map(|writer| insert(writer, signups));
                let written = async move { written?.await };
                let error = match AssertUnwindSafe(written).catch_unwind().await {
                    Ok(Ok(results)) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(result);
                        }
                        continue;
                    }
                    Ok(Err(error)) => format!("{error:?}"),
                    Err(_) => "a job builder panicked".to_owned(),
                };
                tracing::error!(error = %error, "a signup batch did not commit");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database(
                        format!("the signup batch did not commit: {error}").into(),
                    )));
                }
            }
        };
        (Self { queue }, task)
    }

    /// Queues a signup and waits for the commit that holds it.
    pub(crate) async fn submit(&self, signup: Signup) -> SignupResult {
        let (reply, answer) = oneshot::channel();
        let mut queue = self.queue.clone();
        futures_util::future::poll_fn(|cx| queue.poll_ready(cx))
            .await
            .and_then(|()| queue.start_send(Queued { signup, reply }))
            .map_err(|_| StoreError::Database("the signup writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database("the signup writer dropped a signup".into()))?
    }
}

/// After a batch's users are inserted (a taken email inserts nothing; the
/// rows as the engine read them): the user each signup got, in order (the
/// first signup of an email gets the row; any other is a duplicate), and the
/// jobs of the new users, in the same order.
pub(crate) fn assign_users(
    batch: Vec<Signup>,
    inserted: impl IntoIterator<Item = StoreResult<User>>,
) -> StoreResult<(Vec<Option<User>>, Vec<NewJob>)> {
    let mut by_email = HashMap::new();
    for user in inserted {
        let user = user?;
        by_email.insert(user.email.clone(), user);
    }
    let mut jobs = Vec::with_capacity(batch.len());
    let users = batch
        .into_iter()
        .map(|signup| {
            let user = by_email.remove(&signup.user.email)?;
            jobs.push((signup.job)(&user));
            Some(user)
        })
        .collect();
    Ok((users, jobs))
}

/// Each signup's answer: its user with the next job id, or a duplicate.
pub(crate) fn answers(users: Vec<Option<User>>, job_ids: Vec<JobId>) -> Vec<SignupResult> {
    let mut ids = job_ids.into_iter();
    users
        .into_iter()
        .map(|user| match user {
            Some(user) => ids
                .next()
                .map(|id| (user, id))
                .ok_or_else(|| StoreError::Database("a new user without its job".into())),
            None => Err(StoreError::Duplicate("email".into())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signup(email: &str) -> Signup {
        Signup {
            user: NewUser {
                email: email.into(),
                age: 30,
                name: None,
                bio: None,
                is_active: true,
                additional_data: None,
            },
            job: Box::new(|user| {
                NewJob::new(
                    "welcome",
                    serde_json::json!({"user_id": user.id}),
                    user.created_at,
                )
            }),
            now: Timestamp::from_micros(0),
        }
    }

    fn row(id: i64, email: &str) -> StoreResult<User> {
        Ok(User {
            id,
            email: email.into(),
            age: 30,
            name: None,
            bio: None,
            is_active: true,
            additional_data: None,
            created_at: Timestamp::from_micros(0),
        })
    }

    #[test]
    fn the_first_signup_of_an_email_gets_the_row_and_the_others_are_duplicates() {
        // "b" was taken before the batch; "a" comes twice within it.
        let batch = vec![signup("a"), signup("b"), signup("a"), signup("c")];
        let (users, jobs) = assign_users(batch, [row(7, "c"), row(6, "a")]).unwrap();
        let ids: Vec<_> = users.iter().map(|u| u.as_ref().map(|u| u.id)).collect();
        assert_eq!(ids, [Some(6), None, None, Some(7)]);
        let payloads: Vec<_> = jobs.iter().map(|j| j.payload["user_id"].clone()).collect();
        assert_eq!(payloads, [6, 7], "one job per new user, in signup order");

        let answers = answers(users, vec![JobId(60), JobId(70)]);
        assert!(matches!(&answers[0], Ok((u, JobId(60))) if u.id == 6));
        assert!(matches!(answers[1], Err(StoreError::Duplicate(_))));
        assert!(matches!(answers[2], Err(StoreError::Duplicate(_))));
        assert!(matches!(&answers[3], Ok((u, JobId(70))) if u.id == 7));
    }

    #[tokio::test]
    async fn signups_that_queue_while_the_writer_is_taken_join_the_batch() {
        use std::sync::{Arc, Mutex};
        use tokio::sync::Notify;

        // The first acquire waits until the test lets it have the writer.
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
        let batches = Arc::new(Mutex::new(Vec::new()));
        let insert = {
            let batches = batches.clone();
            move |(), batch: Vec<Signup>| {
                let emails: Vec<String> = batch.iter().map(|s| s.user.email.clone()).collect();
                batches.lock().unwrap().push(emails);
                let results = batch
                    .iter()
                    .map(|_| Err(StoreError::Duplicate("email".into())))
                    .collect();
                async move { Ok(results) }
            }
        };
        let (queue, task) = SignupQueue::new(acquire, insert);
        tokio::spawn(task);
        let submit = |email: &'static str| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.submit(signup(email)).await })
        };

        let a = submit("a");
        acquiring.notified().await;
        let (b, c) = (submit("b"), submit("c"));
        // On this one-thread runtime the yield lets both queue their signup.
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        for answer in [a, b, c] {
            assert!(matches!(
                answer.await.unwrap(),
                Err(StoreError::Duplicate(_))
            ));
        }
        assert_eq!(
            *batches.lock().unwrap(),
            [["a", "b", "c"]],
            "one batch for all three"
        );
    }

    #[test]
    fn a_row_that_cannot_be_read_fails_the_batch() {
        let unreadable = Err(StoreError::Database("bad row".into()));
        assert!(assign_users(vec![signup("a")], [unreadable]).is_err());
    }
}
