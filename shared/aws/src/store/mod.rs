//! The single DynamoDB table. Uniqueness is decided by conditional writes
//! and transactions, never by reading first.

mod accounts;
mod activation;
mod buckets;
mod conversations;
mod deliveries;
mod keys;
mod lanes;
mod outbound;
mod outbox;
mod rate;
mod reconcile;
mod requests;
mod rollups;
mod rpa;
mod rpa_executions;
mod rpa_processes;
mod rpa_runs;
mod rpa_schedules;
mod rpa_uploads;
mod storage_keys;
mod usage;
mod webhooks;
mod whatsapp;

pub use accounts::{AccountRecord, AuditRecord, CreateAccountError};
pub use activation::{ActivationRecord, RedeemError, Redeemed};
pub use buckets::{BucketClaim, BucketRecord, BucketState, BucketUsage, LicenseChange};
pub use conversations::{
    ConversationEntry, ConversationRecord, Direction, MessageRecord, NewMessage, StatusOutcome,
};
pub use deliveries::{AttemptClaim, AttemptOutcome, AttemptRecord, DeliveryStatus};
pub use keys::{KeyRecord, RevokeOutcome};
pub use lanes::LaneEntry;
pub use outbound::OutboundRecord;
pub use reconcile::{ReconcileCursor, ReconcileRun, RecordedObject};
pub use requests::Once;
pub use rpa::{CarrierRecord, ClientFilter, ClientRecord, ClientWriteError, DeleteCarrierOutcome};
pub use rpa_executions::{ErrorKind, ExecutionError, ExecutionRecord, StoredLogLine};
pub use rpa_processes::{ProcessFilter, ProcessRecord};
pub use rpa_runs::{RUN_ID_PREFIX, RunOutcome, RunProgress, ScheduleRunRecord};
pub use rpa_schedules::{ScheduleRecord, ScheduleWriteError};
pub use rpa_uploads::UploadRecord;
pub use storage_keys::{StorageKeyRecord, StorageKeyStatus};
pub use usage::{AccountUsage, StoredObject};
pub use webhooks::{
    CreateEndpointError, EndpointRecord, EndpointRoute, HealthChange, MAX_ENDPOINTS_PER_ACCOUNT,
    ROTATION_OVERLAP,
};
pub use whatsapp::{
    CreateStoreError, NoticeRecord, NumberRecord, NumberRoute, PutNumberError, StoreRecord,
    StoreWithNumbers,
};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nuvem_domain::events::Envelope;
use serde::Serialize;

use crate::lazy::OnFirstUse;
use crate::table_keys as k;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb: {0}")]
    Dynamo(String),
    #[error("stored item is malformed: {0}")]
    Malformed(String),
    /// A transaction refused by a condition its caller did not expect.
    #[error("transaction refused by its conditions: {0:?}")]
    Refused(Vec<bool>),
    /// DynamoDB was slow (past the operation timeout), unreachable,
    /// throttling or failing: the same request may pass later.
    #[error("dynamodb unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A failed DynamoDB call, or a request that could not be built.
    pub(crate) fn sdk(e: impl IntoStoreError) -> Self {
        e.into_store_error()
    }
}

/// What [`StoreError::sdk`] takes: the SDK's errors.
pub(crate) trait IntoStoreError {
    fn into_store_error(self) -> StoreError;
}

impl<E, R> IntoStoreError for aws_sdk_dynamodb::error::SdkError<E, R>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn into_store_error(self) -> StoreError {
        crate::sdk_error::classify(self, StoreError::Unavailable, StoreError::Dynamo)
    }
}

/// A request missing a required field: a fault of the code, never of AWS.
impl IntoStoreError for aws_sdk_dynamodb::error::BuildError {
    fn into_store_error(self) -> StoreError {
        StoreError::Dynamo(aws_sdk_dynamodb::error::DisplayErrorContext(self).to_string())
    }
}

impl crate::sdk_error::Unavailable for StoreError {
    fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(e: serde_dynamo::Error) -> Self {
        StoreError::Malformed(e.to_string())
    }
}

/// One page of a listing and the opaque cursor of the next, if any.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the cursor is not valid")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ListError {
    /// For a listing the store resumes from its own cursor: an unreadable
    /// one is malformed data, not a client's mistake.
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            ListError::Store(e) => e,
            ListError::BadCursor => StoreError::Malformed("own cursor".into()),
        }
    }
}

