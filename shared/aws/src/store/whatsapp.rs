//! WhatsApp stores and their number slots, in their account's partition:
//! `WASTORE#<store>` and `WASTORE#<store>#SLOT#<n>`, so that one query of
//! the store's prefix reads the store with its three slots and no request
//! can reach another account's store. A number is claimed by one slot of
//! one store across all accounts by `WANUMBER#<phone_number_id>`, the item
//! inbound webhooks are routed by.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::whatsapp::store::{
    MAX_STORES_PER_ACCOUNT, NumberSettings, NumberStatus, Slot, StoreSettings,
};
use serde::{Deserialize, Serialize};

use super::{Item, Store, StoreError, condition_failed, n, s};
use crate::table_keys as k;

/// A store as stored (its slots are items of their own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub id: String,
    pub account_id: String,
    #[serde(flatten)]
    pub settings: StoreSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A number in a slot: its settings, the access token sealed for this
/// account and number, and what the last check against the Graph API said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberRecord {
    pub account_id: String,
    pub store_id: String,
    pub slot: Slot,
    #[serde(flatten)]
    pub settings: NumberSettings,
    /// Never returned by the API, never logged.
    pub sealed_token: String,
    #[serde(flatten)]
    pub status: NumberStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Display for NumberRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "number {} in slot {} of store {}",
            self.settings.phone_number_id,
            self.slot.get(),
            self.store_id
        )
    }
}

/// Where inbound messages to a number go: the claim of its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRoute {
    pub phone_number_id: String,
    pub account_id: String,
    pub store_id: String,
    pub slot: Slot,
}

