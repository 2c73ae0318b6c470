//! Answers of the outside RPA API as `rpa-worker` reads them: a started
//! job's id (any status, a body cut short), a job's status with its result
//! or failure, a page of its log, error details, invoice amounts; from the
//! contract's shape with fields dropped, retyped, made huge or unicode,
//! damaged bytes, or anything at all.
//!
//! Property: nothing panics. An answer is read into what the contract says
//! or refused with a reason: a start is a job id, a refusal (4xx), a
//! known-not-started (408, 429, 502, 503) or an uncertain outcome, never
//! a job id without a 2xx and a valid id; a status names the job asked
//! for; a log page's lines come after the cursor in increasing order and
//! end at `next`; an amount is whole non-negative cents, exact for every
//! decimal with two places; every text kept is bounded.

use std::time::Duration;

use chrono::NaiveDate;
use nuvem_aws::api_client::Unanswered;
use nuvem_aws::rpa_api::{
    JobId, JobKind, JobResult, JobState, MAX_LOG_LINE_CHARS, StartError, amount_cents, cents_of,
    error_detail, judge_start, parse_job_state, parse_log_page,
};
use nuvem_fuzz::json::{any_json, body_bytes, edge_number, near};
use nuvem_fuzz::text::{any_bytes, apply_byte_edits, byte_edits, nasty_string};
use proptest::prelude::*;
use serde_json::{Value, json};

const JOB: &str = "job-7f3c1a0e";

fn job_states() -> Vec<Value> {
    vec![
        json!({"job_id": JOB, "status": "queued"}),
        json!({"job_id": JOB, "status": "running", "progress": 40}),
        json!({"job_id": JOB, "status": "completed", "result": {
            "invoice_url": "https://rpa.example.com/files/fatura.pdf?sig=abc",
            "due_date": "2026-12-10",
            "amount": 1234.56,
            "access_key": " 3526 1111 2223 3300 0144 6200 1000 0012 3412 3456 7890 "
        }}),
        json!({"job_id": JOB, "status": "completed", "result": {"protocol": " SAT-2026-000123 "}}),
        json!({"job_id": JOB, "status": "failed", "error_type": "business", "error": "login recusado pelo portal"}),
        json!({"job_id": JOB, "status": "failed", "error_type": "technical", "error": "timeout"}),
    ]
}

fn log_page() -> Value {
    json!({
        "lines": [
            {"seq": 11, "at": "2026-11-24T12:00:00Z", "level": "info", "message": "abrindo portal"},
            {"seq": 12, "at": "2026-11-24T09:00:01-03:00", "level": "warning", "message": "captcha"},
            {"seq": 15, "at": "2026-11-24T12:00:02.5Z", "level": "error", "message": "falhou"}
        ],
        "next": 15
    })
}

fn answer() -> impl Strategy<Value = Vec<u8>> {
    let mut bases = job_states();
    bases.push(log_page());
    bases.push(json!({"job_id": JOB}));
    bases.push(json!({"detail": "carrier unknown"}));
    bases.push(json!({"detail": [{"loc": ["body", "cnpj"], "msg": "invalid"}]}));
    prop_oneof![
        8 => proptest::sample::select(bases.clone())
            .prop_flat_map(|b| near(b, 4))
            .prop_flat_map(|v| body_bytes(&v)),
        2 => (proptest::sample::select(bases), byte_edits(3))
            .prop_map(|(b, edits)| apply_byte_edits(serde_json::to_vec(&b).unwrap(), &edits)),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => any_bytes(80),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            100, 200, 201, 202, 204, 301, 302, 400, 401, 403, 404, 408, 409, 410, 422, 429,
            500, 502, 503, 504,
        ]),
        1 => any::<u16>(),
    ]
}

