//! Phone numbers and email addresses as clients type them into signup and
//! other forms.
//!
//! Property: the parsers never panic; a Brazilian number written in any of
//! the documented ways (`+55 (11) 98765-4321`, `(011) 3333-4444`,
//! `11.3333.4444`, …) is accepted and normalised to its E.164 form, and
//! whatever is accepted is a valid E.164 Brazilian number that reads back
//! as itself. A shape-valid address is accepted as given (trimmed), and
//! whatever is accepted keeps the documented shape (one `@`, length
//! limits, no spaces or control characters, a dotted domain).

use nuvem_domain::email::Email;
use nuvem_domain::phone::{Phone, is_area_code};
use nuvem_fuzz::text::{any_char, nasty_string};
use proptest::prelude::*;

fn area_code() -> impl Strategy<Value = u8> {
    proptest::sample::select((11..=99).filter(|d| is_area_code(*d)).collect::<Vec<u8>>())
}

/// A national number: area code and subscriber (mobile or landline).
fn national() -> impl Strategy<Value = String> {
    (area_code(), prop_oneof!["9[0-9]{8}", "[2-5][0-9]{7}"])
        .prop_map(|(ddd, subscriber)| format!("{ddd}{subscriber}"))
}

/// `national` as people write it.
fn written(national: &str, style: u8) -> String {
    let (ddd, sub) = national.split_at(2);
    let (head, tail) = sub.split_at(sub.len() - 4);
    match style {
        0 => format!("+55 ({ddd}) {head}-{tail}"),
        1 => format!("55 {ddd} {sub}"),
        2 => format!("({ddd}) {head}-{tail}"),
        3 => format!("(0{ddd}) {head}-{tail}"),
        4 => format!("{ddd}.{head}.{tail}"),
        5 => format!("+55 0 {ddd} {head} {tail}"),
        6 => format!("+55{national}"),
        7 => format!("55{national}"),
        8 => format!("  {national}\t"),
        _ => national.to_owned(),
    }
}

fn phone_input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (national(), 0..10u8).prop_map(|(n, style)| written(&n, style)),
        3 => (national(), 0..10u8, any::<usize>(), any_char()).prop_map(|(n, style, at, c)| {
            let mut chars: Vec<char> = written(&n, style).chars().collect();
            let i = at % chars.len();
            chars[i] = c;
            chars.into_iter().collect()
        }),
        1 => (national(), 0..10u8, any::<usize>()).prop_map(|(n, style, at)| {
            let w = written(&n, style);
            w[..at % w.len()].to_owned()
        }),
        2 => "[+]?[0-9 ().-]{0,22}",
        1 => nasty_string(),
    ]
}

/// Whether `e164` is `+55`, a known area code and a mobile (9 digits from
/// 9) or landline (8 digits from 2 to 5) number.
fn is_brazilian_e164(e164: &str) -> bool {
    let Some(national) = e164.strip_prefix("+55") else {
        return false;
    };
    if !national.bytes().all(|b| b.is_ascii_digit()) || !(10..=11).contains(&national.len()) {
        return false;
    }
    let (ddd, sub) = national.split_at(2);
    ddd.parse().is_ok_and(is_area_code)
        && match sub.len() {
            9 => sub.starts_with('9'),
            _ => (b'2'..=b'5').contains(&sub.as_bytes()[0]),
        }
}

/// A dot-atom local part and a dotted domain.
fn valid_email() -> impl Strategy<Value = String> {
    let atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}";
    let local = proptest::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join("."));
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?";
    let domain = (proptest::collection::vec(label, 1..4), "[a-z]{2,6}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
    (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
}

fn email_input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => valid_email(),
        3 => (valid_email(), any::<usize>(), any_char()).prop_map(|(e, at, c)| {
            let mut chars: Vec<char> = e.chars().collect();
            let i = at % (chars.len() + 1);
            chars.insert(i, c);
            chars.into_iter().collect()
        }),
        1 => (valid_email(), 60..300usize).prop_map(|(e, n)| format!("{}{e}", "a".repeat(n))),
        1 => "[a-z.@-]{0,12}",
        2 => nasty_string(),
    ]
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn a_written_number_normalises_to_e164(n in national(), style in 0..10u8) {
        let input = written(&n, style);
        let parsed = Phone::parse(&input);
        prop_assert_eq!(parsed.map(|p| p.e164().to_owned()), Ok(format!("+55{n}")), "{:?}", input);
    }

    #[test]
    fn whatever_is_accepted_is_a_brazilian_e164_number(input in phone_input()) {
        let parsed = Phone::parse(&input);
        let from_json = serde_json::from_value::<Phone>(serde_json::Value::String(input.clone()));
        prop_assert_eq!(from_json.ok(), parsed.clone().ok());
        match parsed {
            Ok(phone) => {
                prop_assert!(is_brazilian_e164(phone.e164()), "{:?} → {}", input, phone);
                prop_assert_eq!(Phone::parse(phone.e164()), Ok(phone.clone()));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn an_unknown_area_code_is_refused(
        // Area codes never start with 0 (a leading 0 is the trunk prefix).
        ddd in proptest::sample::select((10..100).filter(|d| !is_area_code(*d)).collect::<Vec<u8>>()),
        sub in "9[0-9]{8}",
    ) {
        let input = format!("+55 {ddd:02} {sub}");
        prop_assert!(Phone::parse(&input).is_err(), "{} accepted", input);
    }

    #[test]
    fn a_shape_valid_address_is_accepted(email in valid_email(), pad in "[ \t\n]{0,2}") {
        let input = format!("{pad}{email}{pad}");
        let parsed = Email::parse(&input);
        prop_assert!(parsed.is_ok(), "{:?} refused: {:?}", input, parsed);
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.as_str(), email.as_str());
        prop_assert_eq!(parsed.normalized(), email.to_ascii_lowercase());
    }

    #[test]
    fn whatever_address_is_accepted_keeps_its_shape(input in email_input()) {
        let parsed = Email::parse(&input);
        let from_json = serde_json::from_value::<Email>(serde_json::Value::String(input.clone()));
        prop_assert_eq!(from_json.ok(), parsed.clone().ok());
        if let Ok(email) = parsed {
            let s = email.as_str();
            prop_assert_eq!(s, input.trim());
            prop_assert!(s.chars().count() <= 254);
            prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert_eq!(s.matches('@').count(), 1);
            let (local, domain) = s.split_once('@').unwrap();
            prop_assert!(!local.is_empty() && local.chars().count() <= 64);
            prop_assert!(local.is_ascii() && !local.contains(['<', '>', ',', ';', '"', ' ']));
            prop_assert!(!local.starts_with('.') && !local.ends_with('.') && !local.contains(".."));
            prop_assert!(domain.contains('.') && domain.is_ascii());
            prop_assert_eq!(Email::parse(s), Ok(email.clone()));
        }
    }
}
