//! Tenant buckets against the emulator's S3, SQS and DynamoDB, from `events/buckets/`.

use nuvem_aws::http::Request;
use nuvem_aws::store::{BucketRecord, BucketState};
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::{as_principal, http_event, reply, with_json, with_path_param};
use nuvem_testkit::inspect::{drain, partition_keys};
use serde_json::{Value, json};

const A: &str = "acc_01jd0000000000000000000000";
const B: &str = "acc_01jd1111111111111111111111";

struct Env {
    deps: buckets::Deps,
    t: TestStack,
}

async fn env() -> Env {
    let t = TestStack::new("buckets").await;
    // Configured as the template configures the function, with the
    // parameters' defaults (S3 names are global in the emulator: each test
    // stack's prefix is its own).
    let deps = buckets::Deps::from_lookup(&t.sdk, &t.env("Buckets")).expect("configuration");
    Env { deps, t }
}

fn owner(req: Request, account: &str) -> Request {
    as_principal(req, account, "key_01jd0000000000000000000001", "owner")
}

fn create(account: &str, name: &str) -> Request {
    owner(
        with_json(
            http_event("buckets/create-bucket.json"),
            &json!({ "name": name }),
        ),
        account,
    )
}

fn named(fixture: &str, account: &str, name: &str) -> Request {
    owner(with_path_param(http_event(fixture), "name", name), account)
}

async fn call(env: &Env, req: Request) -> (u16, Value) {
    let (status, _, body) = reply(&buckets::handle(&env.deps, req).await);
    (status, body)
}

#[tokio::test]
async fn a_created_bucket_is_private_tagged_and_reports_its_changes() {
    let env = env().await;
    let (status, created) = call(&env, create(A, "backups-loja")).await;
    assert_eq!(status, 201, "{created}");
    let bucket = created["bucket"].as_str().unwrap().to_owned();
    assert!(
        bucket.starts_with(&env.deps.prefix) && bucket.ends_with("-backups-loja"),
        "{bucket}"
    );
    assert_eq!(
        (created["region"].as_str(), created["state"].as_str()),
        (Some("us-east-1"), Some("ready"))
    );
    assert_eq!(
        created["endpoint"], "https://s3.us-east-1.amazonaws.com",
        "S3ClientEndpoint left at its default (empty) is the region's AWS endpoint"
    );

    let s3 = env.deps.blobs.client();
    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));
    let tags = s3
        .get_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "nuvem:account" && t.value() == A)
    );

    // The bucket's changes reach the s3-events queue.
    let queue = &env.t.stack.queue("S3EventsQueue").url;
    drain(&env.t.sqs, queue, 10).await;
    s3.put_object()
        .bucket(&bucket)
        .key("dia 1/backup.tar")
        .body(vec![7u8; 1234].into())
        .send()
        .await
        .unwrap();
    let messages = drain(&env.t.sqs, queue, 10).await;
    let records: Vec<Value> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m.body()?).ok())
        .flat_map(|v| v["Records"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["s3"]["bucket"]["name"] == bucket.as_str()
                && r["s3"]["object"]["size"] == 1234),
        "{records:?}"
    );
}

#[tokio::test]
async fn names_are_per_account_and_a_second_create_is_a_conflict() {
    let env = env().await;
    let (a, _) = call(&env, create(A, "backups")).await;
    let (b, body_b) = call(&env, create(B, "backups")).await;
    assert_eq!((a, b), (201, 201), "{body_b}");
    let (again, problem) = call(&env, create(A, "backups")).await;
    assert_eq!(again, 409, "{problem}");

    let (_, listed_a) = call(&env, owner(http_event("buckets/list-buckets.json"), A)).await;
    let names: Vec<&str> = listed_a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert_ne!(
        names[0],
        body_b["bucket"].as_str().unwrap(),
        "A never sees B's bucket"
    );
}

