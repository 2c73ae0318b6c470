use nuvem_aws::blobs::Blobs;
use nuvem_aws::config;
use nuvem_aws::store::Store;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::sdk_config().await;
    let region = config::env("AWS_REGION")?;
    let deps = buckets::Deps {
        store: Store::new(&sdk, config::env("TABLE_NAME")?),
        blobs: Blobs::new(&sdk),
        prefix: config::env("BUCKET_PREFIX")?,
        events_queue_arn: config::env("S3_EVENTS_QUEUE_ARN")?,
        s3_endpoint: config::env_or(
            "S3_CLIENT_ENDPOINT",
            format!("https://s3.{region}.amazonaws.com"),
        )?,
        region,
    };
    nuvem_aws::runtime::serve_http(|req| buckets::handle(&deps, req)).await
}
