//! WhatsApp stores and their numbers: the create and update requests of a
//! store and its bot settings, the number slots (1–3), a number's request
//! and its status. Validation reports every problem at once, as
//! [`FieldError`]s named as in the JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids;
use crate::phone::Phone;
use crate::validation::{
    FieldError, UnknownVariant, check, multiline_field, optional_text, present, text_field, within,
};

/// An account has at most this many stores.
pub const MAX_STORES_PER_ACCOUNT: usize = 20;
/// Store ids: `st_` + a lowercase ULID (see [`crate::ids`]).
pub const STORE_ID_PREFIX: &str = "st";

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_STORE_TYPE_CHARS: usize = 60;
pub const MAX_BOT_NAME_CHARS: usize = 60;
pub const MAX_BASE_PROMPT_CHARS: usize = 4000;
pub const MAX_FORBIDDEN_TOPICS: usize = 50;
pub const MAX_FORBIDDEN_TOPIC_CHARS: usize = 200;
/// A WhatsApp text body holds up to 4096 characters; the fallback is a
/// short notice, so it is kept well under that.
pub const MAX_FALLBACK_TEXT_CHARS: usize = 1024;

pub const DEFAULT_MESSAGE_LIMIT: u32 = 30;
pub const MIN_MESSAGE_LIMIT: u32 = 1;
pub const MAX_MESSAGE_LIMIT: u32 = 500;
pub const DEFAULT_CONTEXT_MINUTES: u32 = 60;
pub const MIN_CONTEXT_MINUTES: u32 = 5;
/// One day: the bot never needs more context than the 24-hour window.
pub const MAX_CONTEXT_MINUTES: u32 = 1440;

/// The fallback text when the store sets none, in Brazilian Portuguese.
pub const DEFAULT_FALLBACK_PT_BR: &str =
    "Obrigado pela mensagem! Um atendente vai continuar a conversa com você em breve.";
/// The fallback text when the store sets none, in English.
pub const DEFAULT_FALLBACK_EN: &str =
    "Thank you for your message! A member of our team will continue the conversation shortly.";

/// A new store id (`st_…`).
pub fn new_store_id() -> String {
    ids::new_id(STORE_ID_PREFIX)
}

/// Whether `id` has the shape of a store id, so that a malformed one can be
/// answered with 404 before any lookup.
pub fn is_store_id(id: &str) -> bool {
    ids::has_prefix(id, STORE_ID_PREFIX)
}

/// The language the bot answers in and of the default fallback text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "pt-BR")]
    PtBr,
    #[serde(rename = "en")]
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::PtBr, Language::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::PtBr => "pt-BR",
            Language::En => "en",
        }
    }

    /// The fallback text of a store that sets none.
    pub fn default_fallback_text(self) -> &'static str {
        match self {
            Language::PtBr => DEFAULT_FALLBACK_PT_BR,
            Language::En => DEFAULT_FALLBACK_EN,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `pt-BR` or `en`, ignoring case; `pt_BR` (Meta's template spelling) is
/// taken as `pt-BR`.
impl FromStr for Language {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("pt-BR") || s.eq_ignore_ascii_case("pt_BR") {
            Ok(Language::PtBr)
        } else if s.eq_ignore_ascii_case("en") {
            Ok(Language::En)
        } else {
            Err(UnknownVariant::new("language", s))
        }
    }
}

/// `POST /v1/whatsapp/stores`. Absent bot settings take their defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreRequest {
    pub name: String,
    pub store_type: String,
    #[serde(default)]
    pub bot_name: Option<String>,
    #[serde(default)]
    pub base_prompt: Option<String>,
    #[serde(default)]
    pub forbidden: Vec<String>,
    #[serde(default)]
    pub message_limit: Option<u32>,
    #[serde(default)]
    pub context_minutes: Option<u32>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Absent or empty: the default text of `language`.
    #[serde(default)]
    pub fallback_text: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// `PATCH /v1/whatsapp/stores/{id}`: absent fields keep their value.
/// `forbidden` replaces the whole list. `bot_name` and `fallback_text`
/// given as `null` or `""` are cleared (no bot name; the language's
/// default fallback text); `base_prompt` given as `""` is cleared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub store_type: Option<String>,
    /// `None`: unchanged; `Some(None)`: cleared.
    #[serde(default, deserialize_with = "present")]
    pub bot_name: Option<Option<String>>,
    #[serde(default)]
    pub base_prompt: Option<String>,
    #[serde(default)]
    pub forbidden: Option<Vec<String>>,
    #[serde(default)]
    pub message_limit: Option<u32>,
    #[serde(default)]
    pub context_minutes: Option<u32>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `None`: unchanged; `Some(None)`: back to the language's default.
    #[serde(default, deserialize_with = "present")]
    pub fallback_text: Option<Option<String>>,
    #[serde(default)]
    pub language: Option<String>,
}

