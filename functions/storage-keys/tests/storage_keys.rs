//! Storage keys against the emulator's IAM, DynamoDB and SQS, from
//! `events/storage-keys/`. What S3 then allows each key is proven in
//! `s3_access.rs`, on an emulator that enforces IAM.

use std::sync::{Arc, Mutex};

use aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_iam::error::{BoxError, ProvideErrorMetadata};
use nuvem_aws::http::Request;
use nuvem_aws::iam::StorageUsers;
use nuvem_domain::ids;
use nuvem_domain::storage_key::{self, Access, Grant};
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::{as_principal, http_event, reply, with_json, with_path_param};
use serde_json::{Value, json};

/// The bodies of the IAM requests the function sends: moto (5.2.5) keeps
/// no permissions boundary of a user, so that it is asked for is checked
/// on the request itself.
#[derive(Debug, Default, Clone)]
struct IamRequests(Arc<Mutex<Vec<String>>>);

impl Intercept for IamRequests {
    fn name(&self) -> &'static str {
        "iam-requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(body) = context.request().body().bytes() {
            let text = String::from_utf8_lossy(body).replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&text)
                .decode_utf8_lossy()
                .into_owned();
            self.0.lock().unwrap().push(decoded);
        }
        Ok(())
    }
}

struct Env {
    deps: storage_keys::Deps,
    requests: IamRequests,
    buckets: buckets::Deps,
    iam: aws_sdk_iam::Client,
    t: TestStack,
}

async fn env() -> Env {
    let t = TestStack::new("skeys").await;
    let mut deps =
        storage_keys::Deps::from_lookup(&t.sdk, &t.env("StorageKeys")).expect("configuration");
    let requests = IamRequests::default();
    let boundary = (t.env("StorageKeys"))("STORAGE_KEY_BOUNDARY_ARN").expect("boundary");
    deps.access.users = StorageUsers::from_client(
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&t.sdk)
                .interceptor(requests.clone())
                .build(),
        ),
        boundary,
    );
    let buckets = buckets::Deps::from_lookup(&t.sdk, &t.env("Buckets")).expect("configuration");
    Env {
        iam: aws_sdk_iam::Client::new(&t.sdk),
        requests,
        deps,
        buckets,
        t,
    }
}

fn account() -> String {
    ids::new_id(ids::ACCOUNT)
}

fn as_role(req: Request, account: &str, role: &str) -> Request {
    as_principal(req, account, "key_01jd0000000000000000000001", role)
}

async fn call(env: &Env, req: Request) -> (u16, Value) {
    let (status, _, body) = reply(&storage_keys::handle(&env.deps, req).await);
    (status, body)
}

async fn bucket(env: &Env, account: &str, name: &str) {
    let req = as_role(
        with_json(
            http_event("buckets/create-bucket.json"),
            &json!({ "name": name }),
        ),
        account,
        "owner",
    );
    let (status, _, body) = reply(&buckets::handle(&env.buckets, req).await);
    assert_eq!(status, 201, "{body}");
}

async fn create(env: &Env, account: &str, body: Value) -> (u16, Value) {
    let req = with_json(http_event("storage-keys/create-storage-key.json"), &body);
    call(env, as_role(req, account, "owner")).await
}

async fn on_key(env: &Env, fixture: &str, account: &str, id: &str) -> (u16, Value) {
    let req = with_path_param(http_event(fixture), "id", id);
    call(env, as_role(req, account, "owner")).await
}

async fn list(env: &Env, account: &str) -> (u16, Value) {
    call(
        env,
        as_role(
            http_event("storage-keys/list-storage-keys.json"),
            account,
            "owner",
        ),
    )
    .await
}

async fn access_keys(env: &Env, user: &str) -> Vec<String> {
    let mut ids: Vec<String> = env
        .iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

fn user_of(env: &Env, id: &str) -> String {
    storage_key::user_name(&env.deps.access.prefix, id)
}

async fn outbox_types(env: &Env, account: &str) -> Vec<String> {
    let pk = format!("ACCOUNT#{account}");
    let mut events: Vec<(String, String)> =
        nuvem_testkit::inspect::scan_all(&env.t.db, env.t.table())
            .await
            .into_iter()
            .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk))
            .filter_map(|i| {
                let sk = i.get("sk")?.as_s().ok()?.clone();
                let kind = i.get("type")?.as_s().ok()?.clone();
                sk.starts_with("EVENT#").then_some((sk, kind))
            })
            .collect();
    events.sort();
    events.into_iter().map(|(_, kind)| kind).collect()
}

