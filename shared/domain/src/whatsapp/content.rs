//! A message as nuvem stores and shows it (`content`), whichever direction
//! it went: `{"type": …, <type>: {…}}` plus `context`, `referral` and
//! `errors` when Meta sent them. The same shape backs the conversation
//! API, the `whatsapp.message.received` event and the bot's prompt.

use serde_json::{Map, Value, json};

use super::message::{InboundMessage, InteractiveReply, MessageKind};

/// The content of an inbound message.
pub fn inbound(message: &InboundMessage) -> Value {
    let (message_type, body) = kind(&message.kind);
    let mut out = Map::new();
    out.insert("type".into(), Value::String(message_type.into()));
    if let Some(body) = body {
        out.insert(message_type.into(), body);
    }
    if let Some(c) = &message.context {
        let mut context = Map::new();
        for (name, value) in [("from", &c.from), ("id", &c.id)] {
            if let Some(value) = value {
                context.insert(name.into(), Value::String(value.clone()));
            }
        }
        if c.forwarded {
            context.insert("forwarded".into(), Value::Bool(true));
        }
        if c.frequently_forwarded {
            context.insert("frequently_forwarded".into(), Value::Bool(true));
        }
        if let Some(product) = &c.referred_product {
            context.insert("referred_product".into(), product.clone());
        }
        out.insert("context".into(), Value::Object(context));
    }
    if let Some(referral) = &message.referral {
        out.insert("referral".into(), referral.clone());
    }
    if !message.errors.is_empty() {
        out.insert("errors".into(), json!(message.errors));
    }
    Value::Object(out)
}

/// A text we send.
pub fn outbound_text(text: &str) -> Value {
    json!({"type": "text", "text": {"body": text}})
}

/// The type name and its object.
fn kind(kind: &MessageKind) -> (&str, Option<Value>) {
    match kind {
        MessageKind::Text { body } => ("text", Some(json!({ "body": body }))),
        MessageKind::Media { media_type, media } => {
            let mut m = Map::new();
            m.insert("id".into(), json!(media.id));
            for (name, value) in [
                ("mime_type", &media.mime_type),
                ("sha256", &media.sha256),
                ("caption", &media.caption),
                ("filename", &media.filename),
            ] {
                if let Some(value) = value {
                    m.insert(name.into(), json!(value));
                }
            }
            if media.voice {
                m.insert("voice".into(), Value::Bool(true));
            }
            if media.animated {
                m.insert("animated".into(), Value::Bool(true));
            }
            (media_type.as_str(), Some(Value::Object(m)))
        }
        MessageKind::Location(l) => (
            "location",
            Some(json!({
                "latitude": l.latitude,
                "longitude": l.longitude,
                "name": l.name,
                "address": l.address,
                "url": l.url,
            })),
        ),
        MessageKind::Contacts(raw) => ("contacts", Some(raw.clone())),
        MessageKind::Interactive(reply) => (
            "interactive",
            Some(match reply {
                InteractiveReply::Button { id, title } => {
                    json!({"type": "button_reply", "id": id, "title": title})
                }
                InteractiveReply::List {
                    id,
                    title,
                    description,
                } => json!({
                    "type": "list_reply", "id": id, "title": title, "description": description
                }),
                InteractiveReply::Flow {
                    name,
                    body,
                    response_json,
                } => json!({
                    "type": "nfm_reply", "name": name, "body": body, "response_json": response_json
                }),
            }),
        ),
        MessageKind::Button { payload, text } => {
            ("button", Some(json!({ "payload": payload, "text": text })))
        }
        MessageKind::Reaction { message_id, emoji } => (
            "reaction",
            Some(json!({ "message_id": message_id, "emoji": emoji })),
        ),
        MessageKind::Order(raw) => ("order", Some(raw.clone())),
        MessageKind::System(n) => (
            "system",
            Some(json!({
                "type": n.system_type,
                "body": n.body,
                "wa_id": n.wa_id,
                "user_id": n.user_id,
                "parent_user_id": n.parent_user_id,
            })),
        ),
        MessageKind::RequestWelcome => ("request_welcome", None),
        MessageKind::Unsupported { message_type, raw } => (
            "unsupported",
            Some(json!({ "message_type": message_type, "raw": raw })),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: Value) -> Value {
        inbound(&InboundMessage::from_meta(&raw).expect("a message"))
    }

    #[test]
    fn text_with_its_reply_context() {
        let content = read(json!({
            "from": "5511987654321", "id": "wamid.A", "timestamp": "1750000000",
            "type": "text", "text": {"body": "Olá, ainda tem pão?"},
            "context": {"from": "15550783881", "id": "wamid.PREV"}
        }));
        assert_eq!(
            content,
            json!({
                "type": "text",
                "text": {"body": "Olá, ainda tem pão?"},
                "context": {"from": "15550783881", "id": "wamid.PREV"}
            })
        );
    }

    #[test]
    fn media_keeps_id_mime_sha_and_caption() {
        let content = read(json!({
            "from": "5511987654321", "id": "wamid.B", "timestamp": "1750000000",
            "type": "image",
            "image": {"id": "1234", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "o bolo"}
        }));
        assert_eq!(content["type"], "image");
        assert_eq!(
            content["image"],
            json!({"id": "1234", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "o bolo"})
        );
    }

    #[test]
    fn unknown_types_keep_their_raw_json() {
        let raw = json!({
            "from": "5511987654321", "id": "wamid.C", "timestamp": "1750000000",
            "type": "hologram", "hologram": {"depth": 3}
        });
        let content = read(raw.clone());
        assert_eq!(content["type"], "unsupported");
        assert_eq!(content["unsupported"]["message_type"], "hologram");
        assert_eq!(content["unsupported"]["raw"], raw);
    }

    #[test]
    fn request_welcome_has_no_body() {
        let content = read(json!({
            "from": "5511987654321", "id": "wamid.D", "timestamp": "1750000000",
            "type": "request_welcome"
        }));
        assert_eq!(content, json!({"type": "request_welcome"}));
    }
}
