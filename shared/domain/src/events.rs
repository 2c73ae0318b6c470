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
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::AccountSignedUp,
        EventType::AccountApproved,
        EventType::AccountActivationReissued,
        EventType::AccountRejected,
        EventType::AccountUpdated,
        EventType::KeyCreated,
        EventType::KeyRevoked,
        EventType::QuotaThresholdCrossed,
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `evt_…`; consumers use it to drop duplicates (delivery is at least once).
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub account_id: String,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl Envelope {
    pub fn new(
        event_type: EventType,
        account_id: impl Into<String>,
        data: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Envelope {
        Envelope {
            id: ids::new_id(ids::EVENT),
            event_type,
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
}
