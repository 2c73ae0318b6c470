//! Brazilian taxpayer documents: CPF (people) and CNPJ (companies).
//!
//! CNPJ follows the alphanumeric format of IN RFB 2.229/2024 (in force from
//! July 2026): the first 12 characters may be digits or letters A–Z, the last
//! two are always numeric check digits. Purely numeric CNPJs remain valid.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    Cpf,
    Cnpj,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Cpf => "cpf",
            DocumentKind::Cnpj => "cnpj",
        }
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("must have 11 digits (CPF) or 14 characters (CNPJ)")]
    WrongLength { length: usize },
    #[error("invalid character {0:?}")]
    InvalidCharacter(char),
    #[error("check digits do not match")]
    CheckDigitsMismatch,
    #[error("all digits are the same")]
    RepeatedDigits,
}

/// A valid CPF or CNPJ. Serialized as its normalized form (no punctuation,
/// letters uppercased), which is also what [`Document::as_str`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Document {
    kind: DocumentKind,
    value: String,
}

const CPF_LEN: usize = 11;
const CNPJ_LEN: usize = 14;

impl Document {
    /// Parses a CPF or CNPJ, formatted or not. `.`, `-`, `/` and spaces are
    /// ignored; lowercase letters are uppercased.
    pub fn parse(input: &str) -> Result<Document, DocumentError> {
        let value = normalize(input)?;
        match value.len() {
            CPF_LEN => check_cpf(value.as_bytes())?,
            CNPJ_LEN => check_cnpj(value.as_bytes())?,
            length => return Err(DocumentError::WrongLength { length }),
        }
        let kind = if value.len() == CPF_LEN {
            DocumentKind::Cpf
        } else {
            DocumentKind::Cnpj
        };
        Ok(Document { kind, value })
    }

    /// Completes a base (9 CPF digits or 12 CNPJ characters, formatting
    /// allowed) with its check digits. Handy for fixtures and tests.
    pub fn with_check_digits(base: &str) -> Result<Document, DocumentError> {
        let mut value = normalize(base)?;
        let digits = match value.len() {
            9 => {
                only_digits(value.as_bytes())?;
                check_digits(value.as_bytes(), CPF_WEIGHT_CAP)
            }
            12 => check_digits(value.as_bytes(), CNPJ_WEIGHT_CAP),
            length => return Err(DocumentError::WrongLength { length }),
        };
        value.extend(digits.iter().map(|d| char::from(b'0' + d)));
        Document::parse(&value)
    }

    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// Normalized form: `52998224725`, `12ABC34501DE35`.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Document {
    /// Formatted form: `529.982.247-25`, `12.ABC.345/01DE-35`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.value;
        match self.kind {
            DocumentKind::Cpf => write!(f, "{}.{}.{}-{}", &v[..3], &v[3..6], &v[6..9], &v[9..]),
            DocumentKind::Cnpj => write!(
                f,
                "{}.{}.{}/{}-{}",
                &v[..2],
                &v[2..5],
                &v[5..8],
                &v[8..12],
                &v[12..]
            ),
        }
    }
}

impl TryFrom<String> for Document {
    type Error = DocumentError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Document::parse(&value)
    }
}

impl From<Document> for String {
    fn from(doc: Document) -> String {
        doc.value
    }
}

/// Drops punctuation and uppercases; the result is ASCII alphanumeric only.
fn normalize(input: &str) -> Result<String, DocumentError> {
    let mut out = String::with_capacity(CNPJ_LEN);
    for c in input.trim().chars() {
        match c {
            '.' | '-' | '/' | ' ' => {}
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            c => return Err(DocumentError::InvalidCharacter(c)),
        }
    }
    Ok(out)
}

fn only_digits(chars: &[u8]) -> Result<(), DocumentError> {
    match chars.iter().find(|c| !c.is_ascii_digit()) {
        Some(&c) => Err(DocumentError::InvalidCharacter(char::from(c))),
        None => Ok(()),
    }
}

/// CPF weights grow 2, 3, … 11 from the right without wrapping.
const CPF_WEIGHT_CAP: u32 = 11;
/// CNPJ weights cycle 2..=9 from the right (as do those of the access keys
/// of electronic invoices, see [`crate::rpa::nfcom`]).
pub(crate) const CNPJ_WEIGHT_CAP: u32 = 9;