/// A store with the numbers in its slots (at most three, by slot).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWithNumbers {
    pub store: StoreRecord,
    pub numbers: Vec<NumberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateStoreError {
    /// The account has [`MAX_STORES_PER_ACCOUNT`] stores already.
    TooMany,
    NoAccount,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutNumberError {
    /// No such store in this account.
    NoStore,
    /// Another slot (of this or any account's store) holds the number.
    Claimed,
    /// The slot changed while this request was made; try again.
    Conflict,
}

/// The sort key of the slot a number is in.
fn slot_sk(number: &NumberRecord) -> String {
    k::whatsapp_slot_sk(&number.store_id, number.slot.get())
}

/// The sort-key prefix of a store and its slots.
fn store_sk(store_id: &str) -> String {
    k::whatsapp_store_sk(store_id)
}

impl Store {
    fn store_item(&self, store: &StoreRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(store)?;
        item.insert(k::PK.into(), s(k::account_pk(&store.account_id)));
        item.insert(k::SK.into(), s(store_sk(&store.id)));
        Ok(item)
    }

    fn store_exists(
        &self,
        account_id: &str,
        store_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        self.exists_check(k::account_pk(account_id), store_sk(store_id))
    }

    /// Stores a new store and counts it on its account, in one transaction
    /// bounded by [`MAX_STORES_PER_ACCOUNT`].
    pub async fn create_whatsapp_store(
        &self,
        store: &StoreRecord,
    ) -> Result<Result<(), CreateStoreError>, StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&store.account_id)))
            .key(k::SK, s(k::ACCOUNT_SK))
            .update_expression("ADD whatsapp_store_count :one")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(whatsapp_store_count) OR whatsapp_store_count < :max)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_STORES_PER_ACCOUNT))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            self.put(self.store_item(store)?, Some("attribute_not_exists(pk)"))?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(Ok(())),
            Err(failed) if failed.first() == Some(&true) => {
                let exists = self
                    .get::<serde_json::Value>(k::account_pk(&store.account_id), k::ACCOUNT_SK)
                    .await?
                    .is_some();
                Ok(Err(if exists {
                    CreateStoreError::TooMany
                } else {
                    CreateStoreError::NoAccount
                }))
            }
            Err(failed) => Err(StoreError::Refused(failed)),
        }
    }

    /// A store with its numbers, in one query.
    pub async fn get_whatsapp_store(
        &self,
        account_id: &str,
        store_id: &str,
    ) -> Result<Option<StoreWithNumbers>, StoreError> {
        let items = self
            .query_prefix(k::account_pk(account_id), &store_sk(store_id))
            .await?;
        Ok(group_stores(items)?.into_iter().next())
    }

    /// Every store of an account with its numbers, oldest first: one query
    /// (at most 20 stores and 60 slots).
    pub async fn list_whatsapp_stores(
        &self,
        account_id: &str,
    ) -> Result<Vec<StoreWithNumbers>, StoreError> {
        let items = self
            .query_prefix(k::account_pk(account_id), k::WHATSAPP_STORE_PREFIX)
            .await?;
        group_stores(items)
    }

    async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":prefix", s(prefix));
        self.query_all(query, usize::MAX).await
    }

    /// Replaces a store's settings (the caller merged and validated them).
    /// `None`: no such store in this account.
    pub async fn update_whatsapp_store(
        &self,
        account_id: &str,
        store_id: &str,
        settings: &StoreSettings,
        now: DateTime<Utc>,
    ) -> Result<Option<StoreRecord>, StoreError> {
        let current: Option<StoreRecord> = self
            .get(k::account_pk(account_id), &store_sk(store_id))
            .await?;
        let Some(mut store) = current else {
            return Ok(None);
        };
        store.settings = settings.clone();
        store.updated_at = now;
        // Conditional on the store still existing: a concurrent delete wins.
        let put = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.store_item(&store)?))
            .condition_expression("attribute_exists(pk)");
        match put.send().await {
            Ok(_) => Ok(Some(store)),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }

    /// Deletes a store, its slots and their numbers' claims, and uncounts
    /// it, in one transaction. `false`: no such store in this account.
    pub async fn delete_whatsapp_store(
        &self,
        account_id: &str,
        store_id: &str,
    ) -> Result<bool, StoreError> {
        // The transaction is conditional on every slot still holding what
        // was read; a slot changed meanwhile means reading again.
        for _ in 0..3 {
            let Some(found) = self.get_whatsapp_store(account_id, store_id).await? else {
                return Ok(false);
            };
            let mut items = vec![self.delete_item(
                k::account_pk(account_id),
                store_sk(store_id),
                "attribute_exists(pk)",
            )?];
            for number in &found.numbers {
                items.extend(self.release_number(number)?);
            }
            let uncount = Update::builder()
                .table_name(&self.table)
                .key(k::PK, s(k::account_pk(account_id)))
                .key(k::SK, s(k::ACCOUNT_SK))
                .update_expression("ADD whatsapp_store_count :minus_one")
                .expression_attribute_values(":minus_one", n(-1))
                .build()
                .map_err(StoreError::sdk)?;
            items.push(TransactWriteItem::builder().update(uncount).build());
            if self.transact_checked(items).await?.is_ok() {
                return Ok(true);
            }
        }
        Err(StoreError::Dynamo(format!(
            "store {store_id} kept changing while it was deleted"
        )))
    }

    /// Deleting a slot's item and its number's claim, both conditional on
    /// still holding that number.
    fn release_number(&self, number: &NumberRecord) -> Result<Vec<TransactWriteItem>, StoreError> {
        let slot = Delete::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&number.account_id)))
            .key(k::SK, s(slot_sk(number)))
            .condition_expression("phone_number_id = :id")
            .expression_attribute_values(":id", s(&number.settings.phone_number_id))
            .build()
            .map_err(StoreError::sdk)?;
        let claim = Delete::builder()
            .table_name(&self.table)
            .key(
                k::PK,
                s(k::whatsapp_number_pk(&number.settings.phone_number_id)),
            )
            .key(k::SK, s(k::WHATSAPP_NUMBER_SK))
            .condition_expression("account_id = :a AND store_id = :s AND slot = :n")
            .expression_attribute_values(":a", s(&number.account_id))
            .expression_attribute_values(":s", s(&number.store_id))
            .expression_attribute_values(":n", n(number.slot.get()))
            .build()
            .map_err(StoreError::sdk)?;
        Ok(vec![
            TransactWriteItem::builder().delete(slot).build(),
            TransactWriteItem::builder().delete(claim).build(),
        ])
    }

    /// Puts `number` in its slot: claims its id for this account, store and
    /// slot (refused when any other slot holds it), replaces the slot's
    /// previous number (`previous`, as read by the caller: the write is
    /// refused if the slot changed since) and releases that number's claim.
    pub async fn put_whatsapp_number(
        &self,
        number: &NumberRecord,
        previous: Option<&NumberRecord>,
    ) -> Result<Result<(), PutNumberError>, StoreError> {
        let id = &number.settings.phone_number_id;
        let route = NumberRoute {
            phone_number_id: id.clone(),
            account_id: number.account_id.clone(),
            store_id: number.store_id.clone(),
            slot: number.slot,
        };
        let mut claim: Item = serde_dynamo::to_item(&route)?;
        claim.insert(k::PK.into(), s(k::whatsapp_number_pk(id)));
        claim.insert(k::SK.into(), s(k::WHATSAPP_NUMBER_SK));
        let claim = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim))
            .condition_expression(
                "attribute_not_exists(pk) OR (account_id = :a AND store_id = :s AND slot = :n)",
            )
            .expression_attribute_values(":a", s(&number.account_id))
            .expression_attribute_values(":s", s(&number.store_id))
            .expression_attribute_values(":n", n(number.slot.get()))
            .build()
            .map_err(StoreError::sdk)?;

        let mut slot: Item = serde_dynamo::to_item(number)?;
        slot.insert(k::PK.into(), s(k::account_pk(&number.account_id)));
        slot.insert(k::SK.into(), s(slot_sk(number)));
        let slot = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(slot));
        let slot = match previous {
            None => slot.condition_expression("attribute_not_exists(pk)"),
            Some(previous) => slot
                .condition_expression("phone_number_id = :previous")
                .expression_attribute_values(":previous", s(&previous.settings.phone_number_id)),
        }
        .build()
        .map_err(StoreError::sdk)?;

        let mut items = vec![
            self.store_exists(&number.account_id, &number.store_id)?,
            TransactWriteItem::builder().put(claim).build(),
            TransactWriteItem::builder().put(slot).build(),
        ];
        if let Some(previous) = previous.filter(|p| p.settings.phone_number_id != *id) {
            // The slot's item is replaced above; only the old claim goes.
            items.push(self.release_number(previous)?.pop().expect("the claim"));
        }
        match self.transact_checked(items).await? {
            Ok(()) => Ok(Ok(())),
            Err(failed) => Ok(Err(match failed.as_slice() {
                [true, ..] => PutNumberError::NoStore,
                [_, true, ..] => PutNumberError::Claimed,
                _ => PutNumberError::Conflict,
            })),
        }
    }

    /// The number in one slot of a store of this account.
    pub async fn get_whatsapp_number(
        &self,
        account_id: &str,
        store_id: &str,
        slot: Slot,
    ) -> Result<Option<NumberRecord>, StoreError> {
        self.get(
            k::account_pk(account_id),
            &k::whatsapp_slot_sk(store_id, slot.get()),
        )
        .await
    }

    /// Empties a slot and releases its number's claim: inbound messages to
    /// it are no longer routed from this moment. `false`: the slot was
    /// empty (or changed meanwhile).
    pub async fn delete_whatsapp_number(&self, number: &NumberRecord) -> Result<bool, StoreError> {
        Ok(self
            .transact_checked(self.release_number(number)?)
            .await?
            .is_ok())
    }

    /// Records a check's result with its event (a changed status), all at
    /// once, if the slot still holds this number with the status it was
    /// read with. `false` when either changed meanwhile.
    pub async fn record_number_check(
        &self,
        number: &NumberRecord,
        status: &NumberStatus,
        event: Option<&nuvem_domain::events::Envelope>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut update = self.number_status_update(number, status, now)?;
        update.condition_expression =
            Some("phone_number_id = :id AND #status = :previous".to_owned());
        update
            .expression_attribute_values
            .get_or_insert_with(Default::default)
            .insert(":previous".to_owned(), s(status_name(&number.status)));
        let mut items = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .update(update)
                .build(),
        ];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }

    /// The write of a number's new status, unless its slot holds another
    /// number by now (written in a transaction).
    pub(crate) fn number_status_update(
        &self,
        number: &NumberRecord,
        status: &NumberStatus,
        now: DateTime<Utc>,
    ) -> Result<aws_sdk_dynamodb::types::Update, StoreError> {
        let mut update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&number.account_id)))
            .key(k::SK, s(slot_sk(number)))
            .condition_expression("phone_number_id = :id")
            .expression_attribute_values(":id", s(&number.settings.phone_number_id))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#code", "code")
            .expression_attribute_names("#message", "message")
            .expression_attribute_values(":status", s(status_name(status)));
        update = match status {
            NumberStatus::Error { code, message } => update
                .update_expression(
                    "SET #status = :status, #code = :code, #message = :message, checked_at = :now, updated_at = :now",
                )
                .expression_attribute_values(":code", n(code))
                .expression_attribute_values(":message", s(message)),
            _ => update.update_expression(
                "SET #status = :status, checked_at = :now, updated_at = :now REMOVE #code, #message",
            ),
        };
        update.build().map_err(StoreError::sdk)
    }

    /// Which store of which account a number's messages belong to.
    pub async fn whatsapp_route(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<NumberRoute>, StoreError> {
        self.get(
            k::whatsapp_number_pk(phone_number_id),
            k::WHATSAPP_NUMBER_SK,
        )
        .await
    }
}

