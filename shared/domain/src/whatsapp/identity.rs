//! Who a customer is, now that WhatsApp users may hide their phone number.
//!
//! Meta identifies a user by their WhatsApp id (`wa_id`, the phone number)
//! and, since 2026, by a business-scoped user id (BSUID, `user_id`, e.g.
//! `US.13491208655302741918`) that is present in every messages webhook
//! while the phone number may be missing. So:
//!
//! - the customer key is the BSUID when known, else the phone, each with
//!   its own prefix (`u:` / `p:`) so the two can never collide;
//! - when a message carries both, the link phone → BSUID is recorded, so a
//!   conversation started under the phone and one started under the BSUID
//!   end up as one, whichever arrived first;
//! - the `user_changed_number` and `user_changed_user_id` system messages
//!   move an identity from an old key to a new one;
//! - replies go to the phone when we know it (every account can receive
//!   those), else to the BSUID.

use std::fmt;

use super::message::{InboundMessage, MessageKind, SystemNotice};
use super::status::StatusUpdate;
use super::webhook::Contact;

/// A customer's identifier, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CustomerKey {
    /// Business-scoped user id.
    User(String),
    /// WhatsApp id (phone number digits).
    Phone(String),
}

impl CustomerKey {
    const USER: &'static str = "u:";
    const PHONE: &'static str = "p:";

    /// The stored form: `u:<BSUID>` or `p:<wa_id>`.
    pub fn as_key(&self) -> String {
        self.to_string()
    }

    /// Reads [`CustomerKey::as_key`] back.
    pub fn parse(key: &str) -> Option<CustomerKey> {
        if let Some(id) = key.strip_prefix(Self::USER).filter(|id| !id.is_empty()) {
            Some(CustomerKey::User(id.to_string()))
        } else {
            key.strip_prefix(Self::PHONE)
                .filter(|id| !id.is_empty())
                .map(|id| CustomerKey::Phone(id.to_string()))
        }
    }
}

impl fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerKey::User(id) => write!(f, "{}{id}", Self::USER),
            CustomerKey::Phone(id) => write!(f, "{}{id}", Self::PHONE),
        }
    }
}

/// Record that `phone` belongs to the customer `user`: both keys lead to
/// the same conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityLink {
    pub phone: CustomerKey,
    pub user: CustomerKey,
}

/// An identifier of a customer was replaced: what was stored under `old`
/// now belongs under `new`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityMove {
    pub old: CustomerKey,
    pub new: CustomerKey,
}

/// Where to send a reply. Stored as `{"phone": …}` or `{"user": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// `to`: the WhatsApp id.
    Phone(String),
    /// The BSUID, for users whose number we do not have.
    User(String),
}

/// The identifiers known for one customer at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CustomerIds {
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
}

/// A non-blank identifier, trimmed.
fn present(id: Option<impl AsRef<str>>) -> Option<String> {
    let id = id?;
    let id = id.as_ref().trim();
    (!id.is_empty()).then(|| id.to_string())
}

impl CustomerIds {
    pub fn new(wa_id: Option<&str>, user_id: Option<&str>) -> CustomerIds {
        CustomerIds {
            wa_id: present(wa_id),
            user_id: present(user_id),
        }
    }

    /// The sender of `message`: its `from` / `from_user_id`, completed from
    /// the contact Meta attached to it.
    pub fn of_message(message: &InboundMessage, contact: Option<&Contact>) -> CustomerIds {
        CustomerIds {
            wa_id: present(message.from.as_ref())
                .or_else(|| present(contact.and_then(|c| c.wa_id.as_ref()))),
            user_id: present(message.from_user_id.as_ref())
                .or_else(|| present(contact.and_then(|c| c.user_id.as_ref()))),
        }
    }

    /// The recipient of a message we sent.
    pub fn of_status(status: &StatusUpdate) -> CustomerIds {
        CustomerIds {
            wa_id: present(status.recipient_id.as_ref()),
            user_id: present(status.recipient_user_id.as_ref()),
        }
    }

    /// The BSUID when known, else the phone.
    pub fn key(&self) -> Option<CustomerKey> {
        self.user_id
            .clone()
            .map(CustomerKey::User)
            .or_else(|| self.wa_id.clone().map(CustomerKey::Phone))
    }

