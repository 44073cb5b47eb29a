//! Signups in batches: which caller gets which inserted user, and the jobs
//! of the new users. PostgreSQL commits its signups in groups
//! ([`crate::group`]): one transaction, one flush to disk for all of them.

use std::collections::HashMap;

use tasuki_core::{JobId, NewJob, StoreError, StoreResult, Timestamp};

use crate::model::{JobFor, NewUser, User};

/// One caller's signup: the user and the builder of its job.
pub(crate) struct Signup {
    pub(crate) user: NewUser,
    pub(crate) job: JobFor,
    pub(crate) now: Timestamp,
}

/// What a signup gets: the user and its job, or why not.
pub(crate) type SignupResult = StoreResult<(User, JobId)>;

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

    #[test]
    fn a_row_that_cannot_be_read_fails_the_batch() {
        let unreadable = Err(StoreError::Database("bad row".into()));
        assert!(assign_users(vec![signup("a")], [unreadable]).is_err());
    }
}
