//! Brazilian phone numbers, normalized to E.164 (`+5511987654321`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Area codes (DDD) in use, per Anatel's national numbering plan.
const AREA_CODES: &[u8] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, // SP
    21, 22, 24, // RJ
    27, 28, // ES
    31, 32, 33, 34, 35, 37, 38, // MG
    41, 42, 43, 44, 45, 46, // PR
    47, 48, 49, // SC
    51, 53, 54, 55, // RS
    61, // DF
    62, 64, // GO
    63, // TO
    65, 66, // MT
    67, // MS
    68, // AC
    69, // RO
    71, 73, 74, 75, 77, // BA
    79, // SE
    81, 87, // PE
    82, // AL
    83, // PB
    84, // RN
    85, 88, // CE
    86, 89, // PI
    91, 93, 94, // PA
    92, 97, // AM
    95, // RR
    96, // AP
    98, 99, // MA
];

/// Whether `ddd` is a Brazilian area code in use.
pub fn is_area_code(ddd: u8) -> bool {
    AREA_CODES.contains(&ddd)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("invalid character {0:?}")]
    InvalidCharacter(char),
    #[error("only Brazilian numbers (+55) are accepted")]
    CountryCode,
    #[error("must have a 2-digit area code followed by an 8 or 9-digit number")]
    WrongLength,
    #[error("{0} is not a Brazilian area code")]
    AreaCode(String),
    #[error("mobile numbers must have 9 digits starting with 9")]
    Mobile,
    #[error("landline numbers must have 8 digits starting with 2 to 5")]
    Landline,
}

