//! Cron schedules that start invoice processes, evaluated in an IANA time
//! zone.
//!
//! Users write five fields, `minute hour day-of-month month day-of-week`,
//! as in Vixie cron: numbers, `*`, lists (`1,15`), ranges (`1-5`), steps
//! (`*/15`, `8-18/2`), month names `JAN`–`DEC`, weekday names `SUN`–`SAT`
//! (0 and 7 are both Sunday), and `L` in day-of-month for the last day of
//! the month (`0 6 L * *`). Nothing else: no seconds or year field, no
//! `@daily`, no `?`, `W`, `#` or `+` (croner extensions whose meaning a user
//! would have to look up), so that a schedule reads the same to everyone.
//!
//! Matching comes from croner 4; the time zone from jiff, whose
//! compiled-in database is what makes this work on Lambda's image, which
//! has no tzdata.
//!
//! # Day of month and day of week
//!
//! When both fields are restricted a day matches if **either** does (OR),
//! as in Vixie cron: `0 12 13 * FRI` runs on every 13th and on every
//! Friday. When one of them is `*` only the other one counts. Unlike Vixie
//! cron, only a bare `*` counts as unrestricted: `*/2` is a restriction, so
//! `0 0 */2 * MON` runs on odd days *and* on Mondays (croner's rule).
//!
//! # Daylight saving time
//!
//! A schedule names wall-clock times in its zone. Each matching wall-clock
//! minute runs **once**, at the first instant the zone's clock shows that
//! time or a later one:
//!
//! - Clocks going back (fall-back overlap): a time that happens twice runs
//!   at its first occurrence only. `30 1 * * *` in New York on 2026-11-01
//!   runs at 01:30 EDT and not again at 01:30 EST; an hourly schedule skips
//!   the repeated 01:00 EST.
//! - Clocks jumping forward (spring-forward gap): a time that does not exist
//!   runs when the clock jumps past it. `30 2 * * *` in New York on
//!   2026-03-08 runs at 03:00 EDT. Several skipped times (`*/15 2 * * *`)
//!   collapse into that one run, and a time that also matches on its own
//!   (`0 3`) is not run twice.
//!
//! So a schedule never runs twice for one wall-clock time and never loses a
//! day. croner has its own DST handling, but it runs interval patterns
//! (`*/15`, `0 * …`) at both instants of a repeated hour and skips their
//! times inside a gap (which drops a whole day for `*/15 2 * * *`), so this
//! module only asks croner for matching *wall-clock* times (`NaiveDateTime`,
//! where croner knows no zone) and maps them to instants itself.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::validation::FieldError;

/// The zone of a schedule whose request names none. São Paulo has had no
/// daylight saving time since 2019 (UTC−3 all year).
pub const DEFAULT_TIME_ZONE: &str = "America/Sao_Paulo";

/// A schedule that fails this many runs in a row is paused, so that a
/// broken login or a carrier portal that changed does not keep hammering
/// the RPA API; a user resumes it after fixing the cause.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 10;

/// Whether a pattern ever fires depends only on the calendar (there is no
/// year field), and any satisfiable pattern fires within five years that
/// include two leap years. Checking a fixed window keeps `parse` free of
/// the clock.
const FIRES_CHECK_FROM: (i32, u32, u32) = (2024, 1, 1);
const FIRES_CHECK_YEARS: i32 = 5;

/// Bounds the walk in [`CronSchedule::next_after`]; it only steps over the
/// matches around one clock change (at most a few hundred for a pattern
/// that runs every minute), so this is never reached in practice.
const MAX_WALK_STEPS: u32 = 10_000;

/// A validated cron expression and time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expr: String,
    zone: TimeZone,
    /// The zone's IANA name as the database spells it.
    zone_name: String,
    cron: Cron,
}

