//! The PostgreSQL side of the signups' group commit ([`tasuki_core::SignupQueue`]):
//! one statement inserts a batch's users (a taken email inserts nothing, so
//! one caller's duplicate does not undo the others), one inserts their jobs,
//! and one commit with one WAL flush serves them all.

use sqlx::{PgPool, Postgres, Transaction};
use tasuki_core::{Signup, SignupQueue, SignupResult, StoreResult, User, answers, assign_users};

use crate::jobs;
use crate::rows::{UserRow, db_error};

pub(crate) fn spawn(pool: PgPool) -> SignupQueue {
    let begin = move || {
        let pool = pool.clone();
        async move { pool.begin().await.map_err(db_error) }
    };
    let (queue, task) = SignupQueue::new(begin, insert);
    tokio::spawn(task);
    queue
}

/// The batch's users in one `unnest` insert, then the jobs of those whose
/// email was free in another, in one transaction.
async fn insert(
    mut tx: Transaction<'static, Postgres>,
    batch: Vec<Signup>,
) -> StoreResult<Vec<SignupResult>> {
    let n = batch.len();
    let (mut emails, mut ages, mut names, mut bios) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut active, mut additional, mut created) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for s in &batch {
        emails.push(s.user.email.clone());
        ages.push(s.user.age);
        names.push(s.user.name.clone());
        bios.push(s.user.bio.clone());
        active.push(s.user.is_active);
        additional.push(
            s.user
                .additional_data
                .clone()
                .map(serde_json::Value::Object),
        );
        created.push(s.now.to_datetime());
    }
    let inserted = sqlx::query_file_as!(
        UserRow,
        "queries/user/insert_many.sql",
        &emails,
        &ages,
        &names as &[Option<String>],
        &bios as &[Option<String>],
        &active,
        &additional as &[Option<serde_json::Value>],
        &created
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let (users, new_jobs) = assign_users(batch, inserted.into_iter().map(User::try_from))?;
    let ids = jobs::insert_many(&mut tx, new_jobs).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(answers(users, ids))
}
