//! What storage keys may do, kept in step with the account: the policy a
//! key's IAM user should have now (its buckets, its access, the hard
//! quota), written to IAM and recorded on the key. Used where a key is made
//! (`storage-keys`), where a bucket goes (`buckets`) and where the hard
//! quota blocks or restores writes (`quota-alerts`, `approval`).

use nuvem_domain::bucket;
use nuvem_domain::storage_key::{self, Grant};

use crate::config::{self, ConfigError};
use crate::iam::{IamError, StorageUsers};
use crate::store::{StorageKeyRecord, StorageKeyStatus, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Iam(#[from] IamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("policy: {0}")]
    Policy(String),
}

#[derive(Clone, Debug)]
pub struct StorageAccess {
    pub users: StorageUsers,
    /// Deployment prefix of every tenant bucket's physical name.
    pub prefix: String,
    /// The ARN partition of the deployment's region.
    pub partition: &'static str,
}

impl StorageAccess {
    /// From `STORAGE_KEY_BOUNDARY_ARN`, `BUCKET_PREFIX` and the region.
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let region = config::region(sdk)?;
        Ok(StorageAccess {
            users: StorageUsers::new(sdk, config::required(lookup, "STORAGE_KEY_BOUNDARY_ARN")?),
            prefix: config::required(lookup, "BUCKET_PREFIX")?,
            partition: storage_key::partition(&region),
        })
    }

    /// The inline policy `key` should have, from its record.
    pub fn policy(&self, key: &StorageKeyRecord) -> Result<serde_json::Value, AccessError> {
        let physical: Option<Vec<String>> = key.buckets.as_ref().map(|names| {
            names
                .iter()
                .filter_map(|n| bucket::physical_bucket_name(&self.prefix, &key.account_id, n).ok())
                .collect()
        });
        let grant = match &physical {
            None => Grant::AllBuckets,
            Some(list) => Grant::Buckets(list),
        };
        storage_key::policy_document(
            self.partition,
            &self.prefix,
            &key.account_id,
            &grant,
            key.access,
            key.writes_blocked,
        )
        .map_err(|e| AccessError::Policy(e.message))
    }

    /// Changes every live key of the account with `change` (which answers
    /// the key as it should be, or `None` to leave it), writing the new
    /// policy to IAM before the record, so that the record never claims
    /// less access than IAM grants. Repeatable: a failure part-way leaves
    /// the remaining keys for the next call, which the caller makes by
    /// failing (an SQS retry, a 503 the client repeats).
    pub async fn update_keys(
        &self,
        store: &Store,
        account_id: &str,
        change: impl Fn(&StorageKeyRecord) -> Option<StorageKeyRecord>,
    ) -> Result<usize, AccessError> {
        let mut changed = 0;
        for key in store.live_storage_keys(account_id).await? {
            let mut current = key;
            // A concurrent change to the key (a rotation) is re-read.
            for _ in 0..3 {
                let Some(next) = change(&current) else { break };
                if current.status == StorageKeyStatus::Active {
                    self.users
                        .put_policy(&current.iam_user, &self.policy(&next)?)
                        .await?;
                }
                if store.save_storage_key(&current, &next, None, None).await? {
                    changed += 1;
                    break;
                }
                match store.get_storage_key(account_id, &current.id).await? {
                    Some(again) => current = again,
                    None => break,
                }
            }
        }
        Ok(changed)
    }

    /// Takes the deleted bucket `name` out of every key that names it, so
    /// that a bucket made later with the same name is not reachable through
    /// an old grant.
    pub async fn forget_bucket(
        &self,
        store: &Store,
        account_id: &str,
        name: &str,
    ) -> Result<usize, AccessError> {
        self.update_keys(store, account_id, |key| {
            let names = key.buckets.as_ref()?;
            if !names.iter().any(|n| n == name) {
                return None;
            }
            let mut next = key.clone();
            next.buckets = Some(names.iter().filter(|n| *n != name).cloned().collect());
            Some(next)
        })
        .await
    }

    /// Blocks (`true`) or restores (`false`) writing for every key of the
    /// account: the hard quota.
    pub async fn set_writes_blocked(
        &self,
        store: &Store,
        account_id: &str,
        blocked: bool,
    ) -> Result<usize, AccessError> {
        self.update_keys(store, account_id, |key| {
            (key.writes_blocked != blocked).then(|| {
                let mut next = key.clone();
                next.writes_blocked = blocked;
                next
            })
        })
        .await
    }
}
