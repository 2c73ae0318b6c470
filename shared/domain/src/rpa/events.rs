//! The RPA pipeline's domain events.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::carrier::CarrierCode;
use super::month::Month;
use super::process::ProcessStatus;
use crate::events::{Envelope, EventType};
use crate::keys::Actor;

/// The process an event is about, as its subscribers need it.
pub struct ProcessRef<'a> {
    pub process_id: &'a str,
    pub client_id: &'a str,
    pub legal_name: &'a str,
    pub carrier: &'a CarrierCode,
    pub month: Month,
}

/// `rpa.process.status_changed`: `by` is the key that moved it, or `None`
/// when nuvem did (a download or a filing that completed).
pub fn status_changed(
    account_id: &str,
    process: &ProcessRef<'_>,
    from: ProcessStatus,
    to: ProcessStatus,
    by: Option<&Actor>,
    at: DateTime<Utc>,
) -> Envelope {
    Envelope::new(
        EventType::RpaProcessStatusChanged,
        account_id,
        json!({
            "process_id": process.process_id,
            "client_id": process.client_id,
            "legal_name": process.legal_name,
            "carrier": process.carrier,
            "month": process.month,
            "from": from,
            "to": to,
            "by": by,
        }),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_has_the_catalogue_example_s_fields() {
        let carrier = CarrierCode::parse("VIVO").unwrap();
        let event = status_changed(
            "acc_1",
            &ProcessRef {
                process_id: "prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611",
                client_id: "cli_01jdq5m3n4p5q6r7s8t9v0w1x2",
                legal_name: "Padaria Pão Quente Ltda",
                carrier: &carrier,
                month: Month::parse("2026-11").unwrap(),
            },
            ProcessStatus::AwaitingApproval,
            ProcessStatus::AwaitingTaxFiling,
            Some(&Actor {
                key_id: "key_01j9z3k8m2n4p6q8r0s2t4v6w8".into(),
                key_name: "aprovação financeiro".into(),
            }),
            Utc::now(),
        );
        assert_eq!(
            event.data,
            EventType::RpaProcessStatusChanged.example_data()
        );
    }
}
