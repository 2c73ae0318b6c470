//! One incoming message of a `messages` webhook, read leniently: Meta adds
//! fields and message types over time, so unknown fields are ignored and a
//! type we do not know, or a known type whose payload does not have the
//! documented shape, becomes [`MessageKind::Unsupported`] with the raw JSON
//! kept. One odd message never fails the notification it came in.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::webhook::{ErrorDetail, parse_errors};

/// A message a WhatsApp user sent to one of our business numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The WhatsApp message id (`wamid.…`): the idempotency key.
    pub id: String,
    /// The sender's WhatsApp id (phone number). Absent for users who hide
    /// their number behind a username.
    pub from: Option<String>,
    /// The sender's business-scoped user id (BSUID, e.g.
    /// `US.13491208655302741918`), present once Meta sends them.
    pub from_user_id: Option<String>,
    /// The sender's parent BSUID, only for linked business portfolios.
    pub from_parent_user_id: Option<String>,
    /// Unix seconds, as Meta stamped it.
    pub timestamp: i64,
    /// Set when the user replied to, or forwarded, a message.
    pub context: Option<MessageContext>,
    /// The ad or post the user came from (Click to WhatsApp), as received.
    pub referral: Option<Value>,
    /// Errors Meta attached to the message (for `unsupported` messages).
    pub errors: Vec<ErrorDetail>,
    pub kind: MessageKind,
}

/// `context`: what the message replies to, or that it was forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// Who sent the message replied to (our display number, usually).
    pub from: Option<String>,
    /// The `wamid` replied to.
    pub id: Option<String>,
    pub forwarded: bool,
    pub frequently_forwarded: bool,
    /// The catalogue product asked about, as received.
    pub referred_product: Option<Value>,
}

/// The content of a message, by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    Text {
        body: String,
    },
    /// `image`, `audio`, `video`, `document` or `sticker`.
    Media {
        media_type: MediaType,
        media: Media,
    },
    Location(Location),
    /// The shared contact cards, as received.
    Contacts(Value),
    /// A reply to buttons, a list or a Flow we sent.
    Interactive(InteractiveReply),
    /// A tap on a quick-reply button of a template.
    Button {
        payload: Option<String>,
        text: String,
    },
    /// An emoji reaction; `emoji` is `None` when a reaction was removed.
    Reaction {
        message_id: String,
        emoji: Option<String>,
    },
    /// A cart sent from a catalogue, as received.
    Order(Value),
    /// A notice from WhatsApp itself, e.g. a changed number or BSUID.
    System(SystemNotice),
    /// The user opened the chat for the first time (no content).
    RequestWelcome,
    /// Any other `type` (including Meta's own `unsupported`), or a known
    /// type whose payload could not be read. `raw` is the whole message.
    Unsupported {
        message_type: String,
        raw: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Audio => "audio",
            MediaType::Video => "video",
            MediaType::Document => "document",
            MediaType::Sticker => "sticker",
        }
    }

    fn from_type(message_type: &str) -> Option<MediaType> {
        Some(match message_type {
            "image" => MediaType::Image,
            "audio" => MediaType::Audio,
            "video" => MediaType::Video,
            "document" => MediaType::Document,
            "sticker" => MediaType::Sticker,
            _ => return None,
        })
    }
}

/// A media attachment; the bytes are fetched separately by `id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    pub id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub caption: Option<String>,
    /// Documents only.
    pub filename: Option<String>,
    /// Audio recorded as a voice note.
    pub voice: bool,
    /// Animated sticker.
    pub animated: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InteractiveReply {
    /// Reply button tapped.
    Button { id: String, title: String },
    /// List row chosen.
    List {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A Flow completed; `response_json` is the JSON text Meta sends,
    /// unparsed.
    Flow {
        name: Option<String>,
        body: Option<String>,
        response_json: String,
    },
}

/// A `system` message. Meta documents two types:
///
/// - `user_changed_number`: `wa_id` is the new WhatsApp id, the message's
///   `from` the old one;
/// - `user_changed_user_id`: `user_id` is the new BSUID (and
///   `parent_user_id` the new parent), with no phone number.
///
/// Other types are kept as they come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemNotice {
    pub system_type: String,
    /// Human text, e.g. "User A changed from 1650… to 1219…".
    pub body: Option<String>,
    /// The new WhatsApp id (older payloads name it `new_wa_id`).
    pub wa_id: Option<String>,
    /// The new BSUID.
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
}

