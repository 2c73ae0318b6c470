use lambda_runtime::{Error, LambdaEvent, service_fn};
use nuvem_aws::config;
use nuvem_aws::store::Store;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = authorizer::Deps {
        store: Store::new(&sdk, config::env("TABLE_NAME")?),
        cache_seconds: config::optional(
            &|name| std::env::var(name).ok(),
            "AUTHORIZER_CACHE_SECONDS",
            30,
        )?,
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<authorizer::AuthorizerRequest>| {
            let deps = &deps;
            async move { Ok::<_, Error>(authorizer::handle(deps, event.payload).await) }
        },
    ))
    .await
}
