//! Query strings of the listing routes, as API Gateway passes a client's
//! `rawQueryString` and `lambda_http` decodes it: `limit`, `cursor`, the
//! `true`/`false` filters, and each filter's own parser (`month`,
//! `carrier`, `cnpj`, `status`, `client_id`, `after`, `outcome`,
//! `window`).
//!
//! Property: nothing panics; `page_limit` gives 1–100 (25 when absent) and
//! refuses anything else with a 422 on `limit`; `bool_query` accepts
//! exactly `true` and `false`; `query_as` records every refused value under
//! its parameter's name, so a listing answers 422 naming each bad filter;
//! a month that parses prints back as the very text that was sent.

mod support;

use nuvem_aws::http::{self, Problem, bool_query, page_limit, query_as};
use nuvem_aws::store::AttemptOutcome;
use nuvem_domain::account::AccountStatus;
use nuvem_domain::document::Document;
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::client::is_client_id;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::ProcessStatus;
use nuvem_domain::webhook::stats::StatsWindow;
use nuvem_fuzz::text::{nasty_string, text};
use proptest::prelude::*;
use support::{assert_client_error, request};

const NAMES: &[&str] = &[
    "limit",
    "cursor",
    "active",
    "needs_human",
    "month",
    "carrier",
    "cnpj",
    "status",
    "client_id",
    "after",
    "outcome",
    "window",
];

/// Percent-encodes every byte outside the unreserved set, as a careful
/// client does.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A value a client might send for one of the parameters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => (-5..130i64).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{10,30}",
        2 => proptest::sample::select(vec![
            "true", "false", "TRUE", "1", "0", "yes", "", " true", "true ",
            "2026-11", "2026-1", "1999-12", "3000-01", "2026-13", "2026-00", "+2026-11",
            "vivo", "VIVO", "claro_1", "-x", "a", "pending", "active", "rejected",
            "awaiting_download", "filed", "succeeded", "failed", "1h", "24h", "7d", "30d",
            "cli_01j9z3k8m2n4p6q8r0s2t4v6w8", "cli_81j9z3k8m2n4p6q8r0s2t4v6w8",
            "11.222.333/0001-81", "12ABC34501DE35", "529.982.247-25",
        ]).prop_map(str::to_owned),
        2 => nasty_string(),
    ]
}

/// A raw query string: known or random names, values encoded or not, and
/// the odd stray `&`, `=` or broken escape.
fn raw_query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        4 => proptest::sample::select(NAMES).prop_map(str::to_owned),
        1 => text(6),
    ];
    let pair = (name, value(), 0..4u8).prop_map(|(n, v, style)| match style {
        0 => format!("{}={}", encode(&n), encode(&v)),
        1 => format!("{n}={v}"),
        2 => format!("{}={}", encode(&n), encode(&v).replace("%20", "+")),
        _ => n,
    });
    let junk = proptest::sample::select(vec!["&", "&&", "=", "==", "%", "%zz", "%C3", "+", "#"]);
    prop_oneof![
        8 => proptest::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&")),
        2 => (proptest::collection::vec(pair_or_junk(), 0..6)).prop_map(|parts| parts.concat()),
        1 => junk.prop_map(str::to_owned),
        1 => nasty_string(),
    ]
}

fn pair_or_junk() -> impl Strategy<Value = String> {
    prop_oneof![
        (proptest::sample::select(NAMES), value()).prop_map(|(n, v)| format!("{n}={v}&")),
        proptest::sample::select(vec!["&", "=", "%", "%zz", "%C3%", "+", "%00"])
            .prop_map(str::to_owned),
    ]
}

