//! Delivery statuses of the messages we send, and the 24-hour
//! customer-service window.
//!
//! Meta sends `sent`, `delivered`, `read`, `played` (voice notes) and
//! `failed` statuses in no guaranteed order, sometimes more than once, and
//! skips `delivered` when a message is read straight away. A `delivered`
//! may even follow a `failed` when the user has several devices. So the
//! stored state is a merge that is commutative, associative and idempotent
//! (each field is the maximum of a total order): whatever order and however
//! often the statuses of one message arrive, the result is the same.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::{non_empty_str, unix_seconds};
use super::webhook::{ErrorDetail, parse_errors};

/// How far a message got. The declaration order is the rank used by the
/// merge: a later proof of delivery outranks a failure report, and any
/// status we do not know ranks lowest (compared by name among themselves).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DeliveryStatus {
    Unknown(String),
    Sent,
    Failed,
    Delivered,
    Read,
    Played,
}

impl From<String> for DeliveryStatus {
    fn from(value: String) -> Self {
        DeliveryStatus::parse(&value)
    }
}

impl From<DeliveryStatus> for String {
    fn from(status: DeliveryStatus) -> Self {
        status.as_str().to_owned()
    }
}

impl DeliveryStatus {
    pub fn parse(value: &str) -> DeliveryStatus {
        match value {
            "sent" => DeliveryStatus::Sent,
            "failed" => DeliveryStatus::Failed,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "played" => DeliveryStatus::Played,
            other => DeliveryStatus::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DeliveryStatus::Unknown(other) => other,
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
        }
    }
}

/// One element of a change's `statuses` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The `wamid` of the message we sent.
    pub id: String,
    pub status: DeliveryStatus,
    /// Unix seconds.
    pub timestamp: i64,
    /// The recipient's WhatsApp id; absent when we sent to a BSUID and the
    /// number is not shared.
    pub recipient_id: Option<String>,
    /// The recipient's BSUID.
    pub recipient_user_id: Option<String>,
    pub recipient_parent_user_id: Option<String>,
    pub conversation: Option<Conversation>,
    pub pricing: Option<Pricing>,
    /// Why the message failed (`failed` statuses).
    pub errors: Vec<ErrorDetail>,
    /// The opaque data we attached when sending, echoed back.
    pub biz_opaque_callback_data: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    pub id: Option<String>,
    /// Unix seconds.
    pub expiration_timestamp: Option<i64>,
    /// `origin.type`, e.g. `service`, `marketing`.
    pub origin_type: Option<String>,
}

/// `pricing`. Ordered (field by field) only so that a choice among several
/// is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pricing {
    #[serde(default)]
    pub billable: Option<bool>,
    /// e.g. `PMP` (per message) or the older `CBP`.
    #[serde(default)]
    pub pricing_model: Option<String>,
    /// e.g. `marketing`, `utility`, `authentication`, `service`.
    #[serde(default)]
    pub category: Option<String>,
    /// `type`, e.g. `regular`, `free_customer_service`.
    #[serde(default, rename = "type")]
    pub pricing_type: Option<String>,
}

impl StatusUpdate {
    /// Reads one status; `None` without a string `id`, a string `status`
    /// and a Unix `timestamp`. Other fields are read leniently.
    pub fn from_meta(raw: &Value) -> Option<StatusUpdate> {
        let conversation =
            raw.get("conversation")
                .filter(|c| c.is_object())
                .map(|c| Conversation {
                    id: non_empty_str(c, "id"),
                    expiration_timestamp: c.get("expiration_timestamp").and_then(unix_seconds),
                    origin_type: c.get("origin").and_then(|o| non_empty_str(o, "type")),
                });
        Some(StatusUpdate {
            id: non_empty_str(raw, "id")?,
            status: DeliveryStatus::parse(&non_empty_str(raw, "status")?),
            timestamp: unix_seconds(raw.get("timestamp")?)?,
            recipient_id: non_empty_str(raw, "recipient_id"),
            recipient_user_id: non_empty_str(raw, "recipient_user_id"),
            recipient_parent_user_id: non_empty_str(raw, "recipient_parent_user_id"),
            conversation,
            pricing: raw
                .get("pricing")
                .and_then(|p| Pricing::deserialize(p).ok()),
            errors: parse_errors(raw.get("errors")),
            biz_opaque_callback_data: non_empty_str(raw, "biz_opaque_callback_data"),
        })
    }
}

/// A failure report: when, and the error Meta gave (the greatest by
/// [`ErrorDetail`]'s order when it gave several).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Failure {
    pub at: i64,
    pub error: Option<ErrorDetail>,
}

/// Pricing and the time of the status that carried it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PricingSeen {
    pub at: i64,
    pub pricing: Pricing,
}

