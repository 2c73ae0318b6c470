//! Activation and key management, driven through the real signup and
//! approval handlers against the emulator.

use aws_sdk_dynamodb::types::AttributeValue::S;
use nuvem_aws::Core;
use nuvem_aws::http::Request;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::table_keys::{ACTIVATION_SK, activation_pk};
use nuvem_domain::token::hash_token;
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::{
    as_principal, http_event, reply, with_json, with_path_id, with_query, with_source_ip,
};
use nuvem_testkit::inspect::{drain, item_ids, scan_all};
use serde_json::{Value, json};

struct Env {
    core: Core,
    deps: keys::Deps,
    t: TestStack,
}

async fn env() -> Env {
    let t = TestStack::new("keys").await;
    let core = Core::from_lookup(&t.sdk, &t.env("Keys")).unwrap();
    Env {
        deps: keys::Deps { core: core.clone() },
        core,
        t,
    }
}

/// Signs a company up and approves it; returns its id and activation token.
async fn approved_account(env: &Env, document: &str, email: &str) -> (String, String) {
    let signup = signup::Deps {
        core: env.core.clone(),
        per_address_per_hour: 100,
    };
    let body = json!({"organization_name": "Oficina Central", "document": document,
        "phone": "+55 21 99876-5432", "email": email, "imperius_licenses": 1});
    let req = with_source_ip(
        with_json(http_event("signup/signup.json"), &body),
        "203.0.113.9",
    );
    let (status, _, answer) = reply(&signup::handle(&signup, req).await);
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();

    let approval = approval::Deps {
        core: env.core.clone(),
    };
    let req = with_json(
        with_path_id(http_event("approval/approve.json"), &id),
        &json!({"quota_gb": 1, "imperius_licenses": 1}),
    );
    let req = as_principal(req, "platform", "key_01jd00000000000000000000ad", "admin");
    assert_eq!(reply(&approval::handle(&approval, req).await).0, 200);

    let messages = drain(&env.t.sqs, env.t.events_queue(), 20).await;
    let token = messages
        .iter()
        .find_map(|m| {
            let attrs = m.message_attributes()?;
            let t = attrs.get(ACTIVATION_TOKEN_ATTRIBUTE)?.string_value()?;
            m.body()?.contains(&id).then(|| t.to_owned())
        })
        .expect("activation token queued");
    (id, token)
}

async fn call(env: &Env, req: Request) -> (u16, Value) {
    let (status, _, body) = reply(&keys::handle(&env.deps, req).await);
    (status, body)
}

fn activate(token: &str) -> Request {
    with_json(http_event("keys/activate.json"), &json!({ "token": token }))
}

fn as_owner(req: Request, account: &str, key: &str) -> Request {
    as_principal(req, account, key, "owner")
}