/// DynamoDB adapter bound to the table; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: OnFirstUse<Client>,
    pub(crate) table: String,
    /// How long events and delivery attempts are kept (DynamoDB TTL).
    pub(crate) retention: chrono::Duration,
}

/// Events and delivery attempts are kept this long unless configured.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

impl Store {
    /// A store whose client is built by the first call that needs it, or at
    /// once when this init runs ahead of any request
    /// ([`crate::config::init_ahead_of_requests`]; see [`OnFirstUse`]).
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::built_when(config, table, crate::config::init_ahead_of_requests())
    }

    pub(crate) fn built_when(
        config: &aws_config::SdkConfig,
        table: impl Into<String>,
        now: bool,
    ) -> Self {
        let db = OnFirstUse::new(config, Client::new);
        Self::with_client(if now { db.built() } else { db }, table)
    }

    /// How long events and delivery attempts are kept (`RETENTION_DAYS`).
    pub fn with_retention_days(mut self, days: i64) -> Self {
        self.retention = chrono::Duration::days(days);
        self
    }

    /// A store over a client configured by the caller (e.g. with an
    /// interceptor that counts requests, in `quota-alerts`' bench).
    pub fn from_client(db: Client, table: impl Into<String>) -> Self {
        Self::with_client(OnFirstUse::ready(db), table)
    }

    fn with_client(db: OnFirstUse<Client>, table: impl Into<String>) -> Self {
        Store {
            db,
            table: table.into(),
            retention: chrono::Duration::days(DEFAULT_RETENTION_DAYS),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(StoreError::sdk)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes items all or nothing.
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.db
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Writes items all or nothing. `Err(failed)` says which items' conditions
    /// refused the transaction (the expected outcome of a lost race or a
    /// duplicate); anything else is a fault.
    pub(crate) async fn transact_checked(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<bool>>, StoreError> {
        let mut attempt = 0;
        loop {
            let result = self
                .db
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            match cancellation_codes(&e) {
                Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                    return Ok(Err(codes
                        .iter()
                        .map(|c| c == "ConditionalCheckFailed")
                        .collect()));
                }
                // Another transaction held an item: DynamoDB asks to retry.
                Some(codes) if codes.iter().any(|c| c == "TransactionConflict") && attempt < 4 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                _ => return Err(StoreError::sdk(e)),
            }
        }
    }

    /// Writes one item alone (a plain write: half the cost of a
    /// transaction) or several all or nothing; `Err(())` when a condition
    /// refused it.
    ///
    /// A delete (or condition check) alone still goes as a one-item
    /// transaction: a deleted item keeps no mark to tell its own retry by,
    /// while the transaction's `ClientRequestToken`, kept by the SDK across
    /// retries, is answered as done by DynamoDB. A plain conditional delete
    /// retried after its first attempt applied would report the caller's own
    /// deletion as "there was none".
    pub(crate) async fn write_all(
        &self,
        mut items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), ()>, StoreError> {
        if items.len() > 1 {
            return Ok(self.transact_checked(items).await?.map_err(|_| ()));
        }
        let Some(item) = items.pop() else {
            return Ok(Ok(()));
        };
        // Each write is marked, so that its own retry can be told from
        // another writer's change (see `refused_by_itself`).
        let write_id = nuvem_domain::ids::new_id("w");
        let result = if let Some(u) = item.update {
            let mut values = u.expression_attribute_values.unwrap_or_default();
            values.insert(WRITE_ID_VALUE.to_owned(), s(&write_id));
            self.db
                .update_item()
                .table_name(u.table_name)
                .set_key(Some(u.key))
                .update_expression(marked(&u.update_expression))
                .set_condition_expression(u.condition_expression)
                .set_expression_attribute_names(u.expression_attribute_names)
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (update_refused(&e), condition_failed(&e), StoreError::sdk(e)))
        } else if let Some(p) = item.put {
            let mut item = p.item;
            item.insert(WRITE_ID.to_owned(), s(&write_id));
            self.db
                .put_item()
                .table_name(p.table_name)
                .set_item(Some(item))
                .set_condition_expression(p.condition_expression)
                .set_expression_attribute_names(p.expression_attribute_names)
                .set_expression_attribute_values(p.expression_attribute_values)
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (put_refused(&e), condition_failed(&e), StoreError::sdk(e)))
        } else {
            return Ok(self.transact_checked(vec![item]).await?.map_err(|_| ()));
        };
        // A refusal that finds this write's own mark is its own success.
        match result {
            Ok(()) => Ok(Ok(())),
            Err((refused, _, _)) if refused_by_itself(refused.as_ref(), &write_id) => Ok(Ok(())),
            Err((_, true, _)) => Ok(Err(())),
            Err((_, false, e)) => Err(e),
        }
    }

    /// Writing `item` in place of the stored one only if that one still has
    /// the `version` it was read with (optimistic concurrency: whoever
    /// changed it first wins, the other reads again), for a transaction.
    pub(crate) fn put_if_version(
        &self,
        item: Item,
        version: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = self.put(item, Some("version = :read"))?;
        if let Some(p) = put.put.as_mut() {
            p.expression_attribute_values = Some([(":read".to_owned(), n(version))].into());
        }
        Ok(put)
    }

    /// A claim, for a transaction: the item `pk`/`sk` made to point at its
    /// holder (`attr` = `holder`), refused when it exists (someone holds it).
    pub(crate) fn claim_item(
        &self,
        pk: String,
        sk: String,
        attr: &str,
        holder: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let item: Item = [
            (k::PK.to_owned(), s(pk)),
            (k::SK.to_owned(), s(sk)),
            (attr.to_owned(), s(holder)),
        ]
        .into();
        self.put(item, Some("attribute_not_exists(pk)"))
    }

    /// Releasing a [`Store::claim_item`], for a transaction: only while `holder`
    /// still holds it.
    pub(crate) fn release_claim(
        &self,
        pk: String,
        sk: String,
        attr: &str,
        holder: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut delete = self.delete_item(pk, sk, "#holder = :holder")?;
        if let Some(d) = delete.delete.as_mut() {
            d.expression_attribute_names = Some([("#holder".to_owned(), attr.to_owned())].into());
            d.expression_attribute_values = Some([(":holder".to_owned(), s(holder))].into());
        }
        Ok(delete)
    }

    /// A check, for a transaction, that the item `pk`/`sk` exists.
    pub(crate) fn exists_check(
        &self,
        pk: String,
        sk: String,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .key(k::PK, s(pk))
            .key(k::SK, s(sk))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(StoreError::sdk)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// A conditional delete, for a transaction.
    pub(crate) fn delete_item(
        &self,
        pk: String,
        sk: String,
        condition: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(k::PK, s(pk))
            .key(k::SK, s(sk))
            .condition_expression(condition)
            .build()
            .map_err(StoreError::sdk)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// The outbox copy of a domain event, written in the same transaction as
    /// the change that caused it and kept for the retention period (it
    /// backs `GET /v1/events` and replays).
    pub fn event_record(&self, event: &Envelope) -> Result<TransactWriteItem, StoreError> {
        let mut item: Item = serde_dynamo::to_item(outbox::StoredEvent::from(event))?;
        item.insert(k::PK.into(), s(k::account_pk(&event.account_id)));
        item.insert(k::SK.into(), s(k::event_sk(&event.id)));
        item.insert(
            k::EXPIRES_AT.into(),
            n((event.occurred_at + self.retention).timestamp()),
        );
        item.insert(k::GSI2PK.into(), s(k::OUTBOX));
        item.insert(
            k::GSI2SK.into(),
            s(k::outbox_sk(&outbox_time(event.occurred_at), &event.id)),
        );
        self.put(item, Some("attribute_not_exists(pk)"))
    }
}

/// A secondary index of the table (a cursor of one carries its keys too).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Index {
    Gsi1,
    Gsi2,
}