#[tokio::test]
async fn a_key_is_a_bounded_iam_user_with_a_policy_on_the_accounts_buckets() {
    let env = env().await;
    let a = account();
    bucket(&env, &a, "backups").await;
    let (status, made) = create(&env, &a, json!({ "name": "Conector Imperius Serviço" })).await;
    assert_eq!(status, 201, "{made}");
    let id = made["storage_key"]["id"].as_str().unwrap().to_owned();
    let secret = made["secret_access_key"].as_str().unwrap().to_owned();
    assert!(!secret.is_empty());
    assert_eq!(made["region"], "us-east-1");
    assert_eq!(made["endpoint"], "https://s3.us-east-1.amazonaws.com");
    assert_eq!(made["buckets"], json!(["backups"]));
    assert_eq!(made["storage_key"]["all_buckets"], true);
    assert_eq!(made["storage_key"]["status"], "active");
    assert_eq!(made["storage_key"]["access"], "read_write");

    // The IAM user: under the tenant path, bounded, tagged with its account.
    let user = env
        .iam
        .get_user()
        .user_name(user_of(&env, &id))
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(
        user.path(),
        storage_key::user_path(&env.deps.access.prefix, &a)
    );
    let boundary = (env.t.env("StorageKeys"))("STORAGE_KEY_BOUNDARY_ARN").unwrap();
    let created: Vec<String> = env
        .requests
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b.contains("Action=CreateUser") && b.contains(user.user_name()))
        .cloned()
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        created[0].contains(&format!("PermissionsBoundary={boundary}")),
        "{created:?}"
    );
    assert!(
        user.tags()
            .iter()
            .any(|t| t.key() == storage_key::ACCOUNT_TAG_KEY && t.value() == a)
    );
    assert_eq!(
        policy_in_iam(&env, user.user_name()).await,
        read_write_policy(&env, &a, &Grant::AllBuckets)
    );
    assert_eq!(
        access_keys(&env, user.user_name()).await,
        [made["access_key_id"].as_str().unwrap()]
    );

    // Never shown again; announced and audited.
    let (status, listed) = list(&env, &a).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert_eq!(listed["items"][0]["buckets"], json!(["backups"]));
    assert!(!listed.to_string().contains(&secret));
    let (_, shown) = on_key(&env, "storage-keys/get-storage-key.json", &a, &id).await;
    assert!(!shown.to_string().contains(&secret));
    assert_eq!(outbox_types(&env, &a).await, ["storage_key.created"]);
    let audit = env.deps.core.store.list_audit(&a, 10, None).await.unwrap();
    assert_eq!(audit.items[0].action, "storage_key.created");
}

/// The inline policy IAM holds for `user`.
async fn policy_in_iam(env: &Env, user: &str) -> Value {
    let out = env
        .iam
        .get_user_policy()
        .user_name(user)
        .policy_name(storage_key::POLICY_NAME)
        .send()
        .await
        .unwrap();
    serde_json::from_str(&urlencoding_decode(out.policy_document())).unwrap()
}

/// The policy a read-write, unblocked key of `account` should have for `grant`.
fn read_write_policy(env: &Env, account: &str, grant: &Grant<'_>) -> Value {
    storage_key::policy_document(
        "aws",
        &env.deps.access.prefix,
        account,
        grant,
        Access::ReadWrite,
        false,
    )
    .unwrap()
}

