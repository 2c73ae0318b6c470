//! The admin's review of accounts, against the emulator, from `events/approval/`.

use nuvem_aws::Core;
use nuvem_aws::http::Request;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::{
    as_anonymous, as_principal, http_event, reply, with_json, with_path_id, with_query,
    with_source_ip, without_authorizer,
};
use nuvem_testkit::inspect::{drain, scan_all};
use serde_json::{Value, json};

struct Env {
    core: Core,
    deps: approval::Deps,
    t: TestStack,
}

async fn env() -> Env {
    let t = TestStack::new("approval").await;
    let core = Core::from_lookup(&t.sdk, &t.env("Approval")).unwrap();
    Env {
        deps: approval::Deps { core: core.clone() },
        core,
        t,
    }
}

const DOCUMENTS: [&str; 3] = ["529.982.247-25", "11.222.333/0001-81", "12.ABC.345/01DE-35"];

/// Signs up through the real signup handler; returns the account id.
async fn sign_up(env: &Env, n: usize) -> String {
    let deps = signup::Deps {
        core: env.core.clone(),
        per_address_per_hour: 100,
    };
    let body = json!({
        "organization_name": format!("Loja {n}"),
        "document": DOCUMENTS[n],
        "phone": "11 3333-4444",
        "email": format!("loja{n}@example.com"),
        "imperius_licenses": 2
    });
    let req = with_source_ip(
        with_json(http_event("signup/signup.json"), &body),
        "203.0.113.1",
    );
    let (status, _, answer) = reply(&signup::handle(&deps, req).await);
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

fn admin(req: Request) -> Request {
    as_principal(req, "platform", "key_01jd00000000000000000000ad", "admin")
}

async fn call(env: &Env, req: Request) -> (u16, Value) {
    let (status, _, body) = reply(&approval::handle(&env.deps, req).await);
    (status, body)
}

fn approve(id: &str, body: Value) -> Request {
    admin(with_json(
        with_path_id(http_event("approval/approve.json"), id),
        &body,
    ))
}

#[tokio::test]
async fn approval_activates_and_queues_a_single_use_token_stored_only_as_a_hash() {
    let env = env().await;
    let id = sign_up(&env, 0).await;
    drain(&env.t.sqs, env.t.events_queue(), 10).await;

    let (status, account) = call(
        &env,
        approve(&id, json!({"quota_gb": 0.5, "imperius_licenses": 4})),
    )
    .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["status"], "active");
    assert_eq!(account["quota_gb"], 0.5);
    assert_eq!(account["imperius_licenses"], 4);
    assert_eq!(account["version"], 1, "the answer is the account as stored");

    let messages = drain(&env.t.sqs, env.t.events_queue(), 10).await;
    assert_eq!(messages.len(), 1);
    let event: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "account.approved");
    let token = messages[0].message_attributes().unwrap()[ACTIVATION_TOKEN_ATTRIBUTE]
        .string_value()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("nvm_at_"));
    assert!(
        !messages[0].body().unwrap().contains(&token),
        "the token is not in the envelope"
    );
    // Nowhere in the table is the token in plaintext.
    let dump = format!("{:?}", scan_all(&env.t.db, env.t.table()).await);
    assert!(!dump.contains(&token));
    assert!(dump.contains(&nuvem_domain::token::hash_token(&token)));
}

