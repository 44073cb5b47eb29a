//! `send_email`: delivers one outbox row through an [`EmailSender`], once.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tasuki_core::EmailMessage;
use tasuki_worker::{Handler, JobContext, JobError};

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

pub struct SendEmail {
    sender: Arc<dyn EmailSender>,
}

impl SendEmail {
    pub fn new(sender: Arc<dyn EmailSender>) -> Self {
        Self { sender }
    }
}

#[derive(Deserialize)]
pub struct Payload {
    outbox_id: i64,
}

#[async_trait]
impl Handler for SendEmail {
    const JOB_TYPE: &'static str = "send_email";
    type Payload = Payload;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["outbox_id"],
            "additionalProperties": false,
            "properties": {"outbox_id": {"type": "integer", "minimum": 1, "maximum": crate::MAX_ID}}
        })
    }

    async fn handle(&self, ctx: &JobContext, payload: Payload) -> Result<Option<Value>, JobError> {
        let email = ctx.store.email_get(payload.outbox_id).await?;
        if email.sent_at.is_some() {
            return Ok(Some(json!({"outbox_id": email.id, "already_sent": true})));
        }
        self.sender.send(&email).await?;
        ctx.store.email_mark_sent(email.id, ctx.now()).await?;
        Ok(Some(
            json!({"outbox_id": email.id, "recipient": email.recipient}),
        ))
    }
}