/// Which items a listing pages through.
pub(crate) enum Listing<'a> {
    /// A gsi1 partition, in sort-key order or its reverse.
    Gsi1 { pk: String, newest_first: bool },
    /// The items of a table partition whose sort key starts with a prefix.
    Prefix {
        pk: String,
        sk_prefix: &'a str,
        newest_first: bool,
    },
}

impl Store {
    /// One item by key, read strongly consistently.
    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .key(k::PK, s(pk))
            .key(k::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.item
            .map(|i| Ok(serde_dynamo::from_item(i)?))
            .transpose()
    }

    /// A query of one partition's items whose sort keys lie from `from` to
    /// `to` (both included).
    pub(crate) fn sk_range(
        &self,
        pk: String,
        from: String,
        to: String,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
    }

    /// A query of one partition's items whose sort keys begin with `prefix`.
    pub(crate) fn sk_prefix(
        &self,
        pk: String,
        prefix: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
    }

    /// Up to `cap` items a query matches, following its pages (for reads
    /// that need a whole, bounded set rather than one page of a listing).
    pub(crate) async fn query_all<T: serde::de::DeserializeOwned>(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        cap: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .limit(i32::try_from(cap - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::sdk)?;
            items.extend(serde_dynamo::from_items::<_, T>(
                out.items.unwrap_or_default(),
            )?);
            match out.last_evaluated_key {
                Some(key) if items.len() < cap => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// One page of a listing, with the cursor of the next.
    pub(crate) async fn page<T: serde::de::DeserializeOwned>(
        &self,
        listing: Listing<'_>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, ListError> {
        let query = self.db.query().table_name(&self.table);
        let (query, index) = match listing {
            Listing::Gsi1 { pk, newest_first } => (
                query
                    .key_condition_expression("gsi1pk = :p")
                    .expression_attribute_values(":p", s(pk))
                    .scan_index_forward(!newest_first),
                Some(Index::Gsi1),
            ),
            Listing::Prefix {
                pk,
                sk_prefix,
                newest_first,
            } => (
                self.sk_prefix(pk, sk_prefix)
                    .scan_index_forward(!newest_first),
                None,
            ),
        };
        self.page_of(query, index, limit, cursor).await
    }

    /// One page of a query the caller shaped (key condition, filter, order)
    /// on the table or one of its indexes, resumed from an opaque cursor.
    pub(crate) async fn page_of<T: serde::de::DeserializeOwned>(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        index: Option<Index>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, ListError> {
        let (query, keys): (_, &[&str]) = match index {
            None => (query, &[k::PK, k::SK]),
            Some(Index::Gsi1) => (
                query.index_name(k::GSI1),
                &[k::PK, k::SK, k::GSI1PK, k::GSI1SK],
            ),
            Some(Index::Gsi2) => (
                query.index_name(k::GSI2),
                &[k::PK, k::SK, k::GSI2PK, k::GSI2SK],
            ),
        };
        let out = query
            .limit(limit)
            .set_exclusive_start_key(decode_cursor(cursor, keys)?)
            .send()
            .await
            .map_err(|e| match e.as_service_error().and_then(|e| e.code()) {
                // Well formed, but of another partition (DynamoDB: "outside
                // query boundaries"): as forged as any other bad cursor.
                Some("ValidationException") if cursor.is_some() => ListError::BadCursor,
                _ => StoreError::sdk(e).into(),
            })?;
        let items =
            serde_dynamo::from_items(out.items.unwrap_or_default()).map_err(StoreError::from)?;
        Ok(Page {
            items,
            next_cursor: encode_cursor(out.last_evaluated_key.as_ref()),
        })
    }
}

/// Whether a single-item write failed its condition (the expected outcome
/// of a lost race or a duplicate, not a fault).
pub(crate) fn condition_failed<E: ProvideErrorMetadata>(
    err: &aws_sdk_dynamodb::error::SdkError<E>,
) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// The item an update refused on its condition found, when it asked for it
/// (`ReturnValuesOnConditionCheckFailure::AllOld`).
pub(crate) fn update_refused(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    >,
) -> Option<Item> {
    match err.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                failed,
            ),
        ) => failed.item().cloned(),
        _ => None,
    }
}

/// [`update_refused`] for a put.
pub(crate) fn put_refused(
    err: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError>,
) -> Option<Item> {
    match err.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                failed,
            ),
        ) => failed.item().cloned(),
        _ => None,
    }
}

