//! One signed attempt to deliver an event to an endpoint, as both the
//! delivery worker and the test route make it.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::ids;
use nuvem_domain::webhook::delivery::redact_headers;
use nuvem_domain::webhook::retry::{Verdict, parse_retry_after, verdict};
use nuvem_domain::webhook::signature::signature_header;

use super::secrets::OpenSecrets;
use super::sender::{Outgoing, Sender};
use crate::store::{AttemptOutcome, AttemptRecord, EndpointRecord};

/// An attempt made: its log record, and what the outcome rules say.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub record: AttemptRecord,
    pub verdict: Verdict,
    /// The receiver's `Retry-After`, parsed and capped.
    pub retry_after: Option<Duration>,
}

/// Signs and sends `event` to `endpoint` now. `webhook-id` is the event id,
/// so every retry of one event carries the same id and receivers can drop
/// duplicates; the timestamp and signatures are fresh on every attempt.
pub async fn attempt(
    sender: &Sender,
    endpoint: &EndpointRecord,
    secrets: &OpenSecrets,
    event: &Envelope,
    delivery_id: &str,
    attempt: u32,
    now: DateTime<Utc>,
) -> Attempted {
    let settings = &endpoint.settings;
    let body = if settings.method.carries_body() {
        // An envelope always serializes (strings, numbers and a JSON value).
        serde_json::to_vec(event).unwrap_or_default()
    } else {
        Vec::new()
    };
    let timestamp = now.timestamp();
    let signature = signature_header(&secrets.signing(), &event.id, timestamp, &body);
    let mut headers: Vec<(String, String)> = settings
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    headers.push(("webhook-id".into(), event.id.clone()));
    headers.push(("webhook-timestamp".into(), timestamp.to_string()));
    headers.push(("webhook-signature".into(), signature));
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let sent = sender
        .send(Outgoing {
            method: reqwest::Method::from_bytes(settings.method.as_str().as_bytes())
                .unwrap_or(reqwest::Method::POST),
            url: settings.url.clone(),
            headers: headers.clone(),
            body,
            timeout: Duration::from_secs(u64::from(settings.timeout_seconds)),
        })
        .await;
    let verdict = verdict(&sent.response);
    let custom: BTreeSet<String> = settings.headers.keys().cloned().collect();
    let record = AttemptRecord {
        id: ids::new_id(ids::ATTEMPT),
        account_id: endpoint.account_id.clone(),
        webhook_id: endpoint.id.clone(),
        delivery_id: delivery_id.to_owned(),
        event_id: event.id.clone(),
        event_type: event.event_type.to_string(),
        attempt,
        outcome: if verdict == Verdict::Succeeded {
            AttemptOutcome::Succeeded
        } else {
            AttemptOutcome::Failed
        },
        attempted_at: now,
        response_status: match sent.response {
            nuvem_domain::webhook::retry::Response::Status(code) => Some(code),
            _ => None,
        },
        duration_ms: u64::try_from(sent.duration.as_millis()).unwrap_or(u64::MAX),
        request_headers: redact_headers(&headers, &custom),
        response_excerpt: sent.excerpt,
        error: sent.error,
        next_attempt_at: None,
    };
    Attempted {
        record,
        verdict,
        retry_after: sent
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, now)),
    }
}
