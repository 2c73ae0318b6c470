//! Reference checks of CPF, CNPJ and NFCom access keys written from the
//! published rules (weight tables as the Receita Federal and the NFCom
//! manual print them), independent of `nuvem_domain`'s own code, and
//! generators of valid documents to damage.

use proptest::prelude::*;

/// The value of a character in a check-digit sum: its ASCII code − 48, so
/// `0`–`9` are 0–9 and `A`–`Z` are 17–42 (IN RFB 2.229/2024).
fn worth(c: u8) -> u32 {
    u32::from(c) - 48
}

/// Modulo-11 check digit of `chars` under `weights` (left to right):
/// remainder 0 or 1 gives 0, otherwise 11 − remainder.
fn mod11(chars: &[u8], weights: &[u32]) -> u8 {
    assert_eq!(chars.len(), weights.len());
    let sum: u32 = chars.iter().zip(weights).map(|(&c, &w)| worth(c) * w).sum();
    match sum % 11 {
        0 | 1 => 0,
        r => (11 - r) as u8,
    }
}

const CPF_FIRST: [u32; 9] = [10, 9, 8, 7, 6, 5, 4, 3, 2];
const CPF_SECOND: [u32; 10] = [11, 10, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_FIRST: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_SECOND: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];

/// The 11 digits of the CPF with these 9 base digits.
pub fn complete_cpf(base: &str) -> String {
    let mut s = base.as_bytes().to_vec();
    assert_eq!(s.len(), 9);
    s.push(b'0' + mod11(&s, &CPF_FIRST));
    s.push(b'0' + mod11(&s, &CPF_SECOND));
    String::from_utf8(s).expect("ASCII")
}

/// The 14 characters of the CNPJ with these 12 base characters.
pub fn complete_cnpj(base: &str) -> String {
    let mut s = base.as_bytes().to_vec();
    assert_eq!(s.len(), 12);
    s.push(b'0' + mod11(&s, &CNPJ_FIRST));
    s.push(b'0' + mod11(&s, &CNPJ_SECOND));
    String::from_utf8(s).expect("ASCII")
}

/// What a CPF or CNPJ parser must make of `input`, per the documented
/// rules: surrounding whitespace trimmed, `.`, `-`, `/` and spaces ignored,
/// letters uppercased; then 11 digits with matching check digits (CPF) or
/// 12 characters `0-9A-Z` and 2 matching check digits (CNPJ), not all
/// characters the same. The normalised form, or `None` for invalid input.
pub fn reference_document(input: &str) -> Option<String> {
    let mut v = String::new();
    for c in input.trim().chars() {
        match c {
            '.' | '-' | '/' | ' ' => {}
            c if c.is_ascii_alphanumeric() => v.push(c.to_ascii_uppercase()),
            _ => return None,
        }
    }
    let b = v.as_bytes();
    if b.iter().all(|&c| Some(&c) == b.first()) {
        return None;
    }
    let ok = match b.len() {
        11 => b.iter().all(u8::is_ascii_digit) && complete_cpf(&v[..9]) == v,
        14 => b[12..].iter().all(u8::is_ascii_digit) && complete_cnpj(&v[..12]) == v,
        _ => false,
    };
    ok.then_some(v)
}

/// A valid CPF, 11 digits (a base whose completion repeats one digit, as
/// `111.111.111-11`, is refused by the rules and not generated).
pub fn valid_cpf() -> impl Strategy<Value = String> {
    "[0-9]{9}"
        .prop_map(|b| complete_cpf(&b))
        .prop_filter("all digits the same", |d| reference_document(d).is_some())
}

/// A valid CNPJ, 14 characters: numeric, or alphanumeric as from July 2026.
pub fn valid_cnpj() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{12}", "[0-9A-Z]{12}"]
        .prop_map(|b| complete_cnpj(&b))
        .prop_filter("all digits the same", |d| reference_document(d).is_some())
}