/// What we know about the delivery of one sent message.
///
/// Every field is the maximum of a total order over what was seen:
/// `(status, status_at)`, then `failure` by `(at, error)`, then `pricing`
/// by `(at, pricing)`. Hence [`DeliveryState::merge`] is a join.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryState {
    /// The furthest status seen.
    pub status: DeliveryStatus,
    /// The latest time that status was reported.
    pub status_at: i64,
    /// The latest failure report, kept even when a later status proves the
    /// message arrived after all.
    pub failure: Option<Failure>,
    /// The latest pricing seen.
    pub pricing: Option<PricingSeen>,
}

impl DeliveryState {
    pub fn from_update(update: &StatusUpdate) -> DeliveryState {
        let failure = (update.status == DeliveryStatus::Failed).then(|| Failure {
            at: update.timestamp,
            error: update.errors.iter().max().cloned(),
        });
        DeliveryState {
            status: update.status.clone(),
            status_at: update.timestamp,
            failure,
            pricing: update.pricing.clone().map(|pricing| PricingSeen {
                at: update.timestamp,
                pricing,
            }),
        }
    }

    /// The join of two states of the same message.
    pub fn merge(&self, other: &DeliveryState) -> DeliveryState {
        let (status, status_at) = std::cmp::max(
            (&self.status, self.status_at),
            (&other.status, other.status_at),
        );
        DeliveryState {
            status: status.clone(),
            status_at,
            failure: std::cmp::max(&self.failure, &other.failure).clone(),
            pricing: std::cmp::max(&self.pricing, &other.pricing).clone(),
        }
    }

    /// [`DeliveryState::merge`] with one more status.
    pub fn apply(&self, update: &StatusUpdate) -> DeliveryState {
        self.merge(&DeliveryState::from_update(update))
    }

    /// Whether the message has failed for good as far as we know: a
    /// failure was reported and nothing proved delivery since.
    pub fn is_failed(&self) -> bool {
        self.status == DeliveryStatus::Failed
    }
}

/// The merged state of a sequence of statuses of one message; `None` for
/// an empty sequence.
pub fn fold_statuses<'a>(
    updates: impl IntoIterator<Item = &'a StatusUpdate>,
) -> Option<DeliveryState> {
    updates
        .into_iter()
        .map(DeliveryState::from_update)
        .reduce(|a, b| a.merge(&b))
}

/// How long after a user's last message we may answer with free-form
/// messages; after it only templates may be sent.
pub const CUSTOMER_SERVICE_WINDOW: Duration = Duration::hours(24);

