//! `nuvem-admin`: the operator's command line. It talks to DynamoDB through
//! the standard AWS credential chain, so the same command works against a
//! deployment (`TABLE_NAME` = the stack's table) and against `make dev`
//! (`AWS_ENDPOINT_URL` = the local emulator).

use anyhow::{Context, bail};
use chrono::Utc;
use nuvem_aws::store::{KeyRecord, Store};
use nuvem_domain::ids;
use nuvem_domain::keys::{self, KeyStatus, PLATFORM_ACCOUNT, Role};

const USAGE: &str = "usage: nuvem-admin create-admin-key [--name NAME] [--table TABLE]

Prints a new platform admin credential (<key id>.<secret>). The table comes
from --table or TABLE_NAME; AWS credentials, region and endpoint come from the
standard AWS environment (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut name = "platform admin".to_owned();
    let mut table = std::env::var("TABLE_NAME").ok();
    let mut rest = args.iter();
    let Some(command) = rest.next() else {
        bail!("{USAGE}");
    };
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--name" => name = value.clone(),
            "--table" => table = Some(value.clone()),
            _ => bail!("unknown option {flag}\n\n{USAGE}"),
        }
    }
    match command.as_str() {
        "create-admin-key" => {
            let table = table.context("set --table or TABLE_NAME")?;
            let sdk = nuvem_aws::config::sdk_config().await;
            let store = Store::new(&sdk, table);
            let secret = keys::generate_secret();
            let now = Utc::now();
            let key = KeyRecord {
                id: ids::new_id(ids::KEY),
                account_id: PLATFORM_ACCOUNT.to_owned(),
                name,
                role: Role::Admin,
                status: KeyStatus::Active,
                secret_hash: keys::hash_secret(secret.expose()),
                created_at: now,
                expires: None,
                last_used_at: None,
                revoked_at: None,
            };
            store
                .create_key(&key, None)
                .await
                .context("storing the admin key")?;
            println!("{}.{}", key.id, secret.expose());
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other}\n\n{USAGE}"),
    }
}
