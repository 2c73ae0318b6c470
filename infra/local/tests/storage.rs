//! End to end through the local stack, as a tenant would use it: a bucket
//! created through the API, backups uploaded with an S3 client, usage kept
//! by the emulator's own S3 notifications through `quota-alerts`, and the
//! alert emails read back from the emulator.

mod common;

use std::time::Duration;

use common::{Api, admin_key, alerts_to, onboard};
use nuvem_testkit::{emulator, eventually};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// The admin sets the account's quota (GB = 10^9 bytes).
async fn set_quota(api: &Api<'_>, admin: &str, account: &str, quota_gb: f64) {
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/v1/admin/accounts/{account}"),
            Some(admin),
            Some(json!({ "quota_gb": quota_gb })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The owner creates bucket `name`; the API's answer.
async fn create_bucket(api: &Api<'_>, owner: &str, name: &str) -> Value {
    let (status, bucket) = api
        .call(
            Method::POST,
            "/v1/buckets",
            Some(owner),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bucket}");
    bucket
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_reach_80_and_100_percent_alerts_and_a_raised_quota_is_quiet() {
    // As `make dev` runs it: tenants' S3 clients point at the emulator.
    let emulator_url = emulator().await.endpoint().to_owned();
    let runner = common::stack("e2e-storage", &[("S3ClientEndpoint", &emulator_url)]).await;
    let api = Api {
        http: Client::new(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let email = "ti@padaria-central.com.br";
    let (account, owner) = onboard(&api, &admin, "11.222.333/0001-81", email).await;
    // The smallest quota an admin may set: 0.001 GB = 1 000 000 bytes.
    set_quota(&api, &admin, &account, 0.001).await;

    let bucket = create_bucket(&api, &owner, "backups").await;
    let name = bucket["bucket"].as_str().unwrap().to_owned();

    // An S3 client configured with the answer's endpoint and region alone.
    assert_eq!(bucket["endpoint"], emulator_url.as_str(), "{bucket}");
    let conf = aws_sdk_s3::config::Builder::from(&emulator().await.sdk_config().await)
        .endpoint_url(bucket["endpoint"].as_str().unwrap())
        .region(aws_sdk_s3::config::Region::new(
            bucket["region"].as_str().unwrap().to_owned(),
        ))
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let upload = |key: &'static str, size: usize| {
        s3.put_object()
            .bucket(&name)
            .key(key)
            .body(vec![0u8; size].into())
            .send()
    };
    let used = || async {
        let (_, usage) = api.call(Method::GET, "/v1/usage", Some(&owner), None).await;
        usage["used_bytes"].as_u64().unwrap_or(0)
    };

    upload("2026-11-01.tar", 800_000).await.unwrap();
    eventually("the 80 % alert", || async {
        alerts_to(email).await.len() == 1
    })
    .await;
    assert!(alerts_to(email).await[0].contains("80%"));
    upload("2026-11-02.tar", 200_000).await.unwrap();
    eventually("the 100 % alert", || async {
        alerts_to(email).await.len() == 2
    })
    .await;
    assert!(alerts_to(email).await[1].contains("100%"));
    assert_eq!(used().await, 1_000_000);

    for key in ["2026-11-01.tar", "2026-11-02.tar"] {
        s3.delete_object()
            .bucket(&name)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    eventually("usage to fall", || async { used().await == 0 }).await;
    let (_, usage): (StatusCode, Value) =
        api.call(Method::GET, "/v1/usage", Some(&owner), None).await;
    assert_eq!(usage["buckets"][0]["object_count"], 0);

    // Raising the quota and uploading again below the new levels: no new alert.
    set_quota(&api, &admin, &account, 0.01).await;
    upload("2026-11-03.tar", 900_000).await.unwrap();
    eventually("usage to count the new upload", || async {
        used().await == 900_000
    })
    .await;
    // Nothing to wait for: a grace for a wrong alert to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        alerts_to(email).await.len(),
        2,
        "exactly two alert emails in all"
    );
    common::assert_no_secret_logged();
}

/// The onboarding guide's steps 2 to 4 as a tenant takes them: a bucket, a
/// storage key, and a backup client (boto3, configured only from the key's
/// answer: `scripts/s3_backup.py`) uploading an archive in parts; usage and
/// the 80 % alert follow.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_client_with_a_storage_key_uploads_in_parts_and_usage_follows() {
    let emulator_url = emulator().await.endpoint().to_owned();
    let runner = common::stack("e2e-backup", &[("S3ClientEndpoint", &emulator_url)]).await;
    let api = Api {
        http: Client::new(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let email = "backup@oficina-central.com.br";
    let (account, owner) = onboard(&api, &admin, "22.333.444/0001-81", email).await;
    // 0.01 GB = 10 000 000 bytes: an 8.5 MB archive is 85 %.
    set_quota(&api, &admin, &account, 0.01).await;
    let bucket = create_bucket(&api, &owner, "servidor").await;
    let name = bucket["bucket"].as_str().unwrap().to_owned();
    let (status, key) = api
        .call(
            Method::POST,
            "/v1/storage-keys",
            Some(&owner),
            Some(json!({"name": "Conector Imperius Serviço", "buckets": ["servidor"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(key["endpoint"], emulator_url.as_str());

    let dir = std::env::temp_dir().join(nuvem_testkit::unique_name("backup"));
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("2026-11-29-completo.tar");
    std::fs::write(&archive, vec![42u8; 8_500_000]).unwrap();
    let key_file = dir.join("storage-key.json");
    std::fs::write(&key_file, key.to_string()).unwrap();
    let root = nuvem_testkit::workspace_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/s3_backup.py"))
        .arg(&key_file)
        .arg(&name)
        .arg(&archive)
        // Only the key's answer configures the client: nothing from here.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the backup client runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uploaded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(uploaded["size"], 8_500_000);
    assert_eq!(uploaded["parts"], 2, "5 MiB parts: a multipart upload");

    eventually("usage to count the archive", || async {
        let (_, usage) = api.call(Method::GET, "/v1/usage", Some(&owner), None).await;
        usage["used_bytes"] == 8_500_000
    })
    .await;
    eventually("the 80 % alert", || async {
        alerts_to(email).await.iter().any(|s| s.contains("80%"))
    })
    .await;
    common::assert_no_secret_logged();
}