/// Whether the customer-service window opened by the user's last message
/// is still open at `now`: less than 24 hours have passed (a message time
/// slightly in the future, from clock skew, counts as open).
pub fn window_open(last_customer_message_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now.signed_duration_since(last_customer_message_at) < CUSTOMER_SERVICE_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn update(status: &str, timestamp: i64) -> StatusUpdate {
        StatusUpdate {
            id: "wamid.1".into(),
            status: DeliveryStatus::parse(status),
            timestamp,
            recipient_id: Some("16505551234".into()),
            recipient_user_id: None,
            recipient_parent_user_id: None,
            conversation: None,
            pricing: None,
            errors: Vec::new(),
            biz_opaque_callback_data: None,
        }
    }

    fn error(code: i64, title: &str) -> ErrorDetail {
        ErrorDetail {
            code,
            title: Some(title.into()),
            message: None,
            details: None,
            href: None,
        }
    }

    #[test]
    fn ranks() {
        use DeliveryStatus::*;
        let order = [
            Unknown("deleted".into()),
            Sent,
            Failed,
            Delivered,
            Read,
            Played,
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        for s in ["sent", "failed", "delivered", "read", "played", "warning"] {
            assert_eq!(DeliveryStatus::parse(s).as_str(), s);
        }
    }

    #[test]
    fn a_later_delivery_outranks_a_failure_but_keeps_its_error() {
        let mut failed = update("failed", 20);
        failed.errors = vec![error(131026, "Message undeliverable")];
        let state =
            fold_statuses([&update("sent", 10), &failed, &update("delivered", 30)]).unwrap();
        assert_eq!(state.status, DeliveryStatus::Delivered);
        assert_eq!(state.status_at, 30);
        assert!(!state.is_failed());
        assert_eq!(
            state.failure,
            Some(Failure {
                at: 20,
                error: Some(error(131026, "Message undeliverable"))
            })
        );

        let only_failed = fold_statuses([&update("sent", 10), &failed]).unwrap();
        assert!(only_failed.is_failed());
    }

    #[test]
    fn read_without_delivered_and_played() {
        let state = fold_statuses([&update("read", 5), &update("sent", 3)]).unwrap();
        assert_eq!(state.status, DeliveryStatus::Read);
        let state = state
            .apply(&update("played", 9))
            .apply(&update("delivered", 4));
        assert_eq!((state.status, state.status_at), (DeliveryStatus::Played, 9));
    }

    #[test]
    fn pricing_is_kept_from_whichever_status_carries_it() {
        let mut sent = update("sent", 10);
        sent.pricing = Some(Pricing {
            billable: Some(true),
            pricing_model: Some("PMP".into()),
            category: Some("utility".into()),
            pricing_type: Some("regular".into()),
        });
        let state = fold_statuses([&update("read", 30), &sent, &update("delivered", 20)]).unwrap();
        assert_eq!(
            state.pricing.unwrap().pricing.category.as_deref(),
            Some("utility")
        );
    }

    #[test]
    fn unknown_statuses_are_kept() {
        let state = fold_statuses([&update("warning", 1)]).unwrap();
        assert_eq!(state.status, DeliveryStatus::Unknown("warning".into()));
        assert_eq!(state.apply(&update("sent", 2)).status, DeliveryStatus::Sent);
    }

    #[test]
    fn reads_a_failed_status_with_error_and_pricing() {
        let s = StatusUpdate::from_meta(&json!({
            "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
            "status": "failed",
            "timestamp": "1750263773",
            "recipient_id": "16505551234",
            "recipient_user_id": "US.13491208655302741918",
            "pricing": {"billable": false, "pricing_model": "PMP", "category": "marketing", "type": "regular"},
            "conversation": {"id": "c1", "expiration_timestamp": "1750350173", "origin": {"type": "marketing"}},
            "errors": [{
                "code": 131049,
                "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                "message": "This message was not delivered to maintain healthy ecosystem engagement.",
                "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
            }],
            "something_new": true
        }))
        .unwrap();
        assert_eq!(s.status, DeliveryStatus::Failed);
        assert_eq!(s.timestamp, 1_750_263_773);
        assert_eq!(
            s.recipient_user_id.as_deref(),
            Some("US.13491208655302741918")
        );
        assert_eq!(s.errors[0].code, 131049);
        assert!(
            s.errors[0]
                .details
                .as_deref()
                .unwrap()
                .starts_with("In order")
        );
        let pricing = s.pricing.unwrap();
        assert_eq!(pricing.billable, Some(false));
        assert_eq!(pricing.pricing_type.as_deref(), Some("regular"));
        let conversation = s.conversation.unwrap();
        assert_eq!(conversation.expiration_timestamp, Some(1_750_350_173));
        assert_eq!(conversation.origin_type.as_deref(), Some("marketing"));
    }

    #[test]
    fn the_window_lasts_24_hours() {
        let last = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        assert!(window_open(last, last));
        assert!(window_open(last, last - Duration::minutes(5)));
        assert!(window_open(
            last,
            last + Duration::hours(24) - Duration::seconds(1)
        ));
        assert!(!window_open(last, last + Duration::hours(24)));
        assert!(!window_open(last, last + Duration::days(3)));
    }

    fn any_update() -> impl Strategy<Value = StatusUpdate> {
        let status = prop_oneof![
            Just("sent"),
            Just("failed"),
            Just("delivered"),
            Just("read"),
            Just("played"),
            Just("deleted"),
            Just("warning"),
        ];
        let an_error = (
            prop_oneof![Just(131026i64), Just(131049), Just(131047)],
            "[ab]{0,1}",
        )
            .prop_map(|(code, title)| error(code, &title));
        let pricing = prop::option::of(
            (
                prop::option::of(any::<bool>()),
                prop::option::of(prop_oneof![Just("utility"), Just("marketing")]),
            )
                .prop_map(|(billable, category)| Pricing {
                    billable,
                    pricing_model: Some("PMP".into()),
                    category: category.map(str::to_string),
                    pricing_type: None,
                }),
        );
        (
            status,
            0i64..6,
            prop::collection::vec(an_error, 0..3),
            pricing,
        )
            .prop_map(|(status, timestamp, errors, pricing)| {
                let mut u = update(status, timestamp);
                u.errors = errors;
                u.pricing = pricing;
                u
            })
    }

    proptest! {
        #[test]
        fn the_merge_ignores_order_and_repetition(
            updates in prop::collection::vec(any_update(), 1..12),
            seed in any::<u64>(),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let reference = fold_statuses(&updates).unwrap();

            // a permutation (deterministic shuffle from the seed) …
            let mut shuffled = updates.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            // … with some updates delivered again
            for r in &repeats {
                let again = updates[r.index(updates.len())].clone();
                shuffled.insert(r.index(shuffled.len() + 1), again);
            }
            prop_assert_eq!(fold_statuses(&shuffled).unwrap(), reference.clone());

            // associativity and idempotence of the merge itself
            let states: Vec<_> = updates.iter().map(DeliveryState::from_update).collect();
            let right = states.iter().rev().cloned().reduce(|acc, s| s.merge(&acc)).unwrap();
            prop_assert_eq!(right, reference.clone());
            prop_assert_eq!(reference.merge(&reference), reference);
        }
    }
}