impl CronSchedule {
    /// Validates both fields and reports every problem at once, as
    /// [`FieldError`]s on `cron` and `time_zone`. Callers whose request
    /// leaves the zone out pass [`DEFAULT_TIME_ZONE`].
    pub fn parse(expr: &str, time_zone: &str) -> Result<CronSchedule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let cron = match parse_cron(expr) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                errors.push(FieldError::new("cron", message));
                None
            }
        };
        let zone = match parse_zone(time_zone) {
            Ok(zone) => Some(zone),
            Err(message) => {
                errors.push(FieldError::new("time_zone", message));
                None
            }
        };
        match (cron, zone) {
            (Some((expr, cron)), Some((zone, zone_name))) if errors.is_empty() => {
                Ok(CronSchedule {
                    expr,
                    zone,
                    zone_name,
                    cron,
                })
            }
            _ => Err(errors),
        }
    }

    /// The expression as stored: fields separated by one space, names and
    /// `L` uppercased (`0 6 L * MON-FRI`).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The date the schedule's zone shows at `at` (a run's month is the
    /// month of its local date).
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.wall_clock(at).date()
    }

    /// The IANA name of the zone (`America/Sao_Paulo`).
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    /// What the zone's clock shows at `at`.
    fn wall_clock(&self, at: DateTime<Utc>) -> NaiveDateTime {
        let local = jiff::Timestamp::new(at.timestamp(), 0)
            .map(|ts| self.zone.to_datetime(ts))
            .ok()
            .and_then(|local| {
                NaiveDate::from_ymd_opt(
                    i32::from(local.year()),
                    u32::try_from(local.month()).ok()?,
                    u32::try_from(local.day()).ok()?,
                )?
                .and_hms_opt(
                    u32::try_from(local.hour()).ok()?,
                    u32::try_from(local.minute()).ok()?,
                    u32::try_from(local.second()).ok()?,
                )
            });
        // Outside jiff's years (±9999), which no schedule reaches: UTC.
        local.unwrap_or_else(|| at.naive_utc())
            + Duration::nanoseconds(at.timestamp_subsec_nanos().into())
    }

    /// The first run strictly after `after`, or `None` if there is none
    /// (which `parse` rules out for any real date).
    ///
    /// Walks the matching wall-clock times from `after`'s own wall-clock
    /// time on. Mapping wall-clock times to instants (the private `resolve`)
    /// never goes backwards, and every wall-clock time up to `after`'s maps
    /// to `after` or earlier, so the first one that maps past `after` is
    /// the answer. Only around a clock change does the walk step over
    /// matches: those of a repeated hour's first pass when `after` is in the
    /// second, and skipped times that all map to the end of one gap.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = self.wall_clock(after);
        let mut inclusive = true;
        for _ in 0..MAX_WALK_STEPS {
            wall = self.cron.find_next_occurrence(&wall, inclusive).ok()?;
            inclusive = false;
            let instant = self.resolve(wall)?;
            if instant > after {
                return Some(instant);
            }
        }
        None
    }

    /// When the scheduler should next start this schedule, given the
    /// occurrence it has just claimed (`last_due`) and the current time:
    /// the first occurrence strictly after the later of the two.
    ///
    /// This is how downtime is handled. A scheduler that was down while
    /// windows passed finds the schedule overdue, claims `last_due` and
    /// starts **one** run for it. Its next due time is then computed from
    /// `now`, not from `last_due`, so every other window that passed while
    /// it was down is skipped instead of being run once per missed tick.
    /// Taking the later of the two also keeps a clock that lags behind a
    /// claimed occurrence from handing the same occurrence out again.
    pub fn next_due(&self, last_due: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(last_due.max(now))
    }

    /// The instant a matching wall-clock time runs at: the first instant at
    /// which the zone's clock shows `wall` or a later time. That is `wall`'s
    /// only instant, the earlier of its two in a repeated hour, or the end
    /// of the gap when `wall` was skipped by a jump forward.
    fn resolve(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        if let Some(t) = self.earliest_instant(wall)? {
            return Some(t);
        }
        // In a gap. Transitions fall on whole minutes (those within reach
        // of a schedule do), so the first wall-clock minute that exists
        // again is the end of the gap. Gaps are an hour or less, save the
        // day Samoa skipped in 2011; two days bound the search.
        let mut probe = wall;
        for _ in 0..2 * 24 * 60 {
            probe += Duration::minutes(1);
            if let Some(t) = self.earliest_instant(probe)? {
                return Some(t);
            }
        }
        None
    }

    /// The earlier instant whose clock shows `wall` (`Some(None)` when
    /// the clock skips it); `None` outside the years jiff handles.
    fn earliest_instant(&self, wall: NaiveDateTime) -> Option<Option<DateTime<Utc>>> {
        let civil = jiff::civil::DateTime::new(
            i16::try_from(wall.year()).ok()?,
            i8::try_from(wall.month()).ok()?,
            i8::try_from(wall.day()).ok()?,
            i8::try_from(wall.hour()).ok()?,
            i8::try_from(wall.minute()).ok()?,
            i8::try_from(wall.second()).ok()?,
            0,
        )
        .ok()?;
        let at = |offset: jiff::tz::Offset| -> Option<DateTime<Utc>> {
            let ts = offset.to_timestamp(civil).ok()?;
            DateTime::from_timestamp(ts.as_second(), 0)
        };
        Some(match self.zone.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => Some(at(offset)?),
            AmbiguousOffset::Fold { before, after } => Some(at(before)?.min(at(after)?)),
            AmbiguousOffset::Gap { .. } => None,
        })
    }
}