    /// The link to record when both identifiers are known.
    pub fn link(&self) -> Option<IdentityLink> {
        Some(IdentityLink {
            phone: CustomerKey::Phone(self.wa_id.clone()?),
            user: CustomerKey::User(self.user_id.clone()?),
        })
    }

    /// The phone when known, else the BSUID.
    pub fn reply_to(&self) -> Option<Recipient> {
        self.wa_id
            .clone()
            .map(Recipient::Phone)
            .or_else(|| self.user_id.clone().map(Recipient::User))
    }
}

/// The identity move a system message announces, if any.
///
/// - `user_changed_number`: the message's `from` is the old WhatsApp id and
///   `system.wa_id` the new one: `p:old → p:new`. When the message also
///   carries the BSUID, the customer key (the BSUID) does not change; the
///   move still re-points the phone alias.
/// - `user_changed_user_id`: `system.user_id` is the new BSUID. Meta's
///   reference does not name a field for the old one, so it is the
///   message's `from_user_id` when that differs from the new id, else the
///   id before " to " in a body of the form "… changed from <old> to
///   <new>"; `u:old → u:new`.
///
/// `None` for other messages, or when the old or new id is missing or both
/// are the same.
pub fn identity_move(message: &InboundMessage) -> Option<IdentityMove> {
    let MessageKind::System(notice) = &message.kind else {
        return None;
    };
    let (old, new) = match notice.system_type.as_str() {
        SystemNotice::USER_CHANGED_NUMBER => (
            CustomerKey::Phone(present(message.from.as_ref())?),
            CustomerKey::Phone(present(notice.wa_id.as_ref())?),
        ),
        SystemNotice::USER_CHANGED_USER_ID => {
            let new = present(notice.user_id.as_ref())?;
            let old = present(message.from_user_id.as_ref())
                .filter(|old| *old != new)
                .or_else(|| old_id_in_body(notice.body.as_deref()?, &new))?;
            (CustomerKey::User(old), CustomerKey::User(new))
        }
        _ => return None,
    };
    (old != new).then_some(IdentityMove { old, new })
}

