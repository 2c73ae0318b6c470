//! A process is one client's invoice for one month, from its download to
//! its filing with the tax system:
//!
//! `awaiting_download → awaiting_approval → awaiting_tax_filing → filed`
//!
//! Every other move is refused, naming the status the process is in. There
//! is at most one process per client and month: its id is derived from
//! both, so creating it twice (a schedule firing twice, a person and a
//! schedule at once) writes the same item, and the second write's
//! condition refuses it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::month::Month;
use crate::validation::UnknownVariant;

pub const PROCESS_ID_PREFIX: &str = "prc";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    AwaitingDownload,
    AwaitingApproval,
    AwaitingTaxFiling,
    Filed,
}

impl ProcessStatus {
    pub const ALL: [ProcessStatus; 4] = [
        ProcessStatus::AwaitingDownload,
        ProcessStatus::AwaitingApproval,
        ProcessStatus::AwaitingTaxFiling,
        ProcessStatus::Filed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProcessStatus::AwaitingDownload => "awaiting_download",
            ProcessStatus::AwaitingApproval => "awaiting_approval",
            ProcessStatus::AwaitingTaxFiling => "awaiting_tax_filing",
            ProcessStatus::Filed => "filed",
        }
    }
}

impl fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProcessStatus {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProcessStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownVariant::new("process status", s))
    }
}

/// What moves a process on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Move {
    /// An invoice arrived: downloaded by the RPA, or uploaded by a person.
    /// A person may replace an invoice that is not approved yet.
    ReceiveInvoice,
    /// A person approved the invoice.
    Approve,
    /// The tax system accepted the filing.
    RecordFiling,
}

impl Move {
    pub fn as_str(self) -> &'static str {
        match self {
            Move::ReceiveInvoice => "receive_invoice",
            Move::Approve => "approve",
            Move::RecordFiling => "record_filing",
        }
    }
}

/// A move the process's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the process is {current}; it cannot {}", describe(*attempted))]
pub struct NotAllowed {
    pub current: ProcessStatus,
    pub attempted: Move,
}

fn describe(m: Move) -> &'static str {
    match m {
        Move::ReceiveInvoice => "receive an invoice",
        Move::Approve => "be approved",
        Move::RecordFiling => "be recorded as filed",
    }
}

/// The status after `attempted`, from `current`.
pub fn next(current: ProcessStatus, attempted: Move) -> Result<ProcessStatus, NotAllowed> {
    use ProcessStatus::*;
    match (current, attempted) {
        (AwaitingDownload | AwaitingApproval, Move::ReceiveInvoice) => Ok(AwaitingApproval),
        (AwaitingApproval, Move::Approve) => Ok(AwaitingTaxFiling),
        (AwaitingTaxFiling, Move::RecordFiling) => Ok(Filed),
        _ => Err(NotAllowed { current, attempted }),
    }
}

/// The process of `client_id` for `month`: `prc_<the client's ULID>_<YYYYMM>`.
/// `None` when `client_id` is not a client id.
pub fn process_id(client_id: &str, month: Month) -> Option<String> {
    let ulid = client_id.strip_prefix("cli_")?;
    super::client::is_client_id(client_id).then(|| {
        format!(
            "{PROCESS_ID_PREFIX}_{ulid}_{:04}{:02}",
            month.year(),
            month.month()
        )
    })
}

/// The client and month a process id names, if it has the shape of one.
pub fn parse_process_id(id: &str) -> Option<(String, Month)> {
    let rest = id.strip_prefix("prc_")?;
    let (ulid, yyyymm) = rest.split_once('_')?;
    let client_id = format!("cli_{ulid}");
    if !super::client::is_client_id(&client_id)
        || yyyymm.len() != 6
        || !yyyymm.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let month = Month::parse(&format!("{}-{}", &yyyymm[..4], &yyyymm[4..])).ok()?;
    Some((client_id, month))
}

/// How a process came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Origin {
    /// A person asked for it.
    Request,
    /// A `create_monthly_processes` schedule.
    Schedule { schedule_id: String },
}

/// A process's invoice: where it is kept and what the carrier billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// In the invoices bucket: `<account>/<client>/<YYYY-MM>.pdf`.
    pub s3_key: String,
    pub file_name: String,
    pub due_date: Option<chrono::NaiveDate>,
    /// BRL cents.
    pub amount_cents: Option<i64>,
    /// The 44-character NFCom access key, check digit verified.
    pub access_key: Option<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Where a process's invoice is kept in the invoices bucket.
pub fn invoice_key(account_id: &str, client_id: &str, month: Month) -> String {
    format!("{account_id}/{client_id}/{month}.pdf")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: &str = "cli_01jdq5m3n4p5q6r7s8t9v0w1x2";

    #[test]
    fn a_process_moves_only_forward_along_its_path() {
        use ProcessStatus::*;
        let mut status = AwaitingDownload;
        for m in [
            Move::ReceiveInvoice,
            Move::ReceiveInvoice,
            Move::Approve,
            Move::RecordFiling,
        ] {
            status = next(status, m).unwrap();
        }
        assert_eq!(status, Filed);
        let refused = next(AwaitingDownload, Move::Approve).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the process is awaiting_download; it cannot be approved"
        );
        assert!(next(AwaitingTaxFiling, Move::ReceiveInvoice).is_err());
        assert!(next(Filed, Move::RecordFiling).is_err());
    }

    #[test]
    fn statuses_read_as_they_are_written() {
        for s in ProcessStatus::ALL {
            assert_eq!(s.as_str().parse::<ProcessStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("filed ".parse::<ProcessStatus>().is_err());
    }

    #[test]
    fn a_process_id_names_its_client_and_month() {
        let month = Month::parse("2026-11").unwrap();
        let id = process_id(CLIENT, month).unwrap();
        assert_eq!(id, "prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611");
        assert_eq!(parse_process_id(&id), Some((CLIENT.to_owned(), month)));
        assert_eq!(process_id("padaria", month), None);
        for bad in [
            "prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202613",
            "prc_01jdq5m3n4p5q6r7s8t9v0w1x2-202611",
            "prc_x_202611",
            "cli_01jdq5m3n4p5q6r7s8t9v0w1x2",
        ] {
            assert_eq!(parse_process_id(bad), None, "{bad}");
        }
    }

    proptest! {
        /// From any status, any move either follows the path or is refused
        /// naming the status; nothing moves backwards.
        #[test]
        fn moves_never_go_backwards(from in 0usize..4, m in 0usize..3) {
            let from = ProcessStatus::ALL[from];
            let m = [Move::ReceiveInvoice, Move::Approve, Move::RecordFiling][m];
            match next(from, m) {
                Ok(to) => prop_assert!(to >= from),
                Err(e) => prop_assert_eq!(e.current, from),
            }
        }

        #[test]
        fn process_ids_round_trip(year in 2000i32..3000, month in 1u32..=12) {
            let month = Month::parse(&format!("{year:04}-{month:02}")).unwrap();
            let id = process_id(CLIENT, month).unwrap();
            prop_assert_eq!(parse_process_id(&id), Some((CLIENT.to_owned(), month)));
        }
    }
}
