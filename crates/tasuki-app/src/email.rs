//! `send_email`: delivers one outbox row through an [`EmailSender`], once.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tasuki_worker::{Done, Handler, JobContext, JobError};

use crate::{AppStore, EmailMessage};

/// Where emails go. A failure is retried with backoff.
#[async_trait]
pub trait EmailSender: Send + Sync {
    async fn send(&self, email: &EmailMessage) -> Result<(), JobError>;
}

/// The default sender: writes each email to the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogEmailSender;

#[async_trait]
impl EmailSender for LogEmailSender {
    async fn send(&self, email: &EmailMessage) -> Result<(), JobError> {
        tracing::info!(
            outbox_id = email.id, recipient = %email.recipient, subject = %email.subject,
            "email delivered to the log"
        );
        Ok(())
    }
}

/// Above `user_created`'s: where one pool of slots serves every queue, a
/// welcome email goes out before the onboarding of users who signed up after.
pub const SEND_EMAIL_PRIORITY: i32 = 2;

/// The queue of `send_email`: a worker that gives it slots of its own
/// (`QUEUES=default:3,email:2`) sends welcome emails however many
/// onboardings wait.
pub const EMAIL_QUEUE: &str = "email";

pub struct SendEmail {
    app: Arc<dyn AppStore>,
    sender: Arc<dyn EmailSender>,
}

impl SendEmail {
    pub fn new(app: Arc<dyn AppStore>, sender: Arc<dyn EmailSender>) -> Self {
        Self { app, sender }
    }
}

#[derive(Deserialize)]
pub struct Payload {
    outbox_id: i64,
}

#[async_trait]
impl Handler for SendEmail {
    const JOB_TYPE: &'static str = "send_email";
    const QUEUE: &'static str = EMAIL_QUEUE;
    type Payload = Payload;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["outbox_id"],
            "additionalProperties": false,
            "properties": {"outbox_id": {"type": "integer", "minimum": 1, "maximum": crate::MAX_ID}}
        })
    }

    /// The email leaves the database, so a run that finds it sent (by an
    /// earlier attempt whose completion committed) does not send it again.
    async fn handle(&self, ctx: &JobContext, payload: Payload) -> Result<Done, JobError> {
        let email = self.app.email_get(payload.outbox_id).await?;
        if email.sent_at.is_some() {
            return Ok(Done::result(
                json!({"outbox_id": email.id, "already_sent": true}),
            ));
        }
        self.sender.send(&email).await?;
        Ok(
            Done::result(json!({"outbox_id": email.id, "recipient": email.recipient}))
                .with_writes(self.app.email_sent(email.id, ctx.now())),
        )
    }
}
