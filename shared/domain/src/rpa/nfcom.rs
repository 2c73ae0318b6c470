//! The access key (chave de acesso) of an NFCom, the Nota Fiscal Fatura de
//! Serviços de Comunicação Eletrônica (model 62) that telecom carriers
//! issue. The RPA reads it off each invoice; checking it here catches a
//! misread or a different kind of document before it is stored.
//!
//! 44 characters, positions counted from 1:
//!
//! | Positions | Field          | Content                                   |
//! |-----------|----------------|-------------------------------------------|
//! | 1–2       | `cUF`          | IBGE code of the issuer's state           |
//! | 3–6       | `AAMM`         | year (2 digits) and month of issue        |
//! | 7–20      | `CNPJ`         | issuer's CNPJ                             |
//! | 21–22     | `mod`          | `62`                                      |
//! | 23–25     | `serie`        | series                                    |
//! | 26–34     | `nNF`          | invoice number                            |
//! | 35        | `tpEmis`       | 1 normal, 2 offline contingency           |
//! | 36        | `nSiteAutoriz` | authorizer site, 0–9                      |
//! | 37–43     | `cNF`          | random code (7 digits in NFCom, not 8)    |
//! | 44        | `cDV`          | check digit                               |
//!
//! NFCom, like NF3e, gives one digit of the NF-e's 8-digit `cNF` to
//! `nSiteAutoriz`; the other positions are those of every DF-e key.
//!
//! Since the alphanumeric CNPJ (IN RFB 2.229/2024; in DF-e keys from July
//! 2026 under NT Conjunta 2025.001) positions 7–18 may also hold letters
//! `A`–`Z`: the key matches `[0-9]{6}[A-Z0-9]{12}[0-9]{26}`. The check digit
//! is modulo 11 over the first 43 characters, each worth its ASCII code − 48
//! (digits keep their value, `A` is 17), weights 2 to 9 from the right and
//! then again from 2; remainder 0 or 1 gives 0, else 11 − remainder. That
//! is the CNPJ's own rule, so the helper in [`crate::document`] computes it.
//!
//! Like any modulo-11 digit it misses some single-character errors: a
//! change that moves the remainder between 0 and 1 (both give 0), and in
//! the CNPJ part a letter swapped for a character worth a multiple of 11
//! more or less (`0` for `F`, `A` for `L`), which the CNPJ's own check
//! digits miss too. The tests pin these cases down.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::document::{self, Document, DocumentError};
use crate::rpa::month::Month;

/// Model of the NFCom in the `mod` field.
pub const NFCOM_MODEL: &str = "62";

const LEN: usize = 44;
const UF: std::ops::Range<usize> = 0..2;
const YEAR: std::ops::Range<usize> = 2..4;
const MONTH: std::ops::Range<usize> = 4..6;
const CNPJ: std::ops::Range<usize> = 6..20;
/// The part of the CNPJ that may hold letters.
const CNPJ_BASE: std::ops::Range<usize> = 6..18;
const MODEL: std::ops::Range<usize> = 20..22;
const SERIES: std::ops::Range<usize> = 22..25;
const NUMBER: std::ops::Range<usize> = 25..34;
const CHECK_DIGIT: usize = 43;

/// IBGE codes of the 26 states and the Federal District.
const UF_CODES: [&str; 27] = [
    "11", "12", "13", "14", "15", "16", "17", // North
    "21", "22", "23", "24", "25", "26", "27", "28", "29", // Northeast
    "31", "32", "33", "35", // Southeast
    "41", "42", "43", // South
    "50", "51", "52", "53", // Center-West
];

/// A valid NFCom access key: 44 characters, uppercase, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessKeyError {
    #[error("spaces may only separate groups of 4 characters")]
    Grouping,
    #[error("must have 44 characters, not {length}")]
    WrongLength { length: usize },
    /// `position` counts from 1.
    #[error("invalid character {character:?} at position {position}")]
    InvalidCharacter { position: usize, character: char },
    #[error("model must be 62 (NFCom), not {model}")]
    WrongModel { model: String },
    #[error("unknown state code {code}")]
    UnknownState { code: String },
    #[error("month {month} is not between 01 and 12")]
    InvalidMonth { month: String },
    #[error("issuer CNPJ {cnpj} is invalid: {reason}")]
    InvalidCnpj { cnpj: String, reason: DocumentError },
    #[error("check digit does not match")]
    CheckDigitMismatch,
}