/// `<old>` in "… changed from <old> to <new>", only when `<new>` is the
/// expected new id (so an unexpected wording yields nothing rather than a
/// wrong id).
fn old_id_in_body(body: &str, new: &str) -> Option<String> {
    let (_, rest) = body.rsplit_once(" changed from ")?;
    let (old, to) = rest.split_once(" to ")?;
    let old = old.trim();
    (to.trim().trim_end_matches('.') == new && !old.is_empty() && !old.contains(' '))
        .then(|| old.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PHONE: &str = "16505551234";
    const BSUID: &str = "US.13491208655302741918";

    fn ids(wa_id: Option<&str>, user_id: Option<&str>) -> CustomerIds {
        CustomerIds::new(wa_id, user_id)
    }

    #[test]
    fn keys_are_prefixed_and_round_trip() {
        let user = CustomerKey::User(BSUID.into());
        let phone = CustomerKey::Phone(PHONE.into());
        assert_eq!(user.as_key(), format!("u:{BSUID}"));
        assert_eq!(phone.as_key(), format!("p:{PHONE}"));
        assert_eq!(CustomerKey::parse(&user.as_key()), Some(user));
        assert_eq!(CustomerKey::parse(&phone.as_key()), Some(phone));
        for bad in ["", "u:", "p:", "x:1", PHONE] {
            assert_eq!(CustomerKey::parse(bad), None, "{bad}");
        }
        // the same string as a phone and as a BSUID gives different keys
        assert_ne!(
            CustomerKey::User("1".into()).as_key(),
            CustomerKey::Phone("1".into()).as_key()
        );
    }

    #[test]
    fn the_bsuid_is_the_key_and_the_phone_the_reply_address() {
        let both = ids(Some(PHONE), Some(BSUID));
        assert_eq!(both.key(), Some(CustomerKey::User(BSUID.into())));
        assert_eq!(both.reply_to(), Some(Recipient::Phone(PHONE.into())));
        assert_eq!(
            both.link(),
            Some(IdentityLink {
                phone: CustomerKey::Phone(PHONE.into()),
                user: CustomerKey::User(BSUID.into()),
            })
        );

        let phone_only = ids(Some(PHONE), None);
        assert_eq!(phone_only.key(), Some(CustomerKey::Phone(PHONE.into())));
        assert_eq!(phone_only.link(), None);

        let bsuid_only = ids(None, Some(BSUID));
        assert_eq!(bsuid_only.key(), Some(CustomerKey::User(BSUID.into())));
        assert_eq!(bsuid_only.reply_to(), Some(Recipient::User(BSUID.into())));
        assert_eq!(bsuid_only.link(), None);

        let none = ids(Some(" "), Some(""));
        assert_eq!((none.key(), none.reply_to()), (None, None));
    }

    fn message(v: serde_json::Value) -> InboundMessage {
        InboundMessage::from_meta(&v).unwrap()
    }

    #[test]
    fn the_contact_completes_the_message() {
        let m = message(
            json!({"id": "w", "timestamp": "1", "from": PHONE, "type": "text", "text": {"body": "oi"}}),
        );
        let contact = Contact {
            wa_id: Some(PHONE.into()),
            user_id: Some(BSUID.into()),
            ..Contact::default()
        };
        assert_eq!(
            CustomerIds::of_message(&m, Some(&contact)),
            ids(Some(PHONE), Some(BSUID))
        );
        assert_eq!(CustomerIds::of_message(&m, None), ids(Some(PHONE), None));
    }

    #[test]
    fn a_changed_number_moves_the_phone() {
        let m = message(json!({
            "from": PHONE, "from_user_id": BSUID, "id": "w", "timestamp": "1", "type": "system",
            "system": {"body": "User A changed from 16505551234 to 12195555358",
                       "wa_id": "12195555358", "type": "user_changed_number"}
        }));
        assert_eq!(
            identity_move(&m),
            Some(IdentityMove {
                old: CustomerKey::Phone(PHONE.into()),
                new: CustomerKey::Phone("12195555358".into()),
            })
        );
    }

    #[test]
    fn a_changed_bsuid_moves_the_user() {
        let from_field = message(json!({
            "from_user_id": BSUID, "id": "w", "timestamp": "1", "type": "system",
            "system": {"body": "User A changed", "user_id": "US.99", "type": "user_changed_user_id"}
        }));
        let from_body = message(json!({
            "from_user_id": "US.99", "id": "w", "timestamp": "1", "type": "system",
            "system": {"body": format!("User A changed from {BSUID} to US.99"),
                       "user_id": "US.99", "type": "user_changed_user_id"}
        }));
        let expected = Some(IdentityMove {
            old: CustomerKey::User(BSUID.into()),
            new: CustomerKey::User("US.99".into()),
        });
        assert_eq!(identity_move(&from_field), expected);
        assert_eq!(identity_move(&from_body), expected);
    }

    #[test]
    fn no_move_without_both_ids() {
        let cases = [
            // new BSUID only, no old anywhere
            json!({"id": "w", "timestamp": "1", "type": "system",
                   "system": {"body": "User A changed", "user_id": "US.99", "type": "user_changed_user_id"}}),
            // body names another new id
            json!({"id": "w", "timestamp": "1", "type": "system",
                   "system": {"body": "User A changed from US.1 to US.2", "user_id": "US.99", "type": "user_changed_user_id"}}),
            // number change without the old number
            json!({"id": "w", "timestamp": "1", "type": "system",
                   "system": {"wa_id": "12195555358", "type": "user_changed_number"}}),
            // same number
            json!({"from": PHONE, "id": "w", "timestamp": "1", "type": "system",
                   "system": {"wa_id": PHONE, "type": "user_changed_number"}}),
            // other system type, and not a system message
            json!({"from": PHONE, "id": "w", "timestamp": "1", "type": "system",
                   "system": {"wa_id": "1", "type": "customer_identity_changed"}}),
            json!({"from": PHONE, "id": "w", "timestamp": "1", "type": "text", "text": {"body": "x"}}),
        ];
        for case in cases {
            assert_eq!(identity_move(&message(case.clone())), None, "{case}");
        }
    }
}
