use nuvem_aws::invoices::Invoices;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = rpa_uploads::Deps {
        core: Core::from_env(&sdk)?,
        invoices: Invoices::from_lookup(&sdk, &|name| std::env::var(name).ok())?,
    };
    nuvem_aws::runtime::serve_sqs(|event| rpa_uploads::handle(&deps, event)).await
}
