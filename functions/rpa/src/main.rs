use nuvem_aws::invoices::InvoiceLinks;
use nuvem_aws::rpa_jobs::RpaJobQueue;
use nuvem_aws::secrets::Sealer;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = rpa::Deps {
        core: Core::from_env(&sdk)?,
        sealer: Sealer::from_env(&sdk)?,
        queue: RpaJobQueue::new(&sdk, config::env("RPA_JOBS_QUEUE_URL")?),
        invoices: InvoiceLinks::from_lookup(&sdk, &|name| std::env::var(name).ok())?,
    };
    nuvem_aws::runtime::serve_http(|req| rpa::handle(&deps, req)).await
}
