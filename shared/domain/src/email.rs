//! Email addresses, checked for shape only (delivery proves the rest).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 254 characters")]
    TooLong,
    #[error("must not contain spaces or control characters")]
    InvalidCharacter,
    #[error("must contain exactly one @")]
    At,
    #[error("the part before @ must not be empty")]
    LocalPartEmpty,
    #[error("the part before @ must be at most 64 characters")]
    LocalPartTooLong,
    #[error("the part before @ contains invalid characters")]
    LocalPartInvalid,
    #[error("invalid domain")]
    Domain,
}

const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// A syntactically valid address. Equality is on the address as given; use
/// [`Email::normalized`] for uniqueness checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The local part is limited to RFC 5322 "dot-atom" ASCII (letters,
    /// digits, ``!#$%&'*+/=?^_`{|}~-`` and single inner dots): quoted local
    /// parts and non-ASCII (SMTPUTF8) addresses are rejected because SES does
    /// not deliver to them, and excluding `<>,;"` keeps addresses safe in
    /// mail headers.
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().count() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::InvalidCharacter);
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(EmailError::At);
        };
        if domain.contains('@') {
            return Err(EmailError::At);
        }
        if local.is_empty() {
            return Err(EmailError::LocalPartEmpty);
        }
        if local.chars().count() > MAX_LOCAL_LEN {
            return Err(EmailError::LocalPartTooLong);
        }
        if !local_part_ok(local) {
            return Err(EmailError::LocalPartInvalid);
        }
        if !domain_ok(domain) {
            return Err(EmailError::Domain);
        }
        Ok(Email(s.to_owned()))
    }

    /// The address as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lowercased address, the form used for one-account-per-email checks.
    /// Lowercasing the local part is not strictly RFC-correct, but every
    /// mainstream provider treats it case-insensitively.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

fn local_part_ok(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    local.split('.').all(|atom| !atom.is_empty())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || SPECIALS.contains(&b))
}

fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // A numeric top-level label means an IP address, not a domain.
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Email, EmailError> {
        Email::parse(s)
    }

    #[test]
    fn accepts_valid_addresses() {
        for input in [
            "ana@example.com",
            "Ana.Souza+nuvem@Empresa.com.br",
            "o'neil@sub-domain.example.org",
            "x@a.io",
            "1234@123.example",
        ] {
            assert_eq!(parse(input).unwrap().as_str(), input);
        }
        let email = parse("  Ana.Souza@Empresa.COM.br \n").unwrap();
        assert_eq!(email.as_str(), "Ana.Souza@Empresa.COM.br");
        assert_eq!(email.normalized(), "ana.souza@empresa.com.br");
    }

    #[test]
    fn rejects_invalid_addresses() {
        let cases = [
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("ana", EmailError::At),
            ("ana@@example.com", EmailError::At),
            ("a@b@example.com", EmailError::At),
            ("@example.com", EmailError::LocalPartEmpty),
            ("ana maria@example.com", EmailError::InvalidCharacter),
            (
                "ana@example.com\r\nBcc: x@y.z",
                EmailError::InvalidCharacter,
            ),
            ("ana\u{0}@example.com", EmailError::InvalidCharacter),
            (".ana@example.com", EmailError::LocalPartInvalid),
            ("ana.@example.com", EmailError::LocalPartInvalid),
            ("an..a@example.com", EmailError::LocalPartInvalid),
            ("\"ana\"@example.com", EmailError::LocalPartInvalid),
            ("ana<x>@example.com", EmailError::LocalPartInvalid),
            ("joão@example.com", EmailError::LocalPartInvalid),
            ("ana@example", EmailError::Domain),
            ("ana@", EmailError::Domain),
            ("ana@-example.com", EmailError::Domain),
            ("ana@example-.com", EmailError::Domain),
            ("ana@example..com", EmailError::Domain),
            ("ana@example.com.", EmailError::Domain),
            ("ana@exa_mple.com", EmailError::Domain),
            ("ana@192.168.0.1", EmailError::Domain),
            ("ana@[192.168.0.1]", EmailError::Domain),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert!(parse(&format!("{local64}@example.com")).is_ok());
        assert_eq!(
            parse(&format!("a{local64}@example.com")),
            Err(EmailError::LocalPartTooLong)
        );
        let label = "b".repeat(63);
        assert!(parse(&format!("a@{label}.com")).is_ok());
        assert_eq!(parse(&format!("a@b{label}.com")), Err(EmailError::Domain));
        // Four 60-char labels + ".com": 5 + 1 + (4·60 + 3) + 4 = 253 chars.
        let domain = format!("{}.com", vec!["c".repeat(60); 4].join("."));
        let long = format!("{}@{domain}", "a".repeat(5));
        assert_eq!(long.len(), 253);
        assert!(parse(&long).is_ok());
        assert!(parse(&format!("ab{}", &long[1..])).is_ok()); // 254
        assert_eq!(
            parse(&format!("abc{}", &long[1..])),
            Err(EmailError::TooLong)
        );
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Email>("\"ana@example.com\"").is_ok());
        assert!(serde_json::from_str::<Email>("\"ana\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in "\\PC{0,80}") {
            let _ = parse(&input);
        }

        #[test]
        fn normalized_is_idempotent(local in "[A-Za-z0-9][A-Za-z0-9._+-]{0,20}[A-Za-z0-9]", domain in "[A-Za-z0-9]{1,10}\\.[A-Za-z]{2,6}") {
            prop_assume!(!local.contains(".."));
            let email = parse(&format!("{local}@{domain}")).unwrap();
            let lower = parse(&email.normalized()).unwrap();
            prop_assert_eq!(lower.normalized(), email.normalized());
        }
    }
}
