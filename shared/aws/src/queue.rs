//! The `events` queue: every domain event goes out in the shared envelope.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use nuvem_domain::events::Envelope;

use crate::lazy::OnFirstUse;

#[derive(Debug, thiserror::Error)]
#[error("sqs: {0}")]
pub struct QueueError(String);

impl QueueError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        QueueError(message.into())
    }

    pub(crate) fn sdk<E: std::error::Error>(e: E) -> Self {
        QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
    }
}

#[derive(Clone, Debug)]
pub struct EventQueue {
    sqs: OnFirstUse<Client>,
    url: String,
}

impl EventQueue {
    pub fn new(config: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        EventQueue {
            sqs: OnFirstUse::new(config, Client::new),
            url: url.into(),
        }
    }

    /// A queue over a client configured by the caller (benches count its
    /// requests with an interceptor).
    pub fn from_client(sqs: Client, url: impl Into<String>) -> Self {
        EventQueue {
            sqs: OnFirstUse::ready(sqs),
            url: url.into(),
        }
    }

    /// Sends one event; the type travels as a message attribute too, so that
    /// consumers and operators can filter without parsing the body.
    pub async fn publish(&self, event: &Envelope) -> Result<(), QueueError> {
        self.publish_with_secret(event, None).await
    }

    /// Sends one event with a secret for the email channel only (the
    /// activation token): it travels as a message attribute, outside the
    /// envelope, so that it is never stored in the outbox nor forwarded to
    /// webhooks, and SQS encrypts it at rest like the body.
    pub async fn publish_with_secret(
        &self,
        event: &Envelope,
        secret: Option<(&str, &str)>,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(event).map_err(|e| QueueError(e.to_string()))?;
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(event.event_type.as_str())
            .build()
            .map_err(|e| QueueError(e.to_string()))?;
        let mut send = self
            .sqs
            .get()
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("event_type", attr);
        if let Some((name, value)) = secret {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| QueueError(e.to_string()))?;
            send = send.message_attributes(name, attr);
        }
        send.send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

/// Message attribute carrying the plaintext activation token to `fanout`.
pub const ACTIVATION_TOKEN_ATTRIBUTE: &str = "activation_token";
