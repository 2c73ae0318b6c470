//! Bucket names: the S3 naming rules, and the physical name nuvem gives a
//! tenant's bucket.
//!
//! Every tenant bucket lives in nuvem's AWS account, where S3 names are
//! global, so the real name is `<deployment prefix>-<account tag>-<tenant's
//! name>`: the prefix keeps deployments (prod, staging, a developer's stack)
//! apart, the tag keeps tenants apart, and the tenant sees only its own part.

use crate::ids;
use crate::validation::FieldError;

/// S3's limits on a bucket name, in characters (all ASCII).
pub const MIN_NAME_LEN: usize = 3;
pub const MAX_NAME_LEN: usize = 63;
/// Length of the account tag in a physical name.
pub const ACCOUNT_TAG_LEN: usize = 8;

/// Reserved by S3 (`sthree-` also covers `sthree-configurator`).
const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
/// Reserved by S3 for access point aliases (`-s3alias`), Object Lambda
/// aliases (`--ol-s3`), Multi-Region Access Points (`.mrap`), directory
/// buckets (`--x-s3`) and table buckets (`--table-s3`).
const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// Checks `name` against the S3 naming rules for general purpose buckets:
/// 3–63 characters; only lowercase letters, digits, hyphens and dots; starts
/// and ends with a letter or digit; no two adjacent dots; not shaped like an
/// IPv4 address; none of the reserved prefixes and suffixes; and not in the
/// shape of an account regional namespace name (`…-<12 digits>-<region>-an`),
/// which only the owning AWS account may create.
///
/// Errors name the field `name`: this checks what a tenant typed.
pub fn validate_bucket_name(name: &str) -> Result<(), FieldError> {
    let err = |message: &str| Err(FieldError::new("name", message));
    let len = name.chars().count();
    if !(MIN_NAME_LEN..=MAX_NAME_LEN).contains(&len) {
        return err("must be between 3 and 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return err("must contain only lowercase letters, digits, hyphens and dots");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return err("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return err("must not contain two adjacent dots");
    }
    if looks_like_ipv4(name) {
        return err("must not be formatted as an IP address");
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(FieldError::new(
            "name",
            format!("must not start with \"{prefix}\" (reserved by S3)"),
        ));
    }
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        return Err(FieldError::new(
            "name",
            format!("must not end with \"{suffix}\" (reserved by S3)"),
        ));
    }
    if looks_account_regional(name) {
        return err("must not end with an AWS account id, a region and \"-an\" (reserved by S3)");
    }
    Ok(())
}

/// Four dot-separated groups of 1–3 digits. Stricter than "a valid address"
/// on purpose: `999.1.1.1` is refused too, which costs nobody anything.
fn looks_like_ipv4(name: &str) -> bool {
    let groups: Vec<&str> = name.split('.').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()))
}