/// IAM answers policy documents URL-encoded (RFC 3986).
fn urlencoding_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn bad_requests_store_nothing_and_make_no_user() {
    let env = env().await;
    let a = account();
    bucket(&env, &a, "backups").await;
    for (body, field) in [
        (
            json!({ "name": "x", "buckets": ["backups", "nope"] }),
            "buckets[1]",
        ),
        (json!({ "name": "", "buckets": [] }), "name"),
        (
            json!({ "name": "x", "buckets": ["Not_A_Bucket"] }),
            "buckets[0]",
        ),
    ] {
        let (status, problem) = create(&env, &a, body.clone()).await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    for body in [
        json!({ "name": "x", "admin": true }),
        json!({ "name": "x", "access": "write" }),
        json!({ "name": 7 }),
    ] {
        let (status, problem) = create(&env, &a, body.clone()).await;
        assert!((400..500).contains(&status), "{body} → {status} {problem}");
    }
    let (_, listed) = list(&env, &a).await;
    assert_eq!(listed["items"], json!([]));
    let users = env
        .iam
        .list_users()
        .path_prefix(storage_key::user_path(&env.deps.access.prefix, &a))
        .send()
        .await
        .unwrap();
    assert!(users.users().is_empty());
    // Only owners manage storage keys.
    for role in ["approver", "operator"] {
        let req = with_json(
            http_event("storage-keys/create-storage-key.json"),
            &json!({"name": "x"}),
        );
        let (status, _) = call(&env, as_role(req, &a, role)).await;
        assert_eq!(status, 403, "{role}");
    }
}

#[tokio::test]
async fn another_account_can_neither_see_nor_change_a_key() {
    let env = env().await;
    let (a, b) = (account(), account());
    bucket(&env, &a, "backups").await;
    let (_, made) = create(&env, &a, json!({ "name": "k", "buckets": ["backups"] })).await;
    let id = made["storage_key"]["id"].as_str().unwrap();
    for fixture in [
        "storage-keys/get-storage-key.json",
        "storage-keys/revoke-storage-key.json",
        "storage-keys/rotate-storage-key.json",
        "storage-keys/confirm-storage-key-rotation.json",
        "storage-keys/cancel-storage-key-rotation.json",
    ] {
        let (status, _) = on_key(&env, fixture, &b, id).await;
        assert_eq!(status, 404, "{fixture}");
    }
    let (_, listed) = list(&env, &b).await;
    assert_eq!(listed["items"], json!([]));
    // B cannot name A's bucket either: it is not B's.
    let (status, _) = create(&env, &b, json!({ "name": "k", "buckets": ["backups"] })).await;
    assert_eq!(status, 422);
    let (_, shown) = on_key(&env, "storage-keys/get-storage-key.json", &a, id).await;
    assert_eq!(shown["status"], "active");
    assert_eq!(access_keys(&env, &user_of(&env, id)).await.len(), 1);
}

#[tokio::test]
async fn revoking_deletes_the_user_once_and_is_repeatable() {
    let env = env().await;
    let a = account();
    let (_, made) = create(&env, &a, json!({ "name": "k" })).await;
    let id = made["storage_key"]["id"].as_str().unwrap();
    for _ in 0..2 {
        let (status, body) = on_key(&env, "storage-keys/revoke-storage-key.json", &a, id).await;
        assert_eq!(status, 204, "{body}");
    }
    let gone = env
        .iam
        .get_user()
        .user_name(user_of(&env, id))
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("NoSuchEntity"));
    let (_, shown) = on_key(&env, "storage-keys/get-storage-key.json", &a, id).await;
    assert_eq!(shown["status"], "revoked");
    assert!(shown["revoked_at"].is_string());
    let (status, _) = on_key(&env, "storage-keys/rotate-storage-key.json", &a, id).await;
    assert_eq!(status, 409, "a revoked key cannot be rotated");
    assert_eq!(
        outbox_types(&env, &a).await,
        ["storage_key.created", "storage_key.revoked"]
    );
}

