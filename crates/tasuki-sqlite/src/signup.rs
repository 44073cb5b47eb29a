//! The SQLite side of the signups' group commit ([`tasuki_core::SignupQueue`]):
//! one statement inserts a batch's users (a taken email inserts nothing, so
//! one caller's duplicate does not undo the others), one inserts their jobs,
//! and one commit with one fsync serves them all.

use sqlx::{Executor, Sqlite};

use tasuki_core::{
    NewUser, Signup, SignupQueue, SignupResult, StoreError, StoreResult, Timestamp, User, answers,
    assign_users,
};

use crate::rows::{UserRow, db_error};
use crate::{Commit, Writer, WriterConn, jobs};

pub(crate) fn spawn(writer: Writer) -> SignupQueue {
    let acquire = move || {
        let writer = writer.clone();
        async move { writer.conn(Commit::Acknowledged).await }
    };
    let (queue, task) = SignupQueue::new(acquire, insert);
    tokio::spawn(task);
    queue
}

/// Two statements for the whole batch: the users, then the jobs of those
/// whose email was free.
async fn insert(mut conn: WriterConn, batch: Vec<Signup>) -> StoreResult<Vec<SignupResult>> {
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
        .map(|s| Row {
            email: &s.user.email,
            age: s.user.age,
            name: s.user.name.as_deref(),
            bio: s.user.bio.as_deref(),
            is_active: s.user.is_active,
            additional_data: s
                .user
                .additional_data
                .as_ref()
                .map(|m| serde_json::Value::Object(m.clone()).to_string()),
            created_at: s.now.as_micros(),
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Database(Box::new(e)))?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db_error)?;
    let inserted = sqlx::query_file_as!(UserRow, "queries/user/insert_many.sql", rows)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    let (users, new_jobs) = assign_users(batch, inserted.into_iter().map(User::try_from))?;
    let ids = jobs::insert_many(&mut *tx, &new_jobs).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(answers(users, ids))
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
