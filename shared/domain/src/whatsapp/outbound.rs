//! Messages a store sends: the API's request (`POST
//! /v1/whatsapp/stores/{id}/messages`), what is queued for
//! `whatsapp-outbound`, and the stages a message goes through.
//!
//! A message is recorded `queued` before its job is sent; the sender
//! claims it (`sending`) before the one Graph call, and records `sent`
//! with Meta's `wamid` or `failed` with Meta's error. A throttled send goes
//! back to `queued` with the next attempt number (see
//! [`super::graph_error::next_step`]).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::identity::Recipient;
use crate::ids;
use crate::validation::{FieldError, text_field};

/// WhatsApp's limit for a text body.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Meta's limit for a template name.
pub const MAX_TEMPLATE_NAME_CHARS: usize = 512;
/// Body parameters of a template (`{{1}}`…); Meta's templates hold far
/// fewer in practice.
pub const MAX_TEMPLATE_PARAMETERS: usize = 20;
/// A body parameter's text.
pub const MAX_TEMPLATE_PARAMETER_CHARS: usize = 1024;
/// Outbound message ids: `wo_` + a lowercase ULID.
pub const OUTBOUND_ID_PREFIX: &str = "wo";

pub fn new_outbound_id() -> String {
    ids::new_id(OUTBOUND_ID_PREFIX)
}

/// The outbound message id a bot reply to inbound `wamid` gets: the same
/// however often the bot's job runs, so the reply is recorded once.
pub fn reply_id(inbound_wamid: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(inbound_wamid.as_bytes());
    let hex: String = digest[..13].iter().map(|b| format!("{b:02x}")).collect();
    format!("{OUTBOUND_ID_PREFIX}_r{}", &hex[..25])
}

/// `POST /v1/whatsapp/stores/{id}/messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// A phone number (WhatsApp id; `+`, spaces, dashes and brackets are
    /// ignored) or a business-scoped user id (`BR.1349…`).
    pub to: String,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub template: Option<TemplateRequest>,
    /// Which of the store's numbers sends it; default: the first slot with
    /// a number that is not in `error`.
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub slot: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    pub name: String,
    /// Meta's language code of the approved template, e.g. `pt_BR`.
    pub language: String,
    #[serde(default)]
    pub parameters: Vec<String>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
    },
    Template {
        name: String,
        language: String,
        parameters: Vec<String>,
    },
}

impl OutboundContent {
    /// The message as stored and shown (same shape as inbound content).
    pub fn content(&self) -> Value {
        match self {
            OutboundContent::Text { body } => super::content::outbound_text(body),
            OutboundContent::Template {
                name,
                language,
                parameters,
            } => json!({
                "type": "template",
                "template": {"name": name, "language": language, "parameters": parameters}
            }),
        }
    }
}

/// A valid send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSend {
    pub to: Recipient,
    pub content: OutboundContent,
    pub slot: Option<u8>,
}

