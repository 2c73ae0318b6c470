//! EventBridge schedule expressions, `rate(...)` and AWS's six-field
//! `cron(minutes hours day-of-month month day-of-week year)` (UTC), and the
//! Scheduled Event they deliver.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use nuvem_testkit::{ACCOUNT_ID, REGION};
use serde_json::{Value, json};

use crate::util::uuid;

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// First at start + period, then every period.
    Rate(Duration),
    Cron(Box<Cron>),
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule> {
        let e = expression.trim();
        if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let (n, unit) = inner
                .trim()
                .split_once(' ')
                .ok_or_else(|| anyhow!("rate needs `<value> <unit>`: {e}"))?;
            let n: u64 = n
                .parse()
                .map_err(|_| anyhow!("rate value is not a positive integer: {e}"))?;
            if n == 0 {
                bail!("rate value must be positive: {e}");
            }
            let secs = match (unit.trim(), n) {
                ("minute", 1) | ("hour", 1) | ("day", 1) => unit_secs(unit.trim()),
                ("minutes", n) | ("hours", n) | ("days", n) if n > 1 => unit_secs(unit.trim()),
                (u, _) => bail!(
                    "rate unit {u:?} does not fit value {n} (use minute/minutes, hour/hours, day/days): {e}"
                ),
            };
            return Ok(Schedule::Rate(Duration::from_secs(n * secs)));
        }
        if let Some(inner) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Ok(Schedule::Cron(Box::new(Cron::parse(inner)?)));
        }
        bail!("not a schedule expression (rate(...) or cron(...)): {e}")
    }

    /// The first firing strictly after `after`; `start` anchors rates.
    pub fn next_after(&self, start: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate(period) => {
                let p = chrono::Duration::from_std(*period).ok()?;
                let elapsed = after - start;
                let n = if elapsed < chrono::Duration::zero() {
                    0
                } else {
                    elapsed.num_milliseconds() / p.num_milliseconds()
                };
                Some(start + p * (n as i32 + 1))
            }
            Schedule::Cron(c) => c.next_after(after),
        }
    }
}

fn unit_secs(unit: &str) -> u64 {
    match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        _ => 86400,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum DayOfMonth {
    Any,
    Days(Vec<bool>), // index 1..=31
    Last,
    LastWeekday,
    NearestWeekday(u32),
}

#[derive(Clone, Debug, PartialEq)]
enum DayOfWeek {
    Any,
    Days(Vec<bool>), // index 1..=7, 1 = Sunday
    Last(u32),
    Nth(u32, u32),
}

/// An AWS cron expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    dom: DayOfMonth,
    months: Vec<bool>,
    dow: DayOfWeek,
    years: Vec<bool>, // index year - 1970, up to 2199
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, names: &[&str], base: u32) -> Result<u32> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + base);
    }
    s.parse().map_err(|_| anyhow!("bad cron value {s:?}"))
}

