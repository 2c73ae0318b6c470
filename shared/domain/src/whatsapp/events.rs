//! The `whatsapp.*` domain events, built in one place so the webhook, the
//! sender and the routes emit the same shapes (`EventType::example_data`
//! shows them).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::identity::Recipient;
use super::store::NumberStatus;
use crate::events::{Envelope, EventType};

/// Which number of which store.
pub struct NumberRef<'a> {
    pub store_id: &'a str,
    pub phone_number_id: &'a str,
}

/// What is known of a message we sent (or tried to) that could not be
/// delivered.
pub struct MessageFailure<'a> {
    pub conversation_id: Option<&'a str>,
    /// Meta's id, once Meta accepted it.
    pub wamid: Option<&'a str>,
    /// nuvem's id (`wo_…`) of a message sent through nuvem.
    pub outbound_id: Option<&'a str>,
    /// See [`recipient`].
    pub recipient: Value,
    pub failed_at: DateTime<Utc>,
    /// Meta's error (`code`, `title`, `message`, `details`) or nuvem's
    /// reason.
    pub error: Value,
}

/// `whatsapp.message.failed`.
pub fn message_failed(
    account_id: &str,
    number: &NumberRef<'_>,
    failure: MessageFailure<'_>,
    now: DateTime<Utc>,
) -> Envelope {
    let mut data = json!({
        "store_id": number.store_id,
        "phone_number_id": number.phone_number_id,
        "conversation_id": failure.conversation_id,
        "wamid": failure.wamid,
        "recipient": failure.recipient,
        "failed_at": failure.failed_at,
        "error": failure.error,
    });
    if let Some(id) = failure.outbound_id {
        data["message_id"] = json!(id);
    }
    Envelope::new(EventType::WhatsAppMessageFailed, account_id, data, now)
}

/// The bot handed conversation `conversation_id` to a person, at the
/// customer's message `wamid`.
pub fn handoff(
    account_id: &str,
    store_id: &str,
    conversation_id: &str,
    reason: super::bot::HandoffReason,
    wamid: &str,
    customer: Value,
    now: DateTime<Utc>,
) -> Envelope {
    Envelope::new(
        EventType::WhatsAppConversationHandoff,
        account_id,
        json!({
            "store_id": store_id,
            "conversation_id": conversation_id,
            "reason": reason.as_str(),
            "wamid": wamid,
            "customer": customer,
        }),
        now,
    )
}

/// A recipient as the failure event names it.
pub fn recipient(to: &Recipient) -> Value {
    match to {
        Recipient::Phone(phone) => json!({ "wa_id": phone }),
        Recipient::User(user) => json!({ "user_id": user }),
    }
}

/// A number's status changed from `previous` to `status`; `None` when it
/// did not change.
pub fn number_status_changed(
    account_id: &str,
    number: &NumberRef<'_>,
    slot: u8,
    previous: &NumberStatus,
    status: &NumberStatus,
    now: DateTime<Utc>,
) -> Option<Envelope> {
    if previous.as_str() == status.as_str() {
        return None;
    }
    let mut data = json!({
        "store_id": number.store_id,
        "slot": slot,
        "phone_number_id": number.phone_number_id,
        "status": status.as_str(),
        "previous_status": previous.as_str(),
    });
    if let NumberStatus::Error { code, message } = status {
        data["error"] = json!({ "code": code, "message": message });
    }
    Some(Envelope::new(
        EventType::WhatsAppNumberStatusChanged,
        account_id,
        data,
        now,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_change_is_an_event_and_no_change_is_none() {
        let number = NumberRef {
            store_id: "st_1",
            phone_number_id: "106540352242922",
        };
        let now = Utc::now();
        let expired = NumberStatus::error(190, "Session has expired");
        let e = number_status_changed("acc_1", &number, 2, &NumberStatus::Connected, &expired, now)
            .unwrap();
        assert_eq!(e.data["status"], "error");
        assert_eq!(e.data["previous_status"], "connected");
        assert_eq!(e.data["error"]["code"], 190);
        assert_eq!(e.data["slot"], 2);
        assert!(
            number_status_changed(
                "acc_1",
                &number,
                2,
                &NumberStatus::Connected,
                &NumberStatus::Connected,
                now
            )
            .is_none()
        );
        // Meta's message changing within `error` is not a status change.
        let other = NumberStatus::error(190, "another wording");
        assert!(number_status_changed("acc_1", &number, 2, &expired, &other, now).is_none());
    }
}