impl SendRequest {
    /// Every problem at once.
    pub fn validate(self) -> Result<ValidSend, Vec<FieldError>> {
        let mut errors = Vec::new();
        let to = parse_recipient(&self.to)
            .ok_or_else(|| {
                errors.push(FieldError::new(
                    "to",
                    "must be a phone number with country code or a business-scoped user id",
                ))
            })
            .ok();
        let content = match (self.text, self.template) {
            (Some(text), None) => match checked_text(&text) {
                Ok(body) => Some(OutboundContent::Text { body }),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            (None, Some(t)) => t.validate(&mut errors),
            _ => {
                errors.push(FieldError::new(
                    "text",
                    "send either text or template, not both and not neither",
                ));
                None
            }
        };
        if let Some(slot) = self.slot
            && !(1..=3).contains(&slot)
        {
            errors.push(FieldError::new("slot", "must be 1, 2 or 3"));
        }
        match (to, content) {
            (Some(to), Some(content)) if errors.is_empty() => Ok(ValidSend {
                to,
                content,
                slot: self.slot,
            }),
            _ => Err(errors),
        }
    }
}

/// A text body: not blank, at most [`MAX_TEXT_CHARS`]; line breaks kept.
pub fn checked_text(text: &str) -> Result<String, FieldError> {
    let body = text.trim();
    let chars = body.chars().count();
    if chars == 0 {
        return Err(FieldError::new("text", "must not be empty"));
    }
    if chars > MAX_TEXT_CHARS {
        return Err(FieldError::new(
            "text",
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            "text",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(body.to_owned())
}

impl TemplateRequest {
    fn validate(self, errors: &mut Vec<FieldError>) -> Option<OutboundContent> {
        let before = errors.len();
        if !is_template_name(&self.name) {
            errors.push(FieldError::new(
                "template.name",
                "must be the approved template's name: lowercase letters, digits and _",
            ));
        }
        if !is_language_code(&self.language) {
            errors.push(FieldError::new(
                "template.language",
                "must be a template language code such as pt_BR or en_US",
            ));
        }
        if self.parameters.len() > MAX_TEMPLATE_PARAMETERS {
            errors.push(FieldError::new(
                "template.parameters",
                format!("at most {MAX_TEMPLATE_PARAMETERS}"),
            ));
        }
        let mut parameters = Vec::new();
        for (i, p) in self.parameters.iter().enumerate() {
            match text_field(
                &format!("template.parameters[{i}]"),
                p,
                1,
                MAX_TEMPLATE_PARAMETER_CHARS,
            ) {
                Ok(p) => parameters.push(p),
                Err(e) => errors.push(e),
            }
        }
        (errors.len() == before).then_some(OutboundContent::Template {
            name: self.name,
            language: self.language,
            parameters,
        })
    }
}

/// An approved template's name as Meta allows it: lowercase letters,
/// digits and `_`.
pub(crate) fn is_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_TEMPLATE_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `pt_BR`, `en_US`, `en`, `es_LA`…
pub(crate) fn is_language_code(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A phone number (8–15 digits once `+`, spaces, dashes, dots and brackets
/// are dropped) or a BSUID (two uppercase letters, a dot, then letters,
/// digits and dots).
pub fn parse_recipient(to: &str) -> Option<Recipient> {
    let to = to.trim();
    let bsuid = to.len() <= 160
        && to.as_bytes().get(2) == Some(&b'.')
        && to[..2].bytes().all(|b| b.is_ascii_uppercase())
        && to.len() > 3
        && to[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.');
    if bsuid {
        return Some(Recipient::User(to.to_owned()));
    }
    if to
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)))
    {
        return None;
    }
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    (8..=15)
        .contains(&digits.len())
        .then_some(Recipient::Phone(digits))
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundState {
    /// Waiting for the sender (first attempt, or again after throttling).
    Queued,
    /// Claimed by the sender, which is calling the Graph API.
    Sending,
    /// Meta accepted it (`wamid`); delivery statuses follow.
    Sent,
    /// Not sent: Meta's error, the number's state, or an outcome the sender
    /// could not learn (never sent twice to find out).
    Failed,
}

/// Who asked for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A person, through the API.
    Api,
    /// The store's bot, replying to a customer.
    Bot,
    /// An account notice (quota alerts, …).
    Notice,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> Result<ValidSend, Vec<FieldError>> {
        serde_json::from_value::<SendRequest>(v).unwrap().validate()
    }

    #[test]
    fn texts_and_templates() {
        let ok =
            request(json!({"to": "+55 (11) 98765-4321", "text": "  Olá!\nTudo bem?  "})).unwrap();
        assert_eq!(ok.to, Recipient::Phone("5511987654321".into()));
        assert_eq!(
            ok.content,
            OutboundContent::Text {
                body: "Olá!\nTudo bem?".into()
            }
        );
        let ok = request(json!({
            "to": "BR.13491208655302741918",
            "template": {"name": "pedido_confirmado", "language": "pt_BR", "parameters": ["Ana", "#123"]},
            "slot": 2
        }))
        .unwrap();
        assert_eq!(ok.to, Recipient::User("BR.13491208655302741918".into()));
        assert_eq!(ok.slot, Some(2));
        assert!(
            matches!(ok.content, OutboundContent::Template { ref parameters, .. } if parameters.len() == 2)
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let fields = |v| -> Vec<String> {
            request(v)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(json!({"to": "abc", "text": ""})), ["to", "text"]);
        assert_eq!(fields(json!({"to": "5511987654321"})), ["text"]);
        assert_eq!(
            fields(
                json!({"to": "5511987654321", "text": "x", "template": {"name": "a", "language": "pt_BR"}})
            ),
            ["text"]
        );
        assert_eq!(
            fields(
                json!({"to": "5511987654321", "text": "x".repeat(MAX_TEXT_CHARS + 1), "slot": 4})
            ),
            ["text", "slot"]
        );
        assert_eq!(
            fields(
                json!({"to": "123", "template": {"name": "Pedido Confirmado", "language": "portuguese", "parameters": [" "]}})
            ),
            [
                "to",
                "template.name",
                "template.language",
                "template.parameters[0]"
            ]
        );
        assert!(
            serde_json::from_value::<SendRequest>(json!({"to": "1", "text": "x", "cc": 1}))
                .is_err()
        );
        // Exactly the limit is fine, in characters not bytes.
        assert!(
            request(json!({"to": "5511987654321", "text": "ç".repeat(MAX_TEXT_CHARS)})).is_ok()
        );
        assert!(request(json!({"to": "5511987654321", "text": "a\u{0}b"})).is_err());
    }

    #[test]
    fn reply_ids_are_stable_and_distinct() {
        assert_eq!(reply_id("wamid.A"), reply_id("wamid.A"));
        assert_ne!(reply_id("wamid.A"), reply_id("wamid.B"));
        assert!(ids::has_prefix(&new_outbound_id(), OUTBOUND_ID_PREFIX));
        assert!(reply_id("wamid.A").starts_with("wo_r"));
        assert_eq!(reply_id("wamid.A").len(), new_outbound_id().len());
    }
}