/// A zone of the tz database compiled into the binary (jiff's
/// `tzdb-bundle-always`: Lambda's image has no tzdata, and nothing is read
/// from the file system), by its IANA name in any case.
fn parse_zone(time_zone: &str) -> Result<(TimeZone, String), String> {
    let name = time_zone.trim();
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let unknown = || "unknown time zone; use an IANA name such as America/Sao_Paulo".to_owned();
    let zone = TimeZone::get(name).map_err(|_| unknown())?;
    let canonical = zone.iana_name().ok_or_else(unknown)?.to_owned();
    Ok((zone, canonical))
}

/// Checks the expression against the grammar of this module, then has
/// croner parse it and checks that it fires at all. Returns the normalized
/// expression and croner's pattern.
fn parse_cron(expr: &str) -> Result<(String, Cron), String> {
    let fields: Vec<String> = expr
        .split_whitespace()
        .map(|f| f.to_ascii_uppercase())
        .collect();
    if fields.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "must have 5 fields (minute hour day-of-month month day-of-week), not {}",
            fields.len()
        ));
    }
    for (spec, field) in FIELDS.iter().zip(&fields) {
        spec.check(field)
            .map_err(|problem| format!("{}: {problem}", spec.name))?;
    }
    let normalized = fields.join(" ");
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(&normalized)
        // The grammar above is a subset of croner's; this is a safety net.
        .map_err(|_| "is not a valid cron expression".to_owned())?;
    if !fires_within_check_window(&cron) {
        return Err("never runs (no such date)".to_owned());
    }
    Ok((normalized, cron))
}

/// Whether some day of the check window matches. Tries each day at the
/// pattern's first hour and minute, so the search is bounded (croner's own
/// search for a pattern that never fires walks on to the year 5000).
fn fires_within_check_window(cron: &Cron) -> bool {
    let (Some(hour), Some(minute)) = (
        cron.pattern.hours.values().first().copied(),
        cron.pattern.minutes.values().first().copied(),
    ) else {
        return false;
    };
    let (y, m, d) = FIRES_CHECK_FROM;
    let (Some(from), Some(until)) = (
        NaiveDate::from_ymd_opt(y, m, d),
        NaiveDate::from_ymd_opt(y + FIRES_CHECK_YEARS, m, d),
    ) else {
        return false;
    };
    from.iter_days().take_while(|day| *day < until).any(|day| {
        day.and_hms_opt(u32::from(hour), u32::from(minute), 0)
            .is_some_and(|t| cron.is_time_matching(&t).unwrap_or(false))
    })
}

/// One of the five fields and what it accepts.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names, the first one worth `names_from`.
    names: &'static [&'static str],
    names_from: u32,
    /// `L`, the last day of the month.
    last_day: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
        last_day: false,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
        last_day: false,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
        last_day: true,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
        last_day: false,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
        last_day: false,
    },
];

impl FieldSpec {
    /// `field` is uppercased. Each comma-separated item is `*`, `*/step`,
    /// a value, `a-b`, `a-b/step`, or (day-of-month only) `L`; a bare `*`
    /// stands alone (croner refuses it in a list).
    fn check(&self, field: &str) -> Result<(), String> {
        for item in field.split(',') {
            if item.is_empty() {
                return Err("empty item in list".to_owned());
            }
            if item == "*" && field != "*" {
                return Err("* already means every value; it cannot be part of a list".to_owned());
            }
            if item == "L" {
                if self.last_day {
                    continue;
                }
                return Err("L is only allowed in day-of-month".to_owned());
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                match number(step) {
                    Some(n) if (1..=self.max).contains(&n) => {}
                    _ => return Err(format!("step must be between 1 and {}", self.max)),
                }
            }
            if range == "*" {
                continue;
            }
            match range.split_once('-') {
                Some((from, to)) => {
                    let from = self.value(from, false)?;
                    let to = self.value(to, true)?;
                    if from > to {
                        return Err(format!("range {range} goes backwards"));
                    }
                }
                None => {
                    if let Some(step) = step {
                        return Err(format!(
                            "a step needs * or a range, as in */{step} or 0-30/{step}"
                        ));
                    }
                    self.value(range, false)?;
                }
            }
        }
        Ok(())
    }

