//! The monthly report: a month's processes counted per status and carrier,
//! with the invoiced amounts, as JSON or as CSV for spreadsheets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::carrier::CarrierCode;
use super::month::Month;
use super::process::ProcessStatus;

/// One process as the report counts it.
pub struct Counted<'a> {
    pub carrier: &'a CarrierCode,
    pub status: ProcessStatus,
    pub amount_cents: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub processes: u64,
    /// BRL cents of the invoices received so far.
    pub amount_cents: i64,
    /// Every status, zero included, so that a spreadsheet's columns stay put.
    pub by_status: BTreeMap<ProcessStatus, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            processes: 0,
            amount_cents: 0,
            by_status: ProcessStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
        }
    }

    fn add(&mut self, p: &Counted<'_>) {
        self.processes += 1;
        self.amount_cents = self
            .amount_cents
            .saturating_add(p.amount_cents.unwrap_or(0));
        *self.by_status.entry(p.status).or_default() += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyReport {
    pub month: Month,
    pub total: Tally,
    pub by_carrier: BTreeMap<CarrierCode, Tally>,
}

pub fn monthly(month: Month, processes: &[Counted<'_>]) -> MonthlyReport {
    let mut total = Tally::new();
    let mut by_carrier: BTreeMap<CarrierCode, Tally> = BTreeMap::new();
    for p in processes {
        total.add(p);
        by_carrier
            .entry(p.carrier.clone())
            .or_insert_with(Tally::new)
            .add(p);
    }
    MonthlyReport {
        month,
        total,
        by_carrier,
    }
}

impl MonthlyReport {
    /// One row per carrier and a `TOTAL` row: processes, each status, and
    /// the amount in reais with a dot (`1234.56`).
    pub fn to_csv(&self) -> String {
        let mut out = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["month".to_owned(), "carrier".into(), "processes".into()];
        header.extend(ProcessStatus::ALL.iter().map(|s| s.as_str().to_owned()));
        header.push("amount_brl".into());
        // Writing to a Vec cannot fail; the row shapes are fixed here.
        let _ = out.write_record(&header);
        let rows = self
            .by_carrier
            .iter()
            .map(|(c, t)| (c.as_str(), t))
            .chain(std::iter::once(("TOTAL", &self.total)));
        for (carrier, tally) in rows {
            let mut row = vec![
                self.month.to_string(),
                carrier.to_owned(),
                tally.processes.to_string(),
            ];
            row.extend(
                ProcessStatus::ALL
                    .iter()
                    .map(|s| tally.by_status.get(s).copied().unwrap_or(0).to_string()),
            );
            row.push(reais(tally.amount_cents));
            let _ = out.write_record(&row);
        }
        String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

/// Cents as reais with two decimals and a dot.
pub fn reais(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn processes_are_counted_per_status_and_carrier() {
        let vivo = CarrierCode::parse("VIVO").unwrap();
        let oi = CarrierCode::parse("OI").unwrap();
        let month = Month::parse("2026-11").unwrap();
        let report = monthly(
            month,
            &[
                Counted {
                    carrier: &vivo,
                    status: ProcessStatus::Filed,
                    amount_cents: Some(18990),
                },
                Counted {
                    carrier: &vivo,
                    status: ProcessStatus::AwaitingDownload,
                    amount_cents: None,
                },
                Counted {
                    carrier: &oi,
                    status: ProcessStatus::Filed,
                    amount_cents: Some(1005),
                },
            ],
        );
        assert_eq!(report.total.processes, 3);
        assert_eq!(report.total.amount_cents, 19995);
        assert_eq!(report.total.by_status[&ProcessStatus::Filed], 2);
        assert_eq!(report.total.by_status[&ProcessStatus::AwaitingApproval], 0);
        assert_eq!(report.by_carrier[&vivo].processes, 2);
        assert_eq!(
            report.to_csv(),
            "month,carrier,processes,awaiting_download,awaiting_approval,awaiting_tax_filing,filed,amount_brl\n\
             2026-11,OI,1,0,0,0,1,10.05\n\
             2026-11,VIVO,2,1,0,0,1,189.90\n\
             2026-11,TOTAL,3,1,0,0,2,199.95\n"
        );
        let empty = monthly(month, &[]);
        assert_eq!(empty.total.by_status.len(), 4);
        assert!(empty.to_csv().ends_with("2026-11,TOTAL,0,0,0,0,0,0.00\n"));
    }

    proptest! {
        #[test]
        fn reais_read_back_as_the_cents(cents in -10_000_000_000i64..10_000_000_000) {
            let text = reais(cents);
            let (int, frac) = text.trim_start_matches('-').split_once('.').unwrap();
            let back = int.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
            prop_assert_eq!(if text.starts_with('-') { -back } else { back }, cents);
        }

        /// The carriers' tallies add up to the total.
        #[test]
        fn carriers_add_up_to_the_total(rows in proptest::collection::vec((0usize..3, 0usize..4, proptest::option::of(0i64..1_000_000)), 0..50)) {
            let codes: Vec<CarrierCode> = ["VIVO", "OI", "TIM"].iter().map(|c| CarrierCode::parse(c).unwrap()).collect();
            let counted: Vec<Counted> = rows.iter().map(|(c, s, a)| Counted { carrier: &codes[*c], status: ProcessStatus::ALL[*s], amount_cents: *a }).collect();
            let r = monthly(Month::parse("2026-01").unwrap(), &counted);
            prop_assert_eq!(r.by_carrier.values().map(|t| t.processes).sum::<u64>(), r.total.processes);
            prop_assert_eq!(r.by_carrier.values().map(|t| t.amount_cents).sum::<i64>(), r.total.amount_cents);
            for s in ProcessStatus::ALL {
                prop_assert_eq!(r.by_carrier.values().map(|t| t.by_status[&s]).sum::<u64>(), r.total.by_status[&s]);
            }
        }
    }
}
