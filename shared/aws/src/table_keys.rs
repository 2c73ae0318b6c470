//! Every partition, sort and index key string of the single table is built
//! here and nowhere else (see DESIGN "State: one DynamoDB table").

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI2: &str = "gsi2";
pub const GSI2PK: &str = "gsi2pk";
pub const GSI2SK: &str = "gsi2sk";
/// DynamoDB TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";

pub fn account_pk(account_id: &str) -> String {
    format!("ACCOUNT#{account_id}")
}
pub const ACCOUNT_SK: &str = "ACCOUNT";

/// gsi1 partition listing accounts by status, oldest first.
pub fn accounts_by_status(status: &str) -> String {
    format!("ACCOUNTS#{status}")
}
pub fn accounts_by_status_sk(created_at: &str, account_id: &str) -> String {
    format!("{created_at}#{account_id}")
}

/// One account per CPF/CNPJ.
pub fn document_pk(document: &str) -> String {
    format!("DOCUMENT#{document}")
}
pub const DOCUMENT_SK: &str = "DOCUMENT";

/// One account per (normalised) email address.
pub fn email_pk(email: &str) -> String {
    format!("EMAIL#{email}")
}
pub const EMAIL_SK: &str = "EMAIL";

pub fn audit_sk(at: &str, audit_id: &str) -> String {
    format!("AUDIT#{at}#{audit_id}")
}
pub const AUDIT_PREFIX: &str = "AUDIT#";

pub fn event_sk(event_id: &str) -> String {
    format!("EVENT#{event_id}")
}

/// A client's idempotency key for one operation of the account (`scope`),
/// by the key's digest; it holds the request's fingerprint and its result.
pub fn request_key_sk(scope: &str, key_digest: &str) -> String {
    format!("REQUEST#{scope}#{key_digest}")
}

/// gsi2 is a sparse, overloaded index. Partition `OUTBOX` is the outbox: an
/// event is in it from its commit until it is sent to the events queue (sent
/// events carry no gsi2 keys). Partition `BUCKETS` lists every tenant bucket
/// ([`ALL_BUCKETS`]).
pub const OUTBOX: &str = "OUTBOX";
pub fn outbox_sk(occurred_at: &str, event_id: &str) -> String {
    format!("{occurred_at}#{event_id}")
}

pub fn key_pk(key_id: &str) -> String {
    format!("KEY#{key_id}")
}
pub const KEY_SK: &str = "KEY";
/// gsi1 partition listing an account's keys, oldest first.
pub fn keys_of_account(account_id: &str) -> String {
    format!("KEYS#{account_id}")
}

/// Activation tokens are found by the hash of the token, never the token.
pub fn activation_pk(token_hash: &str) -> String {
    format!("ACTIVATION#{token_hash}")
}
pub const ACTIVATION_SK: &str = "ACTIVATION";

pub fn done_pk(consumer: &str, id: &str) -> String {
    format!("DONE#{consumer}#{id}")
}
pub const DONE_SK: &str = "DONE";

pub fn rate_pk(bucket: &str, subject: &str, window: i64) -> String {
    format!("RATE#{bucket}#{subject}#{window}")
}
pub const RATE_SK: &str = "RATE";

/// A tenant bucket, by its physical S3 name (unique in S3 already).
pub fn bucket_pk(bucket: &str) -> String {
    format!("BUCKET#{bucket}")
}
pub const BUCKET_SK: &str = "BUCKET";
/// The bucket name of a `bucket_pk`.
pub fn bucket_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix("BUCKET#")
}
pub const USAGE_SK: &str = "USAGE";
/// gsi1 partition listing an account's buckets by name.
pub fn buckets_of_account(account_id: &str) -> String {
    format!("BUCKETS#{account_id}")
}

/// What nuvem last recorded for one object key of a bucket (size, whether it
/// is live, S3 sequencer), so that deletes and out-of-order records count right.
pub fn object_pk(bucket: &str, key: &str) -> String {
    format!("OBJECT#{bucket}#{key}")
}
pub const OBJECT_SK: &str = "OBJECT";
/// gsi1 partition listing a bucket's recorded objects (live and tombstones)
/// by key, in the byte order S3's ListObjectsV2 uses; the gsi1 sort key is
/// the decoded object key.
pub fn objects_of_bucket(bucket: &str) -> String {
    format!("OBJECTS#{bucket}")
}

/// gsi2 partition listing every tenant bucket by physical name (for the
/// usage reconciler); the gsi2 sort key is the physical bucket name.
pub const ALL_BUCKETS: &str = "BUCKETS";