/// The attribute naming the write that last wrote an item alone
/// (`write_all`), and the value placeholder its updates set it with.
const WRITE_ID: &str = "write_id";
const WRITE_ID_VALUE: &str = ":nuvem_write_id";

/// Whether a write refused on its condition found the item as it wrote it,
/// by its `write_id`: its own earlier attempt, written but not answered (a
/// dropped connection, a 500 after the write), which the SDK sent again.
/// Without the mark, a conditional create would answer "exists" to its own
/// client, and a conditional step (`queued → sending`) would take itself
/// for another writer's and stop, leaving the step done and nobody on it.
fn refused_by_itself(refused: Option<&Item>, write_id: &str) -> bool {
    holds(refused, WRITE_ID, write_id)
}

/// `expression` that also sets the write's `write_id`.
fn marked(expression: &str) -> String {
    let mark = format!("{WRITE_ID} = {WRITE_ID_VALUE}");
    if let Some(rest) = expression.strip_prefix("SET ") {
        return format!("SET {mark}, {rest}");
    }
    match expression.find(" SET ") {
        Some(at) => format!(
            "{} SET {mark}, {}",
            &expression[..at],
            &expression[at + " SET ".len()..]
        ),
        None => format!("SET {mark} {expression}"),
    }
}

/// Whether a stored item (as a refused write returned it) holds the string
/// `value` in `attr`: a write's own mark, or a state.
pub(crate) fn holds(item: Option<&Item>, attr: &str, value: &str) -> bool {
    item.and_then(|i| i.get(attr))
        .and_then(|v| v.as_s().ok())
        .is_some_and(|v| v == value)
}

