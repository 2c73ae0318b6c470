//! The domain event envelope shared by every stage (outbox, queue, fan-out).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids;
use crate::validation::UnknownVariant;

/// The closed catalogue of events. Adding one is a deliberate change: an
/// unknown type fails to deserialize rather than being silently passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "account.signed_up")]
    AccountSignedUp,
    #[serde(rename = "account.approved")]
    AccountApproved,
    /// A new activation link for an approved account that has not activated
    /// yet (the first one expired or was lost).
    #[serde(rename = "account.activation_reissued")]
    AccountActivationReissued,
    #[serde(rename = "account.rejected")]
    AccountRejected,
    #[serde(rename = "account.updated")]
    AccountUpdated,
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    /// The account's storage crossed 80 %, 95 % or 100 % of its quota going
    /// up (see [`crate::threshold::crossing`]).
    #[serde(rename = "quota.threshold_crossed")]
    QuotaThresholdCrossed,
    /// A test delivery a tenant asked for; sent only to the endpoint being
    /// tested, never fanned out to the account's other endpoints.
    #[serde(rename = "webhook.test")]
    WebhookTest,
    /// A webhook endpoint was disabled automatically (it answered 410 Gone or
    /// kept failing for [`crate::webhook::retry::DISABLE_AFTER_FAILING`]); its
    /// owner is also told by email.
    #[serde(rename = "webhook.endpoint_disabled")]
    WebhookEndpointDisabled,
    /// A customer wrote to one of the account's WhatsApp stores (once per
    /// message, however often Meta re-sends it).
    #[serde(rename = "whatsapp.message.received")]
    WhatsAppMessageReceived,
    /// Meta reported that a message the account sent could not be
    /// delivered (once per message, at its first failure report).
    #[serde(rename = "whatsapp.message.failed")]
    WhatsAppMessageFailed,
    /// A WhatsApp number's status changed (a check, or a send that Meta
    /// refused for the number: an expired token, a blocked number).
    #[serde(rename = "whatsapp.number.status_changed")]
    WhatsAppNumberStatusChanged,
    /// The bot handed a conversation to a person (limit reached, bot
    /// switched off, model failing); the customer got the fallback text.
    #[serde(rename = "whatsapp.conversation.handoff")]
    WhatsAppConversationHandoff,
    /// An RPA invoice process moved on: its invoice arrived, was approved,
    /// or was filed with the tax system.
    #[serde(rename = "rpa.process.status_changed")]
    RpaProcessStatusChanged,
    /// An RPA schedule failed too many runs in a row and was paused.
    #[serde(rename = "rpa.schedule.paused")]
    RpaSchedulePaused,
    /// A `send_report` schedule ran: the month's report, also emailed.
    #[serde(rename = "rpa.report.generated")]
    RpaReportGenerated,
    /// An `export_data` schedule ran: the account's RPA data as CSV files,
    /// with links that expire, also emailed.
    #[serde(rename = "rpa.export.completed")]
    RpaExportCompleted,
    /// A storage key (S3 credentials for a backup client) was created.
    #[serde(rename = "storage_key.created")]
    StorageKeyCreated,
    /// A storage key was revoked: its IAM user and access keys are deleted.
    #[serde(rename = "storage_key.revoked")]
    StorageKeyRevoked,
    /// A hard-quota account reached 100 %: its storage keys may read and
    /// delete but no longer write.
    #[serde(rename = "quota.writes_blocked")]
    QuotaWritesBlocked,
    /// A hard-quota account is back under its quota (objects deleted, the
    /// quota raised, or the hard quota turned off): its keys write again.
    #[serde(rename = "quota.writes_restored")]
    QuotaWritesRestored,
}