/// Validated settings of a store and its bot, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSettings {
    pub name: String,
    /// Free text such as `restaurante` or `loja de roupas`; it tells the
    /// bot what kind of business it speaks for.
    pub store_type: String,
    /// `None`: the bot has no name of its own.
    pub bot_name: Option<String>,
    /// May be empty; line breaks kept.
    pub base_prompt: String,
    /// Topics the bot refuses, trimmed, without duplicates (ignoring case),
    /// in the order given.
    pub forbidden: Vec<String>,
    /// Bot replies per conversation within the context window.
    pub message_limit: u32,
    /// How far back the bot reads the conversation, and the window in which
    /// `message_limit` counts.
    pub context_minutes: u32,
    pub enabled: bool,
    /// `None`: [`Language::default_fallback_text`] (see
    /// [`StoreSettings::fallback_text`]).
    pub fallback_text: Option<String>,
    pub language: Language,
}

impl StoreSettings {
    /// What the customer reads when the bot cannot answer: the store's own
    /// text or its language's default.
    pub fn fallback_text(&self) -> &str {
        self.fallback_text
            .as_deref()
            .unwrap_or_else(|| self.language.default_fallback_text())
    }

    /// How far back the bot reads and counts its replies.
    pub fn context_window(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.context_minutes))
    }
}

impl StoreRequest {
    /// Validates every field and reports all problems at once.
    pub fn validate(self) -> Result<StoreSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = check(
            &mut errors,
            text_field("name", &self.name, 1, MAX_NAME_CHARS),
        );
        let store_type = check(
            &mut errors,
            text_field("store_type", &self.store_type, 1, MAX_STORE_TYPE_CHARS),
        );
        let bot_name = check(
            &mut errors,
            optional_text(
                "bot_name",
                self.bot_name.as_deref(),
                MAX_BOT_NAME_CHARS,
                false,
            ),
        );
        let base_prompt = check(
            &mut errors,
            multiline_field(
                "base_prompt",
                self.base_prompt.as_deref().unwrap_or(""),
                MAX_BASE_PROMPT_CHARS,
            ),
        );
        let forbidden = validate_forbidden(&mut errors, self.forbidden);
        let message_limit = check(
            &mut errors,
            within(
                "message_limit",
                self.message_limit.unwrap_or(DEFAULT_MESSAGE_LIMIT),
                MIN_MESSAGE_LIMIT,
                MAX_MESSAGE_LIMIT,
            ),
        );
        let context_minutes = check(
            &mut errors,
            within(
                "context_minutes",
                self.context_minutes.unwrap_or(DEFAULT_CONTEXT_MINUTES),
                MIN_CONTEXT_MINUTES,
                MAX_CONTEXT_MINUTES,
            ),
        );
        let fallback_text = check(
            &mut errors,
            optional_text(
                "fallback_text",
                self.fallback_text.as_deref(),
                MAX_FALLBACK_TEXT_CHARS,
                true,
            ),
        );
        let language = check(
            &mut errors,
            self.language
                .as_deref()
                .map(|l| {
                    l.parse::<Language>()
                        .map_err(|_| FieldError::new("language", "must be pt-BR or en"))
                })
                .transpose(),
        );
        match (
            name,
            store_type,
            bot_name,
            base_prompt,
            message_limit,
            context_minutes,
            fallback_text,
            language,
        ) {
            (
                Some(name),
                Some(store_type),
                Some(bot_name),
                Some(base_prompt),
                Some(message_limit),
                Some(context_minutes),
                Some(fallback_text),
                Some(language),
            ) if errors.is_empty() => Ok(StoreSettings {
                name,
                store_type,
                bot_name,
                base_prompt,
                forbidden,
                message_limit,
                context_minutes,
                enabled: self.enabled.unwrap_or(true),
                fallback_text,
                language: language.unwrap_or_default(),
            }),
            _ => Err(errors),
        }
    }
}

impl StorePatch {
    /// The settings after this change, validated as a whole with the rules
    /// of [`StoreRequest::validate`].
    pub fn apply(self, current: &StoreSettings) -> Result<StoreSettings, Vec<FieldError>> {
        let current = current.clone();
        let merged = StoreRequest {
            name: self.name.unwrap_or(current.name),
            store_type: self.store_type.unwrap_or(current.store_type),
            bot_name: self.bot_name.unwrap_or(current.bot_name),
            base_prompt: Some(self.base_prompt.unwrap_or(current.base_prompt)),
            forbidden: self.forbidden.unwrap_or(current.forbidden),
            message_limit: Some(self.message_limit.unwrap_or(current.message_limit)),
            context_minutes: Some(self.context_minutes.unwrap_or(current.context_minutes)),
            enabled: Some(self.enabled.unwrap_or(current.enabled)),
            fallback_text: self.fallback_text.unwrap_or(current.fallback_text),
            language: Some(
                self.language
                    .unwrap_or_else(|| current.language.as_str().to_owned()),
            ),
        };
        merged.validate()
    }
}

