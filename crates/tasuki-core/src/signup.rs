//! Group commit for signups, shared by the stores. Callers queue their
//! signup and wait; one task takes every signup that queued while it was
//! busy and hands them to the engine's batch insert: one transaction, one
//! flush to disk for all of them. Every caller is answered after the commit
//! that holds its rows.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_channel::{mpsc, oneshot};
use futures_util::{FutureExt, StreamExt};

use crate::{JobFor, JobId, NewJob, NewUser, StoreError, StoreResult, Timestamp, User};

/// The most signups one transaction takes.
const BATCH: usize = 512;
/// How many signups may wait; callers beyond it wait to queue (backpressure).
const QUEUE: usize = 8 * BATCH;

/// One caller's signup: the user and the builder of its job.
pub struct Signup {
    pub user: NewUser,
    pub job: JobFor,
    pub now: Timestamp,
}

/// What a signup gets: the user and its job, or why not.
pub type SignupResult = StoreResult<(User, JobId)>;

struct Queued {
    signup: Signup,
    reply: oneshot::Sender<SignupResult>,
}

/// Where a store's `user_insert_with_job` queues its signups.
#[derive(Clone)]
pub struct SignupQueue {
    queue: mpsc::Sender<Queued>,
}

impl SignupQueue {
    /// The queue, and the task that commits its batches, which the store
    /// spawns. `insert` writes one batch in one transaction and answers
    /// each signup in order (see [`assign_users`] and [`answers`]); when it
    /// fails or a job builder panics, the batch is rolled back and every
    /// caller in it gets the error.
    pub fn new<F, Fut>(insert: F) -> (Self, impl Future<Output = ()> + Send)
    where
        F: Fn(Vec<Signup>) -> Fut + Send,
        Fut: Future<Output = StoreResult<Vec<SignupResult>>> + Send,
    {
        let (queue, queued) = mpsc::channel::<Queued>(QUEUE);
        let task = async move {
            let mut batches = queued.ready_chunks(BATCH);
            while let Some(mut batch) = batches.next().await {
                // A caller that stopped waiting (its request timed out) is
                // not written: nobody would learn that it was.
                batch.retain(|q| !q.reply.is_canceled());
                if batch.is_empty() {
                    continue;
                }
                tracing::debug!(signups = batch.len(), "committing a signup batch");
                let (signups, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|q| (q.signup, q.reply)).unzip();
                let error = match AssertUnwindSafe(insert(signups)).catch_unwind().await {
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
    pub async fn submit(&self, signup: Signup) -> SignupResult {
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
pub fn assign_users(
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
pub fn answers(users: Vec<Option<User>>, job_ids: Vec<JobId>) -> Vec<SignupResult> {
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

    #[test]
    fn a_row_that_cannot_be_read_fails_the_batch() {
        let unreadable = Err(StoreError::Database("bad row".into()));
        assert!(assign_users(vec![signup("a")], [unreadable]).is_err());
    }
}
