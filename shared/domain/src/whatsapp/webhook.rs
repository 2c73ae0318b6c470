//! The notification Meta POSTs to our webhook URL, flattened into events.
//!
//! ```text
//! {"object": "whatsapp_business_account",
//!  "entry": [{"id": <WABA id>,
//!             "changes": [{"field": "messages",
//!                          "value": {"messaging_product": "whatsapp",
//!                                    "metadata": {"display_phone_number", "phone_number_id"},
//!                                    "contacts"?, "messages"?, "statuses"?, "errors"?}}]}]}
//! ```
//!
//! One POST may batch several entries (business accounts) and several
//! changes each; every one of them is read. Unlike our own API, reading is
//! lenient: Meta adds fields without notice, so unknown fields are ignored,
//! and an item of a `messages`/`statuses`/`contacts`/`errors` array that
//! cannot be read becomes [`Inbound::Unreadable`] instead of failing the
//! POST. Only a body that is not a WhatsApp notification at all (not JSON,
//! wrong `object`, no `entry` array, a `messages` change without its
//! business number) is an error; the caller answers 400.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::{InboundMessage, non_empty_str};
use super::status::StatusUpdate;

/// The `object` of every WhatsApp Business Account notification.
pub const OBJECT: &str = "whatsapp_business_account";
/// The change `field` carrying messages and statuses.
pub const MESSAGES_FIELD: &str = "messages";

/// Which of our business numbers a change is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BusinessNumber {
    /// The WhatsApp Business Account (the entry's `id`).
    pub waba_id: String,
    /// Graph API id of the number: the key to route on and to reply from.
    pub phone_number_id: String,
    /// The number as users see it, e.g. `15550783881`.
    pub display_phone_number: String,
}

/// A user's profile as Meta attaches it to incoming messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// The user's WhatsApp id (phone number); absent when they hide it.
    pub wa_id: Option<String>,
    /// The business-scoped user id (BSUID).
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
    /// `profile.name`.
    pub name: Option<String>,
    /// `profile.username`, for users who adopted one.
    pub username: Option<String>,
}

/// An error object as Meta writes them in webhooks (statuses, messages and
/// the change itself). Ordered by code first so choices among several are
/// deterministic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: i64,
    pub title: Option<String>,
    pub message: Option<String>,
    /// `error_data.details`.
    pub details: Option<String>,
    pub href: Option<String>,
}

/// Which kind of array item could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Message,
    Status,
    Error,
}

/// One thing to act on, from one change of one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A user wrote to `number`; `contact` is their profile when the
    /// change carried one for them (system messages carry none).
    Message {
        number: BusinessNumber,
        contact: Option<Contact>,
        message: InboundMessage,
    },
    /// News about a message we sent from `number`.
    Status {
        number: BusinessNumber,
        status: StatusUpdate,
    },
    /// An error Meta reports for the change as a whole.
    Error {
        number: BusinessNumber,
        error: ErrorDetail,
    },
    /// An array item that lacks what every item of its kind has (a message
    /// without `id`/`timestamp`, a status without `id`/`status`, an error
    /// without `code`). Kept for the log; there is nothing to act on.
    Unreadable {
        number: BusinessNumber,
        item: ItemKind,
        raw: Value,
    },
}

/// A change of another `field` (`account_update`, templates, …): not ours
/// to handle here, reported so the caller can count or log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedChange {
    pub waba_id: String,
    pub field: String,
}

/// Everything one POST carried, in the order Meta listed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notification {
    pub events: Vec<Inbound>,
    pub skipped: Vec<SkippedChange>,
}

/// Why a body is not a WhatsApp notification. `at` is a JSON path such as
/// `entry[0].changes[1].value.metadata`, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("\"object\" is {0:?}, not \"whatsapp_business_account\"")]
    NotWhatsApp(String),
    #[error("{at}: {expected}")]
    Shape { at: String, expected: &'static str },
}

fn shape(at: impl Into<String>, expected: &'static str) -> WebhookError {
    WebhookError::Shape {
        at: at.into(),
        expected,
    }
}

/// `v` as an array; absent and `null` read as empty.
fn array<'v>(v: Option<&'v Value>, at: &str) -> Result<&'v [Value], WebhookError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(shape(at, "must be an array")),
    }
}

