//! Random secrets and their hashes, shared by access keys and activation
//! tokens.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated secret, shown to its owner once. `Debug` is redacted
/// and there is no `Display`, so it cannot end up in a log by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub(crate) fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `len` characters drawn uniformly from [`BASE62`] (log2 62 ≈ 5.95 bits
/// each), by rejection sampling OS random bytes so no character is favoured.
///
/// # Panics
/// If the OS random generator fails, which on Lambda (Linux `getrandom`)
/// does not happen once the system has booted; there is nothing sensible to
/// fall back to.
pub(crate) fn random_base62(len: usize) -> String {
    base62_from(len, |buf| {
        getrandom::fill(buf).expect("OS random number generator failed")
    })
}

/// `len` base62 characters that only the holder of `key` can compute for
/// `purpose`: HMAC-SHA256(`key`, `purpose` ‖ block number) blocks, sampled
/// as [`random_base62`] samples OS bytes. With a key of 256 random bits the
/// result is as unpredictable as a random one, and the same each time.
pub(crate) fn derived_base62(key: &str, purpose: &str, len: usize) -> String {
    let mut block: u32 = 0;
    base62_from(len, |buf| {
        for chunk in buf.chunks_mut(32) {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(purpose.as_bytes());
            mac.update(&block.to_be_bytes());
            block += 1;
            let bytes = mac.finalize().into_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    })
}

/// `len` characters of [`BASE62`] from the bytes `fill` gives, rejecting
/// those that would bias the modulo.
fn base62_from(len: usize, mut fill: impl FnMut(&mut [u8])) -> String {
    // 248 = 4 · 62: bytes at or above it would bias the modulo.
    const LIMIT: u8 = 248;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        for &b in buf.iter().filter(|&&b| b < LIMIT).take(len - out.len()) {
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    out
}

/// `n` in base62, left-padded with '0' to `width` characters (`n` must fit).
pub(crate) fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    debug_assert_eq!(n, 0, "value does not fit in {width} base62 digits");
    digits.into_iter().map(char::from).collect()
}

fn sha256(input: &str) -> [u8; 32] {
    Sha256::digest(input.as_bytes()).into()
}

/// Lowercase hex SHA-256 of `input`.
pub fn sha256_hex(input: &str) -> String {
    use fmt::Write;
    sha256(input)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether SHA-256(`input`) equals the hex digest `stored_hex` (either
/// case). The digests are compared in constant time so response timing
/// reveals nothing about how much of a guess matched.
pub fn sha256_matches(input: &str, stored_hex: &str) -> bool {
    let Some(stored) = decode_hex_32(stored_hex) else {
        return false;
    };
    sha256(input).ct_eq(&stored).into()
}

fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *byte = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("nvm_sk_abc".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "nvm_sk_abc");
    }

    #[test]
    fn random_base62_shape() {
        for len in [0, 1, 32, 43, 200] {
            let s = random_base62(len);
            assert_eq!(s.len(), len);
            assert!(s.bytes().all(is_base62));
        }
        assert_ne!(random_base62(32), random_base62(32));
    }

    proptest::proptest! {
        #[test]
        fn derived_base62_is_stable_per_key_and_purpose(
            key in "[0-9A-Za-z]{20,50}", other in "[0-9A-Za-z]{20,50}", len in 1usize..100
        ) {
            let derived = derived_base62(&key, "purpose", len);
            proptest::prop_assert_eq!(derived.len(), len);
            proptest::prop_assert!(derived.bytes().all(is_base62));
            proptest::prop_assert_eq!(&derived, &derived_base62(&key, "purpose", len));
            if len >= 16 {
                proptest::prop_assert_ne!(&derived, &derived_base62(&key, "another", len));
                if other != key {
                    proptest::prop_assert_ne!(&derived, &derived_base62(&other, "purpose", len));
                }
            }
        }
    }

    #[test]
    fn base62_fixed_pads() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 6), "00000z");
        assert_eq!(base62_fixed(62, 6), "000010");
        assert_eq!(base62_fixed(u64::from(u32::MAX), 6), "4gfFC3");
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256_matches(
            "abc",
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        ));
        assert!(!sha256_matches("abd", &sha256_hex("abc")));
        assert!(!sha256_matches("abc", "ba78"));
        assert!(!sha256_matches("abc", &"zz".repeat(32)));
        assert!(!sha256_matches("abc", &"é".repeat(32)));
    }
}
