//! What S3 lets a storage key do, on an emulator that enforces IAM: moto's
//! server checks every request's signature and evaluates the caller's IAM
//! policies once `/moto-api/reset-auth` is set. The functions run with real
//! IAM credentials of their own there (an admin user made before
//! enforcement starts), and each storage key is used as a backup client
//! would: an S3 client configured only from the creation's answer.
//!
//! moto (5.2.5) does not evaluate permissions boundaries, so this proves
//! the inline policies; the boundary is defence in depth on AWS.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_types::sdk_config::SharedCredentialsProvider;
use nuvem_aws::http::Request;
use nuvem_domain::ids;
use nuvem_testkit::fixtures::{as_principal, http_event, reply, with_json, with_path_param};
use nuvem_testkit::template::Template;
use nuvem_testkit::{Emulator, Stack, unique_name};
use serde_json::{Value, json};

struct Env {
    keys: storage_keys::Deps,
    buckets: buckets::Deps,
    /// The consumers that keep usage (S3 events) and apply the hard quota
    /// (domain events), run here by hand on what their queues hold.
    quota_alerts: quota_alerts::Deps,
    fanout: fanout::Deps,
    sqs: aws_sdk_sqs::Client,
    /// The functions' SDK configuration, and the approval function's environment.
    functions_sdk: aws_config::SdkConfig,
    approval_env: std::collections::BTreeMap<String, String>,
    s3_events: String,
    events: String,
    /// Kept alive: dropping it stops the emulator.
    _emulator: Emulator,
}

/// A stack on an emulator of its own, then IAM enforcement turned on.
async fn enforced() -> Env {
    let emulator = tokio::task::spawn_blocking(Emulator::start_owned)
        .await
        .unwrap()
        .expect("an emulator of this test's own");
    // Clients are told the emulator's endpoint, as `make dev` tells them.
    let params = [(
        "S3ClientEndpoint".to_owned(),
        emulator.endpoint().to_owned(),
    )]
    .into();
    let template = Template::load_default(&params).expect("template");
    let stack = Stack::create_from(&emulator, template, &unique_name("skauth"))
        .await
        .expect("stack");
    let open = emulator.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&open);
    iam.create_user()
        .user_name("nuvem-functions")
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name("nuvem-functions")
        .policy_name("everything")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("nuvem-functions")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let enforce = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", emulator.endpoint()))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(enforce.status().is_success());
    let sdk = open
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new(
                key.access_key_id,
                key.secret_access_key,
                None,
                None,
                "nuvem-functions",
            ),
        ))
        .build();
    // Enforcement is on: the old credentials are refused now.
    assert!(
        aws_sdk_iam::Client::new(&open)
            .list_users()
            .send()
            .await
            .is_err()
    );
    let env_of = |function: &str| {
        let vars = stack.function_env(function);
        move |name: &str| vars.get(name).cloned()
    };
    let fanout_env = env_of("Fanout");
    Env {
        keys: storage_keys::Deps::from_lookup(&sdk, &env_of("StorageKeys")).unwrap(),
        buckets: buckets::Deps::from_lookup(&sdk, &env_of("Buckets")).unwrap(),
        quota_alerts: quota_alerts::Deps {
            core: nuvem_aws::Core::from_lookup(&sdk, &env_of("QuotaAlerts")).unwrap(),
        },
        fanout: fanout::Deps {
            store: nuvem_aws::store::Store::new(&sdk, fanout_env("TABLE_NAME").unwrap()),
            mailer: nuvem_aws::mail::Mailer::new(&sdk, fanout_env("MAIL_FROM").unwrap()),
            deliveries: nuvem_aws::deliveries::DeliveryQueue::new(
                &sdk,
                fanout_env("DELIVERIES_QUEUE_URL").unwrap(),
            ),
            outbound: nuvem_aws::whatsapp_jobs::OutboundQueue::new(
                &sdk,
                fanout_env("OUTBOUND_QUEUE_URL").unwrap(),
            ),
            public_base_url: "https://app.nuvem.example".into(),
            access: nuvem_aws::storage_access::StorageAccess::from_lookup(&sdk, &fanout_env)
                .unwrap(),
        },
        sqs: aws_sdk_sqs::Client::new(&sdk),
        approval_env: stack.function_env("Approval"),
        functions_sdk: sdk.clone(),
        s3_events: stack.queue("S3EventsQueue").url.clone(),
        events: stack.queue("EventsQueue").url.clone(),
        _emulator: emulator,
    }
}

fn owner(req: Request, account: &str) -> Request {
    as_principal(req, account, "key_01jd0000000000000000000001", "owner")
}

