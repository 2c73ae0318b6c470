//! Storage keys: S3 credentials a tenant pastes into a backup client
//! (Imperius Backup's "S3 Compatible" destination, the AWS CLI, boto3).
//!
//! Each key is an IAM user of its own under a dedicated path, with one
//! inline policy written here and the template's permissions boundary. The
//! policy grants only what an S3 backup client needs, on the account's
//! buckets and nothing else: every resource it names starts with the
//! account's bucket-name prefix `<deployment prefix>-<account tag>-`, and
//! account tags all have the same length, so one account's prefix is never a
//! prefix of another's (see [`crate::bucket::physical_bucket_name`]).
//!
//! Not granted, on purpose: `s3:ListAllMyBuckets` (it lists every bucket of
//! the AWS account, other tenants' names included; clients are configured
//! with their bucket's name instead), bucket configuration (policy, ACL,
//! notifications: nuvem's usage accounting depends on them) and object
//! ACLs or tags.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bucket::{self, account_tag};
use crate::validation::{FieldError, text_field};

/// The IAM path every storage key's user lives under; the storage-keys
/// function may create and change users only below it.
pub const IAM_PATH_ROOT: &str = "/nuvem/tenants/";
/// The name of the one inline policy of a storage key's user.
pub const POLICY_NAME: &str = "nuvem-storage-access";
/// The user tag the permissions boundary reads (`aws:PrincipalTag`) to
/// confine the user to its account's buckets, whatever the inline policy says.
pub const BUCKET_TAG_KEY: &str = "nuvem-bucket-tag";
pub const ACCOUNT_TAG_KEY: &str = "nuvem-account";
/// Storage keys an account may hold at once. IAM allows 5,000 users per AWS
/// account; this keeps one tenant from taking a cell's share.
pub const MAX_KEYS_PER_ACCOUNT: u32 = 20;
/// Named buckets one key may cover (more: leave `buckets` out for all).
pub const MAX_NAMED_BUCKETS: usize = 50;
const MAX_NAME_CHARS: usize = 100;

/// What a key may do in its buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    #[default]
    ReadWrite,
    ReadOnly,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWrite => "read_write",
            Access::ReadOnly => "read_only",
        }
    }
}

/// `POST /v1/storage-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStorageKeyRequest {
    pub name: String,
    /// Names of the account's buckets; absent for all of them, present and
    /// future.
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub buckets: Option<Vec<String>>,
    #[serde(default)]
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidStorageKey {
    pub name: String,
    /// `None`: every bucket of the account. Sorted, without repeats.
    pub buckets: Option<Vec<String>>,
    pub access: Access,
}

impl NewStorageKeyRequest {
    pub fn validate(self) -> Result<ValidStorageKey, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = text_field("name", &self.name, 1, MAX_NAME_CHARS)
            .map_err(|e| errors.push(e))
            .ok();
        let buckets = match self.buckets {
            None => None,
            Some(list) if list.is_empty() => {
                errors.push(FieldError::new(
                    "buckets",
                    "name at least one bucket, or leave buckets out for all of them",
                ));
                None
            }
            Some(list) if list.len() > MAX_NAMED_BUCKETS => {
                errors.push(FieldError::new(
                    "buckets",
                    format!(
                        "at most {MAX_NAMED_BUCKETS} buckets; leave buckets out for all of them"
                    ),
                ));
                None
            }
            Some(list) => {
                for (i, b) in list.iter().enumerate() {
                    if let Err(e) = bucket::validate_bucket_name(b) {
                        errors.push(FieldError::new(format!("buckets[{i}]"), e.message));
                    }
                }
                Some(
                    list.into_iter()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                )
            }
        };
        match name {
            Some(name) if errors.is_empty() => Ok(ValidStorageKey {
                name,
                buckets,
                access: self.access,
            }),
            _ => Err(errors),
        }
    }
}

/// The IAM user of a storage key: `<deployment prefix>-<key id>` (at most
/// 20 + 1 + 29 characters, within IAM's 64).
pub fn user_name(deployment_prefix: &str, key_id: &str) -> String {
    format!("{deployment_prefix}-{key_id}")
}

/// The IAM path of an account's storage-key users:
/// `/nuvem/tenants/<deployment prefix>/<account id>/`.
pub fn user_path(deployment_prefix: &str, account_id: &str) -> String {
    format!("{IAM_PATH_ROOT}{deployment_prefix}/{account_id}/")
}

/// The ARN partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Where a key's policy points: the physical names of its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant<'a> {
    /// Every bucket of the account, present and future: its name prefix.
    AllBuckets,
    /// These physical buckets only (possibly none left, after deletions).
    Buckets(&'a [String]),
}