#[tokio::test]
async fn impossible_transitions_are_conflicts_and_change_nothing() {
    let env = env().await;
    let id = sign_up(&env, 0).await;
    // adjusting a pending account
    let adjust = admin(with_json(
        with_path_id(http_event("approval/adjust.json"), &id),
        &json!({"quota_gb": 10}),
    ));
    assert_eq!(call(&env, adjust).await.0, 409);
    // approve, then approve again / reject
    assert_eq!(
        call(
            &env,
            approve(&id, json!({"quota_gb": 1, "imperius_licenses": 1}))
        )
        .await
        .0,
        200
    );
    let (status, problem) = call(
        &env,
        approve(&id, json!({"quota_gb": 1, "imperius_licenses": 1})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let reject = admin(with_json(
        with_path_id(http_event("approval/reject.json"), &id),
        &json!({"reason": "no"}),
    ));
    assert_eq!(call(&env, reject).await.0, 409);
    // a rejected account cannot be approved
    let other = sign_up(&env, 1).await;
    let reject = admin(with_json(
        with_path_id(http_event("approval/reject.json"), &other),
        &json!({"reason": "documento inválido"}),
    ));
    let (status, account) = call(&env, reject).await;
    assert_eq!(
        (status, account["status"].as_str()),
        (200, Some("rejected"))
    );
    assert_eq!(
        call(
            &env,
            approve(&other, json!({"quota_gb": 1, "imperius_licenses": 1}))
        )
        .await
        .0,
        409
    );

    let audit = admin(with_path_id(http_event("approval/audit.json"), &id));
    let (status, trail) = call(&env, audit).await;
    assert_eq!(status, 200);
    let entries = trail["items"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        1,
        "only the successful approval is audited: {trail}"
    );
    assert_eq!(entries[0]["action"], "approve");
    assert_eq!(entries[0]["before"]["status"], "pending");
    assert_eq!(entries[0]["after"]["status"], "active");
    assert_eq!(entries[0]["actor_key_id"], "key_01jd00000000000000000000ad");
}

#[tokio::test]
async fn adjusting_an_active_account_is_audited_with_before_and_after() {
    let env = env().await;
    let id = sign_up(&env, 0).await;
    call(
        &env,
        approve(&id, json!({"quota_gb": 1, "imperius_licenses": 1})),
    )
    .await;
    let adjust = admin(with_json(
        with_path_id(http_event("approval/adjust.json"), &id),
        &json!({"imperius_licenses": 9}),
    ));
    let (status, account) = call(&env, adjust).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(
        (
            account["quota_gb"].as_f64(),
            account["imperius_licenses"].as_u64()
        ),
        (Some(1.0), Some(9))
    );
    let (_, trail) = call(
        &env,
        admin(with_path_id(http_event("approval/audit.json"), &id)),
    )
    .await;
    let latest = &trail["items"][0];
    assert_eq!(latest["action"], "adjust");
    assert_eq!(latest["before"]["imperius_licenses"], 1);
    assert_eq!(latest["after"]["imperius_licenses"], 9);
}

#[tokio::test]
async fn pending_accounts_are_listed_page_by_page() {
    let env = env().await;
    let ids = [
        sign_up(&env, 0).await,
        sign_up(&env, 1).await,
        sign_up(&env, 2).await,
    ];
    let list = |q: &[(&str, &str)]| admin(with_query(http_event("approval/list-pending.json"), q));
    let (status, first) = call(&env, list(&[("status", "pending"), ("limit", "2")])).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = call(
        &env,
        list(&[("status", "pending"), ("limit", "2"), ("cursor", &cursor)]),
    )
    .await;
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(seen, expected);

    for (q, field) in [
        (vec![("status", "sleeping")], "status"),
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "abc")], "limit"),
        (vec![("cursor", "bm90LWEtY3Vyc29y")], "cursor"),
        (vec![("cursor", "%%%")], "cursor"),
    ] {
        let (status, problem) = call(&env, list(&q)).await;
        assert_eq!(status, 422, "{q:?}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
}

#[tokio::test]
async fn only_admins_may_review_and_bad_input_changes_nothing() {
    let env = env().await;
    let id = sign_up(&env, 0).await;
    let get = with_path_id(http_event("approval/get-account.json"), &id);
    assert_eq!(call(&env, get.clone()).await.0, 200);
    let as_owner = as_principal(get.clone(), &id, "key_01jd0000000000000000000001", "owner");
    assert_eq!(call(&env, as_owner).await.0, 403);
    assert_eq!(call(&env, as_anonymous(get.clone())).await.0, 401);
    assert_eq!(call(&env, without_authorizer(get)).await.0, 401);

    let missing = admin(with_path_id(
        http_event("approval/get-account.json"),
        "acc_01jd0000000000000000000099",
    ));
    assert_eq!(call(&env, missing).await.0, 404);
    let garbage = admin(with_path_id(
        http_event("approval/get-account.json"),
        "../../etc",
    ));
    assert_eq!(call(&env, garbage).await.0, 404);

    for body in [
        json!({"quota_gb": 0, "imperius_licenses": 1}),
        json!({"quota_gb": -1, "imperius_licenses": 1}),
        json!({"quota_gb": "ten", "imperius_licenses": 1}),
        json!({"quota_gb": 1, "imperius_licenses": 1001}),
        json!({"quota_gb": 1}),
        json!({"quota_gb": 1, "imperius_licenses": 1, "status": "active"}),
    ] {
        let (status, problem) = call(&env, approve(&id, body.clone())).await;
        assert_eq!(status, 422, "{body}: {problem}");
    }
    let (_, account) = call(
        &env,
        admin(with_path_id(http_event("approval/get-account.json"), &id)),
    )
    .await;
    assert_eq!(account["status"], "pending");
    assert_eq!(account["version"], 0);
}

fn activation_token_of(message: &aws_sdk_sqs::types::Message) -> String {
    message.message_attributes().unwrap()[ACTIVATION_TOKEN_ATTRIBUTE]
        .string_value()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_new_activation_link_is_for_approved_accounts_not_yet_activated() {
    let env = env().await;
    let id = sign_up(&env, 0).await;
    let reissue = || {
        admin(with_path_id(
            http_event("approval/reissue-activation.json"),
            &id,
        ))
    };
    assert_eq!(
        call(&env, reissue()).await.0,
        409,
        "a pending account has no link"
    );

    call(
        &env,
        approve(&id, json!({"quota_gb": 1, "imperius_licenses": 1})),
    )
    .await;
    let first = drain(&env.t.sqs, env.t.events_queue(), 10).await;
    let (status, account) = call(&env, reissue()).await;
    assert_eq!(status, 200, "{account}");
    let second = drain(&env.t.sqs, env.t.events_queue(), 10).await;
    assert_eq!(second.len(), 1);
    let event: Value = serde_json::from_str(second[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "account.activation_reissued");
    let (old, new) = (
        activation_token_of(first.last().unwrap()),
        activation_token_of(&second[0]),
    );
    assert_ne!(old, new);

    // Once the owner activated (with either link), no further link.
    let now = chrono::Utc::now();
    env.core
        .store
        .redeem_activation(
            &nuvem_domain::token::hash_token(&new),
            "salt",
            now,
            |account_id| first_key(account_id, now),
        )
        .await
        .unwrap();
    let (status, problem) = call(&env, reissue()).await;
    assert_eq!(status, 409, "{problem}");
    let (_, trail) = call(
        &env,
        admin(with_path_id(http_event("approval/audit.json"), &id)),
    )
    .await;
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["activate", "reissue_activation", "approve"]);
    // The first link, still unexpired, cannot activate the account again.
    let again = env
        .core
        .store
        .redeem_activation(
            &nuvem_domain::token::hash_token(&old),
            "salt",
            now,
            |account_id| first_key(account_id, now),
        )
        .await;
    assert!(
        matches!(again, Err(nuvem_aws::store::RedeemError::Invalid)),
        "{again:?}"
    );
}

/// The owner key and event an activation creates (as the keys function would).
fn first_key(
    account_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> (nuvem_aws::store::KeyRecord, nuvem_domain::events::Envelope) {
    let key = nuvem_aws::store::KeyRecord {
        id: nuvem_domain::ids::new_id("key"),
        account_id: account_id.to_owned(),
        name: "first".into(),
        role: nuvem_domain::keys::Role::Owner,
        status: nuvem_domain::keys::KeyStatus::Active,
        secret_hash: "0".repeat(64),
        created_at: now,
        expires: None,
        last_used_at: None,
        revoked_at: None,
    };
    let event = nuvem_domain::events::Envelope::new(
        nuvem_domain::events::EventType::KeyCreated,
        account_id,
        json!({}),
        now,
    );
    (key, event)
}