/// Creates bucket `name` of `account`; its S3 name.
async fn bucket(env: &Env, account: &str, name: &str) -> String {
    let req = owner(
        with_json(
            http_event("buckets/create-bucket.json"),
            &json!({ "name": name }),
        ),
        account,
    );
    let (status, _, body) = reply(&buckets::handle(&env.buckets, req).await);
    assert_eq!(status, 201, "{body}");
    body["bucket"].as_str().unwrap().to_owned()
}

async fn storage_key(env: &Env, account: &str, body: Value) -> Value {
    let req = owner(
        with_json(http_event("storage-keys/create-storage-key.json"), &body),
        account,
    );
    let (status, _, made) = reply(&storage_keys::handle(&env.keys, req).await);
    assert_eq!(status, 201, "{made}");
    made
}

/// An S3 client configured only from a key's answer, as a backup client is.
fn client(answer: &Value, secret: Option<&str>) -> aws_sdk_s3::Client {
    let field = |name: &str| answer[name].as_str().unwrap().to_owned();
    let credentials = aws_sdk_s3::config::Credentials::new(
        field("access_key_id"),
        secret
            .map(str::to_owned)
            .unwrap_or_else(|| field("secret_access_key")),
        None,
        None,
        "storage-key",
    );
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(field("region")))
            .endpoint_url(field("endpoint"))
            .credentials_provider(credentials)
            .force_path_style(true)
            .build(),
    )
}

/// `Ok` or the S3 error code of a put.
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(b"backup bytes".to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("no code").to_owned())
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<String>, String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .map(|out| {
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect()
        })
        .map_err(|e| e.code().unwrap_or("no code").to_owned())
}

