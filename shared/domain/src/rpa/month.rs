//! The month an invoice belongs to (its competência), written `YYYY-MM`.
//!
//! Carriers bill by calendar month, and the RPA is asked for "the invoice of
//! 2026-11", so the month is a value of its own rather than a date with a
//! day that means nothing. The text form sorts like the value, which keeps
//! store keys such as `…#2026-11` in chronological order.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Years accepted by [`Month::parse`]: anything else in a request is a typo.
pub const MIN_YEAR: i32 = 2000;
pub const MAX_YEAR: i32 = 2999;

/// A calendar month. Ordered chronologically; serialized as `YYYY-MM`.
///
/// [`Month::parse`] (and so deserialization) accepts only years
/// [`MIN_YEAR`]..=[`MAX_YEAR`]. Arithmetic ([`Month::of`],
/// [`Month::offset`]) works on any year chrono can represent, so that it
/// never fails on a date it is given; a month outside the parse range still
/// displays but would be refused when read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    // Field order matters: the derived `Ord` compares the year first.
    year: i32,
    month: u32,
}

/// A string that is not a month as `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a month as YYYY-MM between {MIN_YEAR}-01 and {MAX_YEAR}-12")]
pub struct MonthParseError {
    pub value: String,
}

impl Month {
    /// Parses exactly `YYYY-MM`: four digits, a hyphen, two digits, with the
    /// year in [`MIN_YEAR`]..=[`MAX_YEAR`] and the month in 01..=12. No
    /// trimming, no other separators, no single-digit months.
    pub fn parse(input: &str) -> Result<Month, MonthParseError> {
        let error = || MonthParseError {
            value: input.to_owned(),
        };
        let bytes = input.as_bytes();
        let shape_ok = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[5..].iter().all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(error());
        }
        // Both slices are ASCII digits, so these parses cannot fail.
        let year: i32 = input[..4].parse().map_err(|_| error())?;
        let month: u32 = input[5..].parse().map_err(|_| error())?;
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) || !(1..=12).contains(&month) {
            return Err(error());
        }
        Ok(Month { year, month })
    }

    /// The month `date` falls in.
    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    /// 1 (January) to 12 (December).
    pub fn month(self) -> u32 {
        self.month
    }

    /// The month `n` months later (earlier when `n` is negative), crossing
    /// years as needed: `2026-11` offset by 3 is `2027-02`.
    ///
    /// # Panics
    ///
    /// When the result falls outside the years chrono can represent (about
    /// ±262 000), which no invoice month comes near; see
    /// [`Month::checked_offset`].
    pub fn offset(self, n: i32) -> Month {
        self.checked_offset(n)
            .unwrap_or_else(|| panic!("month {self} offset by {n} is out of range"))
    }

    /// [`Month::offset`], or `None` outside the years chrono can represent.
    pub fn checked_offset(self, n: i32) -> Option<Month> {
        let index = i64::from(self.year) * 12 + i64::from(self.month) - 1 + i64::from(n);
        let year = i32::try_from(index.div_euclid(12)).ok()?;
        if year < NaiveDate::MIN.year() || year > NaiveDate::MAX.year() {
            return None;
        }
        // rem_euclid(12) is in 0..12.
        let month = index.rem_euclid(12) as u32 + 1;
        Some(Month { year, month })
    }

    pub fn first_day(self) -> NaiveDate {
        self.day(1)
    }

    pub fn last_day(self) -> NaiveDate {
        let days = match self.month {
            4 | 6 | 9 | 11 => 30,
            2 if NaiveDate::from_ymd_opt(self.year, 2, 29).is_some() => 29,
            2 => 28,
            _ => 31,
        };
        self.day(days)
    }

    /// Every constructor keeps the month in 1..=12 and the year within
    /// chrono's range (whose first and last years are whole), so the day
    /// exists.
    fn day(self, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, day)
            .unwrap_or_else(|| panic!("{self} has no day {day}"))
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = MonthParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Month::parse(s)
    }
}

impl TryFrom<String> for Month {
    type Error = MonthParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Month::parse(&value)
    }
}

impl From<Month> for String {
    fn from(month: Month) -> String {
        month.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap()
    }