/// Both check digits for `base`. Each character counts as its ASCII code
/// minus 48, so '0'..'9' are 0..9 and 'A'..'Z' are 17..42 (the Receita
/// Federal rule for alphanumeric CNPJ; identical to the old one for digits).
fn check_digits(base: &[u8], weight_cap: u32) -> [u8; 2] {
    let first = check_digit(base, weight_cap);
    let mut extended = base.to_vec();
    extended.push(b'0' + first);
    let second = check_digit(&extended, weight_cap);
    [first, second]
}

/// One modulo-11 check digit over `chars` (ASCII `0-9A-Z`, each worth its
/// ASCII code − 48): weights 2, 3, … from the rightmost character, starting
/// again at 2 after `weight_cap`; remainder 0 or 1 gives 0, else
/// 11 − remainder.
pub(crate) fn check_digit(chars: &[u8], weight_cap: u32) -> u8 {
    let sum: u32 = chars
        .iter()
        .rev()
        .zip((2..=weight_cap).cycle())
        .map(|(&c, w)| (u32::from(c) - 48) * w)
        .sum();
    match sum % 11 {
        0 | 1 => 0,
        r => (11 - r) as u8,
    }
}

fn verify(value: &[u8], weight_cap: u32) -> Result<(), DocumentError> {
    let (base, given) = value.split_at(value.len() - 2);
    if value.iter().all(|&c| c == value[0]) {
        return Err(DocumentError::RepeatedDigits);
    }
    let expected = check_digits(base, weight_cap).map(|d| b'0' + d);
    if given == expected {
        Ok(())
    } else {
        Err(DocumentError::CheckDigitsMismatch)
    }
}

fn check_cpf(value: &[u8]) -> Result<(), DocumentError> {
    only_digits(value)?;
    verify(value, CPF_WEIGHT_CAP)
}

