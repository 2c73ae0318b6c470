use nuvem_aws::config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = storage_keys::Deps::from_lookup(&sdk, &|name| std::env::var(name).ok())?;
    nuvem_aws::runtime::serve_http(|req| storage_keys::handle(&deps, req)).await
}
