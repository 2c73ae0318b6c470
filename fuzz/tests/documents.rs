//! Brazilian taxpayer documents (CPF, CNPJ, alphanumeric CNPJ) and NFCom
//! access keys, as clients type them into signup, client and CSV fields
//! and as the RPA reads them off invoices.
//!
//! Property: the parsers never panic and agree exactly with reference
//! checks written from the published rules: every valid document, however
//! punctuated or cased, is accepted and normalised to its 11 or 14
//! characters, and every invalid one (a changed digit the check digits
//! catch, a wrong length, a stray character) is refused.

use nuvem_domain::document::{Document, DocumentKind};
use nuvem_domain::rpa::nfcom::AccessKey;
use nuvem_fuzz::documents::{
    reference_access_key, reference_document, valid_access_key, valid_cnpj, valid_cpf, write_as,
};
use nuvem_fuzz::text::{any_char, mixed_case, nasty_string, text};
use proptest::prelude::*;

/// `s` with the character at `at` (modulo its length) replaced by `c`.
fn replace_char(s: &str, at: usize, c: char) -> String {
    let n = s.chars().count().max(1);
    s.chars()
        .enumerate()
        .map(|(i, old)| if i == at % n { c } else { old })
        .collect()
}

/// `s` with two neighbouring characters swapped.
fn swap_chars(s: &str, at: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() >= 2 {
        let i = at % (chars.len() - 1);
        chars.swap(i, i + 1);
    }
    chars.into_iter().collect()
}

/// Characters a damaged document gets: digits and letters mostly.
fn doc_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('0', '9'),
        2 => proptest::char::range('A', 'Z'),
        1 => proptest::char::range('a', 'z'),
        1 => any_char(),
    ]
}