#[tokio::test]
async fn a_rotation_holds_both_keys_until_it_is_confirmed_or_cancelled() {
    let env = env().await;
    let a = account();
    let (_, made) = create(&env, &a, json!({ "name": "k", "access": "read_only" })).await;
    let id = made["storage_key"]["id"].as_str().unwrap();
    let user = user_of(&env, id);
    let first = made["access_key_id"].as_str().unwrap().to_owned();

    let (status, rotated) = on_key(&env, "storage-keys/rotate-storage-key.json", &a, id).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["access_key_id"].as_str().unwrap().to_owned();
    assert!(rotated["secret_access_key"].is_string());
    assert_eq!(
        rotated["storage_key"]["pending_access_key_id"],
        second.as_str()
    );
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    assert_eq!(access_keys(&env, &user).await, both);
    let (status, _) = on_key(&env, "storage-keys/rotate-storage-key.json", &a, id).await;
    assert_eq!(status, 409, "one rotation at a time");

    let (status, cancelled) = on_key(
        &env,
        "storage-keys/cancel-storage-key-rotation.json",
        &a,
        id,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(access_keys(&env, &user).await, [first.as_str()]);
    assert_eq!(cancelled["access_key_id"], first.as_str());

    let (_, rotated) = on_key(&env, "storage-keys/rotate-storage-key.json", &a, id).await;
    let third = rotated["access_key_id"].as_str().unwrap().to_owned();
    let (status, confirmed) = on_key(
        &env,
        "storage-keys/confirm-storage-key-rotation.json",
        &a,
        id,
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["access_key_id"], third.as_str());
    assert!(confirmed.get("pending_access_key_id").is_none());
    assert_eq!(access_keys(&env, &user).await, [third]);
    let (status, _) = on_key(
        &env,
        "storage-keys/confirm-storage-key-rotation.json",
        &a,
        id,
    )
    .await;
    assert_eq!(status, 409, "nothing left to confirm");
    let audit = env.deps.core.store.list_audit(&a, 10, None).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "storage_key.rotated",
            "storage_key.rotation_started",
            "storage_key.rotation_cancelled",
            "storage_key.rotation_started",
            "storage_key.created"
        ]
    );
}

#[tokio::test]
async fn the_per_account_cap_holds_under_concurrent_creations() {
    let env = env().await;
    let a = account();
    let max = storage_key::MAX_KEYS_PER_ACCOUNT as usize;
    let results = futures::future::join_all(
        (0..max + 3).map(|i| create(&env, &a, json!({ "name": format!("k{i}") }))),
    )
    .await;
    let made = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((made, refused), (max, 3), "{results:?}");
    let users = env
        .iam
        .list_users()
        .path_prefix(storage_key::user_path(&env.deps.access.prefix, &a))
        .send()
        .await
        .unwrap();
    assert_eq!(users.users().len(), max);
    // Revoking one frees a place.
    let id = results.iter().find(|(s, _)| *s == 201).unwrap().1["storage_key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    on_key(&env, "storage-keys/revoke-storage-key.json", &a, &id).await;
    let (status, _) = create(&env, &a, json!({ "name": "again" })).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_deleted_bucket_leaves_the_keys_that_named_it() {
    let env = env().await;
    let a = account();
    bucket(&env, &a, "dados").await;
    bucket(&env, &a, "fotos").await;
    let (_, both) = create(
        &env,
        &a,
        json!({ "name": "duas", "buckets": ["dados", "fotos"] }),
    )
    .await;
    let (_, only) = create(
        &env,
        &a,
        json!({ "name": "só fotos", "buckets": ["fotos"] }),
    )
    .await;
    let (_, all) = create(&env, &a, json!({ "name": "todas" })).await;
    let req = as_role(
        with_path_param(http_event("buckets/delete-bucket.json"), "name", "fotos"),
        &a,
        "owner",
    );
    let (status, _, body) = reply(&buckets::handle(&env.buckets, req).await);
    assert_eq!(status, 204, "{body}");

    let policy_of = |answer: &Value| user_of(&env, answer["storage_key"]["id"].as_str().unwrap());
    let dados =
        nuvem_domain::bucket::physical_bucket_name(&env.deps.access.prefix, &a, "dados").unwrap();
    assert_eq!(
        policy_in_iam(&env, &policy_of(&both)).await,
        read_write_policy(&env, &a, &Grant::Buckets(std::slice::from_ref(&dados)))
    );
    assert_eq!(
        policy_in_iam(&env, &policy_of(&only)).await,
        read_write_policy(&env, &a, &Grant::Buckets(&[]))
    );
    assert_eq!(
        policy_in_iam(&env, &policy_of(&all)).await,
        read_write_policy(&env, &a, &Grant::AllBuckets),
        "an all-buckets key is unchanged"
    );

    // The same name again is a new bucket: no old key names it.
    bucket(&env, &a, "fotos").await;
    let (_, listed) = list(&env, &a).await;
    let buckets_of = |name: &str| {
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap()["buckets"]
            .clone()
    };
    assert_eq!(buckets_of("duas"), json!(["dados"]));
    assert_eq!(buckets_of("só fotos"), json!([]));
    assert_eq!(buckets_of("todas"), json!(["dados", "fotos"]));
}