const BUCKET_READ: [&str; 2] = ["s3:ListBucket", "s3:GetBucketLocation"];
const BUCKET_WRITE: [&str; 1] = ["s3:ListBucketMultipartUploads"];
const OBJECT_READ: [&str; 1] = ["s3:GetObject"];
/// Writing objects (multipart uploads are `s3:PutObject` too).
const OBJECT_PUT: [&str; 1] = ["s3:PutObject"];
/// Freeing space and cleaning up uploads: still allowed while writes are
/// blocked by a hard quota, so that the tenant can get back under it.
const OBJECT_FREE: [&str; 3] = [
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];

/// The inline policy of a storage key's user.
///
/// `writes_blocked` (a hard quota reached) takes `s3:PutObject` away from a
/// read-write key and keeps everything else, deletes included.
pub fn policy_document(
    partition: &str,
    deployment_prefix: &str,
    account_id: &str,
    grant: &Grant<'_>,
    access: Access,
    writes_blocked: bool,
) -> Result<Value, FieldError> {
    let tag = account_tag(account_id)?;
    let arn = |name: &str| format!("arn:{partition}:s3:::{name}");
    let (buckets, objects): (Vec<String>, Vec<String>) = match grant {
        Grant::AllBuckets => {
            let prefix = format!("{deployment_prefix}-{tag}-");
            (
                vec![arn(&format!("{prefix}*"))],
                vec![arn(&format!("{prefix}*/*"))],
            )
        }
        Grant::Buckets(names) => {
            for name in *names {
                if !name.starts_with(&format!("{deployment_prefix}-{tag}-")) {
                    return Err(FieldError::new(
                        "buckets",
                        format!("{name} is not a bucket of account {account_id}"),
                    ));
                }
            }
            (
                names.iter().map(|n| arn(n)).collect(),
                names.iter().map(|n| arn(&format!("{n}/*"))).collect(),
            )
        }
    };
    let mut bucket_actions: Vec<&str> = BUCKET_READ.to_vec();
    let mut object_actions: Vec<&str> = OBJECT_READ.to_vec();
    if access == Access::ReadWrite {
        bucket_actions.extend(BUCKET_WRITE);
        object_actions.extend(OBJECT_FREE);
        if !writes_blocked {
            object_actions.extend(OBJECT_PUT);
        }
    }
    if buckets.is_empty() {
        // No bucket left (all deleted): a policy must hold a statement.
        return Ok(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "NoBuckets",
                "Effect": "Deny",
                "Action": "s3:*",
                "Resource": "*",
            }],
        }));
    }
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Buckets",
                "Effect": "Allow",
                "Action": bucket_actions,
                "Resource": buckets,
            },
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": objects,
            },
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACC: &str = "acc_01j9z3k8m2n4p6q8r0s2t4v6w8";
    const OTHER: &str = "acc_01j9z3k8m2n4p6q8r0s2t4v6w9";

    fn actions(doc: &Value, sid: &str) -> Vec<String> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .map(|s| {
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn resources(doc: &Value) -> Vec<String> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }

    fn request(v: Value) -> Result<ValidStorageKey, Vec<FieldError>> {
        serde_json::from_value::<NewStorageKeyRequest>(v)
            .expect("shape")
            .validate()
    }

    #[test]
    fn a_request_defaults_to_every_bucket_read_write() {
        let k = request(json!({"name": "Conector Imperius"})).unwrap();
        assert_eq!(k.buckets, None);
        assert_eq!(k.access, Access::ReadWrite);
        let k =
            request(json!({"name": "r", "buckets": ["bk2", "bk1", "bk2"], "access": "read_only"}))
                .unwrap();
        assert_eq!(k.buckets, Some(vec!["bk1".into(), "bk2".into()]));
        assert_eq!(k.access, Access::ReadOnly);
    }

    #[test]
    fn bad_requests_name_their_fields() {
        let e = request(json!({"name": "", "buckets": []})).unwrap_err();
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "buckets"]);
        let e = request(json!({"name": "x", "buckets": ["ok-name", "Bad_Name"]})).unwrap_err();
        assert_eq!(e[0].field, "buckets[1]");
        assert!(
            serde_json::from_value::<NewStorageKeyRequest>(json!({"name": "x", "admin": true}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<NewStorageKeyRequest>(json!({"name": "x", "access": "write"}))
                .is_err()
        );
    }

    #[test]
    fn read_write_lets_a_backup_client_upload_list_read_and_delete() {
        let doc = policy_document(
            "aws",
            "nuvem-t",
            ACC,
            &Grant::AllBuckets,
            Access::ReadWrite,
            false,
        )
        .unwrap();
        let objects = actions(&doc, "Objects");
        for a in [
            "s3:PutObject",
            "s3:GetObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ] {
            assert!(objects.contains(&a.to_owned()), "{a}");
        }
        let buckets = actions(&doc, "Buckets");
        for a in [
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:ListBucketMultipartUploads",
        ] {
            assert!(buckets.contains(&a.to_owned()), "{a}");
        }
        assert_eq!(
            resources(&doc),
            [
                "arn:aws:s3:::nuvem-t-4p6q8r0s2t4v6w8-*",
                "arn:aws:s3:::nuvem-t-4p6q8r0s2t4v6w8-*/*"
            ]
            .map(|s| s.replace("4p6q8r0s2t4v6w8", account_tag(ACC).unwrap()))
        );
    }

    #[test]
    fn read_only_and_blocked_writes_cannot_put() {
        let ro = policy_document(
            "aws",
            "nuvem-t",
            ACC,
            &Grant::AllBuckets,
            Access::ReadOnly,
            false,
        )
        .unwrap();
        assert_eq!(actions(&ro, "Objects"), ["s3:GetObject"]);
        let blocked = policy_document(
            "aws",
            "nuvem-t",
            ACC,
            &Grant::AllBuckets,
            Access::ReadWrite,
            true,
        )
        .unwrap();
        let objects = actions(&blocked, "Objects");
        assert!(!objects.contains(&"s3:PutObject".to_owned()));
        assert!(
            objects.contains(&"s3:DeleteObject".to_owned()),
            "deletes free space"
        );
    }

    #[test]
    fn named_buckets_must_be_the_accounts_and_none_left_denies_all() {
        let mine = bucket::physical_bucket_name("nuvem-t", ACC, "backups").unwrap();
        let theirs = bucket::physical_bucket_name("nuvem-t", OTHER, "backups").unwrap();
        let doc = policy_document(
            "aws",
            "nuvem-t",
            ACC,
            &Grant::Buckets(std::slice::from_ref(&mine)),
            Access::ReadWrite,
            false,
        )
        .unwrap();
        assert_eq!(
            resources(&doc),
            [
                format!("arn:aws:s3:::{mine}"),
                format!("arn:aws:s3:::{mine}/*")
            ]
        );
        assert!(
            policy_document(
                "aws",
                "nuvem-t",
                ACC,
                &Grant::Buckets(&[theirs]),
                Access::ReadWrite,
                false
            )
            .is_err()
        );
        let none = policy_document(
            "aws",
            "nuvem-t",
            ACC,
            &Grant::Buckets(&[]),
            Access::ReadWrite,
            false,
        )
        .unwrap();
        assert_eq!(none["Statement"][0]["Effect"], "Deny");
    }

    #[test]
    fn names_fit_iam() {
        let id = crate::ids::new_id("sk");
        let user = user_name("a-twenty-char-prefix", &id);
        assert!(user.len() <= 64, "{user}");
        assert_eq!(
            user_path("nuvem-t", ACC),
            format!("/nuvem/tenants/nuvem-t/{ACC}/")
        );
        assert_eq!(partition("sa-east-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
    }

    /// IAM's resource matching: `*` is any run of characters (`/` too).
    fn iam_glob(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, rest)) => {
                text.starts_with(head)
                    && (head.len()..=text.len()).any(|i| iam_glob(rest, &text[i..]))
            }
        }
    }

    #[test]
    fn the_glob_matches_as_iam_does() {
        assert!(iam_glob("arn:aws:s3:::p-*", "arn:aws:s3:::p-x/y"));
        assert!(!iam_glob("arn:aws:s3:::p-*/*", "arn:aws:s3:::p-x"));
        assert!(iam_glob("a", "a") && !iam_glob("a", "ab"));
    }

    proptest! {
        /// However the grant is made, no resource of one account's policy
        /// matches a bucket of another account (IAM's `*` matches anything,
        /// `/` included, so a match is a prefix test up to the first `*`).
        #[test]
        fn no_policy_reaches_another_accounts_bucket(
            names in proptest::collection::vec("[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", 0..4),
            other_name in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]",
            all in any::<bool>(),
            read_only in any::<bool>(),
            blocked in any::<bool>(),
            other_tail in "[0-7][0-9a-hjkmnp-tv-z]{25}",
        ) {
            let other = format!("acc_{other_tail}");
            prop_assume!(account_tag(&other).unwrap() != account_tag(ACC).unwrap());
            let physical: Vec<String> = names
                .iter()
                .filter_map(|n| bucket::physical_bucket_name("nuvem-t", ACC, n).ok())
                .collect();
            let grant = if all { Grant::AllBuckets } else { Grant::Buckets(&physical) };
            let access = if read_only { Access::ReadOnly } else { Access::ReadWrite };
            let doc = policy_document("aws", "nuvem-t", ACC, &grant, access, blocked).unwrap();
            if let Ok(theirs) = bucket::physical_bucket_name("nuvem-t", &other, &other_name) {
                for target in [format!("arn:aws:s3:::{theirs}"), format!("arn:aws:s3:::{theirs}/some/key")] {
                    for r in resources(&doc) {
                        prop_assert!(!iam_glob(&r, &target), "{r} reaches {target}");
                    }
                }
            }
        }
    }
}
