//! Group commit for signups: one task takes the `user_insert_with_job` calls
//! that arrive while it is busy and commits them in one transaction, each in
//! its own savepoint, so one fsync serves many requests and one caller's
//! failure (a duplicate email) does not undo the others. Every caller is
//! answered after the commit that holds its rows.

use sqlx::{Executor, Sqlite, SqlitePool};
use tasuki_core::{Job, JobFor, NewUser, StoreError, StoreResult, Timestamp, User};
use tokio::sync::{mpsc, oneshot};

use crate::jobs;
use crate::rows::{UserRow, db_error};

/// The most signups one transaction takes.
const BATCH: usize = 512;

pub(crate) struct Signup {
    pub(crate) user: NewUser,
    pub(crate) job: JobFor,
    pub(crate) now: Timestamp,
    pub(crate) reply: oneshot::Sender<StoreResult<(User, Job)>>,
}

pub(crate) fn spawn(writer: SqlitePool) -> mpsc::UnboundedSender<Signup> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Signup>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            commit(&writer, std::mem::take(&mut batch)).await;
        }
    });
    tx
}

async fn commit(writer: &SqlitePool, batch: Vec<Signup>) {
    let mut answers = Vec::with_capacity(batch.len());
    let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(error) => return fail_all(batch.into_iter().map(|s| s.reply), &error),
    };
    for signup in batch {
        let result = async {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await.map_err(db_error)?;
            let user = insert_user(&mut *savepoint, signup.user, signup.now).await?;
            let job = jobs::insert(&mut *savepoint, (signup.job)(&user)).await?;
            savepoint.commit().await.map_err(db_error)?;
            Ok((user, job))
        }
        .await;
        answers.push((signup.reply, result));
    }
    match tx.commit().await {
        Ok(()) => {
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
        }
        Err(error) => fail_all(answers.into_iter().map(|(reply, _)| reply), &error),
    }
}

fn fail_all(
    replies: impl Iterator<Item = oneshot::Sender<StoreResult<(User, Job)>>>,
    error: &sqlx::Error,
) {
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
