use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_jobs::RpaJobQueue;
use nuvem_aws::{Core, config, runtime};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = rpa_scheduler::Deps {
        core: Core::from_env(&sdk)?,
        queue: RpaJobQueue::new(&sdk, config::env("RPA_JOBS_QUEUE_URL")?),
        invoices: Invoices::new(&sdk, config::env("INVOICES_BUCKET")?),
    };
    // The EventBridge scheduled event carries nothing the scheduler needs:
    // what is due is in the table.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let now = Utc::now();
            let deadline =
                runtime::stop_by(event.context.deadline, now, rpa_scheduler::SAFETY_MARGIN);
            Ok::<_, Error>(rpa_scheduler::handle(deps, now, deadline).await)
        }
    }))
    .await
}