/// The usage reconciler's runs of one bucket, newest last.
pub fn reconcile_pk(bucket: &str) -> String {
    format!("RECONCILE#{bucket}")
}
pub fn reconcile_run_sk(at: &str) -> String {
    format!("RUN#{at}")
}
/// Where an unfinished reconciliation cycle stopped (one item).
/// Physical bucket names are lowercase, so this never names a bucket.
pub const RECONCILE_STATE_PK: &str = "RECONCILE#STATE";
pub const RECONCILE_STATE_SK: &str = "STATE";

/// A webhook endpoint lives in its account's partition, so that fan-out
/// finds every endpoint of an account with one query.
pub fn webhook_sk(webhook_id: &str) -> String {
    format!("WEBHOOK#{webhook_id}")
}
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";
pub const EVENT_PREFIX: &str = "EVENT#";

/// One delivery of one event to one endpoint: its attempt count, status and
/// the lease of the attempt in flight (the idempotency record of
/// `webhook-delivery`).
pub fn delivery_pk(delivery_id: &str) -> String {
    format!("DELIVERY#{delivery_id}")
}
pub const DELIVERY_SK: &str = "DELIVERY";

/// The attempts log of one endpoint, newest last by attempt id (a ULID).
/// The account is part of the key, so no listing can cross accounts.
pub fn attempts_pk(account_id: &str, webhook_id: &str) -> String {
    format!("ATTEMPTS#{account_id}#{webhook_id}")
}
pub fn attempt_sk(attempt_id: &str) -> String {
    format!("ATTEMPT#{attempt_id}")
}
pub const ATTEMPT_PREFIX: &str = "ATTEMPT#";
/// An endpoint's counters for one hour (`2026-11-24T14`), next to its
/// attempts.
pub fn rollup_sk(hour: &str) -> String {
    format!("HOUR#{hour}")
}
/// gsi1 partition of an endpoint's attempts with one outcome, by attempt id.
pub fn attempts_by_outcome(account_id: &str, webhook_id: &str, outcome: &str) -> String {
    format!("ATTEMPTS#{account_id}#{webhook_id}#{outcome}")
}

/// The line of an ordered endpoint for one subject: one `WAIT#<position>`
/// item per event not yet delivered; the first is the one being delivered.
pub fn lane_pk(account_id: &str, webhook_id: &str, subject: &str) -> String {
    format!("LANE#{account_id}#{webhook_id}#{subject}")
}
pub fn lane_sk(position: &str) -> String {
    format!("WAIT#{position}")
}
pub const LANE_PREFIX: &str = "WAIT#";

/// A WhatsApp store lives in its account's partition, its number slots
/// right after it (`WASTORE#<store>#SLOT#<n>`), so that one query reads a
/// store with its slots, or every store of an account with theirs.
pub const WHATSAPP_STORE_PREFIX: &str = "WASTORE#";
pub fn whatsapp_store_sk(store_id: &str) -> String {
    format!("{WHATSAPP_STORE_PREFIX}{store_id}")
}
pub fn whatsapp_slot_sk(store_id: &str, slot: u8) -> String {
    format!("{WHATSAPP_STORE_PREFIX}{store_id}#SLOT#{slot}")
}
pub fn is_whatsapp_slot_sk(sk: &str) -> bool {
    sk.starts_with(WHATSAPP_STORE_PREFIX) && sk.contains("#SLOT#")
}

/// The claim of a WhatsApp number (Meta's `phone_number_id`) by one slot
/// of one store of one account: unique across accounts, and what inbound
/// webhooks are routed by.
pub fn whatsapp_number_pk(phone_number_id: &str) -> String {
    format!("WANUMBER#{phone_number_id}")
}
pub const WHATSAPP_NUMBER_SK: &str = "WANUMBER";

/// A WhatsApp conversation of a store, in its account's partition.
pub fn whatsapp_conversation_sk(store_id: &str, conversation_id: &str) -> String {
    format!("WACONV#{store_id}#{conversation_id}")
}
/// gsi1 partition listing a store's conversations by last activity.
pub fn conversations_of_store(account_id: &str, store_id: &str) -> String {
    format!("WACONVS#{account_id}#{store_id}")
}
/// One identifier of a customer of a store (`u:<BSUID>` or `p:<wa_id>`),
/// pointing at the customer's conversation.
pub fn whatsapp_customer_pk(store_id: &str, customer_key: &str) -> String {
    format!("WACUST#{store_id}#{customer_key}")
}
pub const WHATSAPP_CUSTOMER_SK: &str = "WACUST";
/// One WhatsApp message, by Meta's id (`wamid`): written once.
pub fn whatsapp_message_pk(wamid: &str) -> String {
    format!("WAMSG#{wamid}")
}
pub const WHATSAPP_MESSAGE_SK: &str = "WAMSG";
/// An account's WhatsApp notice settings, in its partition.
pub const WHATSAPP_NOTICES_SK: &str = "WANOTICES";
/// A message a store sends, in its account's partition.
pub fn whatsapp_outbound_sk(outbound_id: &str) -> String {
    format!("WAOUT#{outbound_id}")
}
/// Webhook items that arrived for a number no store claims, counted.
pub fn whatsapp_unrouted_pk(phone_number_id: &str) -> String {
    format!("WAUNROUTED#{phone_number_id}")
}
pub const WHATSAPP_UNROUTED_SK: &str = "WAUNROUTED";
/// gsi1 partition listing a conversation's messages in time order.
pub fn messages_of_conversation(conversation_id: &str) -> String {
    format!("WAMSGS#{conversation_id}")
}