fn status_name(status: &NumberStatus) -> &'static str {
    match status {
        NumberStatus::Unchecked => "unchecked",
        NumberStatus::Connected => "connected",
        NumberStatus::Error { .. } => "error",
        NumberStatus::Disconnected => "disconnected",
    }
}

/// Stores and their slots from one query in sort-key order: each store's
/// item comes right before its slots'.
fn group_stores(items: Vec<serde_json::Value>) -> Result<Vec<StoreWithNumbers>, StoreError> {
    let malformed = |e: serde_json::Error| StoreError::Malformed(e.to_string());
    let mut stores: Vec<StoreWithNumbers> = Vec::new();
    for item in items {
        let sk = item.get(k::SK).and_then(|v| v.as_str()).unwrap_or_default();
        if k::is_whatsapp_slot_sk(sk) {
            let number: NumberRecord = serde_json::from_value(item).map_err(malformed)?;
            if let Some(store) = stores.last_mut().filter(|s| s.store.id == number.store_id) {
                store.numbers.push(number);
            }
        } else {
            stores.push(StoreWithNumbers {
                store: serde_json::from_value(item).map_err(malformed)?,
                numbers: Vec::new(),
            });
        }
    }
    Ok(stores)
}

/// An account's notice settings as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeRecord {
    #[serde(flatten)]
    pub settings: nuvem_domain::whatsapp::notices::NoticeSettings,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub async fn put_whatsapp_notices(
        &self,
        account_id: &str,
        notices: &NoticeRecord,
    ) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(notices)?;
        item.insert(k::PK.into(), s(k::account_pk(account_id)));
        item.insert(k::SK.into(), s(k::WHATSAPP_NOTICES_SK));
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn get_whatsapp_notices(
        &self,
        account_id: &str,
    ) -> Result<Option<NoticeRecord>, StoreError> {
        self.get(k::account_pk(account_id), k::WHATSAPP_NOTICES_SK)
            .await
    }

    /// `false` when the account had chosen none.
    pub async fn delete_whatsapp_notices(&self, account_id: &str) -> Result<bool, StoreError> {
        let delete = self.delete_item(
            k::account_pk(account_id),
            k::WHATSAPP_NOTICES_SK.into(),
            "attribute_exists(pk)",
        )?;
        Ok(self.write_all(vec![delete]).await?.is_ok())
    }
}
