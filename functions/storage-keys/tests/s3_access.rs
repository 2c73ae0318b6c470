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
    let keys_env = stack.function_env("StorageKeys");
    let buckets_env = stack.function_env("Buckets");
    Env {
        keys: storage_keys::Deps::from_lookup(&sdk, &|n| keys_env.get(n).cloned()).unwrap(),
        buckets: buckets::Deps::from_lookup(&sdk, &|n| buckets_env.get(n).cloned()).unwrap(),
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