/// Fixed-width UTC timestamps, so that they sort as strings.
pub(crate) fn outbox_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Cursors are the base64url of the LastEvaluatedKey: opaque to clients, and
/// checked on the way back in so that a forged cursor is a 400, not a 500.
pub(crate) fn encode_cursor(key: Option<&Item>) -> Option<String> {
    let key = key?;
    // Ordered, so that the same page always has the same cursor.
    let map: std::collections::BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(name, v)| v.as_s().ok().map(|v| (name.as_str(), v.as_str())))
        .collect();
    let json = serde_json::to_vec(&map).ok()?;
    Some(URL_SAFE_NO_PAD.encode(json))
}

pub(crate) fn decode_cursor(
    cursor: Option<&str>,
    expected: &[&str],
) -> Result<Option<Item>, ListError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| ListError::BadCursor)?;
    let map: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| ListError::BadCursor)?;
    if map.len() != expected.len() || !expected.iter().all(|name| map.contains_key(*name)) {
        return Err(ListError::BadCursor);
    }
    Ok(Some(
        map.into_iter().map(|(name, v)| (name, s(v))).collect(),
    ))
}

/// The cancellation reason code of each item of a cancelled transaction
/// (`"None"`, `"ConditionalCheckFailed"`, `"TransactionConflict"`, …).
pub(crate) fn cancellation_codes<E>(
    err: &aws_sdk_dynamodb::error::SdkError<E>,
) -> Option<Vec<String>>
where
    E: AsTransactionCancel,
{
    let reasons = err.as_service_error()?.cancellation_reasons()?;
    Some(
        reasons
            .iter()
            .map(|r| r.code().unwrap_or("None").to_owned())
            .collect(),
    )
}

pub(crate) trait AsTransactionCancel {
    fn cancellation_reasons(&self) -> Option<&[aws_sdk_dynamodb::types::CancellationReason]>;
}

impl AsTransactionCancel
    for aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError
{
    fn cancellation_reasons(&self) -> Option<&[aws_sdk_dynamodb::types::CancellationReason]> {
        match self {
            Self::TransactionCanceledException(e) => Some(e.cancellation_reasons()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Store, marked};

    #[test]
    fn the_table_client_is_built_at_construction_only_ahead_of_requests() {
        let sdk = crate::config::lambda_sdk_config_from(&|_| None);
        assert!(!Store::built_when(&sdk, "t", false).db.is_built());
        assert!(Store::built_when(&sdk, "t", true).db.is_built());
    }

    #[test]
    fn a_marked_update_sets_its_write_id_in_every_shape_of_expression() {
        assert_eq!(
            marked("SET a = :a"),
            "SET write_id = :nuvem_write_id, a = :a"
        );
        assert_eq!(
            marked("REMOVE gsi2pk, gsi2sk"),
            "SET write_id = :nuvem_write_id REMOVE gsi2pk, gsi2sk"
        );
        assert_eq!(
            marked("REMOVE x SET a = :a"),
            "REMOVE x SET write_id = :nuvem_write_id, a = :a"
        );
        assert_eq!(
            marked("ADD hits :one"),
            "SET write_id = :nuvem_write_id ADD hits :one"
        );
    }
}