fn check_cnpj(value: &[u8]) -> Result<(), DocumentError> {
    // `normalize` already guarantees [0-9A-Z]; the check digits are numeric.
    only_digits(&value[12..])?;
    verify(value, CNPJ_WEIGHT_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Document, DocumentError> {
        Document::parse(s)
    }

    #[test]
    fn valid_cpfs() {
        // First digit: weights 10..2 over the 9 base digits; second: weights
        // 11..2 over base + first digit; remainder 0/1 → 0, else 11 − r.
        // 529.982.247-25: 50+18+72+63+48+10+8+12+14 = 295, 295 mod 11 = 9 → 2;
        //   55+20+81+72+56+12+10+16+21+4 = 347, 347 mod 11 = 6 → 5.
        // 123.456.789-09: 10+18+24+28+30+30+28+24+18 = 210, mod 11 = 1 → 0;
        //   11+20+27+32+35+36+35+32+27+0 = 255, mod 11 = 2 → 9.
        // 390.533.447-05: 30+81+0+35+18+15+16+12+14 = 221, mod 11 = 1 → 0;
        //   33+90+0+40+21+18+20+16+21+0 = 259, mod 11 = 6 → 5.
        for input in [
            "529.982.247-25",
            "52998224725",
            "123.456.789-09",
            " 390 533 447 05 ",
        ] {
            let doc = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(doc.kind(), DocumentKind::Cpf);
        }
        let doc = parse("529.982.247-25").unwrap();
        assert_eq!(doc.as_str(), "52998224725");
        assert_eq!(doc.to_string(), "529.982.247-25");
    }

    #[test]
    fn invalid_cpfs() {
        assert_eq!(
            parse("529.982.247-26"),
            Err(DocumentError::CheckDigitsMismatch)
        );
        assert_eq!(
            parse("529.982.247-52"),
            Err(DocumentError::CheckDigitsMismatch)
        );
        assert_eq!(
            parse("123.456.789-00"),
            Err(DocumentError::CheckDigitsMismatch)
        );
        for d in '0'..='9' {
            let same: String = std::iter::repeat_n(d, 11).collect();
            assert_eq!(parse(&same), Err(DocumentError::RepeatedDigits), "{same}");
        }
        assert_eq!(
            parse("529.982.247-2"),
            Err(DocumentError::WrongLength { length: 10 })
        );
        assert_eq!(
            parse("5299822472A"),
            Err(DocumentError::InvalidCharacter('A'))
        );
        assert_eq!(
            parse("529,982,247-25"),
            Err(DocumentError::InvalidCharacter(','))
        );
        assert_eq!(parse(""), Err(DocumentError::WrongLength { length: 0 }));
    }

    #[test]
    fn valid_numeric_cnpjs() {
        // 11.222.333/0001-81: weights 5 4 3 2 9 8 7 6 5 4 3 2 give
        // 5+4+6+4+18+24+21+18+0+0+0+2 = 102, mod 11 = 3 → 8; weights
        // 6 5 4 3 2 9 8 7 6 5 4 3 2 give 120, mod 11 = 10 → 1.
        // 00.000.000/0001-91 (Banco do Brasil): 1·2 = 2 → 9; 1·3+9·2 = 21,
        // mod 11 = 10 → 1.
        // 33.000.167/0001-01 (Petrobras): 15+12+8+42+42+2 = 121, mod 11 = 0
        // → 0; 18+15+9+48+49+3+0 = 142, mod 11 = 10 → 1.
        for input in [
            "11.222.333/0001-81",
            "11222333000181",
            "00.000.000/0001-91",
            "33.000.167/0001-01",
        ] {
            let doc = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(doc.kind(), DocumentKind::Cnpj);
        }
        assert_eq!(
            parse("11222333000181").unwrap().to_string(),
            "11.222.333/0001-81"
        );
    }

    #[test]
    fn valid_alphanumeric_cnpjs() {
        // Character values are ASCII − 48 ('A' = 17, 'N' = 30, 'Z' = 42).
        // First digit weights (left to right) 5 4 3 2 9 8 7 6 5 4 3 2; second
        // digit weights 6 5 4 3 2 9 8 7 6 5 4 3 2.
        // 12.ABC.345/01DE-35 (official example): values 1 2 17 18 19 3 4 5 0 1
        //   20 21 → 5+8+51+36+171+24+28+30+0+4+60+42 = 459, mod 11 = 8 → 3;
        //   6+10+68+54+38+27+32+35+0+5+80+63+6 = 424, mod 11 = 6 → 5.
        // 1A.2B3.C4D/0001-79: values 1 17 2 18 3 19 4 20 0 0 0 1 →
        //   5+68+6+36+27+152+28+120+0+0+0+2 = 444, mod 11 = 4 → 7;
        //   6+85+8+54+6+171+32+140+0+0+0+3+14 = 519, mod 11 = 2 → 9.
        // NU.VEM.000/0001-91: values 30 37 38 21 29 0 0 0 0 0 0 1 →
        //   150+148+114+42+261+2 = 717, mod 11 = 2 → 9;
        //   180+185+152+63+58+3+18 = 659, mod 11 = 10 → 1.
        // AB.CDE.FGH/IJKL-80: values 17..28 →
        //   85+72+57+40+189+176+161+144+125+104+81+56 = 1290, mod 11 = 3 → 8;
        //   102+90+76+60+42+198+184+168+150+130+108+84+16 = 1408, mod 11 = 0 → 0.
        let doc = parse("12.ABC.345/01DE-35").unwrap();
        assert_eq!(doc.kind(), DocumentKind::Cnpj);
        assert_eq!(doc.as_str(), "12ABC34501DE35");
        assert_eq!(doc.to_string(), "12.ABC.345/01DE-35");
        assert_eq!(parse("12.abc.345/01de-35").unwrap(), doc);
        assert_eq!(parse("12ABC34501DE35").unwrap(), doc);
        for input in [
            "1A.2B3.C4D/0001-79",
            "NU.VEM.000/0001-91",
            "AB.CDE.FGH/IJKL-80",
            "nuvem000000191",
        ] {
            let doc = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(doc.kind(), DocumentKind::Cnpj);
        }
    }

    #[test]
    fn invalid_cnpjs() {
        assert_eq!(
            parse("11.222.333/0001-82"),
            Err(DocumentError::CheckDigitsMismatch)
        );
        assert_eq!(
            parse("12.ABC.345/01DE-53"),
            Err(DocumentError::CheckDigitsMismatch)
        );
        assert_eq!(
            parse("12.ABD.345/01DE-35"),
            Err(DocumentError::CheckDigitsMismatch)
        );
        // Letters are never check digits.
        assert_eq!(
            parse("12.ABC.345/01DE-3A"),
            Err(DocumentError::InvalidCharacter('A'))
        );
        assert_eq!(
            parse("12.ABÇ.345/01DE-35"),
            Err(DocumentError::InvalidCharacter('Ç'))
        );
        assert_eq!(parse("00000000000000"), Err(DocumentError::RepeatedDigits));
        assert_eq!(parse("11111111111111"), Err(DocumentError::RepeatedDigits));
        assert_eq!(
            parse("11.222.333/0001-8"),
            Err(DocumentError::WrongLength { length: 13 })
        );
    }

    #[test]
    fn documented_vectors_match_the_algorithm() {
        let cases = [
            ("529982247", "52998224725"),
            ("123456789", "12345678909"),
            ("390533447", "39053344705"),
            ("112223330001", "11222333000181"),
            ("000000000001", "00000000000191"),
            ("330001670001", "33000167000101"),
            ("12ABC34501DE", "12ABC34501DE35"),
            ("1A2B3C4D0001", "1A2B3C4D000179"),
            ("NUVEM0000001", "NUVEM000000191"),
            ("ABCDEFGHIJKL", "ABCDEFGHIJKL80"),
        ];
        for (base, full) in cases {
            assert_eq!(Document::with_check_digits(base).unwrap().as_str(), full);
        }
    }

    #[test]
    fn error_messages_are_user_facing() {
        assert_eq!(
            DocumentError::CheckDigitsMismatch.to_string(),
            "check digits do not match"
        );
        assert_eq!(
            DocumentError::InvalidCharacter('#').to_string(),
            "invalid character '#'"
        );
    }

    #[test]
    fn serde_round_trip_uses_normalized_form() {
        let doc = parse("12.ABC.345/01DE-35").unwrap();
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(json, "\"12ABC34501DE35\"");
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
        assert!(serde_json::from_str::<Document>("\"12ABC34501DE36\"").is_err());
        assert_eq!(
            serde_json::to_string(&DocumentKind::Cnpj).unwrap(),
            "\"cnpj\""
        );
    }

    fn flip_check_digits(full: &str) -> Vec<String> {
        let mut out = Vec::new();
        for pos in full.len() - 2..full.len() {
            for d in '0'..='9' {
                if full.as_bytes()[pos] != d as u8 {
                    let mut s = full.to_owned();
                    s.replace_range(pos..=pos, &d.to_string());
                    out.push(s);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn cpf_with_computed_check_digits_validates(base in "[0-9]{9}") {
            prop_assume!(!base.bytes().all(|b| b == base.as_bytes()[0]));
            let doc = Document::with_check_digits(&base).unwrap();
            prop_assert_eq!(doc.kind(), DocumentKind::Cpf);
            prop_assert_eq!(&parse(&doc.to_string()).unwrap(), &doc);
            for wrong in flip_check_digits(doc.as_str()) {
                prop_assert!(parse(&wrong).is_err(), "{} accepted", wrong);
            }
        }

        #[test]
        fn cnpj_with_computed_check_digits_validates(base in "[0-9A-Z]{12}") {
            let Ok(doc) = Document::with_check_digits(&base) else {
                // Only a base whose full number repeats one digit is refused
                // (000000000000 → 00000000000000).
                prop_assert!(base.bytes().all(|b| b == b'0'));
                return Ok(());
            };
            prop_assert_eq!(doc.kind(), DocumentKind::Cnpj);
            prop_assert_eq!(&parse(&doc.to_string()).unwrap(), &doc);
            prop_assert_eq!(&parse(&doc.as_str().to_lowercase()).unwrap(), &doc);
            for wrong in flip_check_digits(doc.as_str()) {
                prop_assert!(parse(&wrong).is_err(), "{} accepted", wrong);
            }
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,40}") {
            let _ = parse(&input);
        }
    }
}