impl SystemNotice {
    pub const USER_CHANGED_NUMBER: &'static str = "user_changed_number";
    pub const USER_CHANGED_USER_ID: &'static str = "user_changed_user_id";
}

impl InboundMessage {
    /// The text the bot should read: a text body, the title of the chosen
    /// reply button or list row, a template button's text, or a media
    /// caption. `None` for everything else (media without a caption,
    /// reactions, system notices, …).
    pub fn bot_text(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Text { body } => Some(body),
            MessageKind::Media { media, .. } => {
                media.caption.as_deref().filter(|c| !c.trim().is_empty())
            }
            MessageKind::Interactive(
                InteractiveReply::Button { title, .. } | InteractiveReply::List { title, .. },
            ) => Some(title),
            MessageKind::Button { text, .. } => Some(text),
            _ => None,
        }
    }

    /// [`InboundMessage::timestamp`] as a time, if it is a representable one.
    pub fn sent_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.timestamp, 0)
    }

    /// Reads one element of a change's `messages` array. `None` when it
    /// lacks what every message has (a string `id` and a Unix `timestamp`);
    /// everything else is lenient.
    pub fn from_meta(raw: &Value) -> Option<InboundMessage> {
        let id = non_empty_str(raw, "id")?;
        let timestamp = unix_seconds(raw.get("timestamp")?)?;
        let message_type = raw.get("type").and_then(Value::as_str).unwrap_or_default();
        Some(InboundMessage {
            id,
            from: non_empty_str(raw, "from"),
            from_user_id: non_empty_str(raw, "from_user_id"),
            from_parent_user_id: non_empty_str(raw, "from_parent_user_id"),
            timestamp,
            context: raw.get("context").and_then(MessageContext::from_meta),
            referral: raw.get("referral").filter(|v| !v.is_null()).cloned(),
            errors: parse_errors(raw.get("errors")),
            kind: MessageKind::from_meta(message_type, raw).unwrap_or_else(|| {
                MessageKind::Unsupported {
                    message_type: message_type.to_string(),
                    raw: raw.clone(),
                }
            }),
        })
    }
}

impl MessageContext {
    fn from_meta(raw: &Value) -> Option<MessageContext> {
        raw.as_object()?;
        let flag = |name: &str| raw.get(name).and_then(Value::as_bool).unwrap_or(false);
        Some(MessageContext {
            from: non_empty_str(raw, "from"),
            id: non_empty_str(raw, "id"),
            forwarded: flag("forwarded"),
            frequently_forwarded: flag("frequently_forwarded"),
            referred_product: raw
                .get("referred_product")
                .filter(|v| !v.is_null())
                .cloned(),
        })
    }
}

#[derive(Deserialize)]
struct RawText {
    body: String,
}

#[derive(Deserialize)]
struct RawMedia {
    id: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    voice: Option<bool>,
    #[serde(default)]
    animated: Option<bool>,
}