    /// A number or a name. `SUN` ending a range is 7, so that `FRI-SUN`
    /// reads as Friday to Sunday.
    fn value(&self, token: &str, range_end: bool) -> Result<u32, String> {
        let value = match self.names.iter().position(|name| *name == token) {
            Some(index) => {
                let value = self.names_from + index as u32;
                if range_end && self.max == 7 && value == 0 {
                    7
                } else {
                    value
                }
            }
            None if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) => {
                // Digits too many for u32 are out of range all the same.
                number(token).unwrap_or(u32::MAX)
            }
            None => return Err(format!("{token:?} is not a valid value")),
        };
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "{token} is out of range ({}-{})",
                self.min, self.max
            ))
        }
    }
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DurationRound;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn sched(expr: &str, zone: &str) -> CronSchedule {
        CronSchedule::parse(expr, zone).unwrap_or_else(|e| panic!("{expr} {zone}: {e:?}"))
    }

    /// The first `n` runs after `from`.
    fn runs(s: &CronSchedule, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = utc(from);
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    fn all(times: &[&str]) -> Vec<DateTime<Utc>> {
        times.iter().map(|t| utc(t)).collect()
    }

    fn cron_error(expr: &str) -> String {
        let errors = CronSchedule::parse(expr, "UTC").unwrap_err();
        assert_eq!(errors.len(), 1, "{expr}: {errors:?}");
        assert_eq!(errors[0].field, "cron");
        errors[0].message.clone()
    }

    #[test]
    fn last_day_of_month() {
        let s = sched("0 6 L * *", "UTC");
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", 4),
            all(&[
                "2026-01-31T06:00:00Z",
                "2026-02-28T06:00:00Z",
                "2026-03-31T06:00:00Z",
                "2026-04-30T06:00:00Z",
            ])
        );
        assert_eq!(
            s.next_after(utc("2028-02-01T00:00:00Z")),
            Some(utc("2028-02-29T06:00:00Z"))
        );
        // Exactly at a run: the next one, not the same.
        assert_eq!(
            s.next_after(utc("2026-01-31T06:00:00Z")),
            Some(utc("2026-02-28T06:00:00Z"))
        );
        // L combines with other days.
        let s = sched("0 6 1,15,L * *", "UTC");
        assert_eq!(
            runs(&s, "2026-02-01T07:00:00Z", 3),
            all(&[
                "2026-02-15T06:00:00Z",
                "2026-02-28T06:00:00Z",
                "2026-03-01T06:00:00Z",
            ])
        );
    }

    #[test]
    fn sao_paulo_is_utc_minus_three() {
        // `L` in São Paulo: 06:00 local is 09:00 UTC.
        let s = sched("0 6 L * *", DEFAULT_TIME_ZONE);
        assert_eq!(s.time_zone(), "America/Sao_Paulo");
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", 3),
            all(&[
                "2026-01-31T09:00:00Z",
                "2026-02-28T09:00:00Z",
                "2026-03-31T09:00:00Z",
            ])
        );
        // 23:30 local is 02:30 UTC the next day; no DST in any season.
        let s = sched("30 23 * * *", DEFAULT_TIME_ZONE);
        assert_eq!(
            s.next_after(utc("2026-03-10T00:00:00Z")),
            Some(utc("2026-03-10T02:30:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-11-10T03:00:00Z")),
            Some(utc("2026-11-11T02:30:00Z"))
        );
        // The last day in local time, even when UTC has moved on.
        let s = sched("30 22 L * *", DEFAULT_TIME_ZONE);
        assert_eq!(
            s.next_after(utc("2026-04-01T00:00:00Z")),
            Some(utc("2026-04-01T01:30:00Z"))
        );
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let s = sched("*/15 * * * *", "UTC");
        assert_eq!(
            runs(&s, "2026-05-05T10:07:00Z", 4),
            all(&[
                "2026-05-05T10:15:00Z",
                "2026-05-05T10:30:00Z",
                "2026-05-05T10:45:00Z",
                "2026-05-05T11:00:00Z",
            ])
        );
        let s = sched("0 8-18/5 * * *", "UTC");
        assert_eq!(
            runs(&s, "2026-05-05T09:00:00Z", 3),
            all(&[
                "2026-05-05T13:00:00Z",
                "2026-05-05T18:00:00Z",
                "2026-05-06T08:00:00Z",
            ])
        );
        let s = sched("0 9 1,10,20 * *", "UTC");
        assert_eq!(
            runs(&s, "2026-05-02T00:00:00Z", 3),
            all(&[
                "2026-05-10T09:00:00Z",
                "2026-05-20T09:00:00Z",
                "2026-06-01T09:00:00Z",
            ])
        );
        // 2026-05-08 is a Friday.
        let named = sched("0 9 * * mon-fri", "UTC");
        assert_eq!(named.expr(), "0 9 * * MON-FRI");
        assert_eq!(
            runs(&named, "2026-05-08T10:00:00Z", 2),
            all(&["2026-05-11T09:00:00Z", "2026-05-12T09:00:00Z"])
        );
        let numbered = sched("0 9 * * 1-5", "UTC");
        let weekend = sched("0 9 * * SAT,SUN", "UTC");
        let weekend_7 = sched("0 9 * * 6,7", "UTC");
        let fri_sun = sched("0 9 * * FRI-SUN", "UTC");
        let mut t = utc("2026-05-01T00:00:00Z");
        for _ in 0..30 {
            assert_eq!(named.next_after(t), numbered.next_after(t));
            assert_eq!(weekend.next_after(t), weekend_7.next_after(t));
            t = weekend.next_after(t).unwrap();
        }
        assert_eq!(
            runs(&fri_sun, "2026-05-08T10:00:00Z", 3),
            all(&[
                "2026-05-09T09:00:00Z",
                "2026-05-10T09:00:00Z",
                "2026-05-15T09:00:00Z",
            ])
        );
        let s = sched("0 0 1 jan,Jul *", "UTC");
        assert_eq!(s.expr(), "0 0 1 JAN,JUL *");
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", 2),
            all(&["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"])
        );
        assert_eq!(sched("  0\t6   l * * ", "UTC").expr(), "0 6 L * *");
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: either one (OR). Feb and Mar 2026 have a Friday
        // the 13th, Apr 13 is a Monday.
        let s = sched("0 12 13 * FRI", "UTC");
        assert_eq!(
            runs(&s, "2026-03-28T00:00:00Z", 4),
            all(&[
                "2026-04-03T12:00:00Z",
                "2026-04-10T12:00:00Z",
                "2026-04-13T12:00:00Z",
                "2026-04-17T12:00:00Z",
            ])
        );
        // One of them `*`: only the other counts.
        assert_eq!(
            runs(&sched("0 12 13 * *", "UTC"), "2026-03-28T00:00:00Z", 1),
            all(&["2026-04-13T12:00:00Z"])
        );
        assert_eq!(
            runs(&sched("0 12 * * FRI", "UTC"), "2026-04-11T00:00:00Z", 1),
            all(&["2026-04-17T12:00:00Z"])
        );
        // `*/2` is a restriction (Vixie cron would AND here): odd days or
        // Mondays. 2026-06-01 is a Monday.
        let s = sched("0 0 */2 * MON", "UTC");
        assert_eq!(
            runs(&s, "2026-06-01T12:00:00Z", 5),
            all(&[
                "2026-06-03T00:00:00Z",
                "2026-06-05T00:00:00Z",
                "2026-06-07T00:00:00Z",
                "2026-06-08T00:00:00Z",
                "2026-06-09T00:00:00Z",
            ])
        );
        // `L` or Friday.
        let s = sched("0 0 L * 5", "UTC");
        assert_eq!(
            runs(&s, "2026-04-25T00:00:00Z", 2),
            all(&["2026-04-30T00:00:00Z", "2026-05-01T00:00:00Z"])
        );
    }

    #[test]
    fn new_york_spring_forward_gap() {
        // 2026-03-08 02:00 EST (UTC−5) jumps to 03:00 EDT (UTC−4); 02:30
        // does not exist and runs at 03:00 EDT. Every day runs once.
        let s = sched("30 2 * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-03-06T12:00:00Z", 4),
            all(&[
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z",
            ])
        );
        // Every time in the gap collapses into the one run at 03:00 EDT,
        // which is also 03:00's own run; the day is not lost.
        let s = sched("*/15 2,3 * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-03-08T06:50:00Z", 3),
            all(&[
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:15:00Z",
                "2026-03-08T07:30:00Z",
            ])
        );
        let s = sched("*/15 2 * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-03-07T08:00:00Z", 2),
            all(&["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"])
        );
        // Hourly: 01:00 EST, then 03:00 EDT (for 02:00), then 04:00 EDT.
        let s = sched("0 * * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-03-08T05:30:00Z", 3),
            all(&[
                "2026-03-08T06:00:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T08:00:00Z",
            ])
        );
    }

    #[test]
    fn new_york_fall_back_overlap() {
        // 2026-11-01 02:00 EDT (UTC−4) goes back to 01:00 EST (UTC−5); 01:30
        // happens twice and runs only the first time.
        let s = sched("30 1 * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-10-31T12:00:00Z", 3),
            all(&[
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z",
            ])
        );
        // Asked from inside the second pass, the repeated 01:30 is not
        // handed out again.
        assert_eq!(
            s.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
        // Interval patterns too: each wall-clock time once.
        let s = sched("*/30 * * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-11-01T04:50:00Z", 4),
            all(&[
                "2026-11-01T05:00:00Z", // 01:00 EDT
                "2026-11-01T05:30:00Z", // 01:30 EDT
                "2026-11-01T07:00:00Z", // 02:00 EST
                "2026-11-01T07:30:00Z", // 02:30 EST
            ])
        );
    }

    #[test]
    fn missed_windows_run_once_after_downtime() {
        let s = sched("0 * * * *", "UTC");
        let last_due = utc("2026-03-01T10:00:00Z");
        let now = utc("2026-03-04T10:17:00Z");
        // The run for 10:00 on 03-01 was claimed; 72 windows passed while
        // down; the next one is the next hour after now, not 11:00 on 03-01.
        assert_eq!(s.next_due(last_due, now), Some(utc("2026-03-04T11:00:00Z")));
        // While up, the next due time follows the last one.
        assert_eq!(
            s.next_due(last_due, utc("2026-03-01T10:00:05Z")),
            Some(utc("2026-03-01T11:00:00Z"))
        );
        // A clock behind the claimed occurrence does not repeat it.
        assert_eq!(
            s.next_due(last_due, utc("2026-03-01T09:59:58Z")),
            Some(utc("2026-03-01T11:00:00Z"))
        );

        // A scheduler ticking every minute, down for three days: the
        // overdue schedule runs exactly once on recovery, then hourly.
        let mut next = s.next_after(utc("2026-03-01T09:30:00Z")).unwrap();
        let mut started = Vec::new();
        let down = utc("2026-03-01T10:30:00Z")..utc("2026-03-04T10:17:00Z");
        let mut now = utc("2026-03-01T09:30:00Z");
        while now < utc("2026-03-04T13:30:00Z") {
            if !down.contains(&now) && now >= next {
                started.push((next, now));
                next = s.next_due(next, now).unwrap();
            }
            now += Duration::minutes(1);
        }
        assert_eq!(
            started,
            vec![
                (utc("2026-03-01T10:00:00Z"), utc("2026-03-01T10:00:00Z")),
                // The one catch-up run, for the window after the last run.
                (utc("2026-03-01T11:00:00Z"), utc("2026-03-04T10:17:00Z")),
                (utc("2026-03-04T11:00:00Z"), utc("2026-03-04T11:00:00Z")),
                (utc("2026-03-04T12:00:00Z"), utc("2026-03-04T12:00:00Z")),
                (utc("2026-03-04T13:00:00Z"), utc("2026-03-04T13:00:00Z")),
            ]
        );
    }

    #[test]
    fn refuses_bad_expressions() {
        let five = "must have 5 fields (minute hour day-of-month month day-of-week), not";
        assert_eq!(cron_error("0 0 6 * * *"), format!("{five} 6"));
        assert_eq!(cron_error("0 0 6 * * * 2026"), format!("{five} 7"));
        assert_eq!(cron_error("0 6 * *"), format!("{five} 4"));
        assert_eq!(cron_error("@daily"), format!("{five} 1"));
        assert_eq!(cron_error("   "), "must not be empty");
        assert_eq!(
            cron_error("60 * * * *"),
            "minute: 60 is out of range (0-59)"
        );
        assert_eq!(cron_error("* 24 * * *"), "hour: 24 is out of range (0-23)");
        assert_eq!(
            cron_error("* * 0 * *"),
            "day-of-month: 0 is out of range (1-31)"
        );
        assert_eq!(
            cron_error("* * 32 * *"),
            "day-of-month: 32 is out of range (1-31)"
        );
        assert_eq!(cron_error("* * * 13 *"), "month: 13 is out of range (1-12)");
        assert_eq!(cron_error("* * * 0 *"), "month: 0 is out of range (1-12)");
        assert_eq!(
            cron_error("* * * * 8"),
            "day-of-week: 8 is out of range (0-7)"
        );
        assert_eq!(
            cron_error("99999999999 * * * *"),
            "minute: 99999999999 is out of range (0-59)"
        );
        assert_eq!(
            cron_error("*/0 * * * *"),
            "minute: step must be between 1 and 59"
        );
        assert_eq!(
            cron_error("*/60 * * * *"),
            "minute: step must be between 1 and 59"
        );
        assert_eq!(
            cron_error("5/15 * * * *"),
            "minute: a step needs * or a range, as in */15 or 0-30/15"
        );
        assert_eq!(cron_error("0 5-2 * * *"), "hour: range 5-2 goes backwards");
        assert_eq!(
            cron_error("0 0 1,,2 * *"),
            "day-of-month: empty item in list"
        );
        assert_eq!(
            cron_error("0 0 * * L"),
            "day-of-week: L is only allowed in day-of-month"
        );
        assert_eq!(
            cron_error("0 0 * * 5L"),
            "day-of-week: \"5L\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 * * 5#2"),
            "day-of-week: \"5#2\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 15W * *"),
            "day-of-month: \"15W\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 ? * *"),
            "day-of-month: \"?\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 * * +MON"),
            "day-of-week: \"+MON\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 * * MONDAY"),
            "day-of-week: \"MONDAY\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 * MON *"),
            "month: \"MON\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 * * JAN"),
            "day-of-week: \"JAN\" is not a valid value"
        );
        assert_eq!(
            cron_error("0 0 -1 * *"),
            "day-of-month: \"\" is not a valid value"
        );
        // Valid fields, no such date.
        for never in [
            "0 0 31 2 *",
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 30,31 FEB *",
        ] {
            assert_eq!(cron_error(never), "never runs (no such date)", "{never}");
        }
        // Leap days exist.
        let s = sched("0 0 29 2 *", "UTC");
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2028-02-29T00:00:00Z"))
        );
        // Day 31 with a weekday is fine (OR).
        sched("0 0 31 2 MON", "UTC");
    }

    #[test]
    fn refuses_bad_zones_and_reports_both_fields() {
        let errors = CronSchedule::parse("0 6 * * *", "America/Sao Paulo").unwrap_err();
        assert_eq!(
            errors,
            vec![FieldError::new(
                "time_zone",
                "unknown time zone; use an IANA name such as America/Sao_Paulo"
            )]
        );
        assert!(CronSchedule::parse("0 6 * * *", "Mars/Olympus").is_err());
        assert!(CronSchedule::parse("0 6 * * *", "-03:00").is_err());
        assert_eq!(
            CronSchedule::parse("0 6 * * *", "").unwrap_err(),
            vec![FieldError::new("time_zone", "must not be empty")]
        );
        let errors = CronSchedule::parse("0 6 * *", "Nowhere").unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["cron", "time_zone"]);
        let s = sched("0 6 * * *", " Europe/Lisbon ");
        assert_eq!(s.time_zone(), "Europe/Lisbon");
        assert_eq!(sched("0 6 * * *", "UTC").time_zone(), "UTC");
        // Any case; stored as the database spells it.
        assert_eq!(
            sched("0 6 * * *", "america/sao_paulo").time_zone(),
            "America/Sao_Paulo"
        );
    }

    #[test]
    fn constants() {
        assert_eq!(MAX_CONSECUTIVE_FAILURES, 10);
        assert_eq!(
            sched("0 6 * * *", DEFAULT_TIME_ZONE).time_zone(),
            DEFAULT_TIME_ZONE
        );
    }

    // ----- property tests -------------------------------------------------

    /// Zones and their 2026 transitions (none for the zones without DST),
    /// so that half the cases can be aimed at a clock change.
    const ZONES: [(&str, &[&str]); 6] = [
        ("UTC", &[]),
        ("America/Sao_Paulo", &[]),
        ("Asia/Kolkata", &[]),
        // Forward on 2026-03-08, back on 2026-11-01.
        (
            "America/New_York",
            &["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"],
        ),
        (
            "Europe/London",
            &["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"],
        ),
        // Half-hour shifts: back on 2026-04-05, forward on 2026-10-04.
        (
            "Australia/Lord_Howe",
            &["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"],
        ),
    ];

    fn field(max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just("*".to_owned()),
            1 => (0..=max).prop_map(|v| v.to_string()),
            2 => (1..=max / 2).prop_map(|s| format!("*/{s}")),
            1 => (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            1 => (0..=max, 0..=max, 0..=max).prop_map(|(a, b, c)| format!("{a},{b},{c}")),
        ]
    }

    /// Mostly frequent patterns that run on most days, so that windows
    /// hold several runs and clock changes fall on days that match.
    fn any_expr() -> impl Strategy<Value = String> {
        let dom = prop_oneof![
            8 => Just("*".to_owned()),
            1 => Just("L".to_owned()),
            1 => (1u32..=28).prop_map(|d| format!("{d},L")),
            1 => (1u32..=28, 1u32..=28).prop_map(|(a, b)| format!("{a},{b}")),
        ];
        let month = prop_oneof![
            8 => Just("*".to_owned()),
            1 => Just("JAN-JUN,OCT,NOV".to_owned()),
        ];
        let dow = prop_oneof![
            8 => Just("*".to_owned()),
            1 => Just("MON-FRI".to_owned()),
            1 => (0u32..=7).prop_map(|d| d.to_string()),
        ];
        (field(59), field(23), dom, month, dow)
            .prop_map(|(mi, h, d, mo, w)| format!("{mi} {h} {d} {mo} {w}"))
    }

    /// A schedule and an instant: anywhere in 2024–2030, or within two
    /// hours of one of the zone's clock changes. Seconds are included so
    /// that instants off the minute are covered.
    fn any_case() -> impl Strategy<Value = (CronSchedule, DateTime<Utc>)> {
        let from = utc("2024-01-01T00:00:00Z").timestamp();
        let to = utc("2030-12-31T00:00:00Z").timestamp();
        (
            any_expr(),
            proptest::sample::select(ZONES.to_vec()),
            from..to,
            any::<proptest::sample::Index>(),
            -2 * 3600i64..2 * 3600,
            any::<bool>(),
        )
            .prop_filter_map(
                "never fires",
                move |(expr, (zone, changes), anywhere, pick, near, aim)| {
                    let s = CronSchedule::parse(&expr, zone).ok()?;
                    let t = if aim && !changes.is_empty() {
                        utc(changes[pick.index(changes.len())]) + Duration::seconds(near)
                    } else {
                        DateTime::from_timestamp(anywhere, 0)?
                    };
                    Some((s, t))
                },
            )
    }

    /// Whether `m` (a whole minute) is a run, from the definition rather
    /// than from `next_after`: some matching wall-clock time `w` has `m` as
    /// the first instant whose clock shows `w` or later, i.e. the clock at
    /// `m` shows at least `w` and every earlier clock reading is below `w`.
    /// `before` is the latest clock reading before `m`.
    fn is_run(s: &CronSchedule, before: NaiveDateTime, m: DateTime<Utc>) -> bool {
        let now = s.wall_clock(m);
        let mut w = before + Duration::minutes(1);
        while w <= now {
            if s.cron.is_time_matching(&w).unwrap() {
                return true;
            }
            w += Duration::minutes(1);
        }
        false
    }

    fn wall(s: &CronSchedule, t: DateTime<Utc>) -> NaiveDateTime {
        s.wall_clock(t)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

        #[test]
        fn next_is_strictly_later((s, t) in any_case()) {
            let next = s.next_after(t);
            prop_assert!(next.is_some());
            prop_assert!(next.unwrap() > t);
            prop_assert_eq!(s.next_due(t, t - Duration::hours(1)), next);
            prop_assert_eq!(s.next_due(t - Duration::days(3), t), next);
        }

        #[test]
        fn next_is_monotone(
            (s, t) in any_case(),
            gap in 0i64..3 * 24 * 3600,
        ) {
            let later = t + Duration::seconds(gap);
            prop_assert!(s.next_after(t).unwrap() <= s.next_after(later).unwrap());
        }

        #[test]
        fn nothing_runs_in_between((s, t) in any_case()) {
            let next = s.next_after(t).unwrap();
            // The latest clock reading before each minute, over a lead-in
            // longer than any repeated hour.
            let start = t.duration_trunc(Duration::minutes(1)).unwrap();
            let mut before = wall(&s, start - Duration::hours(3));
            let mut m = start - Duration::hours(3) + Duration::minutes(1);
            while m <= start {
                before = before.max(wall(&s, m));
                m += Duration::minutes(1);
            }
            let end = next.min(t + Duration::hours(4));
            while m < end {
                prop_assert!(!is_run(&s, before, m), "{} runs at {} before {}", s.expr(), m, next);
                before = before.max(wall(&s, m));
                m += Duration::minutes(1);
            }
            if m == next {
                prop_assert!(is_run(&s, before, next), "{} does not run at {}", s.expr(), next);
            }
        }

        /// A daily schedule at an hour near the clock changes runs exactly
        /// once on each local day around a change, on that day.
        #[test]
        fn daily_schedules_run_once_a_day(
            zone in proptest::sample::select(vec![
                ("America/New_York", ["2026-03-08", "2026-11-01"]),
                ("Europe/London", ["2026-03-29", "2026-10-25"]),
                ("Australia/Lord_Howe", ["2026-04-05", "2026-10-04"]),
            ]),
            change in 0usize..2,
            day_offset in -1i64..=1,
            hour in prop_oneof![4 => 0u32..4, 1 => 0u32..24],
            minute in 0u32..60,
        ) {
            let (zone, days) = zone;
            let s = sched(&format!("{minute} {hour} * * *"), zone);
            let day = NaiveDate::parse_from_str(days[change], "%Y-%m-%d").unwrap()
                + Duration::days(day_offset);
            let midnight = |d: NaiveDate| {
                s.earliest_instant(d.and_hms_opt(0, 0, 0).unwrap()).unwrap().unwrap()
            };
            let (start, end) = (midnight(day), midnight(day + Duration::days(1)));
            let first = s.next_after(start - Duration::seconds(1)).unwrap();
            prop_assert!(first < end, "{} skips {}", s.expr(), day);
            prop_assert_eq!(wall(&s, first).date(), day);
            prop_assert!(s.next_after(first).unwrap() >= end, "{} runs twice on {}", s.expr(), day);
        }

        #[test]
        fn each_wall_clock_time_runs_once((s, t) in any_case()) {
            let mut last = wall(&s, t);
            let mut run = t;
            let end = t + Duration::hours(6);
            while let Some(next) = s.next_after(run).filter(|next| *next < end) {
                let shown = wall(&s, next);
                // Strictly increasing, except that a run at the end of a gap
                // shows the first time after the gap, which may be the one
                // it stands in for or later.
                prop_assert!(shown > last, "{} runs at {} showing {} after {}", s.expr(), next, shown, last);
                last = shown;
                run = next;
            }
        }

        #[test]
        fn parse_never_panics(expr in "[0-9A-Z*/,\\- ]{0,30}", zone in "\\PC{0,20}") {
            let _ = CronSchedule::parse(&expr, &zone);
        }
    }
}