/// Reads the raw body of a webhook POST (after its signature was checked)
/// and flattens every entry, change, message, status and error into
/// [`Notification::events`].
pub fn parse_notification(body: &[u8]) -> Result<Notification, WebhookError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    if !root.is_object() {
        return Err(shape("$", "must be an object"));
    }
    match root.get("object") {
        Some(Value::String(object)) if object == OBJECT => {}
        Some(Value::String(object)) => return Err(WebhookError::NotWhatsApp(object.clone())),
        _ => return Err(shape("object", "must be a string")),
    }
    let entries = match root.get("entry") {
        Some(Value::Array(entries)) => entries,
        _ => return Err(shape("entry", "must be an array")),
    };

    let mut out = Notification::default();
    for (e, entry) in entries.iter().enumerate() {
        let at = format!("entry[{e}]");
        if !entry.is_object() {
            return Err(shape(at, "must be an object"));
        }
        let waba_id = match entry.get("id") {
            Some(Value::String(id)) => id.clone(),
            // Graph ids are strings, but be forgiving about a number.
            Some(Value::Number(id)) => id.to_string(),
            _ => return Err(shape(format!("{at}.id"), "must be a string")),
        };
        let changes = array(entry.get("changes"), &format!("{at}.changes"))?;
        for (c, change) in changes.iter().enumerate() {
            let at = format!("{at}.changes[{c}]");
            let Some(field) = change.get("field").and_then(Value::as_str) else {
                return Err(shape(format!("{at}.field"), "must be a string"));
            };
            if field != MESSAGES_FIELD {
                out.skipped.push(SkippedChange {
                    waba_id: waba_id.clone(),
                    field: field.to_string(),
                });
                continue;
            }
            read_messages_value(
                &waba_id,
                change.get("value"),
                &format!("{at}.value"),
                &mut out,
            )?;
        }
    }
    Ok(out)
}

fn read_messages_value(
    waba_id: &str,
    value: Option<&Value>,
    at: &str,
    out: &mut Notification,
) -> Result<(), WebhookError> {
    let Some(value) = value.filter(|v| v.is_object()) else {
        return Err(shape(at, "must be an object"));
    };
    let metadata = value.get("metadata");
    let Some(phone_number_id) = metadata.and_then(|m| non_empty_str(m, "phone_number_id")) else {
        return Err(shape(
            format!("{at}.metadata.phone_number_id"),
            "must be a non-empty string",
        ));
    };
    let number = BusinessNumber {
        waba_id: waba_id.to_string(),
        phone_number_id,
        display_phone_number: metadata
            .and_then(|m| non_empty_str(m, "display_phone_number"))
            .unwrap_or_default(),
    };

    let contacts: Vec<Contact> = array(value.get("contacts"), &format!("{at}.contacts"))?
        .iter()
        .filter_map(Contact::from_meta)
        .collect();
    let messages = array(value.get("messages"), &format!("{at}.messages"))?;
    let statuses = array(value.get("statuses"), &format!("{at}.statuses"))?;
    let errors = array(value.get("errors"), &format!("{at}.errors"))?;

    let unreadable = |item: ItemKind, raw: &Value| Inbound::Unreadable {
        number: number.clone(),
        item,
        raw: raw.clone(),
    };
    for raw in messages {
        out.events.push(match InboundMessage::from_meta(raw) {
            Some(message) => Inbound::Message {
                number: number.clone(),
                contact: contact_for(&contacts, &message).cloned(),
                message,
            },
            None => unreadable(ItemKind::Message, raw),
        });
    }
    for raw in statuses {
        out.events.push(match StatusUpdate::from_meta(raw) {
            Some(status) => Inbound::Status {
                number: number.clone(),
                status,
            },
            None => unreadable(ItemKind::Status, raw),
        });
    }
    for raw in errors {
        out.events.push(match ErrorDetail::from_meta(raw) {
            Some(error) => Inbound::Error {
                number: number.clone(),
                error,
            },
            None => unreadable(ItemKind::Error, raw),
        });
    }
    Ok(())
}

/// The contact describing the sender of `message`: matched on the BSUID,
/// then on the WhatsApp id. A message carrying neither identifier gets the
/// change's only contact, if it has exactly one.
fn contact_for<'c>(contacts: &'c [Contact], message: &InboundMessage) -> Option<&'c Contact> {
    if let Some(user_id) = &message.from_user_id
        && let Some(c) = contacts
            .iter()
            .find(|c| c.user_id.as_ref() == Some(user_id))
    {
        return Some(c);
    }
    if let Some(wa_id) = &message.from
        && let Some(c) = contacts.iter().find(|c| c.wa_id.as_ref() == Some(wa_id))
    {
        return Some(c);
    }
    match contacts {
        [only] if message.from.is_none() && message.from_user_id.is_none() => Some(only),
        _ => None,
    }
}

