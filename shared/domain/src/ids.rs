//! Prefixed, time-sortable identifiers: `acc_01j9z3…` (prefix + `_` + a
//! lowercase ULID). The prefix tells a support engineer what an id is; the
//! ULID makes ids sort by creation time.

use ulid::Ulid;

pub const ACCOUNT: &str = "acc";
pub const KEY: &str = "key";
pub const EVENT: &str = "evt";
pub const AUDIT: &str = "aud";
pub const WEBHOOK: &str = "wh";
pub const STORAGE_KEY: &str = "sk";
/// Fanned-out deliveries get derived ids, not ULIDs (see
/// [`crate::webhook::delivery::delivery_id`]); one-off ones (tests) use
/// [`new_id`].
pub const DELIVERY: &str = "dlv";
pub const ATTEMPT: &str = "att";

const ULID_LEN: usize = 26;
/// Crockford base32, lowercase (no i, l, o, u).
const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Ulid::new().to_string().to_ascii_lowercase())
}

/// The smallest id of `prefix` created at or after `at`: ids sort by time,
/// so `[lower_bound(t), …]` is a key range of everything since `t`.
pub fn lower_bound(prefix: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let ulid = Ulid::from_parts(ms, 0);
    format!("{prefix}_{}", ulid.to_string().to_ascii_lowercase())
}

/// Whether `id` has exactly the shape [`new_id`] produces for `prefix`, so
/// that malformed ids can be answered with 404 before any lookup.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    let Some(ulid) = id.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    ulid.len() == ULID_LEN
        && ulid.bytes().all(|b| ALPHABET.contains(&b))
        // 26 base32 chars hold 130 bits; a ULID is 128, so the first is ≤ 7.
        && ulid.as_bytes()[0] <= b'7'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_ids_have_their_prefix() {
        for prefix in [ACCOUNT, KEY, EVENT, AUDIT, WEBHOOK, ATTEMPT] {
            let id = new_id(prefix);
            assert!(has_prefix(&id, prefix), "{id}");
            assert_eq!(id.len(), prefix.len() + 1 + ULID_LEN);
            assert_eq!(id, id.to_ascii_lowercase());
        }
        assert!(!has_prefix(&new_id(ACCOUNT), KEY));
    }

    #[test]
    fn lower_bound_sorts_before_every_later_id() {
        let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
        let bound = lower_bound(EVENT, before);
        assert!(has_prefix(&bound, EVENT), "{bound}");
        for _ in 0..100 {
            assert!(new_id(EVENT) > bound);
        }
        let later = lower_bound(EVENT, chrono::Utc::now() + chrono::Duration::seconds(1));
        assert!(new_id(EVENT) < later);
    }

    #[test]
    fn ids_sort_by_time() {
        let earlier = format!(
            "acc_{}",
            Ulid::from_parts(1_000, u128::MAX)
                .to_string()
                .to_lowercase()
        );
        let later = format!(
            "acc_{}",
            Ulid::from_parts(1_001, 0).to_string().to_lowercase()
        );
        assert!(earlier < later);
        assert!(has_prefix(&earlier, ACCOUNT) && has_prefix(&later, ACCOUNT));
    }

    #[test]
    fn rejects_malformed_ids() {
        let ok = "acc_01j9z3k8m2n4p6q8r0s2t4v6w8";
        assert!(has_prefix(ok, "acc"));
        for bad in [
            "",
            "acc",
            "acc_",
            "acc01j9z3k8m2n4p6q8r0s2t4v6w8",
            "acc-01j9z3k8m2n4p6q8r0s2t4v6w8",
            "acc_01J9Z3K8M2N4P6Q8R0S2T4V6W8",
            "acc_01j9z3k8m2n4p6q8r0s2t4v6w",
            "acc_01j9z3k8m2n4p6q8r0s2t4v6w8x",
            "acc_01j9z3k8m2n4p6q8r0s2t4v6wu",
            "acc_81j9z3k8m2n4p6q8r0s2t4v6w8",
            "key_01j9z3k8m2n4p6q8r0s2t4v6w8",
            "xacc_01j9z3k8m2n4p6q8r0s2t4v6w8",
            "acc_01j9z3k8m2n4p6q8r0s2t4v6wé",
        ] {
            assert!(!has_prefix(bad, "acc"), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn has_prefix_never_panics(id in "\\PC{0,40}") {
            let _ = has_prefix(&id, KEY);
        }
    }
}