/// A valid document (written in some way), one damaged in one place, or
/// anything at all.
fn document_input() -> impl Strategy<Value = String> {
    let valid = prop_oneof![valid_cpf(), valid_cnpj()];
    prop_oneof![
        3 => (valid.clone(), 0..6u8, any::<u64>()).prop_map(|(d, style, mask)| write_as(&d, style, mask)),
        3 => (valid.clone(), any::<usize>(), doc_char())
            .prop_map(|(d, at, c)| replace_char(&d, at, c)),
        1 => (valid.clone(), any::<usize>()).prop_map(|(d, at)| swap_chars(&d, at)),
        1 => (valid.clone(), any::<usize>()).prop_map(|(d, at)| d[..at % d.len()].to_owned()),
        1 => (valid, doc_char()).prop_map(|(d, c)| format!("{d}{c}")),
        1 => "[0-9A-Za-z./ -]{0,20}",
        2 => nasty_string(),
    ]
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn documents_parse_as_the_rules_say(input in document_input()) {
        let parsed = Document::parse(&input);
        let expected = reference_document(&input);
        prop_assert_eq!(
            parsed.as_ref().ok().map(Document::as_str),
            expected.as_deref(),
            "{:?}: {:?}", input, parsed
        );
        // Deserialising a JSON string goes through the same rule.
        let from_json = serde_json::from_value::<Document>(serde_json::Value::String(input.clone()));
        prop_assert_eq!(from_json.ok(), parsed.clone().ok());
        if let Ok(doc) = parsed {
            let kind = if doc.as_str().len() == 11 { DocumentKind::Cpf } else { DocumentKind::Cnpj };
            prop_assert_eq!(doc.kind(), kind);
            // The formatted form reads back as the same document.
            prop_assert_eq!(Document::parse(&doc.to_string()), Ok(doc.clone()));
        } else {
            // The error message is the user-facing text of a 422.
            prop_assert!(!parsed.unwrap_err().to_string().is_empty());
        }
    }

    #[test]
    fn a_valid_cpf_is_accepted_however_it_is_written(cpf in valid_cpf(), style in 0..6u8, mask: u64) {
        let input = write_as(&cpf, style, mask);
        let doc = Document::parse(&input);
        prop_assert!(doc.is_ok(), "{:?} refused: {:?}", input, doc);
        let doc = doc.unwrap();
        prop_assert_eq!(doc.kind(), DocumentKind::Cpf);
        prop_assert_eq!(doc.as_str(), cpf.as_str());
    }

    #[test]
    fn a_valid_cnpj_is_accepted_however_it_is_written(cnpj in valid_cnpj(), style in 0..6u8, mask: u64) {
        let input = write_as(&cnpj, style, mask);
        let doc = Document::parse(&input);
        prop_assert!(doc.is_ok(), "{:?} refused: {:?}", input, doc);
        let doc = doc.unwrap();
        prop_assert_eq!(doc.kind(), DocumentKind::Cnpj);
        prop_assert_eq!(doc.as_str(), cnpj.as_str());
    }

    #[test]
    fn a_changed_check_digit_is_refused(doc in prop_oneof![valid_cpf(), valid_cnpj()], which in 0..2usize, delta in 1..10u8) {
        let mut bytes = doc.clone().into_bytes();
        let at = bytes.len() - 1 - which;
        bytes[at] = b'0' + (bytes[at] - b'0' + delta) % 10;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(Document::parse(&changed).is_err(), "{} accepted", changed);
    }

    #[test]
    fn check_digit_completion_never_panics(base in prop_oneof!["[0-9A-Za-z]{9}", "[0-9A-Za-z]{12}", text(16)]) {
        if let Ok(doc) = Document::with_check_digits(&base) {
            prop_assert_eq!(reference_document(doc.as_str()), Some(doc.as_str().to_owned()));
        }
    }

    #[test]
    fn access_keys_parse_as_the_rules_say(input in access_key_input()) {
        let parsed = AccessKey::parse(&input);
        let expected = reference_access_key(&input);
        prop_assert_eq!(
            parsed.as_ref().ok().map(AccessKey::as_str),
            expected.as_deref(),
            "{:?}: {:?}", input, parsed
        );
        if let Ok(key) = parsed {
            let k = key.as_str().to_owned();
            prop_assert_eq!(key.model(), "62");
            prop_assert_eq!(key.cnpj(), &k[6..20]);
            prop_assert_eq!(key.uf_code(), &k[..2]);
            let (year, month) = key.year_month();
            prop_assert_eq!(key.month().to_string(), format!("{year:04}-{month:02}"));
            prop_assert_eq!(u32::from(key.series()), k[22..25].parse::<u32>().unwrap());
            prop_assert_eq!(key.number(), k[25..34].parse::<u32>().unwrap());
            prop_assert_eq!(AccessKey::parse(&key.to_string()), Ok(key.clone()));
        }
    }

    #[test]
    fn a_valid_access_key_is_accepted_as_printed(key in valid_access_key(), grouped: bool, mask: u64) {
        let mut input = if grouped {
            key.as_bytes().chunks(4).map(|g| std::str::from_utf8(g).unwrap()).collect::<Vec<_>>().join(" ")
        } else {
            key.clone()
        };
        input = mixed_case(&input, mask);
        let parsed = AccessKey::parse(&input);
        prop_assert!(parsed.is_ok(), "{:?} refused: {:?}", input, parsed);
        prop_assert_eq!(parsed.unwrap().to_string(), key);
    }
}

/// A valid key, a damaged one, 44 characters of the right alphabet, or
/// anything at all.
fn access_key_input() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => valid_access_key(),
        4 => (valid_access_key(), any::<usize>(), doc_char())
            .prop_map(|(k, at, c)| replace_char(&k, at, c)),
        1 => (valid_access_key(), any::<usize>()).prop_map(|(k, at)| swap_chars(&k, at)),
        1 => (valid_access_key(), any::<usize>()).prop_map(|(k, at)| {
            // A space in a wrong place of the printed form.
            let at = at % k.len();
            format!("{} {}", &k[..at], &k[at..])
        }),
        1 => "[0-9A-Z]{44}",
        1 => "[0-9a-z ]{40,50}",
        1 => nasty_string(),
    ]
}
