//! Cron expressions and time zones of RPA schedules, as tenants write them
//! in `POST`/`PATCH /v1/rpa/schedules`.
//!
//! Property: nothing panics, however the fields are spelled. An expression
//! of the documented grammar (numbers, `*`, lists, ranges, steps, month and
//! weekday names in any case, `L` in day-of-month) is accepted, or refused
//! only because no date ever matches; anything else is refused with errors
//! on `cron` and/or `time_zone` alone. An accepted schedule is stored in
//! normal form (one space, upper case), reads back as itself, and always
//! has a next run after any date.

use chrono::{DateTime, TimeZone, Utc};
use nuvem_domain::rpa::schedule::CronSchedule;
use nuvem_fuzz::text::{mixed_case, nasty_string, text};
use proptest::prelude::*;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The range and names of a field.
#[derive(Clone, Copy)]
struct Field {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    names_from: u32,
    last_day: bool,
}

const FIELDS: [Field; 5] = [
    Field {
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
        last_day: false,
    },
    Field {
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
        last_day: false,
    },
    Field {
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
        last_day: true,
    },
    Field {
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
        last_day: false,
    },
    Field {
        min: 0,
        max: 7,
        names: &DAYS,
        names_from: 0,
        last_day: false,
    },
];

/// A value of `field`, as a number or (where the field has them) a name.
fn value(field: Field, v: u32, use_name: bool, mask: u64) -> String {
    let index = v.checked_sub(field.names_from).map(|i| i as usize);
    match index.and_then(|i| field.names.get(i)) {
        Some(name) if use_name => mixed_case(name, mask),
        _ => v.to_string(),
    }
}

/// One list item of the documented grammar for `field`.
fn item(field: Field) -> impl Strategy<Value = String> {
    let span = field.min..=field.max;
    (
        span.clone(),
        span,
        1..=field.max,
        0..6u8,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(move |(a, b, step, kind, names, mask)| {
            let (lo, hi) = (a.min(b), a.max(b));
            let v = |x| value(field, x, names, mask);
            match kind {
                0 | 1 => format!("*/{step}"),
                2 => v(a),
                3 => format!("{}-{}", v(lo), v(hi)),
                4 => format!("{}-{}/{step}", v(lo), v(hi)),
                _ if field.last_day => mixed_case("L", mask),
                _ => v(a),
            }
        })
}

/// A field: `*` alone, or a list of other items.
fn valid_field(field: Field) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("*".to_owned()),
        4 => proptest::collection::vec(item(field), 1..4).prop_map(|items| items.join(",")),
    ]
}

/// Fields joined by runs of whitespace, with padding.
fn join(fields: &[String], gaps: &[String]) -> String {
    let mut out = gaps[0].clone();
    for (i, f) in fields.iter().enumerate() {
        out.push_str(f);
        out.push_str(if i + 1 < gaps.len() {
            &gaps[i + 1]
        } else {
            " "
        });
    }
    out
}

fn gaps() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![4 => Just(" ".to_owned()), 1 => "[ \t\n]{0,3}"],
        6,
    )
    .prop_map(|mut g| {
        // Fields need at least one space between them.
        for gap in g.iter_mut().skip(1).take(4) {
            if gap.is_empty() {
                gap.push(' ');
            }
        }
        g
    })
}

fn valid_cron() -> impl Strategy<Value = String> {
    (
        (
            valid_field(FIELDS[0]),
            valid_field(FIELDS[1]),
            valid_field(FIELDS[2]),
            valid_field(FIELDS[3]),
            valid_field(FIELDS[4]),
        ),
        gaps(),
    )
        .prop_map(|((a, b, c, d, e), gaps)| join(&[a, b, c, d, e], &gaps))
}

/// Tokens of cron dialects and typos this grammar refuses.
fn odd_token() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "?",
            "W",
            "15W",
            "LW",
            "5#3",
            "5L",
            "L-2",
            "@daily",
            "@reboot",
            "*/0",
            "0/5",
            "5/15",
            "*/-1",
            "60",
            "24",
            "32",
            "0",
            "13",
            "8",
            "MON-",
            "-5",
            ",",
            "1,,2",
            "5-1",
            "SUN-MON",
            "FRI-SUN",
            "JAN-DEC/2",
            "99999999999999999999",
            "H",
            "R",
            "+1",
            "0x1F",
            "１",
            "٣",
        ])
        .prop_map(str::to_owned),
        text(4),
    ]
}