// ---------------------------------------------------------------------------
// RPA

/// An RPA carrier, in its account's partition, by code.
pub const RPA_CARRIER_PREFIX: &str = "RPACARRIER#";
pub fn rpa_carrier_sk(code: &str) -> String {
    format!("{RPA_CARRIER_PREFIX}{code}")
}
/// An RPA client, in its account's partition.
pub const RPA_CLIENT_PREFIX: &str = "RPACLIENT#";
pub fn rpa_client_sk(client_id: &str) -> String {
    format!("{RPA_CLIENT_PREFIX}{client_id}")
}
/// The claim of a client's identity (a digest of CNPJ, carrier, unit and
/// service), in its account's partition; its prefix is not a client's.
pub fn rpa_client_key_sk(unique_key: &str) -> String {
    format!("RPAKEY#{unique_key}")
}
/// gsi1 partition listing a carrier's clients.
pub fn clients_of_carrier(account_id: &str, code: &str) -> String {
    format!("RPACLIENTS#{account_id}#{code}")
}
/// An RPA invoice process, in its account's partition, by client and month.
pub const RPA_PROCESS_PREFIX: &str = "RPAPROC#";
pub fn rpa_process_sk(client_id: &str, month: &str) -> String {
    format!("{RPA_PROCESS_PREFIX}{client_id}#{month}")
}
/// gsi1 partition listing a month's processes by status.
pub fn processes_of_month(account_id: &str, month: &str) -> String {
    format!("RPAPROCS#{account_id}#{month}")
}
/// gsi2 partition listing the processes in a status by month.
pub fn processes_in_status(account_id: &str, status: &str) -> String {
    format!("RPAPROCSTATUS#{account_id}#{status}")
}
/// An RPA schedule, in its account's partition.
pub const RPA_SCHEDULE_PREFIX: &str = "RPASCHED#";
pub fn rpa_schedule_sk(schedule_id: &str) -> String {
    format!("{RPA_SCHEDULE_PREFIX}{schedule_id}")
}
/// The claim of a schedule's name (case and spacing folded) in its
/// account's partition; its prefix is not a schedule's.
pub fn rpa_schedule_name_sk(name_key: &str) -> String {
    format!("RPANAME#{name_key}")
}
/// An RPA execution, in its account's partition, by process.
pub const RPA_EXECUTION_PREFIX: &str = "RPAEXE#";
/// gsi1 partitions of every execution that is not final, by when its next
/// job message is due: spread over [`RPA_WATCH_SHARDS`] keys by execution
/// id, since every poll rewrites the entry and one key takes about 1,000
/// writes a second (thousands of jobs polled every 10 s would throttle it).
pub const RPA_WATCH_SHARDS: u32 = 16;
pub fn rpa_watch(execution_id: &str) -> String {
    let shard = execution_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % RPA_WATCH_SHARDS;
    rpa_watch_shard(shard)
}
pub fn rpa_watch_shard(shard: u32) -> String {
    format!("RPAWATCH#{shard:02}")
}
/// gsi1 partition of every active schedule by its next run.
pub const RPA_DUE: &str = "RPADUE";
/// gsi1 partition of every schedule run still under way, by when its lease
/// runs out (`<lease until>#<account>#<schedule>#<due>`).
pub const RPA_OPEN_RUNS: &str = "RPARUNS";
/// One run of a schedule, by its due time (its claim, progress and outcome).
pub fn rpa_schedule_run_sk(schedule_id: &str, due: &str) -> String {
    format!("RPARUN#{schedule_id}#{due}")
}

/// A storage key (S3 credentials of an IAM user), in its account's partition.
pub fn storage_key_sk(key_id: &str) -> String {
    format!("{STORAGE_KEY_PREFIX}{key_id}")
}
pub const STORAGE_KEY_PREFIX: &str = "SKEY#";
/// How many storage keys the account holds (not revoked), kept by the same
/// transactions that create and revoke them, for the per-account cap.
pub const STORAGE_KEY_COUNT_SK: &str = "SKEYCOUNT";