fn validation_on(problem: &Problem, field: &str) -> Result<(), TestCaseError> {
    assert_client_error(problem, &[422])?;
    prop_assert!(
        problem.errors.iter().any(|e| e.field == field),
        "{:?}",
        problem
    );
    Ok(())
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn listings_read_their_query_as_documented(raw in raw_query()) {
        let req = request(None, Vec::new(), true, &raw);

        match (page_limit(&req), http::query(&req, "limit")) {
            (Ok(n), None) => prop_assert_eq!(n, 25),
            (Ok(n), Some(v)) => {
                prop_assert!((1..=100).contains(&n));
                prop_assert_eq!(v.parse::<i32>().ok(), Some(n));
            }
            (Err(p), v) => {
                prop_assert!(v.is_some());
                prop_assert!(!v.unwrap().parse::<i32>().is_ok_and(|n| (1..=100).contains(&n)));
                validation_on(&p, "limit")?;
            }
        }

        for name in ["active", "needs_human"] {
            match (bool_query(&req, name), http::query(&req, name)) {
                (Ok(None), None) => {}
                (Ok(Some(b)), Some(v)) => prop_assert_eq!(v, if b { "true" } else { "false" }),
                (Err(p), Some(v)) => {
                    prop_assert!(v != "true" && v != "false");
                    validation_on(&p, name)?;
                }
                (result, v) => prop_assert!(false, "{:?} for {:?}", result, v),
            }
        }

        // The filters of the listings, each with the parser its route uses.
        let mut errors = Vec::new();
        let month = query_as(&req, "month", &mut errors, Month::parse);
        let carrier = query_as(&req, "carrier", &mut errors, CarrierCode::parse);
        let cnpj = query_as(&req, "cnpj", &mut errors, |c| {
            Document::parse(c).map(|doc| doc.as_str().to_owned())
        });
        let status = query_as(&req, "status", &mut errors, |s| s.parse::<ProcessStatus>());
        let client_id = query_as(&req, "client_id", &mut errors, |c| {
            is_client_id(c).then(|| c.to_owned()).ok_or("is not a client id")
        });
        let after = query_as(&req, "after", &mut errors, |a| a.parse::<u64>());
        let outcome = query_as(&req, "outcome", &mut errors, |o| {
            o.parse::<AttemptOutcome>().map_err(|()| "must be succeeded or failed")
        });
        let window = query_as(&req, "window", &mut errors, |w| w.parse::<StatsWindow>());
        let account_status = http::query(&req, "status").map(|s| s.parse::<AccountStatus>());

        let parsed = [
            ("month", month.is_some()),
            ("carrier", carrier.is_some()),
            ("cnpj", cnpj.is_some()),
            ("status", status.is_some()),
            ("client_id", client_id.is_some()),
            ("after", after.is_some()),
            ("outcome", outcome.is_some()),
            ("window", window.is_some()),
        ];
        for (name, ok) in parsed {
            let sent = http::query(&req, name).is_some();
            let refused = errors.iter().any(|e| e.field == name);
            // Absent: neither; sent: parsed or refused, never both.
            prop_assert_eq!(sent, ok || refused, "{}", name);
            prop_assert!(!(ok && refused), "{}", name);
        }
        if let Some(m) = month {
            prop_assert_eq!(m.to_string(), http::query(&req, "month").unwrap());
        }
        if let Some(Ok(s)) = account_status {
            prop_assert_eq!(s.to_string(), http::query(&req, "status").unwrap());
        }
        if !errors.is_empty() {
            assert_client_error(&Problem::validation(errors), &[422])?;
        }
    }

    #[test]
    fn months_parse_exactly_and_their_arithmetic_never_panics(
        input in prop_oneof![
            3 => (0..10_000i32, 0..100u32).prop_map(|(y, m)| format!("{y:04}-{m:02}")),
            1 => "[0-9+-]{5,9}",
            1 => nasty_string(),
        ],
        n: i32,
    ) {
        match Month::parse(&input) {
            Ok(month) => {
                prop_assert_eq!(month.to_string(), input.clone());
                prop_assert!((2000..=2999).contains(&month.year()) && (1..=12).contains(&month.month()));
                prop_assert!(month.first_day() <= month.last_day());
                if let Some(later) = month.checked_offset(n) {
                    let _ = (later.first_day(), later.last_day(), later.to_string());
                }
                let json = serde_json::to_value(month).unwrap();
                prop_assert_eq!(serde_json::from_value::<Month>(json).unwrap(), month);
            }
            Err(e) => prop_assert!(e.to_string().contains("YYYY-MM")),
        }
    }
}