    #[test]
    fn parses_exactly_yyyy_mm() {
        let nov = m("2026-11");
        assert_eq!((nov.year(), nov.month()), (2026, 11));
        assert_eq!(nov.to_string(), "2026-11");
        assert_eq!(m("2000-01").to_string(), "2000-01");
        assert_eq!(m("2999-12").to_string(), "2999-12");
        for bad in [
            "",
            "2026-1",
            "2026-011",
            "2026/11",
            "26-11",
            "2026-00",
            "2026-13",
            "1999-12",
            "3000-01",
            " 2026-11",
            "2026-11 ",
            "+026-11",
            "2026-+1",
            "２０２６-11",
            "2026-1a",
            "202611",
            "2026-11-01",
        ] {
            assert_eq!(
                Month::parse(bad),
                Err(MonthParseError {
                    value: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        assert_eq!(
            Month::parse("2026-13").unwrap_err().to_string(),
            "\"2026-13\" is not a month as YYYY-MM between 2000-01 and 2999-12"
        );
        assert_eq!("2026-11".parse::<Month>(), Ok(nov));
    }

    #[test]
    fn month_of_a_date_and_its_days() {
        let feb = Month::of(date(2028, 2, 14));
        assert_eq!(feb, m("2028-02"));
        assert_eq!(feb.first_day(), date(2028, 2, 1));
        assert_eq!(feb.last_day(), date(2028, 2, 29));
        assert_eq!(m("2026-02").last_day(), date(2026, 2, 28));
        assert_eq!(m("2100-02").last_day(), date(2100, 2, 28));
        assert_eq!(m("2000-02").last_day(), date(2000, 2, 29));
        assert_eq!(m("2026-04").last_day(), date(2026, 4, 30));
        assert_eq!(m("2026-12").last_day(), date(2026, 12, 31));
        assert_eq!(m("2026-01").last_day(), date(2026, 1, 31));
        assert_eq!(Month::of(date(2026, 12, 31)), m("2026-12"));
        // Outside the parse range, arithmetic still works.
        let old = Month::of(date(1999, 12, 31));
        assert_eq!(old.to_string(), "1999-12");
        assert_eq!(old.offset(1), m("2000-01"));
    }

    #[test]
    fn offset_crosses_years() {
        assert_eq!(m("2026-11").offset(0), m("2026-11"));
        assert_eq!(m("2026-11").offset(1), m("2026-12"));
        assert_eq!(m("2026-11").offset(2), m("2027-01"));
        assert_eq!(m("2026-11").offset(3), m("2027-02"));
        assert_eq!(m("2026-01").offset(-1), m("2025-12"));
        assert_eq!(m("2026-01").offset(-13), m("2024-12"));
        assert_eq!(m("2026-06").offset(24), m("2028-06"));
        assert_eq!(m("2026-06").offset(-24), m("2024-06"));
        assert_eq!(m("2026-06").checked_offset(i32::MAX), None);
        assert_eq!(m("2026-06").checked_offset(i32::MIN), None);
    }

    #[test]
    fn serde_uses_the_text_form() {
        let nov = m("2026-11");
        assert_eq!(serde_json::to_string(&nov).unwrap(), "\"2026-11\"");
        assert_eq!(serde_json::from_str::<Month>("\"2026-11\"").unwrap(), nov);
        let err = serde_json::from_str::<Month>("\"2026-13\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("\"2026-13\" is not a month as YYYY-MM"),
            "{err}"
        );
        assert!(serde_json::from_str::<Month>("202611").is_err());
    }

    #[test]
    fn orders_chronologically() {
        assert!(m("2026-12") < m("2027-01"));
        assert!(m("2026-02") < m("2026-10"));
        let mut months = vec![m("2027-01"), m("2026-10"), m("2026-02")];
        months.sort();
        assert_eq!(months, vec![m("2026-02"), m("2026-10"), m("2027-01")]);
    }

    fn any_month() -> impl Strategy<Value = Month> {
        (MIN_YEAR..=MAX_YEAR, 1u32..=12).prop_map(|(year, month)| Month { year, month })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(month in any_month()) {
            prop_assert_eq!(Month::parse(&month.to_string()), Ok(month));
            let json = serde_json::to_string(&month).unwrap();
            prop_assert_eq!(serde_json::from_str::<Month>(&json).unwrap(), month);
        }

        #[test]
        fn offsets_add_up(month in any_month(), a in -5000i32..5000, b in -5000i32..5000) {
            prop_assert_eq!(month.offset(a).offset(b), month.offset(a + b));
            prop_assert_eq!(month.offset(a).offset(-a), month);
        }

        #[test]
        fn ordering_matches_string_ordering(x in any_month(), y in any_month()) {
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        }

        #[test]
        fn days_belong_to_the_month(month in any_month()) {
            let (first, last) = (month.first_day(), month.last_day());
            prop_assert_eq!(Month::of(first), month);
            prop_assert_eq!(Month::of(last), month);
            prop_assert_eq!(first.day(), 1);
            prop_assert_eq!(Month::of(last.succ_opt().unwrap()), month.offset(1));
            prop_assert_eq!(Month::of(first.pred_opt().unwrap()), month.offset(-1));
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,10}") {
            let _ = Month::parse(&input);
        }
    }
}