impl Contact {
    fn from_meta(raw: &Value) -> Option<Contact> {
        raw.as_object()?;
        let profile = raw.get("profile").filter(|p| p.is_object());
        let contact = Contact {
            wa_id: non_empty_str(raw, "wa_id"),
            user_id: non_empty_str(raw, "user_id"),
            parent_user_id: non_empty_str(raw, "parent_user_id"),
            name: profile.and_then(|p| non_empty_str(p, "name")),
            username: profile.and_then(|p| non_empty_str(p, "username")),
        };
        (contact != Contact::default()).then_some(contact)
    }
}

#[derive(Deserialize)]
struct RawErrorData {
    #[serde(default)]
    details: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    code: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<RawErrorData>,
    #[serde(default)]
    href: Option<String>,
}

impl ErrorDetail {
    /// One error object; `None` without an integer `code`.
    pub fn from_meta(raw: &Value) -> Option<ErrorDetail> {
        let e = RawError::deserialize(raw).ok()?;
        Some(ErrorDetail {
            code: e.code,
            title: e.title,
            message: e.message,
            details: e.error_data.and_then(|d| d.details),
            href: e.href,
        })
    }
}

/// An `errors` array inside a message or status; unreadable items are
/// dropped.
pub(crate) fn parse_errors(raw: Option<&Value>) -> Vec<ErrorDetail> {
    raw.and_then(Value::as_array)
        .map(|errors| errors.iter().filter_map(ErrorDetail::from_meta).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn change(field: &str, value: Value) -> Value {
        json!({"field": field, "value": value})
    }

    fn value(extra: Value) -> Value {
        let mut v = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn an_empty_entry_list_is_fine() {
        let n = parse_notification(&body(json!({"object": OBJECT, "entry": []}))).unwrap();
        assert_eq!(n, Notification::default());
    }

    #[test]
    fn rejects_what_is_not_a_notification() {
        let cases: [(&[u8], WebhookError); 8] = [
            (b"", WebhookError::NotJson(String::new())),
            (b"{\"object\":", WebhookError::NotJson(String::new())),
            (b"[]", shape("$", "")),
            (b"{\"entry\":[]}", shape("object", "")),
            (b"{\"object\":\"page\",\"entry\":[]}", WebhookError::NotWhatsApp("page".into())),
            (b"{\"object\":\"whatsapp_business_account\"}", shape("entry", "")),
            (
                b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":{}}]}",
                shape("entry[0].changes", ""),
            ),
            (
                b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":\"messages\",\"value\":{\"messages\":[]}}]}]}",
                shape("entry[0].changes[0].value.metadata.phone_number_id", ""),
            ),
        ];
        for (raw, expected) in cases {
            let got = parse_notification(raw).unwrap_err();
            match (&got, &expected) {
                (WebhookError::NotJson(_), WebhookError::NotJson(_)) => {}
                (WebhookError::Shape { at, .. }, WebhookError::Shape { at: want, .. }) => {
                    assert_eq!(at, want)
                }
                _ => assert_eq!(got, expected),
            }
        }
    }

    #[test]
    fn unreadable_items_do_not_fail_the_post() {
        let n = parse_notification(&body(
            json!({"object": OBJECT, "entry": [{"id": "1", "changes": [
                change("messages", value(json!({
                    "messages": [{"type": "text", "text": {"body": "no id"}}],
                    "statuses": [{"id": "wamid.1", "timestamp": "1"}],
                    "errors": [{"title": "no code"}],
                    "contacts": ["not an object"]
                })))
            ]}]}),
        ))
        .unwrap();
        let kinds: Vec<_> = n
            .events
            .iter()
            .map(|e| match e {
                Inbound::Unreadable { item, .. } => *item,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [ItemKind::Message, ItemKind::Status, ItemKind::Error]
        );
    }

    #[test]
    fn contact_matching() {
        let a = Contact {
            wa_id: Some("1".into()),
            ..Contact::default()
        };
        let b = Contact {
            wa_id: Some("2".into()),
            user_id: Some("BR.2".into()),
            ..Contact::default()
        };
        let mut m = InboundMessage::from_meta(&json!({
            "id": "x", "timestamp": "1", "from": "2", "type": "request_welcome"
        }))
        .unwrap();
        assert_eq!(contact_for(&[a.clone(), b.clone()], &m), Some(&b));
        m.from = None;
        m.from_user_id = Some("BR.2".into());
        assert_eq!(contact_for(&[a.clone(), b.clone()], &m), Some(&b));
        m.from_user_id = Some("BR.3".into());
        assert_eq!(contact_for(std::slice::from_ref(&b), &m), None);
        m.from_user_id = None;
        assert_eq!(contact_for(std::slice::from_ref(&a), &m), Some(&a));
        assert_eq!(contact_for(&[a, b], &m), None);
    }
}
