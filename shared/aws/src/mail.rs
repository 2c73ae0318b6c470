//! Tenant email through SES (v2 API), HTML and plain text in UTF-8.

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use nuvem_domain::mail::Message as Mail;

use crate::lazy::OnFirstUse;

#[derive(Debug, thiserror::Error)]
#[error("ses: {0}")]
pub struct MailError(String);

#[derive(Clone, Debug)]
pub struct Mailer {
    ses: OnFirstUse<Client>,
    from: String,
}

fn utf8(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError(e.to_string()))
}

impl Mailer {
    pub fn new(config: &aws_config::SdkConfig, from: impl Into<String>) -> Self {
        Mailer {
            ses: OnFirstUse::new(config, Client::new),
            from: from.into(),
        }
    }

    pub async fn send(&self, to: &str, mail: &Mail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(
                Body::builder()
                    .text(utf8(&mail.text)?)
                    .html(utf8(&mail.html)?)
                    .build(),
            )
            .build();
        self.ses
            .get()
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| MailError(aws_sdk_sesv2::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