/// `doc` as people write it: bare, with the usual punctuation, spaced,
/// lowercase, padded.
pub fn written(doc: String) -> impl Strategy<Value = String> {
    (0..6u8, any::<u64>()).prop_map(move |(style, mask)| write_as(&doc, style, mask))
}

/// One of the ways of [`written`], picked by `style` (0–5); `mask` chooses
/// which letters change case and where separators go.
pub fn write_as(d: &str, style: u8, mask: u64) -> String {
    match (style, d.len()) {
        (1, 11) => format!("{}.{}.{}-{}", &d[..3], &d[3..6], &d[6..9], &d[9..]),
        (1, 14) => format!(
            "{}.{}.{}/{}-{}",
            &d[..2],
            &d[2..5],
            &d[5..8],
            &d[8..12],
            &d[12..]
        ),
        (2, _) => d.chars().flat_map(|c| [c, ' ']).collect(),
        (3, _) => crate::text::mixed_case(d, mask),
        (4, _) => format!(" \t{d}\n "),
        (5, _) => d
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep =
                    [None, Some('.'), Some('-'), Some('/')][(mask >> (2 * (i % 32))) as usize & 3];
                std::iter::once(c).chain(sep)
            })
            .collect(),
        _ => d.to_owned(),
    }
}

/// IBGE codes of the states, as the NFCom manual lists them.
pub const UF_CODES: [&str; 27] = [
    "11", "12", "13", "14", "15", "16", "17", "21", "22", "23", "24", "25", "26", "27", "28", "29",
    "31", "32", "33", "35", "41", "42", "43", "50", "51", "52", "53",
];

/// The check digit of an access key's first 43 characters: weights 2 to 9
/// from the right, starting again at 2.
pub fn access_key_digit(first43: &[u8]) -> u8 {
    let weights: Vec<u32> = (0..first43.len())
        .rev()
        .map(|from_right| 2 + (from_right as u32 % 8))
        .collect();
    mod11(first43, &weights)
}

/// A valid NFCom access key (model 62), 44 characters.
pub fn valid_access_key() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(&UF_CODES[..]),
        0..100u32,
        1..=12u32,
        valid_cnpj(),
        "[0-9]{3}",
        "[0-9]{9}",
        "[12]",
        "[0-9]",
        "[0-9]{7}",
    )
        .prop_map(|(uf, yy, mm, cnpj, series, number, emission, site, code)| {
            let mut key =
                format!("{uf}{yy:02}{mm:02}{cnpj}62{series}{number}{emission}{site}{code}");
            let digit = access_key_digit(key.as_bytes());
            key.push(char::from(b'0' + digit));
            key
        })
}

/// What an access key parser must accept: after trimming, and with spaces
/// allowed only between groups of 4, 44 characters uppercased where
/// positions 7–18 are `0-9A-Z` and the rest digits, a known state, month
/// 01–12, model 62, a valid issuer CNPJ and a matching check digit.
pub fn reference_access_key(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let key: String = if trimmed.chars().any(char::is_whitespace) {
        let groups: Vec<&str> = trimmed.split_whitespace().collect();
        if groups.iter().any(|g| g.chars().count() != 4) {
            return None;
        }
        groups.concat()
    } else {
        trimmed.to_owned()
    };
    let key = key.to_ascii_uppercase();
    let b = key.as_bytes();
    if b.len() != 44 || key.chars().count() != 44 {
        return None;
    }
    let shape = b
        .iter()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || ((6..18).contains(&i) && c.is_ascii_uppercase()));
    let month = &key[4..6];
    let valid = shape
        && UF_CODES.contains(&&key[..2])
        && ("01"..="12").contains(&month)
        && &key[20..22] == "62"
        && reference_document(&key[6..20]).is_some_and(|d| d.len() == 14)
        && b[43] == b'0' + access_key_digit(&b[..43]);
    valid.then_some(key)
}