#[derive(Deserialize)]
struct RawReply {
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct RawFlowReply {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    body: Option<String>,
    response_json: String,
}

#[derive(Deserialize)]
struct RawInteractive {
    #[serde(rename = "type")]
    reply_type: String,
    #[serde(default)]
    button_reply: Option<RawReply>,
    #[serde(default)]
    list_reply: Option<RawReply>,
    #[serde(default)]
    nfm_reply: Option<RawFlowReply>,
}

#[derive(Deserialize)]
struct RawButton {
    #[serde(default)]
    payload: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct RawReaction {
    message_id: String,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct RawSystem {
    #[serde(rename = "type")]
    system_type: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    new_wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    parent_user_id: Option<String>,
}

/// `raw[name]` read as `T`, if present and of that shape.
fn part<T: for<'de> Deserialize<'de>>(raw: &Value, name: &str) -> Option<T> {
    T::deserialize(raw.get(name)?).ok()
}

impl MessageKind {
    /// `None` when the type is not one we read or its payload is not
    /// shaped as documented; the caller keeps the raw message then.
    fn from_meta(message_type: &str, raw: &Value) -> Option<MessageKind> {
        if let Some(media_type) = MediaType::from_type(message_type) {
            let m: RawMedia = part(raw, message_type)?;
            return Some(MessageKind::Media {
                media_type,
                media: Media {
                    id: m.id,
                    mime_type: m.mime_type,
                    sha256: m.sha256,
                    caption: m.caption,
                    filename: m.filename,
                    voice: m.voice.unwrap_or(false),
                    animated: m.animated.unwrap_or(false),
                },
            });
        }
        Some(match message_type {
            "text" => MessageKind::Text {
                body: part::<RawText>(raw, "text")?.body,
            },
            "location" => {
                let location: Location = part(raw, "location")?;
                if !(location.latitude.is_finite() && location.longitude.is_finite()) {
                    return None;
                }
                MessageKind::Location(location)
            }
            "contacts" => {
                MessageKind::Contacts(raw.get("contacts").filter(|v| v.is_array())?.clone())
            }
            "interactive" => {
                let i: RawInteractive = part(raw, "interactive")?;
                MessageKind::Interactive(match i.reply_type.as_str() {
                    "button_reply" => {
                        let r = i.button_reply?;
                        InteractiveReply::Button {
                            id: r.id,
                            title: r.title,
                        }
                    }
                    "list_reply" => {
                        let r = i.list_reply?;
                        InteractiveReply::List {
                            id: r.id,
                            title: r.title,
                            description: r.description,
                        }
                    }
                    "nfm_reply" => {
                        let r = i.nfm_reply?;
                        InteractiveReply::Flow {
                            name: r.name,
                            body: r.body,
                            response_json: r.response_json,
                        }
                    }
                    _ => return None,
                })
            }
            "button" => {
                let b: RawButton = part(raw, "button")?;
                MessageKind::Button {
                    payload: b.payload,
                    text: b.text,
                }
            }
            "reaction" => {
                let r: RawReaction = part(raw, "reaction")?;
                MessageKind::Reaction {
                    message_id: r.message_id,
                    emoji: r.emoji.filter(|e| !e.is_empty()),
                }
            }
            "order" => MessageKind::Order(raw.get("order").filter(|v| v.is_object())?.clone()),
            "system" => {
                let s: RawSystem = part(raw, "system")?;
                let some = |v: Option<String>| v.filter(|s| !s.is_empty());
                MessageKind::System(SystemNotice {
                    system_type: s.system_type,
                    body: s.body,
                    wa_id: some(s.wa_id).or(some(s.new_wa_id)),
                    user_id: some(s.user_id),
                    parent_user_id: some(s.parent_user_id),
                })
            }
            "request_welcome" => MessageKind::RequestWelcome,
            _ => return None,
        })
    }
}

/// A non-empty string field.
pub(crate) fn non_empty_str(raw: &Value, name: &str) -> Option<String> {
    raw.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Meta writes Unix seconds as a decimal string; a JSON number is accepted
/// too.
pub(crate) fn unix_seconds(raw: &Value) -> Option<i64> {
    match raw {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(kind: Value) -> Value {
        let mut m = json!({
            "from": "16505551234",
            "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            "timestamp": "1749416383",
        });
        m.as_object_mut()
            .unwrap()
            .extend(kind.as_object().unwrap().clone());
        m
    }

    fn kind(kind: Value) -> MessageKind {
        InboundMessage::from_meta(&message(kind)).unwrap().kind
    }

    #[test]
    fn reads_the_common_fields() {
        let m = InboundMessage::from_meta(&message(json!({
            "from_user_id": "US.13491208655302741918",
            "type": "text",
            "text": {"body": "oi"},
            "context": {"from": "15550783881", "id": "wamid.previous", "forwarded": true},
            "referral": {"source_type": "ad", "ctwa_clid": "abc"},
            "brand_new_field": {"whatever": 1},
        })))
        .unwrap();
        assert_eq!(m.from.as_deref(), Some("16505551234"));
        assert_eq!(m.from_user_id.as_deref(), Some("US.13491208655302741918"));
        assert_eq!(m.timestamp, 1_749_416_383);
        assert_eq!(m.sent_at().unwrap().timestamp(), 1_749_416_383);
        let context = m.context.unwrap();
        assert_eq!(context.id.as_deref(), Some("wamid.previous"));
        assert!(context.forwarded && !context.frequently_forwarded);
        assert_eq!(m.referral.unwrap()["ctwa_clid"], "abc");
    }

    #[test]
    fn needs_an_id_and_a_timestamp() {
        let mut m = message(json!({"type": "text", "text": {"body": "x"}}));
        m["timestamp"] = json!("soon");
        assert!(InboundMessage::from_meta(&m).is_none());
        m["timestamp"] = json!(1749416383);
        assert!(InboundMessage::from_meta(&m).is_some());
        m.as_object_mut().unwrap().remove("id");
        assert!(InboundMessage::from_meta(&m).is_none());
    }

    #[test]
    fn media_flags_and_fields() {
        let audio = kind(json!({"type": "audio", "audio": {
            "mime_type": "audio/ogg; codecs=opus", "sha256": "abc", "id": "1003383421387256", "voice": true
        }}));
        let MessageKind::Media { media_type, media } = audio else {
            panic!("{audio:?}")
        };
        assert_eq!(media_type, MediaType::Audio);
        assert!(media.voice && !media.animated);
        assert_eq!(media.id, "1003383421387256");

        let document = kind(json!({"type": "document", "document": {
            "caption": "nota", "filename": "nota.pdf", "mime_type": "application/pdf",
            "sha256": "x", "id": "2"
        }}));
        let MessageKind::Media { media, .. } = document else {
            panic!()
        };
        assert_eq!(media.filename.as_deref(), Some("nota.pdf"));
        assert_eq!(media.caption.as_deref(), Some("nota"));
    }

    #[test]
    fn a_known_type_with_a_broken_payload_is_kept_raw() {
        let raw = message(json!({"type": "image", "image": {"caption": "no id"}}));
        let m = InboundMessage::from_meta(&raw).unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Unsupported {
                message_type: "image".into(),
                raw
            }
        );
    }

    #[test]
    fn reactions_may_be_removed() {
        assert_eq!(
            kind(json!({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": ""}})),
            MessageKind::Reaction {
                message_id: "wamid.x".into(),
                emoji: None
            }
        );
        assert_eq!(
            kind(json!({"type": "reaction", "reaction": {"message_id": "wamid.x"}})),
            MessageKind::Reaction {
                message_id: "wamid.x".into(),
                emoji: None
            }
        );
    }

    #[test]
    fn bot_text() {
        let text = |k: Value| {
            InboundMessage::from_meta(&message(k))
                .unwrap()
                .bot_text()
                .map(str::to_string)
        };
        assert_eq!(
            text(json!({"type": "text", "text": {"body": "oi"}})).as_deref(),
            Some("oi")
        );
        assert_eq!(
            text(
                json!({"type": "interactive", "interactive": {"type": "list_reply",
                "list_reply": {"id": "r1", "title": "Segunda", "description": "manhã"}}})
            )
            .as_deref(),
            Some("Segunda")
        );
        assert_eq!(
            text(json!({"type": "button", "button": {"payload": "P", "text": "Sim"}})).as_deref(),
            Some("Sim")
        );
        assert_eq!(
            text(
                json!({"type": "interactive", "interactive": {"type": "nfm_reply",
                "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{}"}}})
            ),
            None
        );
        assert_eq!(text(json!({"type": "request_welcome"})), None);
        assert_eq!(
            text(json!({"type": "image", "image": {"id": "1", "caption": "tem desse?"}}))
                .as_deref(),
            Some("tem desse?")
        );
        assert_eq!(
            text(json!({"type": "audio", "audio": {"id": "2", "voice": true}})),
            None
        );
    }

    #[test]
    fn older_system_payloads_name_the_new_id_new_wa_id() {
        assert_eq!(
            kind(json!({"type": "system", "system": {
                "body": "changed", "new_wa_id": "12195555358", "type": "user_changed_number"
            }})),
            MessageKind::System(SystemNotice {
                system_type: "user_changed_number".into(),
                body: Some("changed".into()),
                wa_id: Some("12195555358".into()),
                user_id: None,
                parent_user_id: None,
            })
        );
    }
}
