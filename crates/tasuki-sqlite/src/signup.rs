//! Group commit for signups: one task takes the `user_insert_with_job` calls
//! that arrive while it is busy and commits them together: one statement
//! inserts the users (a taken email inserts nothing, so one caller's
//! duplicate does not undo the others), one inserts their jobs, one commit
//! and one fsync serve them all. Every caller is answered after the commit
//! that holds its rows.

use sqlx::{Executor, Sqlite};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use tasuki_core::{JobFor, JobId, NewJob, NewUser, StoreError, StoreResult, Timestamp, User};
use tokio::sync::{mpsc, oneshot};

use crate::rows::{UserRow, db_error};
use crate::{Commit, Writer, jobs};

/// The most signups one transaction takes.
const BATCH: usize = 512;

pub(crate) struct Signup {
    pub(crate) user: NewUser,
    pub(crate) job: JobFor,
    pub(crate) now: Timestamp,
    pub(crate) reply: oneshot::Sender<StoreResult<(User, JobId)>>,
}

/// How many signups may wait; callers beyond it wait to enqueue (backpressure).
const QUEUE: usize = 8 * BATCH;

pub(crate) fn spawn(writer: Writer) -> mpsc::Sender<Signup> {
    let (tx, mut rx) = mpsc::channel::<Signup>(QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            // A caller that stopped waiting (its request timed out) is not
            // written: nobody would learn that it was.
            batch.retain(|s| !s.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            tracing::debug!(signups = batch.len(), "committing a signup batch");
            commit(&writer, std::mem::take(&mut batch)).await;
        }
    });
    tx
}

type Reply = oneshot::Sender<StoreResult<(User, JobId)>>;

async fn commit(writer: &Writer, batch: Vec<Signup>) {
    let (requests, replies): (Vec<_>, Vec<Reply>) = batch
        .into_iter()
        .map(|s| ((s.user, s.job, s.now), s.reply))
        .unzip();
    // A panicking job builder fails its batch (rolled back), not the writer.
    let inserted = AssertUnwindSafe(insert(writer, requests))
        .catch_unwind()
        .await;
    match inserted {
        Ok(Ok(results)) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Ok(Err(error)) => fail_all(replies, &error),
        Err(_) => fail_all(
            replies,
            &StoreError::Database("a job builder panicked".into()),
        ),
    }
}

/// Two statements for the whole batch: the users, then the jobs of those
/// whose email was free.
async fn insert(
    writer: &Writer,
    batch: Vec<(NewUser, JobFor, Timestamp)>,
) -> StoreResult<Vec<StoreResult<(User, JobId)>>> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        email: &'a str,
        age: i64,
        name: Option<&'a str>,
        bio: Option<&'a str>,
        is_active: bool,
        additional_data: Option<String>,
        created_at: i64,
    }
    let rows: Vec<Row<'_>> = batch
        .iter()
        .map(|(user, _, now)| Row {
            email: &user.email,
            age: user.age,
            name: user.name.as_deref(),
            bio: user.bio.as_deref(),
            is_active: user.is_active,
            additional_data: user
                .additional_data
                .as_ref()
                .map(|m| serde_json::Value::Object(m.clone()).to_string()),
            created_at: now.as_micros(),
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Database(Box::new(e)))?;
    let mut conn = writer.conn(Commit::Acknowledged).await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db_error)?;
    let inserted = sqlx::query_file_as!(UserRow, "queries/user/insert_many.sql", rows)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    let mut by_email: HashMap<String, User> = HashMap::with_capacity(inserted.len());
    for row in inserted {
        let user = User::try_from(row)?;
        by_email.insert(user.email.clone(), user);
    }
    // The first signup of an email gets the row; any other is a duplicate.
    let users: Vec<Option<User>> = batch
        .iter()
        .map(|(user, _, _)| by_email.remove(&user.email))
        .collect();
    let jobs: Vec<NewJob> = batch
        .into_iter()
        .zip(&users)
        .filter_map(|((_, job, _), user)| user.as_ref().map(job))
        .collect();
    let mut ids = jobs::insert_many(&mut *tx, &jobs).await?.into_iter();
    tx.commit().await.map_err(db_error)?;
    Ok(users
        .into_iter()
        .map(|user| match user {
            Some(user) => Ok((user, ids.next().expect("one job per new user"))),
            None => Err(StoreError::Duplicate("email".into())),
        })
        .collect())
}

fn fail_all(replies: Vec<Reply>, error: &StoreError) {
    tracing::error!(error = ?error, "a signup batch did not commit");
    for reply in replies {
        let _ = reply.send(Err(StoreError::Database(
            format!("the signup batch did not commit: {error}").into(),
        )));
    }
}

pub(crate) async fn insert_user<'e, E>(
    executor: E,
    user: NewUser,
    now: Timestamp,
) -> StoreResult<User>
where
    E: Executor<'e, Database = Sqlite>,
{
    let additional = user
        .additional_data
        .map(|map| serde_json::Value::Object(map).to_string());
    let now = now.as_micros();
    sqlx::query_file_as!(
        UserRow,
        "queries/user/insert.sql",
        user.email,
        user.age,
        user.name,
        user.bio,
        user.is_active,
        additional,
        now
    )
    .fetch_one(executor)
    .await
    .map_err(db_error)?
    .try_into()
}