impl EventType {
    pub const ALL: [EventType; 22] = [
        EventType::AccountSignedUp,
        EventType::AccountApproved,
        EventType::AccountActivationReissued,
        EventType::AccountRejected,
        EventType::AccountUpdated,
        EventType::KeyCreated,
        EventType::KeyRevoked,
        EventType::QuotaThresholdCrossed,
        EventType::WebhookTest,
        EventType::WebhookEndpointDisabled,
        EventType::WhatsAppMessageReceived,
        EventType::WhatsAppMessageFailed,
        EventType::WhatsAppNumberStatusChanged,
        EventType::WhatsAppConversationHandoff,
        EventType::RpaProcessStatusChanged,
        EventType::RpaSchedulePaused,
        EventType::RpaReportGenerated,
        EventType::RpaExportCompleted,
        EventType::StorageKeyCreated,
        EventType::StorageKeyRevoked,
        EventType::QuotaWritesBlocked,
        EventType::QuotaWritesRestored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AccountSignedUp => "account.signed_up",
            EventType::AccountApproved => "account.approved",
            EventType::AccountActivationReissued => "account.activation_reissued",
            EventType::AccountRejected => "account.rejected",
            EventType::AccountUpdated => "account.updated",
            EventType::KeyCreated => "key.created",
            EventType::KeyRevoked => "key.revoked",
            EventType::QuotaThresholdCrossed => "quota.threshold_crossed",
            EventType::WebhookTest => "webhook.test",
            EventType::WebhookEndpointDisabled => "webhook.endpoint_disabled",
            EventType::WhatsAppMessageReceived => "whatsapp.message.received",
            EventType::WhatsAppMessageFailed => "whatsapp.message.failed",
            EventType::WhatsAppNumberStatusChanged => "whatsapp.number.status_changed",
            EventType::WhatsAppConversationHandoff => "whatsapp.conversation.handoff",
            EventType::RpaProcessStatusChanged => "rpa.process.status_changed",
            EventType::RpaSchedulePaused => "rpa.schedule.paused",
            EventType::RpaReportGenerated => "rpa.report.generated",
            EventType::RpaExportCompleted => "rpa.export.completed",
            EventType::StorageKeyCreated => "storage_key.created",
            EventType::StorageKeyRevoked => "storage_key.revoked",
            EventType::QuotaWritesBlocked => "quota.writes_blocked",
            EventType::QuotaWritesRestored => "quota.writes_restored",
        }
    }

    /// Whether a webhook endpoint may list this type in its filter.
    /// `webhook.test` is sent on demand to one endpoint, so filtering on it
    /// means nothing.
    pub fn is_subscribable(self) -> bool {
        self != EventType::WebhookTest
    }

    /// One English line for the event catalogue.
    pub fn description(self) -> &'static str {
        match self {
            EventType::AccountSignedUp => {
                "An organization signed up; the account waits for approval."
            }
            EventType::AccountApproved => {
                "The account was approved with a storage quota and Imperius licences; an activation link was emailed."
            }
            EventType::AccountActivationReissued => {
                "A new activation link was emailed to an approved account that has not activated yet."
            }
            EventType::AccountRejected => "The signup was rejected, with the reason given.",
            EventType::AccountUpdated => {
                "The account's storage quota or Imperius licences were changed."
            }
            EventType::KeyCreated => "An access key was created.",
            EventType::KeyRevoked => "An access key was revoked.",
            EventType::QuotaThresholdCrossed => {
                "The account's storage use rose past 80 %, 95 % or 100 % of its quota."
            }
            EventType::WebhookTest => "A test delivery, sent on request to one webhook endpoint.",
            EventType::WebhookEndpointDisabled => {
                "A webhook endpoint was disabled automatically: it answered 410 Gone or kept failing for 5 days."
            }
            EventType::WhatsAppMessageReceived => {
                "A customer sent a message to one of the account's WhatsApp stores."
            }
            EventType::WhatsAppMessageFailed => {
                "WhatsApp could not deliver a message the account sent; the error says why."
            }
            EventType::WhatsAppNumberStatusChanged => {
                "A WhatsApp number of the account became connected, disconnected or unusable (error)."
            }
            EventType::WhatsAppConversationHandoff => {
                "The bot handed a WhatsApp conversation to a person: its reply limit was reached, it is switched off, or the model kept failing."
            }
            EventType::RpaProcessStatusChanged => {
                "A client's monthly invoice process moved on: its invoice arrived, was approved, or was filed with the tax system."
            }
            EventType::RpaSchedulePaused => {
                "An RPA schedule failed 10 runs in a row and was paused; it runs again once made active."
            }
            EventType::RpaReportGenerated => {
                "A send_report schedule ran: a month's invoice processes counted per status and carrier, with the invoiced amounts; also emailed."
            }
            EventType::RpaExportCompleted => {
                "An export_data schedule ran: the account's carriers, clients and processes as CSV files, linked until the links expire; also emailed."
            }
            EventType::StorageKeyCreated => {
                "A storage key (S3 credentials for a backup client) was created for some or all of the account's buckets."
            }
            EventType::StorageKeyRevoked => {
                "A storage key was revoked: S3 refuses it once IAM has propagated the deletion."
            }
            EventType::QuotaWritesBlocked => {
                "The account has a hard quota and reached 100 % of it: its storage keys can read and delete, not write."
            }
            EventType::QuotaWritesRestored => {
                "The account is back under its hard quota (or the hard quota was turned off): its storage keys write again."
            }
        }
    }

    /// A realistic `data` object of this type, with the fields the code
    /// that emits it puts in (keep in step with those call sites).
    pub fn example_data(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            EventType::AccountSignedUp => json!({
                "organization_name": "Padaria Pão Quente Ltda",
                "document_kind": "cnpj",
                "imperius_licenses": 10
            }),
            EventType::AccountApproved => json!({
                "quota_gb": 50.0,
                "imperius_licenses": 10,
                "activation_expires_at": "2026-07-08T10:00:00Z"
            }),
            EventType::AccountActivationReissued => json!({
                "activation_expires_at": "2026-07-08T10:00:00Z"
            }),
            EventType::AccountRejected => json!({
                "reason": "The CNPJ does not match the organization name."
            }),
            EventType::AccountUpdated => json!({
                "quota_gb": 100.0,
                "imperius_licenses": 12,
                "previous": { "quota_gb": 50.0, "imperius_licenses": 10 }
            }),
            EventType::KeyCreated => json!({
                "key_id": "key_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "name": "backup server",
                "role": "operator"
            }),
            EventType::KeyRevoked => json!({
                "key_id": "key_01j9z3k8m2n4p6q8r0s2t4v6w8"
            }),
            EventType::QuotaThresholdCrossed => json!({
                "level_percent": 80,
                "used_bytes": 42_949_672_960_u64,
                "quota_bytes": 53_687_091_200_u64,
                "biggest_buckets": [
                    { "name": "backups", "used_bytes": 32_212_254_720_u64 },
                    { "name": "invoices", "used_bytes": 10_737_418_240_u64 }
                ]
            }),
            EventType::WebhookTest => json!({
                "message": "This is a test delivery from nuvem.",
                "webhook_id": "wh_01j9z3k8m2n4p6q8r0s2t4v6w8"
            }),
            EventType::WebhookEndpointDisabled => json!({
                "webhook_id": "wh_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "url": "https://example.com/webhooks/nuvem",
                "reason": "failing",
                "detail": "every delivery failed for 5 days",
                "failing_since": "2026-07-01T10:00:00Z"
            }),
            EventType::WhatsAppMessageReceived => json!({
                "store_id": "st_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "phone_number_id": "106540352242922",
                "conversation_id": "cv_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "wamid": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA=",
                "from": { "wa_id": "5511987654321", "user_id": "BR.13491208655302741918", "name": "Ana" },
                "sent_at": "2026-07-01T10:00:00Z",
                "message": { "type": "text", "text": { "body": "Vocês entregam hoje?" } }
            }),
            EventType::WhatsAppMessageFailed => json!({
                "store_id": "st_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "phone_number_id": "106540352242922",
                "conversation_id": "cv_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "wamid": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjRBQjA=",
                "recipient": { "wa_id": "5511987654321" },
                "failed_at": "2026-07-01T10:00:05Z",
                "error": {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
                }
            }),
            EventType::WhatsAppNumberStatusChanged => json!({
                "store_id": "st_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "slot": 1,
                "phone_number_id": "106540352242922",
                "status": "error",
                "previous_status": "connected",
                "error": { "code": 190, "message": "Error validating access token: Session has expired." }
            }),
            EventType::WhatsAppConversationHandoff => json!({
                "store_id": "st_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "conversation_id": "cv_01j9z3k8m2n4p6q8r0s2t4v6w8",
                "reason": "limit_reached",
                "wamid": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA=",
                "customer": { "wa_id": "5511987654321", "user_id": null, "name": "Ana" }
            }),
            EventType::RpaProcessStatusChanged => json!({
                "process_id": "prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611",
                "client_id": "cli_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "legal_name": "Padaria Pão Quente Ltda",
                "carrier": "VIVO",
                "month": "2026-11",
                "from": "awaiting_approval",
                "to": "awaiting_tax_filing",
                "by": { "key_id": "key_01j9z3k8m2n4p6q8r0s2t4v6w8", "key_name": "aprovação financeiro" }
            }),
            EventType::RpaSchedulePaused => json!({
                "schedule_id": "sch_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "name": "Processos do mês",
                "type": "create_monthly_processes",
                "consecutive_failures": 10,
                "last_error": "the table did not answer in time"
            }),
            EventType::RpaReportGenerated => json!({
                "schedule_id": "sch_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "month": "2026-11",
                "total": {
                    "processes": 3,
                    "amount_cents": 19995,
                    "by_status": { "awaiting_download": 1, "awaiting_approval": 0, "awaiting_tax_filing": 0, "filed": 2 }
                },
                "by_carrier": {
                    "OI": {
                        "processes": 1,
                        "amount_cents": 1005,
                        "by_status": { "awaiting_download": 0, "awaiting_approval": 0, "awaiting_tax_filing": 0, "filed": 1 }
                    },
                    "VIVO": {
                        "processes": 2,
                        "amount_cents": 18990,
                        "by_status": { "awaiting_download": 1, "awaiting_approval": 0, "awaiting_tax_filing": 0, "filed": 1 }
                    }
                }
            }),
            EventType::RpaExportCompleted => json!({
                "schedule_id": "sch_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "export_id": "exp_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "expires_at": "2026-11-30T06:00:00Z",
                "files": [
                    { "name": "carriers.csv", "rows": 2, "bytes": 180, "truncated": false, "url": "https://nuvem-invoices.s3.sa-east-1.amazonaws.com/exports/acc_01jdq5m3n4p5q6r7s8t9v0w1x2/exp_01jdq5m3n4p5q6r7s8t9v0w1x2/carriers.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=43200" },
                    { "name": "clients.csv", "rows": 120, "bytes": 18004, "truncated": false, "url": "https://nuvem-invoices.s3.sa-east-1.amazonaws.com/exports/acc_01jdq5m3n4p5q6r7s8t9v0w1x2/exp_01jdq5m3n4p5q6r7s8t9v0w1x2/clients.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=43200" },
                    { "name": "processes.csv", "rows": 1440, "bytes": 301224, "truncated": false, "url": "https://nuvem-invoices.s3.sa-east-1.amazonaws.com/exports/acc_01jdq5m3n4p5q6r7s8t9v0w1x2/exp_01jdq5m3n4p5q6r7s8t9v0w1x2/processes.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=43200" }
                ]
            }),
            EventType::StorageKeyCreated => json!({
                "storage_key_id": "sk_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "name": "Conector Imperius Serviço",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "access": "read_write",
                "all_buckets": false,
                "buckets": ["backups"],
                "by": { "key_id": "key_01j9z3k8m2n4p6q8r0s2t4v6w8", "key_name": "first owner key" }
            }),
            EventType::StorageKeyRevoked => json!({
                "storage_key_id": "sk_01jdq5m3n4p5q6r7s8t9v0w1x2",
                "name": "Conector Imperius Serviço",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "by": { "key_id": "key_01j9z3k8m2n4p6q8r0s2t4v6w8", "key_name": "first owner key" }
            }),
            EventType::QuotaWritesBlocked | EventType::QuotaWritesRestored => json!({
                "used_bytes": 10_737_418_240_u64,
                "quota_bytes": 10_737_418_240_u64
            }),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVariant::new("event type", s))
    }
}