fn kind() -> impl Strategy<Value = JobKind> {
    prop_oneof![Just(JobKind::Download), Just(JobKind::Filing)]
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn a_start_answer_is_a_job_or_a_class_of_failure(
        status in status(),
        body in answer(),
        broke_off in prop_oneof![4 => Just(None), 1 => Just(Some(Unanswered::Timeout)), 1 => nasty_string().prop_map(|m| Some(Unanswered::Network(m)))],
        retry_after in proptest::option::of((0u64..100_000).prop_map(Duration::from_secs)),
    ) {
        let read = match &broke_off {
            None => Ok(body.clone()),
            Some(u) => Err(u.clone()),
        };
        match judge_start(status, retry_after, read) {
            Ok(id) => {
                prop_assert!((200..300).contains(&status) && broke_off.is_none());
                let answer: Value = serde_json::from_slice(&body).expect("a job id comes from JSON");
                prop_assert_eq!(answer["job_id"].as_str(), Some(id.as_str()));
                prop_assert_eq!(JobId::parse(id.as_str()), Ok(id));
            }
            Err(StartError::Refused { status: s, detail }) => {
                prop_assert_eq!(s, status);
                prop_assert!((400..500).contains(&status) && ![408, 429].contains(&status));
                prop_assert!(!detail.is_empty() && detail.chars().count() <= 301);
            }
            Err(StartError::Unavailable { retry_after: r, .. }) => {
                prop_assert!([408, 429, 502, 503].contains(&status));
                prop_assert_eq!(r, retry_after);
            }
            Err(e @ StartError::Uncertain { .. }) => {
                prop_assert!(e.may_have_started());
                prop_assert!(!([408, 429, 502, 503].contains(&status) || (400..500).contains(&status)));
            }
        }
        let detail = error_detail(status, &body);
        prop_assert!(!detail.is_empty() && detail.chars().count() <= 301);
    }

    #[test]
    fn a_status_answer_is_the_contract_or_a_reason(body in answer(), kind in kind(), other_job: bool) {
        let expected = JobId::parse(if other_job { "job-other" } else { JOB }).unwrap();
        match parse_job_state(&body, &expected, kind) {
            Ok(state) => {
                let answer: Value = serde_json::from_slice(&body).expect("a status comes from JSON");
                prop_assert_eq!(answer["job_id"].as_str(), Some(expected.as_str()));
                match state {
                    JobState::Queued | JobState::Running => {}
                    JobState::Failed { message, .. } => {
                        prop_assert!(message.chars().count() <= 1001);
                        prop_assert_eq!(message.trim(), message.as_str());
                    }
                    JobState::Completed(JobResult::Download { invoice_url, due_date, amount_cents, access_key }) => {
                        prop_assert_eq!(kind, JobKind::Download);
                        prop_assert!(invoice_url.to_ascii_lowercase().starts_with("http"), "{}", invoice_url);
                        prop_assert_eq!(invoice_url.trim(), invoice_url.as_str());
                        prop_assert!(due_date >= NaiveDate::from_ymd_opt(0, 1, 1).unwrap());
                        prop_assert!(amount_cents >= 0);
                        prop_assert!(access_key.is_none_or(|k| !k.is_empty() && k.trim() == k));
                    }
                    JobState::Completed(JobResult::Filing { protocol }) => {
                        prop_assert_eq!(kind, JobKind::Filing);
                        prop_assert!(!protocol.is_empty() && protocol.trim() == protocol);
                    }
                }
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    #[test]
    fn a_log_page_is_in_order_after_the_cursor(body in answer(), after in prop_oneof![Just(0u64), Just(10), Just(12), any::<u64>()]) {
        match parse_log_page(&body, after) {
            Ok(page) => {
                let mut last = after;
                for line in &page.lines {
                    prop_assert!(line.seq > last);
                    prop_assert!(line.message.chars().count() <= MAX_LOG_LINE_CHARS + 1);
                    last = line.seq;
                }
                prop_assert_eq!(page.next, last);
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    #[test]
    fn amounts_are_exact_cents(cents in 0i64..10_000_000_000_000, other in edge_number(), f: f64) {
        // A decimal with two places, as the RPA writes it.
        let text = format!("{}.{:02}", cents / 100, cents % 100);
        let number: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(amount_cents(&number), Ok(cents), "{}", text);
        let whole: Value = serde_json::from_str(&(cents / 100).to_string()).unwrap();
        prop_assert_eq!(amount_cents(&whole), Ok(cents / 100 * 100));
        // Anything else: whole non-negative cents or a reason.
        for v in [other, json!(f.to_string()), json!(null), json!([1])] {
            match amount_cents(&v) {
                Ok(c) => prop_assert!(c >= 0 && v.as_f64().is_some_and(|x| x >= 0.0)),
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }
        match cents_of(f) {
            Ok(c) => {
                prop_assert!(c >= 0 && f.is_finite() && f >= 0.0);
                // Within half a cent of the amount (relative to f64's precision).
                let diff = (c as f64 - f * 100.0).abs();
                prop_assert!(diff <= 0.5 + f.abs() * 100.0 * 1e-15, "{} → {}", f, c);
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    #[test]
    fn job_ids_are_bounded_and_never_paths(id in prop_oneof![nasty_string(), "[.]{1,3}", "[a-z0-9-]{1,210}"]) {
        match JobId::parse(&id) {
            Ok(job) => {
                let n = job.as_str().chars().count();
                prop_assert!((1..=200).contains(&n));
                prop_assert!(job.as_str() != "." && job.as_str() != "..");
                prop_assert!(!job.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
                let json = serde_json::to_value(&job).unwrap();
                prop_assert_eq!(serde_json::from_value::<JobId>(json).unwrap(), job);
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
}
