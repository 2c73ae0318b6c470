//! What a handler test starts from: a fresh stack of the template in the
//! shared emulator, with SDK clients to look inside it.

use std::collections::BTreeMap;

use crate::{Emulator, Stack, emulator, unique_name};

pub struct TestStack {
    pub emulator: &'static Emulator,
    pub stack: Stack,
    pub sdk: aws_config::SdkConfig,
    pub db: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl TestStack {
    /// A stack of its own (table, queues, buckets) named after `prefix`.
    pub async fn new(prefix: &str) -> TestStack {
        let emulator = emulator().await;
        let stack = Stack::create(emulator, &unique_name(prefix), &Default::default())
            .await
            .expect("stack from template.yaml");
        let sdk = emulator.sdk_config().await;
        TestStack {
            emulator,
            db: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
            stack,
        }
    }

    /// The environment the template gives `function`, as a lookup: handlers
    /// under test read their configuration as their `main` does.
    pub fn env(&self, function: &str) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: BTreeMap<String, String> = self.stack.function_env(function);
        move |name| vars.get(name).cloned()
    }

    pub fn table(&self) -> &str {
        self.stack.table("Table")
    }

    /// The sealer of the stack's secrets, as the webhook functions build it.
    pub fn sealer(&self) -> nuvem_aws::secrets::Sealer {
        nuvem_aws::secrets::Sealer::from_lookup(&self.sdk, &self.env("Webhooks"))
            .expect("SECRETS_KEY_ID of the Webhooks function")
    }

    pub fn events_queue(&self) -> &str {
        &self.stack.queue("EventsQueue").url
    }
}
