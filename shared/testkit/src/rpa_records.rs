//! RPA carriers, clients and processes written straight to a stack's table,
//! as the `rpa` API writes them, for the tests of the functions that come
//! after it (scheduler, worker, uploads).

use chrono::Utc;
use nuvem_aws::store::{CarrierRecord, ClientRecord, ProcessRecord, Store};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::carrier::CarrierRequest;
use nuvem_domain::rpa::client::{ClientRequest, new_client_id};
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::Origin;
use serde_json::{Value, json};

/// The key these records say made them.
pub fn actor() -> Actor {
    Actor {
        key_id: "key_01jd0000000000000000000001".into(),
        key_name: "tests".into(),
    }
}

/// A carrier of `account` from a `POST /v1/rpa/carriers` body (`code` and
/// `name` are filled in when absent). Written once: a second call for the
/// same code changes nothing.
pub async fn carrier(store: &Store, account: &str, code: &str, mut body: Value) {
    body["code"] = json!(code);
    if body.get("name").is_none() {
        body["name"] = json!(code);
    }
    let request: CarrierRequest = serde_json::from_value(body).expect("a carrier body");
    let (code, settings) = request.validate().expect("a valid carrier");
    let now = Utc::now();
    store
        .create_carrier(&CarrierRecord {
            code,
            account_id: account.to_owned(),
            settings,
            created_at: now,
            created_by: actor(),
            updated_at: now,
            updated_by: actor(),
        })
        .await
        .expect("the carrier written");
}

/// A client of `account` from a `POST /v1/rpa/clients` body (its portal
/// password, if any, given already sealed), its carrier not checked.
pub async fn client(
    store: &Store,
    account: &str,
    body: Value,
    sealed_password: Option<String>,
) -> ClientRecord {
    client_with_id(store, account, new_client_id(), body, sealed_password).await
}

/// [`client`] with its id chosen (a password is sealed for the id).
pub async fn client_with_id(
    store: &Store,
    account: &str,
    id: String,
    body: Value,
    sealed_password: Option<String>,
) -> ClientRecord {
    let request: ClientRequest = serde_json::from_value(body).expect("a client body");
    let (settings, _) = request.validate().expect("a valid client");
    let now = Utc::now();
    let client = ClientRecord {
        id,
        account_id: account.to_owned(),
        unique_key: settings.unique_key(),
        settings,
        sealed_password,
        created_at: now,
        created_by: actor(),
        updated_at: now,
        updated_by: actor(),
        version: 1,
    };
    store
        .create_client(&client, false)
        .await
        .expect("the client written")
        .expect("a client unique in its account");
    client
}

/// The client's process of `month`, asked for by a person.
pub async fn process(store: &Store, client: &ClientRecord, month: Month) -> ProcessRecord {
    let p = ProcessRecord::new_for(client, month, Origin::Request, None, Utc::now())
        .expect("a client id names a process");
    assert!(
        store.create_process(&p).await.expect("the process written"),
        "the client has no process of {month} yet"
    );
    p
}

/// A schedule of `account` stored as the API stores it, whatever its type
/// (the API refuses the types not available yet), due at `next_run`.
pub async fn schedule(
    store: &Store,
    account: &str,
    cron: &str,
    kind: &str,
    parameters: Value,
    next_run: chrono::DateTime<Utc>,
) -> nuvem_aws::store::ScheduleRecord {
    use nuvem_domain::rpa::schedule_settings::{ScheduleRequest, new_schedule_id};
    let mut settings = serde_json::from_value::<ScheduleRequest>(json!({
        "name": format!("{kind} {cron}"), "cron": cron, "time_zone": "America/Sao_Paulo",
        "type": "create_monthly_processes", "parameters": parameters
    }))
    .expect("a schedule body")
    .validate()
    .expect("a valid schedule")
    .0;
    settings.kind = serde_json::from_value(json!(kind)).expect("a schedule type");
    let now = Utc::now();
    let schedule = nuvem_aws::store::ScheduleRecord {
        id: new_schedule_id(),
        account_id: account.to_owned(),
        settings,
        next_run: Some(next_run),
        last_run: None,
        consecutive_failures: 0,
        paused_reason: None,
        created_at: now,
        created_by: actor(),
        updated_at: now,
        updated_by: actor(),
        version: 1,
    };
    store
        .create_schedule(&schedule)
        .await
        .expect("the schedule written")
        .expect("a schedule name unique in its account");
    schedule
}
