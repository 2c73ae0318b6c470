//! On a schedule, sends the events that were committed but never reached the
//! events queue (the send after the commit failed, or the function died
//! between the two). Events younger than a grace period are left to the
//! request that wrote them. Consumers drop duplicates, so sending an event a
//! second time is harmless; not sending it would lose it.
//!
//! The activation token of an `account.approved` event is never stored, so a
//! relayed approval carries none: `fanout` then issues the account a new one.

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::Core;
use serde::Serialize;

pub struct Deps {
    pub core: Core,
}

/// How old an unsent event must be before the relay takes it over.
pub const GRACE: Duration = Duration::seconds(60);
/// Events per outbox query; a run keeps going until the outbox is drained.
const PAGE: i32 = 100;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub sent: usize,
    pub failed: usize,
}

pub async fn handle(deps: &Deps, now: DateTime<Utc>) -> Report {
    let mut report = Report::default();
    loop {
        let events = match deps.core.store.unsent_events(now - GRACE, PAGE).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return report;
            }
        };
        let before = report.sent;
        for event in &events {
            match deps.core.events.publish(event).await {
                Ok(()) => {
                    report.sent += 1;
                    if let Err(e) = deps.core.store.mark_published(event).await {
                        tracing::warn!(event_id = %event.id, error = %e, "sent but still in the outbox");
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::error!(event_id = %event.id, error = %e, "relay could not send");
                }
            }
        }
        // A short page is the end; a page with no progress would loop forever.
        if events.len() < PAGE as usize || report.sent == before {
            tracing::info!(sent = report.sent, failed = report.failed, "outbox relayed");
            return report;
        }
    }
}