/// `<anything>-<12 digits>-<region>-an`, the account regional namespace.
fn looks_account_regional(name: &str) -> bool {
    let Some(rest) = name.strip_suffix("-an") else {
        return false;
    };
    // The region itself holds hyphens (`sa-east-1`), so look for any
    // 12-digit group before it.
    let groups: Vec<&str> = rest.split('-').collect();
    groups.len() >= 3
        && groups[1..groups.len() - 1]
            .iter()
            .any(|g| g.len() == 12 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// The stable tag of an account in its bucket names: the last
/// [`ACCOUNT_TAG_LEN`] characters of its ULID, which lie in the ULID's random
/// part (so tags of accounts created in the same millisecond still differ)
/// and are lowercase Crockford base32 (valid in a bucket name). Being a plain
/// suffix of the id, it also lets support find the account from a bucket name.
///
/// 40 random bits do not make tags unique: the adapter must still claim the
/// physical name with a conditional write before creating the bucket, since
/// S3 happily answers "already yours" for a name nuvem itself holds.
pub fn account_tag(account_id: &str) -> Result<&str, FieldError> {
    if !ids::has_prefix(account_id, ids::ACCOUNT) {
        return Err(FieldError::new("account_id", "is not an account id"));
    }
    Ok(&account_id[account_id.len() - ACCOUNT_TAG_LEN..])
}

/// How long a tenant's bucket name may be under `prefix`.
pub fn max_tenant_name_len(prefix: &str) -> usize {
    MAX_NAME_LEN.saturating_sub(prefix.len() + 1 + ACCOUNT_TAG_LEN + 1)
}

/// The real S3 name of the tenant bucket `name` of `account_id`:
/// `<prefix>-<account tag>-<name>`. Deterministic, so a retried creation
/// asks for the same bucket.
///
/// The tenant's name must be a valid bucket name by itself, without dots
/// (a dotted name breaks the `*.s3.amazonaws.com` TLS certificate under
/// virtual-hosted addressing), and short enough for the whole to fit in 63
/// characters. The deployment prefix is configuration, not user input: it is
/// checked too (the whole name must obey every rule) but a bad one is a
/// deployment error.
pub fn physical_bucket_name(
    prefix: &str,
    account_id: &str,
    name: &str,
) -> Result<String, FieldError> {
    let tag = account_tag(account_id)?;
    validate_bucket_name(name)?;
    if name.contains('.') {
        return Err(FieldError::new("name", "must not contain dots"));
    }
    let max = max_tenant_name_len(prefix);
    if name.len() > max {
        return Err(FieldError::new(
            "name",
            format!("must be at most {max} characters"),
        ));
    }
    let physical = format!("{prefix}-{tag}-{name}");
    if physical.contains('.') {
        return Err(FieldError::new("prefix", "must not contain dots"));
    }
    validate_bucket_name(&physical).map_err(|e| FieldError::new("prefix", e.message))?;
    Ok(physical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACC: &str = "acc_01j9z3k8m2n4p6q8r0s2t4v6w8";

    #[test]
    fn valid_names() {
        for ok in [
            "abc",
            "backups",
            "my-bucket-01",
            "1st.copy",
            "a.b.c",
            "192.168.5.4x",
            "1.2.3",
            "1.2.3.4.5",
            "xn-ok",
            "sthree",
            "bucket-s3alias-not",
            "backup-an",
            "x-123456789012-an",
            &"a".repeat(63),
        ] {
            assert_eq!(validate_bucket_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "",
            "ab",
            &"a".repeat(64),
            "Backups",
            "my_bucket",
            "my bucket",
            "ação",
            "-abc",
            "abc-",
            ".abc",
            "abc.",
            "a..b",
            "192.168.5.4",
            "1.2.3.4",
            "xn--abc",
            "sthree-abc",
            "sthree-configurator",
            "amzn-s3-demo-bucket",
            "abc-s3alias",
            "abc--ol-s3",
            "abc.mrap",
            "abc--x-s3",
            "abc--table-s3",
            "logs-111122223333-sa-east-1-an",
            "logs-111122223333-us-east-1-an",
        ] {
            let err = validate_bucket_name(bad).unwrap_err();
            assert_eq!(err.field, "name", "{bad}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            validate_bucket_name("ab").unwrap_err().message,
            "must be between 3 and 63 characters"
        );
        assert_eq!(
            validate_bucket_name("abc--x-s3").unwrap_err().message,
            "must not end with \"--x-s3\" (reserved by S3)"
        );
    }

    #[test]
    fn tag_is_the_ulid_tail() {
        assert_eq!(account_tag(ACC).unwrap(), "s2t4v6w8");
        assert_eq!(
            account_tag("key_01j9z3k8m2n4p6q8r0s2t4v6w8")
                .unwrap_err()
                .field,
            "account_id"
        );
        assert!(account_tag("acc_x").is_err());
    }

    #[test]
    fn physical_name_shape() {
        assert_eq!(
            physical_bucket_name("nuvem-prod", ACC, "backups"),
            Ok("nuvem-prod-s2t4v6w8-backups".to_owned())
        );
        // Deterministic: a retry asks for the same bucket.
        assert_eq!(
            physical_bucket_name("nuvem-prod", ACC, "backups"),
            physical_bucket_name("nuvem-prod", ACC, "backups")
        );
        let other = "acc_01j9z3k8m2n4p6q8r0s2t4v6w9";
        assert_ne!(
            physical_bucket_name("nuvem-prod", ACC, "backups"),
            physical_bucket_name("nuvem-prod", other, "backups")
        );
    }

    #[test]
    fn physical_name_leaves_room_for_the_prefix() {
        // 63 − "nuvem-prod-" (11) − tag (8) − "-" (1) = 43.
        assert_eq!(max_tenant_name_len("nuvem-prod"), 43);
        let fits = "a".repeat(43);
        let name = physical_bucket_name("nuvem-prod", ACC, &fits).unwrap();
        assert_eq!(name.len(), 63);
        let err = physical_bucket_name("nuvem-prod", ACC, &"a".repeat(44)).unwrap_err();
        assert_eq!(
            err,
            FieldError::new("name", "must be at most 43 characters")
        );
        assert_eq!(max_tenant_name_len(&"p".repeat(60)), 0);
    }

    #[test]
    fn physical_name_refuses_bad_tenant_names() {
        for bad in ["my.backups", "Backups", "ab", "-x-", "abc--x-s3", "a..b"] {
            let err = physical_bucket_name("nuvem-prod", ACC, bad).unwrap_err();
            assert_eq!(err.field, "name", "{bad}");
        }
        assert_eq!(
            physical_bucket_name("nuvem-prod", ACC, "my.backups").unwrap_err(),
            FieldError::new("name", "must not contain dots")
        );
        assert_eq!(
            physical_bucket_name("nuvem-prod", "acc_nope", "backups")
                .unwrap_err()
                .field,
            "account_id"
        );
    }

    #[test]
    fn bad_prefix_is_reported_as_prefix() {
        for prefix in ["Nuvem", "xn--nuvem", "nuvem.prod", "-nuvem", ""] {
            let err = physical_bucket_name(prefix, ACC, "backups").unwrap_err();
            assert_eq!(err.field, "prefix", "{prefix:?}");
        }
    }

    proptest! {
        #[test]
        fn valid_tenant_names_give_valid_physical_names(
            name in "[a-z0-9][a-z0-9-]{1,41}[a-z0-9]",
            prefix in "[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,6})?",
        ) {
            prop_assume!(validate_bucket_name(&name).is_ok());
            match physical_bucket_name(&prefix, ACC, &name) {
                Ok(physical) => {
                    prop_assert!(validate_bucket_name(&physical).is_ok());
                    prop_assert!(physical.len() <= MAX_NAME_LEN);
                    let suffix = format!("-{name}");
                    prop_assert!(physical.ends_with(&suffix));
                    prop_assert!(!physical.contains('.'));
                }
                Err(e) => {
                    prop_assert_eq!(e.field.as_str(), "name");
                    prop_assert!(name.len() > max_tenant_name_len(&prefix));
                }
            }
        }

        #[test]
        fn validate_never_panics(name in "\\PC{0,70}") {
            let _ = validate_bucket_name(&name);
        }
    }
}