/// Longest custom event type name, `custom.` included.
pub const CUSTOM_NAME_MAX_CHARS: usize = 100;
/// Longest segment between dots of a custom event type name.
pub const CUSTOM_SEGMENT_MAX_CHARS: usize = 64;
const CUSTOM_PREFIX: &str = "custom.";

/// A tenant-defined event type, `custom.<name>`: after the prefix, one or
/// more dot-separated segments of `[a-z0-9_-]`. The prefix keeps tenant
/// names from ever colliding with the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomEventType(String);

impl CustomEventType {
    pub fn parse(value: &str) -> Result<CustomEventType, EventNameError> {
        let invalid = |reason| EventNameError::InvalidCustom {
            value: value.to_owned(),
            reason,
        };
        let Some(rest) = value.strip_prefix(CUSTOM_PREFIX) else {
            return Err(invalid("must start with \"custom.\""));
        };
        if value.len() > CUSTOM_NAME_MAX_CHARS {
            return Err(invalid("must be at most 100 characters"));
        }
        for segment in rest.split('.') {
            if segment.is_empty() || segment.len() > CUSTOM_SEGMENT_MAX_CHARS {
                return Err(invalid(
                    "each dot-separated part must have 1 to 64 characters",
                ));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    "may only contain lowercase letters, digits, '_', '-' and '.'",
                ));
            }
        }
        Ok(CustomEventType(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is neither a catalogue event type nor a valid custom one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventNameError {
    #[error("unknown event type {0:?} (custom types start with \"custom.\")")]
    Unknown(String),
    #[error("invalid custom event type {value:?}: {reason}")]
    InvalidCustom { value: String, reason: &'static str },
}

/// The type of an event: one of the catalogue or a tenant's custom type.
/// (De)serializes as the plain name; anything else fails to deserialize.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventName {
    Known(EventType),
    Custom(CustomEventType),
}

impl EventName {
    pub fn as_str(&self) -> &str {
        match self {
            EventName::Known(t) => t.as_str(),
            EventName::Custom(c) => c.as_str(),
        }
    }

    /// The catalogue type, for `match`ing; `None` for custom types.
    pub fn known(&self) -> Option<EventType> {
        match self {
            EventName::Known(t) => Some(*t),
            EventName::Custom(_) => None,
        }
    }
}

impl From<EventType> for EventName {
    fn from(t: EventType) -> Self {
        EventName::Known(t)
    }
}

impl From<CustomEventType> for EventName {
    fn from(c: CustomEventType) -> Self {
        EventName::Custom(c)
    }
}

impl PartialEq<EventType> for EventName {
    fn eq(&self, other: &EventType) -> bool {
        *self == EventName::Known(*other)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventName {
    type Err = EventNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(t) = s.parse::<EventType>() {
            return Ok(EventName::Known(t));
        }
        if s.starts_with(CUSTOM_PREFIX) {
            return CustomEventType::parse(s).map(EventName::Custom);
        }
        Err(EventNameError::Unknown(s.to_owned()))
    }
}

impl Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `evt_…`; consumers use it to drop duplicates (delivery is at least once).
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventName,
    pub account_id: String,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl Envelope {
    pub fn new(
        event_type: impl Into<EventName>,
        account_id: impl Into<String>,
        data: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Envelope {
        Envelope {
            id: ids::new_id(ids::EVENT),
            event_type: event_type.into(),
            account_id: account_id.into(),
            occurred_at: now,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn type_names() {
        for event_type in EventType::ALL {
            let json = serde_json::to_value(event_type).unwrap();
            assert_eq!(json, json!(event_type.as_str()));
            assert_eq!(
                serde_json::from_value::<EventType>(json).unwrap(),
                event_type
            );
            assert_eq!(event_type.as_str().parse::<EventType>(), Ok(event_type));
        }
        assert!(serde_json::from_value::<EventType>(json!("account.deleted")).is_err());
        assert!(serde_json::from_value::<EventType>(json!("AccountApproved")).is_err());
        assert!("account.deleted".parse::<EventType>().is_err());
        assert_eq!(
            "quota.threshold_crossed".parse::<EventType>(),
            Ok(EventType::QuotaThresholdCrossed)
        );
    }

    #[test]
    fn envelope_round_trip() {
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap();
        let envelope = Envelope::new(
            EventType::AccountApproved,
            "acc_01j9z3k8m2n4p6q8r0s2t4v6w8",
            json!({"quota_gb": 50.0}),
            now,
        );
        assert!(ids::has_prefix(&envelope.id, ids::EVENT));
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(envelope.event_type, EventType::AccountApproved);
        assert_eq!(json["type"], "account.approved");
        assert_eq!(json["account_id"], "acc_01j9z3k8m2n4p6q8r0s2t4v6w8");
        assert_eq!(json["occurred_at"], "2026-07-01T10:00:00Z");
        assert_eq!(json["data"]["quota_gb"], 50.0);
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), envelope);
    }

    #[test]
    fn unknown_type_fails_to_deserialize() {
        let raw = json!({
            "id": "evt_01j9z3k8m2n4p6q8r0s2t4v6w8",
            "type": "account.exploded",
            "account_id": "acc_01j9z3k8m2n4p6q8r0s2t4v6w8",
            "occurred_at": "2026-07-01T10:00:00Z",
            "data": {}
        });
        assert!(serde_json::from_value::<Envelope>(raw).is_err());
    }

    #[test]
    fn custom_envelope_round_trip() {
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap();
        let custom = CustomEventType::parse("custom.invoice.paid").unwrap();
        let envelope = Envelope::new(
            custom.clone(),
            "acc_01j9z3k8m2n4p6q8r0s2t4v6w8",
            json!({"invoice": 42}),
            now,
        );
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["type"], "custom.invoice.paid");
        let back = serde_json::from_value::<Envelope>(json).unwrap();
        assert_eq!(back.event_type, EventName::Custom(custom));
        assert_eq!(back, envelope);
    }

    #[test]
    fn event_names_parse_known_then_custom() {
        for event_type in EventType::ALL {
            let name: EventName = event_type.as_str().parse().unwrap();
            assert_eq!(name, EventName::Known(event_type));
            assert_eq!(name, event_type);
            assert_eq!(name.known(), Some(event_type));
            assert_eq!(name.to_string(), event_type.as_str());
            assert_eq!(
                serde_json::to_value(&name).unwrap(),
                json!(event_type.as_str())
            );
        }
        let custom: EventName = "custom.order_shipped-v2".parse().unwrap();
        assert_eq!(custom.known(), None);
        assert_eq!(custom.as_str(), "custom.order_shipped-v2");
        assert_eq!(
            "account.exploded".parse::<EventName>(),
            Err(EventNameError::Unknown("account.exploded".into()))
        );
        assert!(matches!(
            "custom.".parse::<EventName>(),
            Err(EventNameError::InvalidCustom { .. })
        ));
        for bad in [
            json!("account.exploded"),
            json!("custom.Bad"),
            json!(""),
            json!(7),
        ] {
            assert!(
                serde_json::from_value::<EventName>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            serde_json::from_value::<EventName>(json!("custom.a"))
                .unwrap()
                .as_str(),
            "custom.a"
        );
    }

    #[test]
    fn custom_type_rules() {
        let max_segment = "a".repeat(CUSTOM_SEGMENT_MAX_CHARS);
        let longest = format!("custom.{max_segment}.{}", "b".repeat(100 - 8 - 64));
        assert_eq!(longest.len(), CUSTOM_NAME_MAX_CHARS);
        for good in [
            "custom.a",
            "custom.order.paid",
            "custom.0_9-z",
            &format!("custom.{max_segment}"),
            &longest,
        ] {
            assert_eq!(CustomEventType::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "custom",
            "custom.",
            "custom..a",
            "custom.a.",
            "custom.A",
            "custom.a b",
            "custom.é",
            "custom.a/b",
            "Custom.a",
            "x.custom.a",
            "account.approved",
            &format!("custom.{max_segment}a"),
            &format!("{longest}c"),
        ] {
            assert!(CustomEventType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_type_is_described_with_an_object_example() {
        for event_type in EventType::ALL {
            assert!(!event_type.description().is_empty(), "{event_type}");
            assert!(
                event_type.example_data().is_object(),
                "{event_type} example is not an object"
            );
        }
        assert!(!EventType::WebhookTest.is_subscribable());
        assert!(EventType::WebhookEndpointDisabled.is_subscribable());
    }

    proptest::proptest! {
        #[test]
        fn valid_custom_names_round_trip(name in "custom(\\.[a-z0-9_-]{1,20}){1,4}") {
            let parsed: EventName = name.parse().unwrap();
            proptest::prop_assert_eq!(parsed.as_str(), name.as_str());
            let json = serde_json::to_string(&parsed).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<EventName>(&json).unwrap(), parsed);
        }

        #[test]
        fn parsing_never_panics(name in "\\PC{0,120}") {
            let _ = name.parse::<EventName>();
        }
    }
}