/// A Brazilian mobile or landline number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Accepts `+55 (11) 98765-4321`, `55 11 987654321`, `(011) 3333-4444`,
    /// `11.3333.4444` and the like: an optional `+55`/`55` country code or a
    /// trunk `0`, then the area code and the number, with `( ) - .` and
    /// spaces as separators.
    pub fn parse(input: &str) -> Result<Phone, PhoneError> {
        let input = input.trim();
        let (has_plus, rest) = match input.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '(' | ')' | '-' | '.' | ' ' => {}
                c => return Err(PhoneError::InvalidCharacter(c)),
            }
            // `+55 0 11 98765 4321` is the longest accepted form (14 digits).
            if digits.len() > 14 {
                return Err(PhoneError::WrongLength);
            }
        }

        let national = if has_plus {
            let national = digits.strip_prefix("55").ok_or(PhoneError::CountryCode)?;
            national.strip_prefix('0').unwrap_or(national)
        } else if let Some(national) = digits.strip_prefix('0') {
            national
        } else if digits.len() >= 12 {
            // Area codes never start with 0, and a national number has at
            // most 11 digits, so 12 or 13 digits must carry the country code.
            digits.strip_prefix("55").ok_or(PhoneError::WrongLength)?
        } else {
            &digits
        };

        if !(10..=11).contains(&national.len()) {
            return Err(PhoneError::WrongLength);
        }
        let (ddd, subscriber) = national.split_at(2);
        if !ddd.parse().is_ok_and(is_area_code) {
            return Err(PhoneError::AreaCode(ddd.to_owned()));
        }
        let first = subscriber.as_bytes()[0];
        match subscriber.len() {
            9 if first != b'9' => return Err(PhoneError::Mobile),
            8 if !(b'2'..=b'5').contains(&first) => return Err(PhoneError::Landline),
            _ => {}
        }
        Ok(Phone(format!("+55{national}")))
    }

    pub fn e164(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Phone {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Phone::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(phone: Phone) -> String {
        phone.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e164(input: &str) -> Result<String, PhoneError> {
        Phone::parse(input).map(|p| p.e164().to_owned())
    }

    #[test]
    fn accepts_common_formats() {
        for input in [
            "+55 (11) 98765-4321",
            "+5511987654321",
            "55 11 98765 4321",
            "5511987654321",
            "(11) 98765-4321",
            "11987654321",
            "011 98765-4321",
            "(011) 98765.4321",
            "+55 0 11 98765-4321",
            "  11 9 8765 4321  ",
        ] {
            assert_eq!(e164(input).as_deref(), Ok("+5511987654321"), "{input}");
        }
        for input in [
            "(21) 3333-4444",
            "+55 21 3333 4444",
            "552133334444",
            "02133334444",
        ] {
            assert_eq!(e164(input).as_deref(), Ok("+552133334444"), "{input}");
        }
        // DDD 55 (RS) must not be mistaken for the country code.
        assert_eq!(e164("(55) 99999-8888").as_deref(), Ok("+5555999998888"));
        assert_eq!(e164("55 3333-4444").as_deref(), Ok("+555533334444"));
        assert_eq!(e164("+55 55 3333-4444").as_deref(), Ok("+555533334444"));
    }

    #[test]
    fn rejects_invalid_numbers() {
        assert_eq!(e164("+1 212 555 0100"), Err(PhoneError::CountryCode));
        assert_eq!(e164("+351 912 345 678"), Err(PhoneError::CountryCode));
        assert_eq!(e164("98765-4321"), Err(PhoneError::WrongLength));
        assert_eq!(e164(""), Err(PhoneError::WrongLength));
        assert_eq!(e164("11 98765-43210"), Err(PhoneError::WrongLength));
        assert_eq!(
            e164("(20) 98765-4321"),
            Err(PhoneError::AreaCode("20".into()))
        );
        assert_eq!(
            e164("(10) 3333-4444"),
            Err(PhoneError::AreaCode("10".into()))
        );
        assert_eq!(
            e164("(23) 3333-4444"),
            Err(PhoneError::AreaCode("23".into()))
        );
        assert_eq!(e164("(11) 88765-4321"), Err(PhoneError::Mobile));
        assert_eq!(e164("(11) 1333-4444"), Err(PhoneError::Landline));
        assert_eq!(e164("(11) 9876-5432"), Err(PhoneError::Landline));
        assert_eq!(
            e164("11 98765/4321"),
            Err(PhoneError::InvalidCharacter('/'))
        );
        assert_eq!(
            e164("11 98765+4321"),
            Err(PhoneError::InvalidCharacter('+'))
        );
        assert_eq!(
            e164("1198765432１"),
            Err(PhoneError::InvalidCharacter('１'))
        );
        assert_eq!(e164(&"1".repeat(500)), Err(PhoneError::WrongLength));
    }

    #[test]
    fn area_code_table() {
        let valid: Vec<u8> = (10..=99).filter(|&d| is_area_code(d)).collect();
        assert_eq!(valid.len(), 67);
        for gap in [
            10, 20, 23, 25, 26, 29, 30, 36, 39, 40, 50, 52, 56, 57, 58, 59, 60, 70, 72, 76, 78, 80,
            90,
        ] {
            assert!(!is_area_code(gap), "{gap}");
        }
    }

    #[test]
    fn serde_uses_e164() {
        let phone = Phone::parse("(11) 98765-4321").unwrap();
        assert_eq!(serde_json::to_string(&phone).unwrap(), "\"+5511987654321\"");
        assert_eq!(
            serde_json::from_str::<Phone>("\"11 3333 4444\"")
                .unwrap()
                .e164(),
            "+551133334444"
        );
    }

    fn number() -> impl Strategy<Value = (u8, String)> {
        let ddd = proptest::sample::select(AREA_CODES);
        let subscriber = prop_oneof!["9[0-9]{8}", "[2-5][0-9]{7}"];
        (ddd, subscriber)
    }

    proptest! {
        #[test]
        fn formatting_variants_normalize_alike(
            (ddd, subscriber) in number(),
            prefix in proptest::sample::select(&["", "+55", "+55 ", "55", "55 ", "0", "+55 0"][..]),
            paren in any::<bool>(),
            after_ddd in proptest::sample::select(&["", " ", "-", ". "][..]),
            inside in proptest::sample::select(&["", "-", " ", "."][..]),
            pad in proptest::sample::select(&["", " ", "  "][..]),
        ) {
            let ddd = if paren { format!("({ddd})") } else { ddd.to_string() };
            let (head, tail) = subscriber.split_at(subscriber.len() - 4);
            let input = format!("{pad}{prefix}{ddd}{after_ddd}{head}{inside}{tail}{pad}");
            let plain = format!("{}{subscriber}", ddd.trim_matches(['(', ')']));
            let expected = format!("+55{plain}");
            prop_assert_eq!(e164(&input), Ok(expected.clone()), "{}", input);
            prop_assert_eq!(e164(&plain), Ok(expected));
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,30}") {
            let _ = Phone::parse(&input);
        }
    }
}