#[tokio::test]
async fn a_token_buys_one_owner_key_and_repeats_it_to_racing_and_retried_requests() {
    let env = env().await;
    let (account, token) = approved_account(&env, "529.982.247-25", "a@example.com").await;
    drain(&env.t.sqs, env.t.events_queue(), 20).await;
    let results = futures::future::join_all((0..4).map(|_| call(&env, activate(&token)))).await;
    // Every racing request gets the one key: a client whose first answer
    // was lost, retrying, is in the same place.
    assert!(results.iter().all(|r| r.0 == 201), "{results:?}");
    let issued = &results[0].1;
    assert!(results.iter().all(|r| r.1 == *issued), "{results:?}");
    assert_eq!(issued["key"]["role"], "owner");
    let secret = issued["secret"].as_str().unwrap();
    assert!(nuvem_domain::keys::checksum_ok(secret));
    let key_id = issued["key"]["id"].as_str().unwrap();
    assert_eq!(issued["credential"], format!("{key_id}.{secret}"));
    let keys = env.core.store.list_keys(&account, 100, None).await.unwrap();
    assert_eq!(keys.items.len(), 1, "{:?}", keys.items);
    let created = drain(&env.t.sqs, env.t.events_queue(), 20).await;
    let created: Vec<_> = created
        .iter()
        .filter(|m| m.body().unwrap().contains("key.created"))
        .collect();
    assert_eq!(created.len(), 1, "one key.created: {created:?}");

    // Stored only as hashes; the secret takes a salt the email does not hold.
    let items = scan_all(&env.t.db, env.t.table()).await;
    let dump = format!("{items:?}");
    assert!(!dump.contains(secret) && !dump.contains(&token));
    let salt = items
        .iter()
        .find_map(|item| item.get("key_salt")?.as_s().ok())
        .expect("the activation record keeps the salt");
    assert_eq!(
        nuvem_domain::keys::first_key_secret(&token, salt).expose(),
        secret
    );
    let account_record = env.core.store.get_account(&account).await.unwrap().unwrap();
    assert!(account_record.activated_at.is_some());

    // A retry within the hour answers the same credential.
    assert_eq!(call(&env, activate(&token)).await, (201, issued.clone()));

    // Not once the key is revoked...
    let revoke = as_owner(
        with_path_id(http_event("keys/revoke-key.json"), key_id),
        &account,
        key_id,
    );
    assert_eq!(call(&env, revoke).await.0, 204);
    let (status, problem) = call(&env, activate(&token)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(!problem.to_string().contains(secret));
}

#[tokio::test]
async fn a_used_token_answers_nothing_after_its_hour() {
    let env = env().await;
    let (_, token) = approved_account(&env, "529.982.247-25", "a@example.com").await;
    let (status, issued) = call(&env, activate(&token)).await;
    assert_eq!(status, 201, "{issued}");
    // The token was used an hour and a minute ago.
    let used_at = chrono::Utc::now() - chrono::Duration::minutes(61);
    env.t
        .db
        .update_item()
        .table_name(env.t.table())
        .key("pk", S(activation_pk(&hash_token(&token))))
        .key("sk", S(ACTIVATION_SK.into()))
        .update_expression("SET used_at = :t")
        .condition_expression("attribute_exists(used_at)")
        .expression_attribute_values(":t", S(used_at.to_rfc3339()))
        .send()
        .await
        .unwrap();
    let (status, problem) = call(&env, activate(&token)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        !problem
            .to_string()
            .contains(issued["secret"].as_str().unwrap())
    );
}

#[tokio::test]
async fn unknown_and_expired_tokens_are_refused_and_store_nothing() {
    let env = env().await;
    let before = scan_all(&env.t.db, env.t.table()).await.len();
    for body in [
        json!({"token": "nvm_at_doesnotexist"}),
        json!({"token": ""}),
        json!({"token": 42}),
        json!({"token": "x", "role": "admin"}),
        json!({}),
    ] {
        let (status, problem) =
            call(&env, with_json(http_event("keys/activate.json"), &body)).await;
        assert_eq!(status, 422, "{body}: {problem}");
    }
    // An expired token: written as the approval writes it, a week in the past.
    let token = "nvm_at_expiredexpiredexpiredexpiredexpired000";
    let past = chrono::Utc::now() - chrono::Duration::days(8);
    let write = env
        .core
        .store
        .activation_write(
            &nuvem_domain::token::hash_token(token),
            &nuvem_aws::store::ActivationRecord {
                account_id: "acc_01jd0000000000000000000000".into(),
                created_at: past,
                expires_at: nuvem_domain::token::activation_expires_at(past).timestamp(),
                used_at: None,
                key_id: None,
                key_salt: None,
            },
        )
        .unwrap();
    env.t
        .db
        .transact_write_items()
        .transact_items(write)
        .send()
        .await
        .unwrap();
    assert_eq!(call(&env, activate(token)).await.0, 422);
    assert_eq!(scan_all(&env.t.db, env.t.table()).await.len(), before + 1);
}

#[tokio::test]
async fn owners_create_list_and_revoke_keys_of_their_own_account_only() {
    let env = env().await;
    let (a, token_a) = approved_account(&env, "529.982.247-25", "a@example.com").await;
    let (b, token_b) = approved_account(&env, "11.222.333/0001-81", "b@example.com").await;
    let owner_a = call(&env, activate(&token_a)).await.1["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner_b = call(&env, activate(&token_b)).await.1["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let create = |account: &str, key: &str, body: Value| {
        as_owner(
            with_json(http_event("keys/create-key.json"), &body),
            account,
            key,
        )
    };
    let (status, op) = call(
        &env,
        create(
            &a,
            &owner_a,
            json!({"name": "backup server", "role": "operator"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{op}");
    let op_id = op["key"]["id"].as_str().unwrap().to_owned();

    let (status, listed) = call(
        &env,
        as_owner(http_event("keys/list-keys.json"), &a, &owner_a),
    )
    .await;
    assert_eq!(status, 200);
    let ids = item_ids(&listed);
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&op_id.as_str()) && ids.contains(&owner_a.as_str()));
    let text = listed.to_string();
    assert!(!text.contains("secret") && !text.contains(op["secret"].as_str().unwrap()));

    // B cannot see or revoke A's key, not even with a cursor of A's listing.
    let (_, listed_b) = call(
        &env,
        as_owner(http_event("keys/list-keys.json"), &b, &owner_b),
    )
    .await;
    assert!(!listed_b.to_string().contains(&op_id));
    let list_page = |account: &str, key: &str, query: &[(&str, &str)]| {
        as_owner(
            with_query(http_event("keys/list-keys.json"), query),
            account,
            key,
        )
    };
    let (_, first_a) = call(&env, list_page(&a, &owner_a, &[("limit", "1")])).await;
    let cursor_a = first_a["next_cursor"].as_str().expect("a second page");
    let (status, problem) = call(&env, list_page(&b, &owner_b, &[("cursor", cursor_a)])).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "cursor", "{problem}");
    assert!(!problem.to_string().contains(&a), "{problem}");
    let revoke = |account: &str, key: &str, id: &str| {
        as_owner(
            with_path_id(http_event("keys/revoke-key.json"), id),
            account,
            key,
        )
    };
    assert_eq!(call(&env, revoke(&b, &owner_b, &op_id)).await.0, 404);
    assert_eq!(
        env.core
            .store
            .get_key(&op_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        nuvem_domain::keys::KeyStatus::Active
    );

    // A revokes it (twice: idempotent).
    assert_eq!(call(&env, revoke(&a, &owner_a, &op_id)).await.0, 204);
    assert_eq!(call(&env, revoke(&a, &owner_a, &op_id)).await.0, 204);
    assert_eq!(
        env.core
            .store
            .get_key(&op_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        nuvem_domain::keys::KeyStatus::Revoked
    );
    assert_eq!(
        call(&env, revoke(&a, &owner_a, "key_01jd0000000000000000000099"))
            .await
            .0,
        404
    );
    assert_eq!(call(&env, revoke(&a, &owner_a, "not-a-key")).await.0, 404);
}

#[tokio::test]
async fn only_owners_manage_keys_and_bad_requests_store_nothing() {
    let env = env().await;
    let account = "acc_01jd0000000000000000000000";
    let create = |body: Value| with_json(http_event("keys/create-key.json"), &body);
    let operator = as_principal(
        create(json!({"name": "x", "role": "operator"})),
        account,
        "key_01jd0000000000000000000005",
        "operator",
    );
    assert_eq!(call(&env, operator).await.0, 403);
    let before = scan_all(&env.t.db, env.t.table()).await.len();
    for body in [
        json!({"name": "x", "role": "admin"}),
        json!({"name": "x", "role": "superuser"}),
        json!({"name": "", "role": "operator"}),
        json!({"name": "x", "role": "operator", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "role": "operator", "expires_at": "tomorrow"}),
        json!({"name": "x", "role": "operator", "account_id": "acc_01jd0000000000000000000009"}),
    ] {
        let (status, problem) = call(
            &env,
            as_owner(
                create(body.clone()),
                account,
                "key_01jd0000000000000000000001",
            ),
        )
        .await;
        assert_eq!(status, 422, "{body}: {problem}");
    }
    assert_eq!(scan_all(&env.t.db, env.t.table()).await.len(), before);
}

/// Admins list and revoke the platform's admin keys, and only those: their
/// account comes from the authorizer, so a tenant's key is "not found".
#[tokio::test]
async fn admins_manage_the_platforms_admin_keys_only() {
    use nuvem_domain::keys::{KeyStatus, PLATFORM_ACCOUNT, Role, hash_secret};
    let env = env().await;
    let (tenant, token) = approved_account(&env, "390.533.447-05", "t@example.com").await;
    let tenant_key = call(&env, activate(&token)).await.1["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admin_ids = Vec::new();
    for name in ["first admin", "second admin"] {
        let key = nuvem_aws::store::KeyRecord {
            id: nuvem_domain::ids::new_id(nuvem_domain::ids::KEY),
            account_id: PLATFORM_ACCOUNT.to_owned(),
            name: name.into(),
            role: Role::Admin,
            status: KeyStatus::Active,
            secret_hash: hash_secret("s"),
            created_at: chrono::Utc::now(),
            expires: None,
            last_used_at: None,
            revoked_at: None,
        };
        env.core.store.create_key(&key, None).await.unwrap();
        admin_ids.push(key.id);
    }
    let as_admin = |req| as_principal(req, PLATFORM_ACCOUNT, &admin_ids[0], "admin");
    let (status, listed) = call(&env, as_admin(http_event("keys/list-keys.json"))).await;
    assert_eq!(status, 200, "{listed}");
    let ids = item_ids(&listed);
    assert_eq!(
        ids,
        admin_ids.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let revoke = |id: &str| as_admin(with_path_id(http_event("keys/revoke-key.json"), id));
    assert_eq!(call(&env, revoke(&tenant_key)).await.0, 404);
    let (_, theirs) = call(
        &env,
        as_owner(http_event("keys/list-keys.json"), &tenant, &tenant_key),
    )
    .await;
    assert_eq!(theirs["items"][0]["status"], "active", "untouched");
    assert_eq!(call(&env, revoke(&admin_ids[1])).await.0, 204);
    let (_, listed) = call(&env, as_admin(http_event("keys/list-keys.json"))).await;
    assert_eq!(listed["items"][1]["status"], "revoked");
}

/// The table does not answer (DynamoDB overloaded, or the network to it
/// down): every call gives up at the SDK's operation timeout and the route
/// answers 503 problem+json with `Retry-After`, well before Lambda's own
/// timeout would leave API Gateway to answer a bare 500.
#[tokio::test]
async fn a_table_that_does_not_answer_is_a_503_with_retry_after() {
    let t = TestStack::new("keys-slow").await;
    let slow = nuvem_testkit::unresponsive::unresponsive_sdk(
        &t.sdk,
        std::time::Duration::from_millis(300),
    )
    .await;
    let deps = keys::Deps {
        core: Core::from_lookup(&slow, &t.env("Keys")).unwrap(),
    };
    let req = as_principal(
        http_event("keys/list-keys.json"),
        "acc_01jd0000000000000000000000",
        "key_01jd0000000000000000000001",
        "owner",
    );
    let answer = keys::handle(&deps, req).await;
    assert_eq!(answer.headers()["retry-after"], "2");
    let (status, content_type, problem) = reply(&answer);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 503);
}