fn damaged_cron() -> impl Strategy<Value = String> {
    prop_oneof![
        // One field replaced by an odd token.
        (valid_cron(), 0..5usize, odd_token()).prop_map(|(c, i, t)| {
            let mut fields: Vec<String> = c.split_whitespace().map(str::to_owned).collect();
            fields[i] = t;
            fields.join(" ")
        }),
        // Too few or too many fields.
        (valid_cron(), 0..5usize, any::<bool>()).prop_map(|(c, i, more)| {
            let mut fields: Vec<&str> = c.split_whitespace().collect();
            if more {
                fields.insert(i, "0");
            } else {
                fields.remove(i);
            }
            fields.join(" ")
        }),
        nasty_string(),
    ]
}

/// Zones with and without daylight saving time, half-hour and 45-minute
/// offsets, a zone that skipped a day, and the extremes.
const ZONES: &[&str] = &[
    "America/Sao_Paulo",
    "UTC",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Chatham",
    "America/Noronha",
    "America/Manaus",
    "Etc/GMT+12",
    "Etc/GMT-14",
];

fn time_zone() -> impl Strategy<Value = String> {
    let known = proptest::sample::select(ZONES);
    prop_oneof![
        6 => (known, any::<u64>(), "[ ]{0,1}").prop_map(|(z, mask, pad)| format!("{pad}{}{pad}", mixed_case(z, mask))),
        1 => proptest::sample::select(vec!["", " ", "Mars/Olympus", "America/Sao Paulo", "../../etc/passwd", "GMT+3", "UTC+3", "+03:00", "local"]).prop_map(str::to_owned),
        1 => text(12),
    ]
}

/// Regression: a bare `*` in a list (`*,5`) passed the grammar but not
/// croner, and was refused with the vague "is not a valid cron
/// expression" instead of saying what is wrong.
#[test]
fn a_star_in_a_list_is_refused_with_a_reason() {
    for expr in [
        "*,5 * * * *",
        "0 0 *,L * *",
        "0 0 * * MON,*",
        "0 0 * *,JAN *",
    ] {
        let errors = CronSchedule::parse(expr, "UTC").expect_err(expr);
        assert_eq!(errors.len(), 1, "{expr}: {errors:?}");
        assert!(
            errors[0].message.contains("cannot be part of a list"),
            "{expr}: {errors:?}"
        );
    }
    assert!(CronSchedule::parse("*/15,5 * * * *", "UTC").is_ok());
}

/// Instants from 2000 to 2100, to ask for a next run after.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (946_684_800i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn grammar_expressions_are_accepted_unless_no_date_matches(
        expr in valid_cron(),
        zone in time_zone(),
        after in instant(),
    ) {
        // The names of the list must be accepted in any case; other text
        // may happen to be a zone too (`nz` is a link to Pacific/Auckland).
        let listed = ZONES.iter().any(|z| z.eq_ignore_ascii_case(zone.trim()));
        match CronSchedule::parse(&expr, &zone) {
            Ok(schedule) => {
                if listed {
                    prop_assert!(schedule.time_zone().eq_ignore_ascii_case(zone.trim()));
                }
                let normal = schedule.expr();
                prop_assert_eq!(normal.split(' ').count(), 5);
                prop_assert_eq!(normal.to_owned(), expr.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase());
                let again = CronSchedule::parse(normal, schedule.time_zone());
                prop_assert_eq!(again.as_ref().map(CronSchedule::expr), Ok(normal));
                let next = schedule.next_after(after);
                prop_assert!(next.is_some_and(|n| n > after), "{} in {}: no run after {}", normal, zone, after);
                let _ = schedule.local_date(after);
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    match e.field.as_str() {
                        "cron" => prop_assert_eq!(e.message.as_str(), "never runs (no such date)", "{:?}", expr),
                        "time_zone" => prop_assert!(!listed, "{:?} refused: {}", zone, e.message),
                        other => prop_assert!(false, "error on {}", other),
                    }
                }
            }
        }
    }

    #[test]
    fn anything_else_is_refused_on_its_fields(expr in prop_oneof![damaged_cron(), valid_cron()], zone in time_zone()) {
        match CronSchedule::parse(&expr, &zone) {
            Ok(schedule) => {
                prop_assert_eq!(schedule.expr().split(' ').count(), 5);
                prop_assert!(schedule.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()).is_some());
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty() && errors.len() <= 2);
                for e in &errors {
                    prop_assert!(e.field == "cron" || e.field == "time_zone", "{:?}", e);
                    prop_assert!(!e.message.is_empty());
                    // The grammar is meant to be a subset of croner's: croner
                    // refusing what the grammar let through is a vague answer.
                    prop_assert_ne!(e.message.as_str(), "is not a valid cron expression", "{:?}", expr);
                }
            }
        }
    }
}