impl AccessKey {
    /// Parses a key as the RPA or a person gives it: surrounding whitespace
    /// is ignored, and so are spaces between groups of four characters as
    /// printed on the invoice (`3526 1111 2223 …`); lowercase letters are
    /// uppercased. Checks, in order: length, the characters allowed at each
    /// position, model 62, the state code, the month, the CNPJ's own check
    /// digits and the key's check digit.
    pub fn parse(input: &str) -> Result<AccessKey, AccessKeyError> {
        let trimmed = input.trim();
        let key: String = if trimmed.contains(char::is_whitespace) {
            let groups: Vec<&str> = trimmed.split_whitespace().collect();
            if groups.iter().any(|g| g.chars().count() != 4) {
                return Err(AccessKeyError::Grouping);
            }
            groups.concat()
        } else {
            trimmed.to_owned()
        };
        let key = key.to_ascii_uppercase();

        let length = key.chars().count();
        if length != LEN {
            return Err(AccessKeyError::WrongLength { length });
        }
        // Every character is checked to be ASCII here, so byte indexes below
        // are character positions.
        for (index, character) in key.chars().enumerate() {
            let allowed = if CNPJ_BASE.contains(&index) {
                character.is_ascii_digit() || character.is_ascii_uppercase()
            } else {
                character.is_ascii_digit()
            };
            if !allowed {
                return Err(AccessKeyError::InvalidCharacter {
                    position: index + 1,
                    character,
                });
            }
        }

        let model = &key[MODEL];
        if model != NFCOM_MODEL {
            return Err(AccessKeyError::WrongModel {
                model: model.to_owned(),
            });
        }
        let uf = &key[UF];
        if !UF_CODES.contains(&uf) {
            return Err(AccessKeyError::UnknownState {
                code: uf.to_owned(),
            });
        }
        let month = &key[MONTH];
        if !("01"..="12").contains(&month) {
            return Err(AccessKeyError::InvalidMonth {
                month: month.to_owned(),
            });
        }
        let cnpj = &key[CNPJ];
        if let Err(reason) = Document::parse(cnpj) {
            return Err(AccessKeyError::InvalidCnpj {
                cnpj: cnpj.to_owned(),
                reason,
            });
        }
        let bytes = key.as_bytes();
        let expected = document::check_digit(&bytes[..CHECK_DIGIT], document::CNPJ_WEIGHT_CAP);
        if bytes[CHECK_DIGIT] != b'0' + expected {
            return Err(AccessKeyError::CheckDigitMismatch);
        }
        Ok(AccessKey(key))
    }

    /// The 44 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Always `62`.
    pub fn model(&self) -> &str {
        &self.0[MODEL]
    }

    /// The issuer's CNPJ, 14 characters, possibly alphanumeric.
    pub fn cnpj(&self) -> &str {
        &self.0[CNPJ]
    }

    /// IBGE code of the issuing state (`35` is São Paulo).
    pub fn uf_code(&self) -> &str {
        &self.0[UF]
    }

    /// Year (20YY) and month of issue.
    pub fn year_month(&self) -> (u16, u8) {
        (2000 + self.digits(YEAR) as u16, self.digits(MONTH) as u8)
    }

    /// The month of issue as a [`Month`].
    pub fn month(&self) -> Month {
        let (year, month) = self.year_month();
        Month::parse(&format!("{year:04}-{month:02}"))
            .expect("a key's month is checked by parse and its year is 2000–2099")
    }

    /// Series, 0–999.
    pub fn series(&self) -> u16 {
        self.digits(SERIES) as u16
    }

    /// Invoice number (nNF), up to 999 999 999.
    pub fn number(&self) -> u32 {
        self.digits(NUMBER)
    }

    /// The value of a field that `parse` checked to be digits only (at most
    /// nine, so it fits in u32).
    fn digits(&self, range: std::ops::Range<usize>) -> u32 {
        self.0.as_bytes()[range]
            .iter()
            .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
    }
}

impl fmt::Display for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AccessKey {
    type Error = AccessKeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AccessKey::parse(&value)
    }
}