/// A list of `*`, `a`, `a-b`, `*/n`, `a/n`, `a-b/n` over min..=max.
fn set(field: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<Vec<bool>> {
    let mut bits = vec![false; max as usize + 1];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| anyhow!("bad step in {item:?}"))?,
            ),
            None => (item, 1),
        };
        if step == 0 {
            bail!("zero step in {item:?}");
        }
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, base)?, value(b, names, base)?)
        } else {
            let v = value(range, names, base)?;
            (v, if item.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            bail!("{item:?} is outside {min}-{max}");
        }
        let mut v = lo;
        while v <= hi {
            bits[v as usize] = true;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        if f.len() != 6 {
            bail!(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year): {expr:?}"
            );
        }
        let dom = match f[2] {
            "?" => DayOfMonth::Any,
            "L" => DayOfMonth::Last,
            "LW" => DayOfMonth::LastWeekday,
            d if d.ends_with('W') => DayOfMonth::NearestWeekday(value(&d[..d.len() - 1], &[], 0)?),
            d => DayOfMonth::Days(set(d, 1, 31, &[], 0)?),
        };
        let dow = match f[4] {
            "?" => DayOfWeek::Any,
            d if d.ends_with('L') && d.len() > 1 => {
                DayOfWeek::Last(value(&d[..d.len() - 1], &DAYS, 1)?)
            }
            "L" => DayOfWeek::Days({
                let mut b = vec![false; 8];
                b[7] = true;
                b
            }),
            d if d.contains('#') => {
                let (day, n) = d.split_once('#').expect("has #");
                DayOfWeek::Nth(
                    value(day, &DAYS, 1)?,
                    n.parse().map_err(|_| anyhow!("bad #n in {d:?}"))?,
                )
            }
            d => DayOfWeek::Days(set(d, 1, 7, &DAYS, 1)?),
        };
        let any_dom = f[2] == "?";
        let any_dow = f[4] == "?";
        if any_dom == any_dow {
            bail!("exactly one of day-of-month and day-of-week must be `?`: {expr:?}");
        }
        Ok(Cron {
            minutes: set(f[0], 0, 59, &[], 0)?,
            hours: set(f[1], 0, 23, &[], 0)?,
            dom,
            months: set(f[3], 1, 12, &MONTHS, 1)?,
            dow,
            years: {
                let y = set(f[5], 1970, 2199, &[], 0)?;
                y[1970..].to_vec()
            },
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let last = last_day(d.year(), d.month());
        let dow = d.weekday().num_days_from_sunday() + 1; // 1 = Sunday
        let dom_ok = match &self.dom {
            DayOfMonth::Any => true,
            DayOfMonth::Days(b) => b[d.day() as usize],
            DayOfMonth::Last => d.day() == last,
            DayOfMonth::LastWeekday => d.day() == nearest_weekday(d.year(), d.month(), last),
            DayOfMonth::NearestWeekday(n) => {
                *n <= last && d.day() == nearest_weekday(d.year(), d.month(), *n)
            }
        };
        let dow_ok = match &self.dow {
            DayOfWeek::Any => true,
            DayOfWeek::Days(b) => b[dow as usize],
            DayOfWeek::Last(w) => dow == *w && d.day() + 7 > last,
            DayOfWeek::Nth(w, n) => dow == *w && (d.day() - 1) / 7 + 1 == *n,
        };
        dom_ok && dow_ok
    }

    /// The first matching minute strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        let mut day = start.date_naive();
        for _ in 0..(366 * 8) {
            let year_ok = (day.year() - 1970) >= 0
                && self.years.get((day.year() - 1970) as usize) == Some(&true);
            if year_ok && self.months[day.month() as usize] && self.day_matches(day) {
                let from = if day == start.date_naive() {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                for h in from.0..24 {
                    if !self.hours[h as usize] {
                        continue;
                    }
                    let m0 = if h == from.0 { from.1 } else { 0 };
                    for m in m0..60 {
                        if self.minutes[m as usize] {
                            return Utc
                                .with_ymd_and_hms(day.year(), day.month(), day.day(), h, m, 0)
                                .single();
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }
}

fn last_day(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

/// The weekday nearest to day `n` of the month, without leaving the month.
fn nearest_weekday(year: i32, month: u32, n: u32) -> u32 {
    let Some(d) = NaiveDate::from_ymd_opt(year, month, n) else {
        return 0;
    };
    let last = last_day(year, month);
    match d.weekday().num_days_from_monday() {
        5 => {
            if n == 1 {
                3
            } else {
                n - 1
            }
        } // Saturday → Friday (or Monday the 3rd)
        6 => {
            if n == last {
                n - 2
            } else {
                n + 1
            }
        } // Sunday → Monday (or Friday)
        _ => n,
    }
}

/// The event EventBridge sends for a scheduled rule.
pub fn scheduled_event(rule_name: &str, time: DateTime<Utc>) -> Value {
    json!({
        "version": "0",
        "id": uuid(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}")],
        "detail": {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        let s = Schedule::parse(expr).unwrap();
        s.next_after(at(after), at(after))
            .unwrap()
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    }

    #[test]
    fn rates() {
        assert_eq!(
            Schedule::parse("rate(1 minute)").unwrap(),
            Schedule::Rate(Duration::from_secs(60))
        );
        assert_eq!(
            Schedule::parse("rate(5 minutes)").unwrap(),
            Schedule::Rate(Duration::from_secs(300))
        );
        assert_eq!(
            Schedule::parse("rate(2 hours)").unwrap(),
            Schedule::Rate(Duration::from_secs(7200))
        );
        assert_eq!(
            Schedule::parse("rate(1 day)").unwrap(),
            Schedule::Rate(Duration::from_secs(86400))
        );
        assert!(Schedule::parse("rate(1 minutes)").is_err());
        assert!(Schedule::parse("rate(5 minute)").is_err());
        assert!(Schedule::parse("rate(0 minutes)").is_err());
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        let start = at("2026-11-24T12:00:30Z");
        assert_eq!(s.next_after(start, start), Some(at("2026-11-24T12:05:30Z")));
        assert_eq!(
            s.next_after(start, at("2026-11-24T12:05:30Z")),
            Some(at("2026-11-24T12:10:30Z"))
        );
    }

    #[test]
    fn crons() {
        assert_eq!(
            next("cron(0 12 * * ? *)", "2026-11-24T12:00:00Z"),
            "2026-11-25T12:00"
        );
        assert_eq!(
            next("cron(0/15 * * * ? *)", "2026-11-24T12:07:10Z"),
            "2026-11-24T12:15"
        );
        assert_eq!(
            next("cron(0 10 ? * MON-FRI *)", "2026-11-27T11:00:00Z"),
            "2026-11-30T10:00"
        ); // Fri → Mon
        assert_eq!(
            next("cron(0 3 1 * ? *)", "2026-11-24T00:00:00Z"),
            "2026-12-01T03:00"
        );
        assert_eq!(
            next("cron(0 0 L * ? *)", "2026-02-01T00:00:00Z"),
            "2026-02-28T00:00"
        );
        assert_eq!(
            next("cron(0 0 ? * 6L *)", "2026-11-01T00:00:00Z"),
            "2026-11-27T00:00"
        ); // last Friday
        assert_eq!(
            next("cron(0 0 ? * 2#1 *)", "2026-11-24T00:00:00Z"),
            "2026-12-07T00:00"
        ); // first Monday
        assert_eq!(
            next("cron(0 0 15W * ? *)", "2026-11-01T00:00:00Z"),
            "2026-11-16T00:00"
        ); // 15th is a Sunday
        assert_eq!(
            next("cron(30 8 1 JAN ? 2027)", "2026-11-24T00:00:00Z"),
            "2027-01-01T08:30"
        );
        assert!(
            Schedule::parse("cron(0 0 * * * *)").is_err(),
            "both day fields"
        );
        assert!(Schedule::parse("cron(0 0 * *)").is_err());
        let past = Schedule::parse("cron(0 0 1 1 ? 2020)").unwrap();
        assert_eq!(
            past.next_after(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn the_scheduled_event_shape() {
        let e = scheduled_event("nuvem-Ticker-Tick", at("2026-11-24T12:00:00Z"));
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["time"], "2026-11-24T12:00:00Z");
        assert_eq!(
            e["resources"][0],
            "arn:aws:events:us-east-1:123456789012:rule/nuvem-Ticker-Tick"
        );
        assert_eq!(e["detail"], json!({}));
    }
}