/// Trimmed topics without duplicates (ignoring case), in the order given;
/// one error per bad topic, under `forbidden.<index>`.
fn validate_forbidden(errors: &mut Vec<FieldError>, topics: Vec<String>) -> Vec<String> {
    if topics.len() > MAX_FORBIDDEN_TOPICS {
        errors.push(FieldError::new(
            "forbidden",
            format!("must list at most {MAX_FORBIDDEN_TOPICS} topics"),
        ));
        return Vec::new();
    }
    let mut valid: Vec<String> = Vec::with_capacity(topics.len());
    for (i, topic) in topics.iter().enumerate() {
        match text_field(
            &format!("forbidden.{i}"),
            topic,
            1,
            MAX_FORBIDDEN_TOPIC_CHARS,
        ) {
            Ok(topic) => {
                let lower = topic.to_lowercase();
                if !valid.iter().any(|t| t.to_lowercase() == lower) {
                    valid.push(topic);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    valid
}

// ---------------------------------------------------------------------------
// Numbers

/// A store's number slot, 1 to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Slot(u8);

impl Slot {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 3;
    pub const ALL: [Slot; 3] = [Slot(1), Slot(2), Slot(3)];

    pub fn new(n: u8) -> Option<Slot> {
        (Self::MIN..=Self::MAX).contains(&n).then_some(Slot(n))
    }

    /// The `{slot}` segment of a path: exactly `1`, `2` or `3`. Anything
    /// else (`0`, `4`, `01`, `+1`, ` 1`, `one`) is a field error.
    pub fn parse(segment: &str) -> Result<Slot, FieldError> {
        match segment {
            "1" => Ok(Slot(1)),
            "2" => Ok(Slot(2)),
            "3" => Ok(Slot(3)),
            _ => Err(FieldError::new("slot", "must be 1, 2 or 3")),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u8> for Slot {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Slot::new(n).ok_or_else(|| format!("slot must be 1, 2 or 3, not {n}"))
    }
}

impl From<Slot> for u8 {
    fn from(slot: Slot) -> u8 {
        slot.0
    }
}

pub const MAX_META_ID_DIGITS: usize = 20;
pub const MAX_ACCESS_TOKEN_CHARS: usize = 1024;
/// E.164 allows at most 15 digits, country code included.
pub const MAX_E164_DIGITS: usize = 15;
/// Shorter numbers exist only as national short codes, which WhatsApp
/// does not register.
pub const MIN_E164_DIGITS: usize = 8;
/// Meta's error messages are shown, not kept whole.
pub const MAX_STATUS_MESSAGE_CHARS: usize = 500;

/// A number's Graph API access token: write-only. `Debug` shows
/// `[redacted]`, and there is neither `Display` nor `Serialize`, so it
/// cannot reach a log or a response by accident; it is sealed before it is
/// stored.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AccessToken(String);

impl AccessToken {
    /// A token as given: trimmed, 1 to [`MAX_ACCESS_TOKEN_CHARS`] visible
    /// ASCII characters (no spaces inside). The error never repeats the
    /// value.
    pub fn parse(value: &str) -> Result<AccessToken, FieldError> {
        let field = "access_token";
        let value = value.trim();
        if value.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if value.len() > MAX_ACCESS_TOKEN_CHARS {
            return Err(FieldError::new(
                field,
                format!("must be at most {MAX_ACCESS_TOKEN_CHARS} characters"),
            ));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new(
                field,
                "must contain only visible ASCII characters, without spaces",
            ));
        }
        Ok(AccessToken(value.to_owned()))
    }

    /// The token, for the `Authorization` header and the sealer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `PUT /v1/whatsapp/stores/{id}/numbers/{slot}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRequest {
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    pub access_token: AccessToken,
}

/// A number's validated settings, as stored and shown (the token is kept
/// apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberSettings {
    /// Meta's id of the number: the key webhooks are routed by.
    pub phone_number_id: String,
    /// Meta's id of the WhatsApp Business Account.
    pub waba_id: String,
    /// E.164: `+5511987654321`.
    pub display_phone_number: String,
}

impl NumberRequest {
    /// Validates every field and reports all problems at once. Returns the
    /// token separately: it is sealed, never stored in the clear.
    pub fn validate(self) -> Result<(NumberSettings, AccessToken), Vec<FieldError>> {
        let mut errors = Vec::new();
        let phone_number_id = check(
            &mut errors,
            meta_id("phone_number_id", &self.phone_number_id),
        );
        let waba_id = check(&mut errors, meta_id("waba_id", &self.waba_id));
        let display_phone_number = check(
            &mut errors,
            display_phone_number(&self.display_phone_number)
                .map_err(|message| FieldError::new("display_phone_number", message)),
        );
        let access_token = check(&mut errors, AccessToken::parse(self.access_token.expose()));
        match (phone_number_id, waba_id, display_phone_number, access_token) {
            (Some(phone_number_id), Some(waba_id), Some(display_phone_number), Some(token))
                if errors.is_empty() =>
            {
                Ok((
                    NumberSettings {
                        phone_number_id,
                        waba_id,
                        display_phone_number,
                    },
                    token,
                ))
            }
            _ => Err(errors),
        }
    }
}

/// A Meta object id (phone number, WhatsApp Business Account): 1 to 20
/// ASCII digits, surrounding spaces trimmed.
pub fn meta_id(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > MAX_META_ID_DIGITS
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(FieldError::new(
            field,
            format!("must be Meta's numeric id (1 to {MAX_META_ID_DIGITS} digits)"),
        ));
    }
    Ok(value.to_owned())
}

/// A phone number as Meta or a person writes it (digits, spaces, `-`,
/// parentheses, a leading `+`), in E.164 form (`+<digits>`).
///
/// With a leading `+` the digits are the international number. Without
/// one, a Brazilian number in any form [`Phone::parse`] accepts (national
/// `(11) 98765-4321` included) is taken as Brazilian; anything else is
/// taken as already carrying its country code, as in Meta's webhooks
/// (`15550783881`). Numbers of other countries are accepted: WhatsApp
/// Business numbers (Meta's test numbers among them) need not be Brazilian.
pub fn display_phone_number(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    let (has_plus, rest) = match value.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
    {
        return Err("must contain only digits, spaces, -, parentheses and a leading +");
    }
    if !has_plus && let Ok(phone) = Phone::parse(rest) {
        return Ok(phone.e164().to_owned());
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if !(MIN_E164_DIGITS..=MAX_E164_DIGITS).contains(&digits.len()) || digits.starts_with('0') {
        return Err("must be a phone number with its country code (8 to 15 digits)");
    }
    Ok(format!("+{digits}"))
}

/// A number's state, as shown in its slot. Serialized with a `status` tag:
/// `{"status":"error","code":190,"message":"…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum NumberStatus {
    /// Saved, not yet checked against the Graph API.
    #[default]
    Unchecked,
    /// The token reads the number: messages can be sent from it.
    Connected,
    /// Meta refused (a bad or expired token, a blocked account): nothing is
    /// sent from the number until it is fixed and checked again.
    Error { code: i64, message: String },
    /// The number is no longer reachable through the Graph API (removed at
    /// Meta, or from its slot).
    Disconnected,
}

impl NumberStatus {
    /// An `error` status with Meta's message shortened to
    /// [`MAX_STATUS_MESSAGE_CHARS`] and stripped of control characters.
    pub fn error(code: i64, message: &str) -> NumberStatus {
        let message = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>();
        let message = message.trim();
        let message = match message.char_indices().nth(MAX_STATUS_MESSAGE_CHARS) {
            Some((cut, _)) => format!("{}…", &message[..cut]),
            None => message.to_owned(),
        };
        NumberStatus::Error { code, message }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            NumberStatus::Unchecked => "unchecked",
            NumberStatus::Connected => "connected",
            NumberStatus::Error { .. } => "error",
            NumberStatus::Disconnected => "disconnected",
        }
    }

    /// Whether messages may be sent from the number. An unchecked number
    /// may: its first send is its check.
    pub fn can_send(&self) -> bool {
        matches!(self, NumberStatus::Connected | NumberStatus::Unchecked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> StoreRequest {
        serde_json::from_value(body).unwrap()
    }

    fn settings(body: serde_json::Value) -> StoreSettings {
        request(body).validate().unwrap()
    }

    fn errors(body: serde_json::Value) -> Vec<FieldError> {
        request(body).validate().unwrap_err()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn minimal() -> serde_json::Value {
        json!({"name": "Padaria Pão Quente", "store_type": "padaria"})
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = minimal();
        body[field] = value;
        body
    }

    #[test]
    fn store_ids() {
        let id = new_store_id();
        assert!(id.starts_with("st_"), "{id}");
        assert!(is_store_id(&id));
        assert!(!is_store_id(&ids::new_id(ids::WEBHOOK)));
        assert!(!is_store_id("st_"));
        assert_eq!(MAX_STORES_PER_ACCOUNT, 20);
    }

    #[test]
    fn defaults() {
        let s = settings(minimal());
        assert_eq!(
            s,
            StoreSettings {
                name: "Padaria Pão Quente".into(),
                store_type: "padaria".into(),
                bot_name: None,
                base_prompt: String::new(),
                forbidden: vec![],
                message_limit: 30,
                context_minutes: 60,
                enabled: true,
                fallback_text: None,
                language: Language::PtBr,
            }
        );
        assert_eq!(s.fallback_text(), DEFAULT_FALLBACK_PT_BR);
        assert_eq!(s.context_window(), chrono::Duration::hours(1));
        let en = settings(with("language", json!("en")));
        assert_eq!(en.fallback_text(), DEFAULT_FALLBACK_EN);
        assert!(DEFAULT_FALLBACK_PT_BR.chars().count() <= MAX_FALLBACK_TEXT_CHARS);
    }

    #[test]
    fn full_request() {
        let s = settings(json!({
            "name": "  Cantina da Nona ",
            "store_type": "restaurante",
            "bot_name": " Nona ",
            "base_prompt": "Você atende pedidos.\n\nSeja breve.\t",
            "forbidden": [" política ", "religião", "Política", "preços de concorrentes"],
            "message_limit": 500,
            "context_minutes": 1440,
            "enabled": false,
            "fallback_text": "Um atendente já vai falar com você.\nObrigado!",
            "language": "pt-br"
        }));
        assert_eq!(s.name, "Cantina da Nona");
        assert_eq!(s.bot_name.as_deref(), Some("Nona"));
        assert_eq!(s.base_prompt, "Você atende pedidos.\n\nSeja breve.");
        assert_eq!(
            s.forbidden,
            ["política", "religião", "preços de concorrentes"]
        );
        assert_eq!((s.message_limit, s.context_minutes), (500, 1440));
        assert!(!s.enabled);
        assert_eq!(
            s.fallback_text(),
            "Um atendente já vai falar com você.\nObrigado!"
        );
        assert_eq!(s.language, Language::PtBr);
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        for body in [
            with("color", json!("blue")),
            with("id", json!("st_x")),
            json!({"name": "x"}),
            json!({"store_type": "x"}),
            with("message_limit", json!(-1)),
            with("forbidden", json!("política")),
        ] {
            assert!(
                serde_json::from_value::<StoreRequest>(body.clone()).is_err(),
                "{body}"
            );
        }
        assert!(serde_json::from_value::<StorePatch>(json!({"colour": 1})).is_err());
        assert!(serde_json::from_value::<StorePatch>(json!({"language": "en"})).is_ok());
    }

    #[test]
    fn text_limits() {
        let long = |n: usize| json!("é".repeat(n));
        for (field, value, ok) in [
            ("name", long(MAX_NAME_CHARS), true),
            ("name", long(MAX_NAME_CHARS + 1), false),
            ("name", json!("   "), false),
            ("name", json!(""), false),
            ("name", json!("a\nb"), false),
            ("store_type", long(MAX_STORE_TYPE_CHARS), true),
            ("store_type", long(MAX_STORE_TYPE_CHARS + 1), false),
            ("store_type", json!(" "), false),
            ("bot_name", long(MAX_BOT_NAME_CHARS), true),
            ("bot_name", long(MAX_BOT_NAME_CHARS + 1), false),
            ("bot_name", json!("a\u{7}"), false),
            ("bot_name", json!(""), true),
            ("bot_name", json!(null), true),
            ("base_prompt", long(MAX_BASE_PROMPT_CHARS), true),
            ("base_prompt", long(MAX_BASE_PROMPT_CHARS + 1), false),
            ("base_prompt", json!("linha 1\r\nlinha 2\tfim"), true),
            ("base_prompt", json!("a\u{0}b"), false),
            ("base_prompt", json!("a\u{1b}[31m"), false),
            ("fallback_text", long(MAX_FALLBACK_TEXT_CHARS), true),
            ("fallback_text", long(MAX_FALLBACK_TEXT_CHARS + 1), false),
            ("fallback_text", json!("a\nb"), true),
            ("fallback_text", json!("a\u{8}b"), false),
        ] {
            let result = request(with(field, value.clone())).validate();
            match result {
                Ok(_) => assert!(ok, "{field} = {value} was accepted"),
                Err(errors) => {
                    assert!(!ok, "{field} = {value} was refused: {errors:?}");
                    assert_eq!(fields(&errors), [field], "{value}");
                }
            }
        }
        assert_eq!(
            errors(with("name", json!(" "))),
            [FieldError::new("name", "must not be empty")]
        );
        assert_eq!(
            errors(with("base_prompt", long(MAX_BASE_PROMPT_CHARS + 1))),
            [FieldError::new(
                "base_prompt",
                "must be at most 4000 characters"
            )]
        );
    }

    #[test]
    fn blank_optional_texts_are_cleared() {
        let s = settings(json!({
            "name": "a", "store_type": "b", "bot_name": "  ", "fallback_text": "\n "
        }));
        assert_eq!(s.bot_name, None);
        assert_eq!(s.fallback_text, None);
        assert_eq!(s.fallback_text(), DEFAULT_FALLBACK_PT_BR);
    }

    #[test]
    fn forbidden_topics() {
        let at_most: Vec<String> = (0..MAX_FORBIDDEN_TOPICS).map(|i| format!("t{i}")).collect();
        assert_eq!(
            settings(with("forbidden", json!(at_most))).forbidden.len(),
            MAX_FORBIDDEN_TOPICS
        );
        let too_many: Vec<String> = (0..=MAX_FORBIDDEN_TOPICS)
            .map(|i| format!("t{i}"))
            .collect();
        assert_eq!(
            errors(with("forbidden", json!(too_many))),
            [FieldError::new("forbidden", "must list at most 50 topics")]
        );
        let errors = errors(with(
            "forbidden",
            json!([
                "ok",
                "",
                "x".repeat(MAX_FORBIDDEN_TOPIC_CHARS + 1),
                "y".repeat(MAX_FORBIDDEN_TOPIC_CHARS),
                "a\nb"
            ]),
        ));
        assert_eq!(
            fields(&errors),
            ["forbidden.1", "forbidden.2", "forbidden.4"]
        );
    }

    #[test]
    fn numeric_ranges() {
        for (field, value, ok) in [
            ("message_limit", 1, true),
            ("message_limit", 500, true),
            ("message_limit", 0, false),
            ("message_limit", 501, false),
            ("context_minutes", 5, true),
            ("context_minutes", 1440, true),
            ("context_minutes", 4, false),
            ("context_minutes", 1441, false),
        ] {
            let result = request(with(field, json!(value))).validate();
            assert_eq!(result.is_ok(), ok, "{field} = {value}");
            if let Err(errors) = result {
                assert_eq!(fields(&errors), [field]);
            }
        }
    }

    #[test]
    fn languages() {
        for (given, expected) in [
            ("pt-BR", Language::PtBr),
            ("PT-br", Language::PtBr),
            ("pt_BR", Language::PtBr),
            ("en", Language::En),
            ("EN", Language::En),
        ] {
            assert_eq!(settings(with("language", json!(given))).language, expected);
        }
        for bad in ["pt", "es", "en-US", ""] {
            assert_eq!(
                errors(with("language", json!(bad))),
                [FieldError::new("language", "must be pt-BR or en")],
                "{bad}"
            );
        }
        for l in Language::ALL {
            assert_eq!(serde_json::to_value(l).unwrap(), json!(l.as_str()));
            assert_eq!(l.as_str().parse::<Language>().unwrap(), l);
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = errors(json!({
            "name": "",
            "store_type": "",
            "bot_name": "x".repeat(61),
            "base_prompt": "x".repeat(4001),
            "forbidden": [""],
            "message_limit": 0,
            "context_minutes": 0,
            "fallback_text": "x".repeat(1025),
            "language": "fr"
        }));
        assert_eq!(
            fields(&errors),
            [
                "name",
                "store_type",
                "bot_name",
                "base_prompt",
                "forbidden.0",
                "message_limit",
                "context_minutes",
                "fallback_text",
                "language"
            ]
        );
    }

    #[test]
    fn patch_merges_and_revalidates() {
        let current = settings(json!({
            "name": "Loja", "store_type": "roupas", "bot_name": "Bia",
            "base_prompt": "p", "forbidden": ["a"], "fallback_text": "f", "language": "en"
        }));
        let patch = |body| serde_json::from_value::<StorePatch>(body).unwrap();

        assert_eq!(patch(json!({})).apply(&current).unwrap(), current);

        let changed = patch(json!({
            "name": " Loja 2 ",
            "bot_name": null,
            "base_prompt": "",
            "forbidden": [],
            "message_limit": 10,
            "context_minutes": 30,
            "enabled": false,
            "fallback_text": null,
            "language": "pt-BR"
        }))
        .apply(&current)
        .unwrap();
        assert_eq!(changed.name, "Loja 2");
        assert_eq!(changed.store_type, "roupas");
        assert_eq!(changed.bot_name, None);
        assert_eq!(changed.base_prompt, "");
        assert!(changed.forbidden.is_empty());
        assert_eq!((changed.message_limit, changed.context_minutes), (10, 30));
        assert!(!changed.enabled);
        assert_eq!(changed.fallback_text(), DEFAULT_FALLBACK_PT_BR);

        let cleared = patch(json!({"bot_name": "", "fallback_text": ""}))
            .apply(&current)
            .unwrap();
        assert_eq!((cleared.bot_name, cleared.fallback_text), (None, None));

        let errors = patch(json!({
            "name": "", "forbidden": ["ok", " "], "message_limit": 501, "language": "xx"
        }))
        .apply(&current)
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["name", "forbidden.1", "message_limit", "language"]
        );
    }

    #[test]
    fn settings_round_trip_through_storage() {
        let s = settings(with("forbidden", json!(["a", "b"])));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["language"], "pt-BR");
        assert_eq!(serde_json::from_value::<StoreSettings>(json).unwrap(), s);
    }

    #[test]
    fn slots() {
        assert_eq!(Slot::parse("1").unwrap().get(), 1);
        assert_eq!(Slot::parse("3").unwrap(), Slot::ALL[2]);
        for bad in [
            "0", "4", "01", "+1", " 1", "1 ", "", "one", "-1", "１", "256", "1.0",
        ] {
            assert_eq!(
                Slot::parse(bad),
                Err(FieldError::new("slot", "must be 1, 2 or 3")),
                "{bad:?}"
            );
        }
        assert_eq!(Slot::new(0), None);
        assert_eq!(Slot::new(4), None);
        assert_eq!(Slot::new(2).unwrap().to_string(), "2");
        assert_eq!(serde_json::to_value(Slot::ALL[1]).unwrap(), json!(2));
        assert_eq!(
            serde_json::from_value::<Slot>(json!(3)).unwrap(),
            Slot::ALL[2]
        );
        assert!(serde_json::from_value::<Slot>(json!(4)).is_err());
    }

    fn number(body: serde_json::Value) -> Result<(NumberSettings, AccessToken), Vec<FieldError>> {
        serde_json::from_value::<NumberRequest>(body)
            .unwrap()
            .validate()
    }

    fn number_body() -> serde_json::Value {
        json!({
            "phone_number_id": "106540352242922",
            "waba_id": "102290129340398",
            "display_phone_number": "+55 11 98765-4321",
            "access_token": "EAAGm0PX4ZCpsBAKZAsecret"
        })
    }

    fn number_with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = number_body();
        body[field] = value;
        body
    }

    #[test]
    fn number_request() {
        let (settings, token) = number(number_body()).unwrap();
        assert_eq!(
            settings,
            NumberSettings {
                phone_number_id: "106540352242922".into(),
                waba_id: "102290129340398".into(),
                display_phone_number: "+5511987654321".into(),
            }
        );
        assert_eq!(token.expose(), "EAAGm0PX4ZCpsBAKZAsecret");

        let mut unknown = number_body();
        unknown["verify_token"] = json!("x");
        assert!(serde_json::from_value::<NumberRequest>(unknown).is_err());
        let mut missing = number_body();
        missing.as_object_mut().unwrap().remove("access_token");
        assert!(serde_json::from_value::<NumberRequest>(missing).is_err());
        // Ids are strings: large ids lose precision as JSON numbers.
        assert!(
            serde_json::from_value::<NumberRequest>(number_with(
                "phone_number_id",
                json!(106540352242922u64)
            ))
            .is_err()
        );
    }

    #[test]
    fn meta_ids() {
        for field in ["phone_number_id", "waba_id"] {
            for (value, ok) in [
                ("1", true),
                (" 123 ", true),
                ("12345678901234567890", true),
                ("123456789012345678901", false),
                ("", false),
                ("  ", false),
                ("12a", false),
                ("-1", false),
                ("1 2", false),
                ("１２", false),
            ] {
                let result = number(number_with(field, json!(value)));
                match result {
                    Ok((s, _)) => {
                        assert!(ok, "{field} = {value:?}");
                        let got = if field == "waba_id" {
                            s.waba_id
                        } else {
                            s.phone_number_id
                        };
                        assert_eq!(got, value.trim());
                    }
                    Err(errors) => {
                        assert!(!ok, "{field} = {value:?}");
                        assert_eq!(fields(&errors), [field]);
                    }
                }
            }
        }
    }

    #[test]
    fn display_phone_numbers() {
        for (given, expected) in [
            ("+55 11 98765-4321", "+5511987654321"),
            ("+55 (11) 98765-4321", "+5511987654321"),
            ("5511987654321", "+5511987654321"),
            ("(11) 98765-4321", "+5511987654321"),
            ("11 3333-4444", "+551133334444"),
            ("15550783881", "+15550783881"),
            ("+1 555-078-3881", "+15550783881"),
            ("+351 912 345 678", "+351912345678"),
            ("+44 20 7946 0958", "+442079460958"),
            ("  +5511987654321  ", "+5511987654321"),
        ] {
            assert_eq!(
                display_phone_number(given).as_deref(),
                Ok(expected),
                "{given}"
            );
        }
        for bad in [
            "",
            "+",
            "1234567",
            "+1234567890123456",
            "0800 123 4567",
            "+0 555 0100",
            "11 98765+4321",
            "11.3333.4444",
            "+55 11 98765/4321",
            "phone",
            "++5511987654321",
        ] {
            assert!(display_phone_number(bad).is_err(), "{bad:?}");
        }
        let errors = number(number_with("display_phone_number", json!("abc"))).unwrap_err();
        assert_eq!(fields(&errors), ["display_phone_number"]);
    }

    #[test]
    fn access_tokens() {
        for (value, ok) in [
            ("t", true),
            ("  EAAB.x-y_z|1  ", true),
            ("", false),
            ("   ", false),
            ("EAA B", false),
            ("EAA\nB", false),
            ("tokén", false),
        ] {
            let result = number(number_with("access_token", json!(value)));
            assert_eq!(result.is_ok(), ok, "{value:?}");
            if let Err(errors) = result {
                assert_eq!(fields(&errors), ["access_token"]);
                assert!(!errors[0].message.contains(value.trim()) || value.trim().is_empty());
            }
        }
        let max = "a".repeat(MAX_ACCESS_TOKEN_CHARS);
        assert!(number(number_with("access_token", json!(max))).is_ok());
        let over = "a".repeat(MAX_ACCESS_TOKEN_CHARS + 1);
        assert_eq!(
            number(number_with("access_token", json!(over))).unwrap_err(),
            [FieldError::new(
                "access_token",
                "must be at most 1024 characters"
            )]
        );
        assert_eq!(AccessToken::parse(" abc ").unwrap().expose(), "abc");
    }

    #[test]
    fn the_token_is_never_printed() {
        let secret = "EAAGm0PX4ZCpsBAKZAsecret";
        let token = AccessToken::parse(secret).unwrap();
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(format!("{token:#?}"), "[redacted]");
        let request: NumberRequest = serde_json::from_value(number_body()).unwrap();
        let debug = format!("{request:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        let (settings, token) = request.validate().unwrap();
        let shown = serde_json::to_string(&settings).unwrap();
        assert!(!shown.contains(secret) && !shown.contains("access_token"));
        assert!(!format!("{token:?}").contains(secret));
        let errors = number(number_with("access_token", json!("EAA secret"))).unwrap_err();
        assert!(!format!("{errors:?}").contains("secret"));
    }

    #[test]
    fn number_statuses() {
        for (status, value) in [
            (NumberStatus::Unchecked, json!({"status": "unchecked"})),
            (NumberStatus::Connected, json!({"status": "connected"})),
            (
                NumberStatus::Disconnected,
                json!({"status": "disconnected"}),
            ),
            (
                NumberStatus::error(190, "Error validating access token"),
                json!({"status": "error", "code": 190, "message": "Error validating access token"}),
            ),
        ] {
            assert_eq!(serde_json::to_value(&status).unwrap(), value);
            assert_eq!(value["status"], status.as_str());
            assert_eq!(
                serde_json::from_value::<NumberStatus>(value).unwrap(),
                status
            );
        }
        assert_eq!(NumberStatus::default(), NumberStatus::Unchecked);
        assert!(NumberStatus::Connected.can_send());
        assert!(NumberStatus::Unchecked.can_send());
        assert!(!NumberStatus::Disconnected.can_send());
        assert!(!NumberStatus::error(368, "blocked").can_send());

        let long = NumberStatus::error(1, &format!("a\nb{}", "é".repeat(600)));
        let NumberStatus::Error { message, .. } = long else {
            unreachable!()
        };
        assert_eq!(message.chars().count(), MAX_STATUS_MESSAGE_CHARS + 1);
        assert!(message.starts_with("a b") && message.ends_with('…'));
    }

    proptest! {
        #[test]
        fn slot_parse_accepts_only_1_to_3(segment in "\\PC{0,4}") {
            let parsed = Slot::parse(&segment);
            prop_assert_eq!(parsed.is_ok(), matches!(segment.as_str(), "1" | "2" | "3"));
        }

        #[test]
        fn display_numbers_are_e164(input in "[+]?[0-9 ()-]{0,20}") {
            if let Ok(e164) = display_phone_number(&input) {
                prop_assert!(e164.starts_with('+'));
                let digits = &e164[1..];
                prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((MIN_E164_DIGITS..=MAX_E164_DIGITS).contains(&digits.len()));
                prop_assert_eq!(display_phone_number(&e164), Ok(e164.clone()));
            }
        }

        #[test]
        fn store_validation_never_panics(
            name in "\\PC{0,120}",
            prompt in "(\\PC|\n){0,50}",
            limit in any::<u32>(),
            minutes in any::<u32>(),
        ) {
            let body = json!({
                "name": name, "store_type": "x", "base_prompt": prompt,
                "message_limit": limit, "context_minutes": minutes
            });
            if let Ok(s) = request(body).validate() {
                prop_assert!((1..=MAX_NAME_CHARS).contains(&s.name.chars().count()));
                prop_assert!((MIN_MESSAGE_LIMIT..=MAX_MESSAGE_LIMIT).contains(&s.message_limit));
                prop_assert!((MIN_CONTEXT_MINUTES..=MAX_CONTEXT_MINUTES).contains(&s.context_minutes));
            }
        }
    }
}