impl From<AccessKey> for String {
    fn from(key: AccessKey) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// cUF 35, AAMM 2611, CNPJ 11.222.333/0001-81, model 62, series 001,
    /// number 12345, tpEmis 1, site 0, cNF 7654321. Weights from the left
    /// are 4 3 2 9 8 7 6 5 4 3 2 9 …; the weighted sums by field are
    /// 27 + 73 + 129 + 62 + 4 + 65 + 2 + 0 + 168 = 530, 530 mod 11 = 2,
    /// so the check digit is 9.
    const NUMERIC: &str = "35261111222333000181620010000123451076543219";
    /// The same with the official alphanumeric example CNPJ
    /// 12.ABC.345/01DE-35 and AAMM 2607: the CNPJ part weighs
    /// 6·1 + 5·2 + 4·17 + 3·18 + 2·19 + 9·3 + 8·4 + 7·5 + 6·0 + 5·1 +
    /// 4·20 + 3·21 + 2·3 + 9·5 = 469 and AAMM 107, so the sum is 904,
    /// 904 mod 11 = 2, check digit 9.
    const ALPHANUMERIC: &str = "35260712ABC34501DE35620010000123451076543219";

    /// The check digit computed independently of `crate::document`.
    fn dv(first_43: &str) -> char {
        let sum: u32 = first_43
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, c)| (u32::from(c) - 48) * (2 + (i as u32) % 8))
            .sum();
        match sum % 11 {
            0 | 1 => '0',
            r => char::from(b'0' + (11 - r) as u8),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        uf: &str,
        aamm: &str,
        cnpj: &str,
        model: &str,
        series: u16,
        number: u32,
        tp_emis: u8,
        site: u8,
        cnf: u32,
    ) -> String {
        let first_43 =
            format!("{uf}{aamm}{cnpj}{model}{series:03}{number:09}{tp_emis}{site}{cnf:07}");
        assert_eq!(first_43.len(), 43);
        let check = dv(&first_43);
        format!("{first_43}{check}")
    }

    fn replace(key: &str, index: usize, c: char) -> String {
        let mut out = key.to_owned();
        out.replace_range(index..=index, &c.to_string());
        out
    }

    #[test]
    fn numeric_key_built_from_parts() {
        let built = build(
            "35",
            "2611",
            "11222333000181",
            "62",
            1,
            12345,
            1,
            0,
            7654321,
        );
        assert_eq!(built, NUMERIC);
        let key = AccessKey::parse(NUMERIC).unwrap();
        assert_eq!(key.as_str(), NUMERIC);
        assert_eq!(key.to_string(), NUMERIC);
        assert_eq!(key.model(), "62");
        assert_eq!(key.cnpj(), "11222333000181");
        assert_eq!(key.uf_code(), "35");
        assert_eq!(key.year_month(), (2026, 11));
        assert_eq!(key.month(), Month::parse("2026-11").unwrap());
        assert_eq!(key.series(), 1);
        assert_eq!(key.number(), 12345);
    }

    #[test]
    fn alphanumeric_cnpj_key() {
        let built = build(
            "35",
            "2607",
            "12ABC34501DE35",
            "62",
            1,
            12345,
            1,
            0,
            7654321,
        );
        assert_eq!(built, ALPHANUMERIC);
        let key = AccessKey::parse(ALPHANUMERIC).unwrap();
        assert_eq!(key.cnpj(), "12ABC34501DE35");
        assert_eq!(key.year_month(), (2026, 7));
        assert_eq!(AccessKey::parse(&ALPHANUMERIC.to_lowercase()).unwrap(), key);
        // The same key with the letters read as digits fails on the CNPJ.
        assert!(matches!(
            AccessKey::parse("35260712000345010035620010000123451076543219"),
            Err(AccessKeyError::InvalidCnpj { .. })
        ));
    }

    #[test]
    fn spaces_between_groups_of_four() {
        let printed = "3526 1111 2223 3300 0181 6200 1000 0123 4510 7654 3219";
        assert_eq!(AccessKey::parse(printed).unwrap().as_str(), NUMERIC);
        let odd_spacing = "  3526  1111\t2223 3300 0181 6200 1000 0123 4510 7654\u{a0}3219\n";
        assert_eq!(AccessKey::parse(odd_spacing).unwrap().as_str(), NUMERIC);
        assert_eq!(
            AccessKey::parse(&format!(" {NUMERIC} ")).unwrap().as_str(),
            NUMERIC
        );
        assert_eq!(
            AccessKey::parse("35 26 1111 2223 3300 0181 6200 1000 0123 4510 7654 3219"),
            Err(AccessKeyError::Grouping)
        );
        assert_eq!(
            AccessKey::parse("352611112 2233300018162001000012345107654321 9"),
            Err(AccessKeyError::Grouping)
        );
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            AccessKey::parse(&NUMERIC[..43]),
            Err(AccessKeyError::WrongLength { length: 43 })
        );
        assert_eq!(
            AccessKey::parse(""),
            Err(AccessKeyError::WrongLength { length: 0 })
        );
        assert_eq!(
            AccessKey::parse(&format!("{NUMERIC}0")),
            Err(AccessKeyError::WrongLength { length: 45 })
        );
        // Letters only in the CNPJ base (positions 7–18).
        assert_eq!(
            AccessKey::parse(&replace(NUMERIC, 2, 'A')),
            Err(AccessKeyError::InvalidCharacter {
                position: 3,
                character: 'A'
            })
        );
        assert_eq!(
            AccessKey::parse(&replace(NUMERIC, 18, 'A')),
            Err(AccessKeyError::InvalidCharacter {
                position: 19,
                character: 'A'
            })
        );
        assert_eq!(
            AccessKey::parse(&replace(NUMERIC, 10, 'Ç')),
            Err(AccessKeyError::InvalidCharacter {
                position: 11,
                character: 'Ç'
            })
        );
        assert_eq!(
            AccessKey::parse(&replace(NUMERIC, 30, '-')),
            Err(AccessKeyError::InvalidCharacter {
                position: 31,
                character: '-'
            })
        );
        // An NF-e (55), correctly built, is not an NFCom.
        let nfe = build(
            "35",
            "2611",
            "11222333000181",
            "55",
            1,
            12345,
            1,
            0,
            7654321,
        );
        assert_eq!(
            AccessKey::parse(&nfe),
            Err(AccessKeyError::WrongModel {
                model: "55".to_owned()
            })
        );
        assert_eq!(
            AccessKey::parse(&nfe).unwrap_err().to_string(),
            "model must be 62 (NFCom), not 55"
        );
        let unknown_uf = build(
            "34",
            "2611",
            "11222333000181",
            "62",
            1,
            12345,
            1,
            0,
            7654321,
        );
        assert_eq!(
            AccessKey::parse(&unknown_uf),
            Err(AccessKeyError::UnknownState {
                code: "34".to_owned()
            })
        );
        for month in ["00", "13", "99"] {
            let key = build(
                "35",
                &format!("26{month}"),
                "11222333000181",
                "62",
                1,
                1,
                1,
                0,
                1,
            );
            assert_eq!(
                AccessKey::parse(&key),
                Err(AccessKeyError::InvalidMonth {
                    month: month.to_owned()
                })
            );
        }
        let bad_cnpj = build(
            "35",
            "2611",
            "11222333000182",
            "62",
            1,
            12345,
            1,
            0,
            7654321,
        );
        assert_eq!(
            AccessKey::parse(&bad_cnpj),
            Err(AccessKeyError::InvalidCnpj {
                cnpj: "11222333000182".to_owned(),
                reason: DocumentError::CheckDigitsMismatch
            })
        );
        assert_eq!(
            AccessKey::parse(&bad_cnpj).unwrap_err().to_string(),
            "issuer CNPJ 11222333000182 is invalid: check digits do not match"
        );
        assert_eq!(
            AccessKey::parse(&replace(NUMERIC, 43, '8')),
            Err(AccessKeyError::CheckDigitMismatch)
        );
    }

    #[test]
    fn every_state_code_is_accepted() {
        for uf in UF_CODES {
            let key = build(uf, "2611", "11222333000181", "62", 1, 12345, 1, 0, 7654321);
            assert_eq!(AccessKey::parse(&key).unwrap().uf_code(), uf);
        }
    }

    #[test]
    fn check_digit_blind_spots() {
        // With cNF 1234567 the sum is 474, remainder 1, check digit 0.
        // The last cNF digit weighs 2: 7 → 1 takes 12 off, remainder 0,
        // check digit still 0, so the misread goes unnoticed.
        let base = build(
            "35",
            "2611",
            "11222333000181",
            "62",
            1,
            12345,
            1,
            0,
            1234567,
        );
        assert!(base.ends_with('0'), "{base}");
        let misread = replace(&base, 42, '1');
        assert!(AccessKey::parse(&misread).is_ok(), "{misread}");
        // 7 → 5 takes 4 off, remainder 8: caught.
        assert_eq!(
            AccessKey::parse(&replace(&base, 42, '5')),
            Err(AccessKeyError::CheckDigitMismatch)
        );
        // `1` (1) and `G` (23) differ by 22: neither the CNPJ's check digits
        // nor the key's see the swap.
        let with_g = build(
            "35",
            "2607",
            "1G222333000181",
            "62",
            1,
            12345,
            1,
            0,
            7654321,
        );
        let with_1 = replace(&with_g, 7, '1');
        assert_eq!(&with_1[6..20], "11222333000181");
        assert!(AccessKey::parse(&with_g).is_ok());
        assert!(AccessKey::parse(&with_1).is_ok());
    }

    #[test]
    fn serde_is_the_plain_string() {
        let key = AccessKey::parse(ALPHANUMERIC).unwrap();
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{ALPHANUMERIC}\""));
        assert_eq!(serde_json::from_str::<AccessKey>(&json).unwrap(), key);
        let wrong = format!("\"{}\"", replace(ALPHANUMERIC, 43, '1'));
        let err = serde_json::from_str::<AccessKey>(&wrong).unwrap_err();
        assert!(
            err.to_string().contains("check digit does not match"),
            "{err}"
        );
    }

    /// Weighted sum mod 11 of the first 43 characters.
    fn remainder(key: &str) -> u32 {
        key.bytes()
            .take(43)
            .rev()
            .enumerate()
            .map(|(i, c)| (u32::from(c) - 48) * (2 + (i as u32) % 8))
            .sum::<u32>()
            % 11
    }

    fn any_cnpj() -> impl Strategy<Value = String> {
        prop_oneof!["[0-9]{12}", "[0-9A-Z]{12}"].prop_filter_map("repeated digits", |base| {
            Document::with_check_digits(&base)
                .ok()
                .map(|d| d.as_str().to_owned())
        })
    }

    fn any_key() -> impl Strategy<Value = String> {
        (
            proptest::sample::select(UF_CODES.to_vec()),
            0u32..100,
            1u32..=12,
            any_cnpj(),
            0u16..1000,
            1u32..1_000_000_000,
            1u8..=2,
            0u8..10,
            0u32..10_000_000,
        )
            .prop_map(|(uf, yy, mm, cnpj, series, number, tp, site, cnf)| {
                build(
                    uf,
                    &format!("{yy:02}{mm:02}"),
                    &cnpj,
                    "62",
                    series,
                    number,
                    tp,
                    site,
                    cnf,
                )
            })
    }

    /// A different character allowed at `index`.
    fn other_char(index: usize, pick: u8) -> impl Fn(char) -> char {
        move |current| {
            let pool: &[u8] = if CNPJ_BASE.contains(&index) {
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            } else {
                b"0123456789"
            };
            let mut c = char::from(pool[usize::from(pick) % pool.len()]);
            if c == current {
                c = char::from(pool[(usize::from(pick) + 1) % pool.len()]);
            }
            c
        }
    }

    proptest! {
        #[test]
        fn built_keys_parse(key in any_key()) {
            let parsed = AccessKey::parse(&key).unwrap();
            prop_assert_eq!(parsed.as_str(), key.as_str());
            prop_assert_eq!(parsed.model(), "62");
            prop_assert_eq!(parsed.cnpj(), &key[6..20]);
            let spaced: Vec<String> = key
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            prop_assert_eq!(AccessKey::parse(&spaced.join(" ")).unwrap(), parsed);
        }

        /// Any one changed character is refused, save the changes a
        /// modulo-11 digit cannot see: the remainder moving between 0 and 1,
        /// or (only with letters) not moving at all.
        #[test]
        fn one_changed_character_fails(key in any_key(), index in 0usize..44, pick in any::<u8>()) {
            let current = char::from(key.as_bytes()[index]);
            let changed = replace(&key, index, other_char(index, pick)(current));
            let (before, after) = (remainder(&key), remainder(&changed));
            let blind = index < 43 && (before == after || (before.max(1) == 1 && after.max(1) == 1));
            if !blind {
                prop_assert!(AccessKey::parse(&changed).is_err(), "{} accepted", changed);
            }
            // A character not allowed at the position is always refused.
            let wrong = if CNPJ_BASE.contains(&index) { '*' } else { 'A' };
            prop_assert_eq!(
                AccessKey::parse(&replace(&key, index, wrong)),
                Err(AccessKeyError::InvalidCharacter { position: index + 1, character: wrong })
            );
        }

        #[test]
        fn changing_the_check_digit_always_fails(key in any_key(), d in 0u8..10) {
            let c = char::from(b'0' + d);
            prop_assume!(key.as_bytes()[43] != c as u8);
            prop_assert_eq!(
                AccessKey::parse(&replace(&key, 43, c)),
                Err(AccessKeyError::CheckDigitMismatch)
            );
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,60}") {
            let _ = AccessKey::parse(&input);
        }
    }
}
