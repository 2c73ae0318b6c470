//! The Lambda authorizer against the emulator, from `events/authorizer/request.json`.

use authorizer::{AuthorizerRequest, Deps};
use chrono::{Duration, Utc};
use nuvem_aws::store::{KeyRecord, Store};
use nuvem_domain::keys::{self, KeyStatus, Role};
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::fixture;
use serde_json::Value;

async fn deps() -> Deps {
    let t = TestStack::new("authz").await;
    Deps {
        store: Store::new(&t.sdk, t.table()),
        cache_seconds: 30,
    }
}

/// Stores a key and returns its credential.
async fn key(
    deps: &Deps,
    role: Role,
    expires: Option<chrono::DateTime<Utc>>,
) -> (KeyRecord, String) {
    let secret = keys::generate_secret();
    let record = KeyRecord {
        id: nuvem_domain::ids::new_id("key"),
        account_id: "acc_01jd0000000000000000000000".into(),
        name: "test".into(),
        role,
        status: KeyStatus::Active,
        secret_hash: keys::hash_secret(secret.expose()),
        created_at: Utc::now(),
        expires,
        last_used_at: None,
        revoked_at: None,
    };
    deps.store.create_key(&record, None).await.unwrap();
    let credential = format!("{}.{}", record.id, secret.expose());
    (record, credential)
}

fn request(authorization: &[u8]) -> AuthorizerRequest {
    let mut req: AuthorizerRequest = fixture("authorizer/request.json");
    let value = aws_lambda_events::http::HeaderValue::from_bytes(authorization).unwrap();
    req.headers.insert("authorization", value);
    req
}

async fn context(deps: &Deps, authorization: impl AsRef<[u8]>) -> Value {
    let answer = authorizer::handle(deps, request(authorization.as_ref())).await;
    assert!(
        answer.is_authorized,
        "the gateway never denies: functions answer 401"
    );
    answer.context
}

#[tokio::test]
async fn a_valid_key_yields_its_account_key_and_role() {
    let deps = deps().await;
    let (record, credential) = key(&deps, Role::Operator, None).await;
    let ctx = context(&deps, &format!("Bearer {credential}")).await;
    assert_eq!(ctx["authenticated"], true);
    assert_eq!(ctx["account_id"], record.account_id);
    assert_eq!(ctx["key_id"], record.id);
    assert_eq!(ctx["key_name"], record.name);
    assert_eq!(ctx["role"], "operator");
}

#[tokio::test]
async fn bad_credentials_are_anonymous_never_errors() {
    let deps = deps().await;
    let (record, credential) = key(&deps, Role::Owner, None).await;
    let (expired, expired_credential) =
        key(&deps, Role::Owner, Some(Utc::now() + Duration::seconds(1))).await;
    let other_secret = keys::generate_secret();
    let wrong_secret = format!("Bearer {}.{}", record.id, other_secret.expose());
    let unknown_key = format!(
        "Bearer key_01jd0000000000000000000077.{}",
        other_secret.expose()
    );
    // One character changed (to one it is not: a secret may end in `x`).
    let mut tampered = credential.clone();
    let last = tampered.pop();
    tampered.push(if last == Some('x') { 'y' } else { 'x' });
    let cases = [
        "".to_owned(),
        "Bearer".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Bearer {tampered}"),
        wrong_secret,
        unknown_key,
        "Bearer ".to_owned() + &"a".repeat(5000),
    ];
    // Not UTF-8 at all.
    assert_eq!(
        context(&deps, b"Bearer key_\xff.\xfe").await["authenticated"],
        false
    );
    for header in &cases {
        let ctx = context(&deps, header.as_bytes()).await;
        assert_eq!(ctx["authenticated"], false, "{header:?}");
        assert!(ctx.get("account_id").is_none());
    }
    // Revoked.
    let revoked = nuvem_domain::events::Envelope::new(
        nuvem_domain::events::EventType::KeyRevoked,
        &record.account_id,
        serde_json::json!({ "key_id": record.id }),
        Utc::now(),
    );
    deps.store
        .revoke_key(&record.account_id, &record.id, Utc::now(), &revoked)
        .await
        .unwrap();
    assert_eq!(
        context(&deps, &format!("Bearer {credential}")).await["authenticated"],
        false
    );
    // Expired.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let _ = expired;
    assert_eq!(
        context(&deps, &format!("Bearer {expired_credential}")).await["authenticated"],
        false
    );
}

#[tokio::test]
async fn last_use_is_written_at_most_once_a_minute() {
    let deps = deps().await;
    let (record, credential) = key(&deps, Role::Owner, None).await;
    let now = Utc::now();
    let header = format!("Bearer {credential}");
    authorizer::authenticate(&deps, Some(&header), now)
        .await
        .unwrap();
    let first = deps
        .store
        .get_key(&record.id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    authorizer::authenticate(&deps, Some(&header), now + Duration::seconds(30))
        .await
        .unwrap();
    let second = deps
        .store
        .get_key(&record.id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    assert_eq!(first, second, "within a minute nothing is written");
    authorizer::authenticate(&deps, Some(&header), now + Duration::seconds(61))
        .await
        .unwrap();
    let third = deps
        .store
        .get_key(&record.id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    assert!(third > first);
}

/// DynamoDB that does not answer (overloaded, or the network to it down):
/// the key lookup gives up at the SDK's operation timeout, the authorizer
/// still answers, and the route turns its answer into a 503 that asks the
/// client to come back once API Gateway's cached copy of it is gone.
#[tokio::test]
async fn a_key_store_that_does_not_answer_is_a_503_with_retry_after_never_a_500() {
    let t = TestStack::new("authz-slow").await;
    let slow = nuvem_testkit::unresponsive::unresponsive_sdk(
        &t.sdk,
        std::time::Duration::from_millis(300),
    )
    .await;
    let deps = Deps {
        store: Store::new(&slow, t.table()),
        cache_seconds: 20,
    };
    let credential = format!(
        "Bearer key_01jd0000000000000000000077.{}",
        keys::generate_secret().expose()
    );
    let ctx = context(&deps, &credential).await;
    assert_eq!(ctx["authenticated"], false);
    assert_eq!(ctx["unavailable"], true);
    assert!(ctx.get("account_id").is_none());

    let req = nuvem_testkit::fixtures::with_authorizer(
        nuvem_testkit::fixtures::http_event("keys/list-keys.json"),
        ctx,
    );
    let problem = nuvem_aws::http::require(&req, &[Role::Owner, Role::Admin]).unwrap_err();
    let answer = problem.into_response();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "20");
    assert_eq!(answer.headers()["content-type"], "application/problem+json");

    // A bad credential stays a 401 (no lookup is needed to refuse it).
    let ctx = context(&deps, "Bearer nonsense").await;
    assert!(ctx.get("unavailable").is_none());
}
