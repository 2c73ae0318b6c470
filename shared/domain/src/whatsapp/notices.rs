//! An account's own notices over WhatsApp: which of its numbers sends
//! them, to which phone, and the approved template of each notice. The
//! notices are those nuvem emails to an active account: quota thresholds
//! and disabled webhook endpoints. Accounts that choose nothing get none.
//!
//! Meta only delivers business-initiated messages as approved templates, so
//! each notice type names one; nuvem fills its body parameters in the
//! order [`parameters`] documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identity::Recipient;
use super::outbound::{OUTBOUND_ID_PREFIX, is_language_code, is_template_name, parse_recipient};
use crate::events::{Envelope, EventName, EventType};
use crate::validation::FieldError;

/// The notice types a template may be chosen for.
pub const NOTICE_TYPES: [EventType; 2] = [
    EventType::QuotaThresholdCrossed,
    EventType::WebhookEndpointDisabled,
];

/// `PUT /v1/whatsapp/notices`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    pub store_id: String,
    pub slot: u8,
    /// The phone that receives the notices.
    pub to: String,
    /// Event type → its approved template.
    pub templates: BTreeMap<String, TemplateRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    /// Meta's language code, e.g. `pt_BR`.
    pub language: String,
}

/// An account's notice settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSettings {
    pub store_id: String,
    pub slot: u8,
    /// Digits of the receiving phone.
    pub to: String,
    pub templates: BTreeMap<String, TemplateRef>,
}

impl NoticeRequest {
    /// Every problem at once.
    pub fn validate(self) -> Result<NoticeSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(1..=3).contains(&self.slot) {
            errors.push(FieldError::new("slot", "must be 1, 2 or 3"));
        }
        let to = match parse_recipient(&self.to) {
            Some(Recipient::Phone(phone)) => Some(phone),
            _ => {
                errors.push(FieldError::new(
                    "to",
                    "must be a phone number with country code",
                ));
                None
            }
        };
        if self.templates.is_empty() {
            errors.push(FieldError::new(
                "templates",
                "name the template of at least one notice type",
            ));
        }
        for (event_type, template) in &self.templates {
            let field = format!("templates.{event_type}");
            if !NOTICE_TYPES.iter().any(|t| t.as_str() == event_type) {
                let known: Vec<&str> = NOTICE_TYPES.iter().map(|t| t.as_str()).collect();
                errors.push(FieldError::new(
                    field,
                    format!("not a notice type; one of {}", known.join(", ")),
                ));
                continue;
            }
            if !is_template_name(&template.name) {
                errors.push(FieldError::new(
                    format!("{field}.name"),
                    "must be the approved template's name: lowercase letters, digits and _",
                ));
            }
            if !is_language_code(&template.language) {
                errors.push(FieldError::new(
                    format!("{field}.language"),
                    "must be a template language code such as pt_BR or en_US",
                ));
            }
        }
        match to {
            Some(to) if errors.is_empty() => Ok(NoticeSettings {
                store_id: self.store_id,
                slot: self.slot,
                to,
                templates: self.templates,
            }),
            _ => Err(errors),
        }
    }
}

impl NoticeSettings {
    /// The template chosen for `event`'s type, if any.
    pub fn template_for(&self, event: &Envelope) -> Option<&TemplateRef> {
        let EventName::Known(event_type) = event.event_type else {
            return None;
        };
        NOTICE_TYPES
            .contains(&event_type)
            .then(|| self.templates.get(event_type.as_str()))
            .flatten()
    }
}

/// The body parameters of a notice's template, in order:
///
/// - `quota.threshold_crossed`: `{{1}}` the level (`80`), `{{2}}` the
///   storage used and `{{3}}` the quota, in GB with one decimal (`42,9`);
/// - `webhook.endpoint_disabled`: `{{1}}` the endpoint's URL, `{{2}}` why
///   (`gone` or `failing`).
pub fn parameters(event: &Envelope) -> Vec<String> {
    let data = &event.data;
    let gb = |name: &str| {
        let bytes = data[name].as_u64().unwrap_or(0) as f64;
        format!("{:.1}", bytes / 1e9).replace('.', ",")
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match event.event_type {
        EventName::Known(EventType::QuotaThresholdCrossed) => vec![
            data["level_percent"].as_u64().unwrap_or(0).to_string(),
            gb("used_bytes"),
            gb("quota_bytes"),
        ],
        EventName::Known(EventType::WebhookEndpointDisabled) => {
            vec![text(&data["url"]), text(&data["reason"])]
        }
        _ => Vec::new(),
    }
}

/// The outbound id of `event`'s notice: one notice per event, however
/// often it is fanned out.
pub fn notice_id(event_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(event_id.as_bytes());
    let hex: String = digest[..13].iter().map(|b| format!("{b:02x}")).collect();
    format!("{OUTBOUND_ID_PREFIX}_n{}", &hex[..25])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn request(v: Value) -> Result<NoticeSettings, Vec<FieldError>> {
        serde_json::from_value::<NoticeRequest>(v)
            .unwrap()
            .validate()
    }

    #[test]
    fn settings_are_validated_together() {
        let ok = request(json!({
            "store_id": "st_1", "slot": 1, "to": "+55 11 98765-4321",
            "templates": {"quota.threshold_crossed": {"name": "alerta_cota", "language": "pt_BR"}}
        }))
        .unwrap();
        assert_eq!(ok.to, "5511987654321");
        let fields: Vec<String> = request(json!({
            "store_id": "st_1", "slot": 4, "to": "BR.123",
            "templates": {
                "key.created": {"name": "x", "language": "pt_BR"},
                "webhook.endpoint_disabled": {"name": "Webhook Off", "language": "brasil"}
            }
        }))
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
        assert_eq!(
            fields,
            [
                "slot",
                "to",
                "templates.key.created",
                "templates.webhook.endpoint_disabled.name",
                "templates.webhook.endpoint_disabled.language"
            ]
        );
        assert!(
            request(json!({"store_id": "s", "slot": 1, "to": "5511987654321", "templates": {}}))
                .is_err()
        );
    }

    #[test]
    fn parameters_follow_the_documented_order() {
        let quota = Envelope::new(
            EventType::QuotaThresholdCrossed,
            "acc_1",
            EventType::QuotaThresholdCrossed.example_data(),
            Utc::now(),
        );
        assert_eq!(parameters(&quota), ["80", "42,9", "53,7"]);
        let off = Envelope::new(
            EventType::WebhookEndpointDisabled,
            "acc_1",
            EventType::WebhookEndpointDisabled.example_data(),
            Utc::now(),
        );
        assert_eq!(
            parameters(&off),
            ["https://example.com/webhooks/nuvem", "failing"]
        );
        assert_eq!(notice_id("evt_1"), notice_id("evt_1"));
        assert_ne!(notice_id("evt_1"), notice_id("evt_2"));
    }

    #[test]
    fn only_chosen_notice_types_are_sent() {
        let settings = request(json!({
            "store_id": "st_1", "slot": 1, "to": "5511987654321",
            "templates": {"quota.threshold_crossed": {"name": "alerta_cota", "language": "pt_BR"}}
        }))
        .unwrap();
        let event = |t: EventType| Envelope::new(t, "acc_1", t.example_data(), Utc::now());
        assert!(
            settings
                .template_for(&event(EventType::QuotaThresholdCrossed))
                .is_some()
        );
        assert!(
            settings
                .template_for(&event(EventType::WebhookEndpointDisabled))
                .is_none()
        );
        assert!(
            settings
                .template_for(&event(EventType::KeyCreated))
                .is_none()
        );
    }
}