async fn multipart(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    let code = |e: &dyn ProvideErrorMetadata| e.code().unwrap_or("no code").to_owned();
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| code(&e))?;
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    // S3's smallest part but the last is 5 MiB.
    for (n, size) in [(1, 5 * 1024 * 1024), (2, 1024)] {
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(vec![n as u8; size]))
            .send()
            .await
            .map_err(|e| code(&e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(part.e_tag)
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_key_reaches_its_buckets_and_nothing_else() {
    let env = enforced().await;
    let (a, b) = (ids::new_id(ids::ACCOUNT), ids::new_id(ids::ACCOUNT));
    let a_data = bucket(&env, &a, "dados").await;
    let b_data = bucket(&env, &b, "dados").await;

    let all = storage_key(&env, &a, json!({ "name": "Conector Imperius Serviço" })).await;
    let named = storage_key(
        &env,
        &a,
        json!({ "name": "só dados", "buckets": ["dados"] }),
    )
    .await;
    let reader = storage_key(
        &env,
        &a,
        json!({ "name": "leitura", "access": "read_only" }),
    )
    .await;
    let (s3_all, s3_named, s3_reader) = (
        client(&all, None),
        client(&named, None),
        client(&reader, None),
    );

    // Its own buckets: write, read, list, multipart, delete.
    assert_eq!(put(&s3_all, &a_data, "2026-11-29/full.tar").await, Ok(()));
    let got = s3_all
        .get_object()
        .bucket(&a_data)
        .key("2026-11-29/full.tar")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"backup bytes"
    );
    assert_eq!(
        multipart(&s3_all, &a_data, "2026-11-29/big.tar").await,
        Ok(())
    );
    assert_eq!(
        list(&s3_all, &a_data).await,
        Ok(vec![
            "2026-11-29/big.tar".to_owned(),
            "2026-11-29/full.tar".to_owned()
        ])
    );
    s3_all
        .delete_object()
        .bucket(&a_data)
        .key("2026-11-29/big.tar")
        .send()
        .await
        .unwrap();

    // Another account's bucket: nothing.
    assert_eq!(
        put(&s3_all, &b_data, "intruso.txt").await,
        Err("AccessDenied".into())
    );
    assert_eq!(list(&s3_all, &b_data).await, Err("AccessDenied".into()));
    assert!(
        s3_all
            .get_object()
            .bucket(&b_data)
            .key("x")
            .send()
            .await
            .is_err()
    );

    // A bucket made after the key: covered by the all-buckets key only.
    let a_photos = bucket(&env, &a, "fotos").await;
    assert_eq!(put(&s3_all, &a_photos, "nova.jpg").await, Ok(()));
    assert_eq!(
        put(&s3_named, &a_photos, "nova.jpg").await,
        Err("AccessDenied".into())
    );
    assert_eq!(list(&s3_named, &a_photos).await, Err("AccessDenied".into()));
    assert_eq!(put(&s3_named, &a_data, "dados.txt").await, Ok(()));

    // A deleted bucket leaves no grant behind: made again with the same
    // name (the same S3 name), it is out of reach of a key that named it.
    let both = storage_key(
        &env,
        &a,
        json!({ "name": "duas", "buckets": ["dados", "fotos"] }),
    )
    .await;
    let s3_both = client(&both, None);
    assert_eq!(put(&s3_both, &a_photos, "outra.jpg").await, Ok(()));
    for key in ["nova.jpg", "outra.jpg"] {
        s3_both
            .delete_object()
            .bucket(&a_photos)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    let req = owner(
        with_path_param(http_event("buckets/delete-bucket.json"), "name", "fotos"),
        &a,
    );
    let (status, _, body) = reply(&buckets::handle(&env.buckets, req).await);
    assert_eq!(status, 204, "{body}");
    assert_eq!(bucket(&env, &a, "fotos").await, a_photos);
    assert_eq!(
        put(&s3_both, &a_photos, "de-novo.jpg").await,
        Err("AccessDenied".into())
    );
    assert_eq!(put(&s3_both, &a_data, "ainda.txt").await, Ok(()));
    assert_eq!(
        put(&s3_all, &a_photos, "de-novo.jpg").await,
        Ok(()),
        "all buckets: covered"
    );

    // Read-only: reads and lists, never writes or deletes.
    assert!(
        list(&s3_reader, &a_data)
            .await
            .unwrap()
            .contains(&"dados.txt".to_owned())
    );
    assert_eq!(
        put(&s3_reader, &a_data, "nao.txt").await,
        Err("AccessDenied".into())
    );
    assert!(
        s3_reader
            .delete_object()
            .bucket(&a_data)
            .key("dados.txt")
            .send()
            .await
            .is_err()
    );

    // Any other service: refused.
    let field = |v: &Value, n: &str| v[n].as_str().unwrap().to_owned();
    let as_key = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(field(&all, "region")))
        .endpoint_url(field(&all, "endpoint"))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new(
                field(&all, "access_key_id"),
                field(&all, "secret_access_key"),
                None,
                None,
                "storage-key",
            ),
        ))
        .build();
    let denied = aws_sdk_iam::Client::new(&as_key)
        .list_users()
        .send()
        .await
        .unwrap_err();
    // moto wraps IAM errors in an envelope the SDK does not parse: the
    // status and the raw body say it.
    assert_eq!(
        denied.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
    assert!(
        format!("{denied:?}").contains("<Code>AccessDenied</Code>"),
        "{denied:?}"
    );

    // A wrong secret: refused.
    let forged = client(&all, Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
    assert_eq!(
        put(&forged, &a_data, "x.txt").await,
        Err("SignatureDoesNotMatch".into())
    );

    // Revoked: refused.
    let id = all["storage_key"]["id"].as_str().unwrap();
    let req = owner(
        with_path_param(http_event("storage-keys/revoke-storage-key.json"), "id", id),
        &a,
    );
    let (status, _, _) = reply(&storage_keys::handle(&env.keys, req).await);
    assert_eq!(status, 204);
    assert_eq!(
        put(&s3_all, &a_data, "depois.txt").await,
        Err("InvalidAccessKeyId".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_works_both_ways_until_confirmed() {
    let env = enforced().await;
    let a = ids::new_id(ids::ACCOUNT);
    let data = bucket(&env, &a, "dados").await;
    let first = storage_key(&env, &a, json!({ "name": "k" })).await;
    let id = first["storage_key"]["id"].as_str().unwrap();
    let on_key = |fixture: &str| owner(with_path_param(http_event(fixture), "id", id), &a);
    let (status, _, second) = reply(
        &storage_keys::handle(&env.keys, on_key("storage-keys/rotate-storage-key.json")).await,
    );
    assert_eq!(status, 200, "{second}");
    let (old, new) = (client(&first, None), client(&second, None));
    assert_eq!(put(&old, &data, "a").await, Ok(()));
    assert_eq!(put(&new, &data, "b").await, Ok(()));
    let (status, _, _) = reply(
        &storage_keys::handle(
            &env.keys,
            on_key("storage-keys/confirm-storage-key-rotation.json"),
        )
        .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        put(&old, &data, "c").await,
        Err("InvalidAccessKeyId".into())
    );
    assert_eq!(put(&new, &data, "d").await, Ok(()));
}

/// Runs `handler` on everything `queue` holds now, as its event source would.
async fn consume<F, Fut>(env: &Env, queue: &str, handler: F) -> Vec<Value>
where
    F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::sqs::SqsBatchResponse>,
{
    let messages = nuvem_testkit::inspect::drain(&env.sqs, queue, 100).await;
    let bodies: Vec<Value> = messages
        .iter()
        .filter_map(|m| serde_json::from_str(m.body()?).ok())
        .collect();
    let batch = nuvem_testkit::fixtures::sqs_batch(
        messages
            .iter()
            .map(|m| {
                nuvem_testkit::fixtures::sqs_message(m.message_id().unwrap(), m.body().unwrap())
            })
            .collect(),
    );
    let failures = handler(batch).await.batch_item_failures;
    assert!(failures.is_empty(), "{} failed", failures.len());
    bodies
}

/// S3's notifications into usage, then the domain events they caused into
/// their effects: the types of those events.
async fn settle(env: &Env) -> Vec<String> {
    consume(env, &env.s3_events, |e| {
        quota_alerts::handle(&env.quota_alerts, e)
    })
    .await;
    consume(env, &env.events, |e| fanout::handle(&env.fanout, e))
        .await
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_quota_blocks_writes_at_100_percent_and_restores_them_below() {
    let env = enforced().await;
    // A 10 kB hard quota.
    let account = nuvem_testkit::tenants::account_with(&env.keys.core.store, |a| {
        a.quota_gb = Some(10_000.0 / 1e9);
        a.enforce_quota = true;
    })
    .await;
    let a = account.id.as_str();
    let data = bucket(&env, a, "dados").await;
    let key = storage_key(&env, a, json!({ "name": "Imperius" })).await;
    let s3 = client(&key, None);
    settle(&env).await;

    let object = |n: usize| ByteStream::from(vec![7u8; n]);
    s3.put_object()
        .bucket(&data)
        .key("dia-1.tar")
        .body(object(6_000))
        .send()
        .await
        .unwrap();
    assert!(
        !settle(&env)
            .await
            .contains(&"quota.writes_blocked".to_owned())
    );
    s3.put_object()
        .bucket(&data)
        .key("dia-2.tar")
        .body(object(6_000))
        .send()
        .await
        .unwrap();
    let events = settle(&env).await;
    assert!(
        events.contains(&"quota.writes_blocked".to_owned()),
        "{events:?}"
    );

    // Blocked: no writing, multipart included; reading and deleting still work.
    assert_eq!(
        put(&s3, &data, "dia-3.tar").await,
        Err("AccessDenied".into())
    );
    assert_eq!(
        multipart(&s3, &data, "dia-3-grande.tar").await,
        Err("AccessDenied".into())
    );
    assert_eq!(list(&s3, &data).await.unwrap().len(), 2);
    // A key made now is blocked too.
    let late = storage_key(&env, a, json!({ "name": "outro servidor" })).await;
    assert_eq!(late["storage_key"]["writes_blocked"], true);
    assert_eq!(
        put(&client(&late, None), &data, "x").await,
        Err("AccessDenied".into())
    );
    // Announced once, however often the evaluation runs again.
    env.keys
        .core
        .evaluate_quota(a, chrono::Utc::now())
        .await
        .unwrap();
    let again = settle(&env).await;
    assert!(!again.iter().any(|t| t.starts_with("quota.")), "{again:?}");

    s3.delete_object()
        .bucket(&data)
        .key("dia-1.tar")
        .send()
        .await
        .unwrap();
    let events = settle(&env).await;
    assert!(
        events.contains(&"quota.writes_restored".to_owned()),
        "{events:?}"
    );
    assert_eq!(put(&s3, &data, "dia-3.tar").await, Ok(()));
    assert_eq!(put(&client(&late, None), &data, "y").await, Ok(()));

    // Blocked again, then the admin raises the quota: writes come back.
    s3.put_object()
        .bucket(&data)
        .key("dia-4.tar")
        .body(object(6_000))
        .send()
        .await
        .unwrap();
    assert!(
        settle(&env)
            .await
            .contains(&"quota.writes_blocked".to_owned())
    );
    assert_eq!(
        put(&s3, &data, "dia-5.tar").await,
        Err("AccessDenied".into())
    );
    let approval = approval::Deps {
        core: nuvem_aws::Core::from_lookup(&env.functions_sdk, &|n| {
            env.approval_env.get(n).cloned()
        })
        .unwrap(),
    };
    let raise = as_principal(
        with_path_param(
            with_json(
                http_event("approval/adjust.json"),
                &json!({ "quota_gb": 1 }),
            ),
            "id",
            a,
        ),
        "platform",
        "key_01jd0000000000000000000009",
        "admin",
    );
    let (status, _, body) = reply(&approval::handle(&approval, raise).await);
    assert_eq!(status, 200, "{body}");
    assert!(
        settle(&env)
            .await
            .contains(&"quota.writes_restored".to_owned())
    );
    assert_eq!(put(&s3, &data, "dia-5.tar").await, Ok(()));

    let emails: Vec<String> = env
        ._emulator
        .sent_emails()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to.contains(&account.email))
        .map(|m| m.subject)
        .collect();
    assert_eq!(
        emails
            .iter()
            .filter(|s| s.starts_with("Cota esgotada") || s.starts_with("Backups liberados"))
            .count(),
        4,
        "{emails:?}"
    );
}
