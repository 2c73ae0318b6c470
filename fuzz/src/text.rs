//! Text and bytes as outsiders send them: any Unicode (control characters,
//! BOMs, right-to-left marks, combining marks, astral planes), long runs,
//! and raw bytes that are not UTF-8 at all.

use proptest::prelude::*;

/// Characters that break naive parsers, mixed into generated text.
pub const SPECIAL_CHARS: &[char] = &[
    '\0',
    '\t',
    '\n',
    '\r',
    '\u{0b}',
    '\u{0c}',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200e}',
    '\u{202e}',
    '\u{2028}',
    '\u{3000}',
    '\u{feff}',
    '\u{fffd}',
    '\u{1f600}',
    '\u{10ffff}',
    '\u{301}',
    'ß',
    'İ',
    'ı',
    'ﬃ',
    'Ⅻ',
    '٣',
    '𝟘',
    '"',
    '\\',
    '\'',
    '%',
    '+',
    '/',
    '.',
    '-',
    ',',
    ';',
    ' ',
    '#',
    '&',
    '=',
    '?',
    '@',
    ':',
    '{',
    '}',
    '[',
    ']',
    '<',
    '>',
];

/// One character: mostly ASCII, often a special one, sometimes anything.
pub fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        3 => proptest::sample::select(SPECIAL_CHARS),
        1 => any::<char>(),
    ]
}

/// Text of up to `max` characters from [`any_char`].
pub fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any_char(), 0..=max).prop_map(String::from_iter)
}

/// Text that is sometimes very long: `n` copies of a short piece (up to
/// `max_repeat`), to cross every length limit.
pub fn long_text(max_repeat: usize) -> impl Strategy<Value = String> {
    (text(4), 0..=max_repeat).prop_map(|(piece, n)| {
        let piece = if piece.is_empty() {
            "a".to_owned()
        } else {
            piece
        };
        piece.repeat(n)
    })
}

/// Any text: short nasty text most of the time, sometimes a long run.
pub fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => text(24),
        1 => long_text(5_000),
        1 => Just(String::new()),
    ]
}

/// Raw bytes, not necessarily UTF-8.
pub fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

/// Replaces, inserts or deletes bytes of `bytes`, or cuts it short: small
/// damage to an otherwise well-formed input.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

pub fn byte_edits(max: usize) -> impl Strategy<Value = Vec<ByteEdit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Set(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Insert(at, b)),
        any::<usize>().prop_map(ByteEdit::Delete),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ];
    proptest::collection::vec(edit, 0..=max)
}

/// `bytes` with `edits` applied; positions wrap around the current length.
pub fn apply_byte_edits(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            ByteEdit::Set(at, b) if len > 0 => bytes[at % len] = b,
            ByteEdit::Insert(at, b) => bytes.insert(at % (len + 1), b),
            ByteEdit::Delete(at) if len > 0 => {
                bytes.remove(at % len);
            }
            ByteEdit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// `s` with its ASCII letters' case flipped where `mask` has a bit set.
pub fn mixed_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}