#[tokio::test]
async fn a_create_that_failed_halfway_is_finished_by_the_retry() {
    let env = env().await;
    // A claim left `creating` by a create that died before S3 was set up.
    let physical =
        nuvem_domain::bucket::physical_bucket_name(&env.deps.prefix, A, "halfway").unwrap();
    env.deps
        .store
        .claim_bucket(&BucketRecord {
            name: "halfway".into(),
            bucket: physical.clone(),
            account_id: A.into(),
            state: BucketState::Creating,
            imperius_license: false,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let (status, shown) = call(&env, named("buckets/get-bucket.json", A, "halfway")).await;
    assert_eq!((status, shown["state"].as_str()), (202, Some("creating")));
    // Another account cannot take it over; the owner's retry finishes it.
    let (status, body) = call(&env, create(A, "halfway")).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        env.deps
            .blobs
            .client()
            .head_bucket()
            .bucket(&physical)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn only_empty_buckets_of_ones_own_account_are_deleted() {
    let env = env().await;
    let (_, created) = call(&env, create(A, "arquivo")).await;
    let bucket = created["bucket"].as_str().unwrap().to_owned();
    let s3 = env.deps.blobs.client();
    s3.put_object()
        .bucket(&bucket)
        .key("x")
        .body(vec![1u8; 10].into())
        .send()
        .await
        .unwrap();

    assert_eq!(
        call(&env, named("buckets/delete-bucket.json", B, "arquivo"))
            .await
            .0,
        404
    );
    assert_eq!(
        call(&env, named("buckets/get-bucket.json", B, "arquivo"))
            .await
            .0,
        404
    );
    let (status, problem) = call(&env, named("buckets/delete-bucket.json", A, "arquivo")).await;
    assert_eq!(status, 409, "{problem}");

    s3.delete_object()
        .bucket(&bucket)
        .key("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        call(&env, named("buckets/delete-bucket.json", A, "arquivo"))
            .await
            .0,
        204
    );
    assert!(s3.head_bucket().bucket(&bucket).send().await.is_err());
    assert_eq!(
        call(&env, named("buckets/get-bucket.json", A, "arquivo"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn bad_names_and_wrong_roles_change_nothing() {
    let env = env().await;
    for name in [
        "ab",
        "Maiusculas",
        "com.ponto",
        "-traco",
        "192.168.0.1",
        "xn--abc",
        &"a".repeat(80),
    ] {
        let (status, problem) = call(&env, create(A, name)).await;
        assert_eq!(status, 422, "{name}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "name");
    }
    let extra = owner(
        with_json(
            http_event("buckets/create-bucket.json"),
            &json!({"name": "ok-name", "account_id": B}),
        ),
        A,
    );
    assert_eq!(call(&env, extra).await.0, 422);
    let operator = as_principal(
        http_event("buckets/create-bucket.json"),
        A,
        "key_01jd0000000000000000000002",
        "operator",
    );
    assert_eq!(call(&env, operator).await.0, 403);
    assert!(
        partition_keys(&env.t.db, env.t.table()).await.is_empty(),
        "nothing stored"
    );
    let listed = as_principal(
        http_event("buckets/list-buckets.json"),
        A,
        "key_01jd0000000000000000000002",
        "operator",
    );
    assert_eq!(call(&env, listed).await.0, 200, "every tenant role reads");
}

/// An approved account with `licenses` Imperius licences and a quota.
async fn active_account(env: &Env, licenses: u32, quota_gb: f64) -> String {
    let quota_bytes = nuvem_domain::account::quota_bytes(quota_gb);
    nuvem_testkit::tenants::active_account(&env.deps.store, quota_bytes, licenses)
        .await
        .id
}

fn set_license(account: &str, name: &str, on: bool) -> Request {
    let req = with_json(
        http_event("buckets/set-license.json"),
        &json!({ "imperius_license": on }),
    );
    owner(with_path_param(req, "name", name), account)
}

#[tokio::test]
async fn licences_in_use_never_exceed_the_contract_even_under_concurrency() {
    let env = env().await;
    let account = active_account(&env, 2, 1.0).await;
    let names = ["lic-a", "lic-b", "lic-c", "lic-d"];
    for name in names {
        assert_eq!(call(&env, create(&account, name)).await.0, 201);
    }
    let results = futures::future::join_all(
        names
            .iter()
            .map(|n| call(&env, set_license(&account, n, true))),
    )
    .await;
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{results:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        2,
        "{results:?}"
    );

    let usage = || owner(http_event("buckets/usage.json"), &account);
    let (_, shown) = call(&env, usage()).await;
    assert_eq!(
        shown["imperius_licenses"],
        json!({"contracted": 2, "in_use": 2})
    );
    let licensed: Vec<&str> = shown["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["imperius_license"] == true)
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(licensed.len(), 2);

    // Off, twice: the second changes nothing.
    for _ in 0..2 {
        let (status, bucket) = call(&env, set_license(&account, licensed[0], false)).await;
        assert_eq!(
            (status, bucket["imperius_license"].as_bool()),
            (200, Some(false))
        );
    }
    assert_eq!(
        call(&env, usage()).await.1["imperius_licenses"]["in_use"],
        1
    );
    // A licensed bucket is not deleted.
    assert_eq!(
        call(
            &env,
            named("buckets/delete-bucket.json", &account, licensed[1])
        )
        .await
        .0,
        409
    );
    // Another account's bucket is not found.
    assert_eq!(call(&env, set_license(B, licensed[1], false)).await.0, 404);
}

#[tokio::test]
async fn usage_adds_up_the_buckets_against_the_quota_in_decimal_gigabytes() {
    let env = env().await;
    let account = active_account(&env, 0, 0.001).await; // 1 000 000 bytes
    for (name, bytes, objects) in [("uso-um", 600_000u64, 3u64), ("uso-dois", 200_000, 1)] {
        let (_, created) = call(&env, create(&account, name)).await;
        // Usage as `quota-alerts` keeps it from S3 events.
        let bucket = created["bucket"].as_str().unwrap();
        env.t
            .db
            .put_item()
            .table_name(env.t.table())
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(nuvem_aws::table_keys::bucket_pk(
                    bucket,
                )),
            )
            .item(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(nuvem_aws::table_keys::USAGE_SK.into()),
            )
            .item(
                "bytes",
                aws_sdk_dynamodb::types::AttributeValue::N(bytes.to_string()),
            )
            .item(
                "objects",
                aws_sdk_dynamodb::types::AttributeValue::N(objects.to_string()),
            )
            .send()
            .await
            .unwrap();
    }
    call(&env, create(&account, "uso-vazio")).await;
    let operator = as_principal(
        http_event("buckets/usage.json"),
        &account,
        "key_01jd0000000000000000000002",
        "operator",
    );
    let (status, usage) = call(&env, operator).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["quota_bytes"], 1_000_000);
    assert_eq!(usage["used_bytes"], 800_000);
    assert!((usage["used_percent"].as_f64().unwrap() - 80.0).abs() < 1e-9);
    let rows = usage["buckets"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let empty = rows.iter().find(|b| b["name"] == "uso-vazio").unwrap();
    assert_eq!(
        (empty["used_bytes"].as_u64(), empty["object_count"].as_u64()),
        (Some(0), Some(0))
    );
    let (_, one) = call(&env, named("buckets/get-bucket.json", &account, "uso-um")).await;
    assert_eq!(
        (one["used_bytes"].as_u64(), one["object_count"].as_u64()),
        (Some(600_000), Some(3))
    );
}
