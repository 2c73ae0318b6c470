use nuvem_aws::config;
use nuvem_aws::deliveries::DeliveryQueue;
use nuvem_aws::mail::Mailer;
use nuvem_aws::store::Store;
use nuvem_aws::whatsapp_jobs::OutboundQueue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = fanout::Deps {
        store: Store::new(&sdk, config::env("TABLE_NAME")?),
        mailer: Mailer::new(&sdk, config::env("MAIL_FROM")?),
        deliveries: DeliveryQueue::new(&sdk, config::env("DELIVERIES_QUEUE_URL")?),
        outbound: OutboundQueue::new(&sdk, config::env("OUTBOUND_QUEUE_URL")?),
        public_base_url: config::env("PUBLIC_BASE_URL")?,
        access: nuvem_aws::storage_access::StorageAccess::from_lookup(&sdk, &|name| {
            std::env::var(name).ok()
        })?,
    };
    nuvem_aws::runtime::serve_sqs(|event| fanout::handle(&deps, event)).await
}
