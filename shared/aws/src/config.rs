//! Configuration read once at cold start.

use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::config::ConfigBag;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};

/// SDK configuration for tools run by people (`nuvem-admin`): the standard
/// credential chain, profiles and region, and `AWS_ENDPOINT_URL` when set,
/// over an HTTPS client whose trust roots load on the first connection
/// ([`FirstUseHttpClient`]).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(FirstUseHttpClient::new())
        .load()
        .await
}

/// SDK configuration for a function, from what Lambda's execution
/// environment provides: the region in `AWS_REGION`, the execution role's
/// credentials in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
/// `AWS_SESSION_TOKEN`, and `AWS_ENDPOINT_URL` when set (the local stack).
///
/// Why not [`sdk_config`]: `aws_config`'s loader looks for profile files and
/// builds the whole default credential chain (SSO, IMDS, ECS, web identity,
/// processes) that a Lambda never uses; that code is a fifth of a function's
/// binary and most of its init beyond the bare runtime's. Retries (standard,
/// 3 attempts), the connect timeout, stalled-stream protection and the
/// credential cache are the clients' defaults for the behavior version, the
/// same as the loader gives when nothing overrides them.
pub fn lambda_sdk_config() -> aws_config::SdkConfig {
    lambda_sdk_config_from(&|name| std::env::var(name).ok())
}

/// [`lambda_sdk_config`] with the variables from `lookup`; credentials are
/// still read from the process environment, on first use.
pub fn lambda_sdk_config_from(lookup: &dyn Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_types::sdk_config::SharedCredentialsProvider;

    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let mut config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(FirstUseHttpClient::new());
    config.set_region(
        set("AWS_REGION")
            .or_else(|| set("AWS_DEFAULT_REGION"))
            .map(aws_config::Region::new),
    );
    config.set_endpoint_url(set("AWS_ENDPOINT_URL"));
    config.set_timeout_config(Some(sdk_timeouts(
        set("SDK_TIMEOUT_MS").and_then(|v| v.trim().parse().ok()),
    )));
    config.build()
}

/// Whether this instance's init runs ahead of any request, so that work done
/// now delays nobody: Lambda says how it started the execution environment
/// in `AWS_LAMBDA_INITIALIZATION_TYPE`; provisioned concurrency and managed
/// instances initialise before requests arrive, while an on-demand init has
/// a request waiting for it. Clients are then built, and their trust roots
/// read, at init; otherwise by the first event that needs them.
pub fn init_ahead_of_requests() -> bool {
    initialised_ahead(&|name| std::env::var(name).ok())
}

fn initialised_ahead(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    matches!(
        lookup("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref(),
        Some("provisioned-concurrency" | "lambda-managed-instances")
    )
}

/// The longest an AWS call of a function may take, retries included, when
/// `SDK_TIMEOUT_MS` does not say: well under the template's default
/// function timeout (10 s), so that a slow dependency fails the call, and
/// the request answers 503 with `Retry-After`, before Lambda kills the
/// invocation and API Gateway answers a bare 500.
pub const DEFAULT_SDK_TIMEOUT_MS: u64 = 2_000;

/// The SDK's connect timeout for the behavior version (3.1 s), or the
/// operation's when that is shorter; the operation timeout (`SDK_TIMEOUT_MS`)
/// bounds every attempt and retry together. No attempt timeout: on a loaded
/// machine a slow first attempt would otherwise be abandoned and repeated.
fn sdk_timeouts(operation_ms: Option<u64>) -> aws_config::timeout::TimeoutConfig {
    let operation =
        std::time::Duration::from_millis(operation_ms.unwrap_or(DEFAULT_SDK_TIMEOUT_MS).max(1));
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(operation.min(std::time::Duration::from_millis(3_100)))
        .operation_timeout(operation)
        .build()
}

/// The SDK's default HTTPS client (rustls on aws-lc, the platform's trust
/// roots, verification unchanged), minus one step: the SDK builds a client's
/// TLS connector when the client is constructed, on purpose, so that the
/// trust roots are read then, and on Linux that means parsing the CA bundle
/// and every file of `/etc/ssl/certs` during a Lambda's init, for all of the
/// few milliseconds a cold start has. Here the connector, and so the roots,
/// are built by the first request that needs them (and cached by the inner
/// client, as before). No crate offers this; it is one trait method
/// (`validate_base_client_config`) that does nothing, except when init runs
/// ahead of requests ([`init_ahead_of_requests`]): then the roots are read
/// when a client is built, as the SDK does.
#[derive(Debug)]
pub struct FirstUseHttpClient {
    inner: SharedHttpClient,
    roots_at_construction: bool,
}

impl FirstUseHttpClient {
    pub fn new() -> Self {
        FirstUseHttpClient {
            inner: aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https(),
            roots_at_construction: init_ahead_of_requests(),
        }
    }
}

impl Default for FirstUseHttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient for FirstUseHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    /// The inner client's builds a connector (and reads the roots) right
    /// away, when a client is constructed: only ahead of requests.
    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        if self.roots_at_construction {
            self.inner.validate_base_client_config(components, cfg)
        } else {
            Ok(())
        }
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

/// A required environment variable; the error names it so a misconfigured
/// deployment fails at init with a clear message.
pub fn env(name: &str) -> Result<String, ConfigError> {
    required(&|name| std::env::var(name).ok(), name)
}

/// A required variable from any source of configuration (the process
/// environment in Lambda, the template's resolved variables in tests).
pub fn required(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<String, ConfigError> {
    lookup(name).ok_or_else(|| ConfigError(format!("environment variable {name} is not set")))
}

/// An optional environment variable parsed as `T`, with a default.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: Display,
{
    optional(&|name| std::env::var(name).ok(), name, default)
}

/// An optional variable from any source, parsed as `T`, with a default.
/// Empty counts as unset: a template cannot leave a variable out when its
/// parameter is left at `""`, so empty is how a deployment says "default".
pub fn optional<T: FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: Display,
{
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        Some(v) => v
            .parse()
            .map_err(|e| ConfigError(format!("environment variable {name}: {e}"))),
        None => Ok(default),
    }
}

/// What a tenant's S3 client (Imperius Backup's "Service Point URL", the AWS
/// CLI's `--endpoint-url`) is configured with: the deployment's region, and
/// `S3_CLIENT_ENDPOINT`, which left empty (the template's default) is the
/// region's AWS endpoint.
#[derive(Clone, Debug)]
pub struct S3ClientSettings {
    pub region: String,
    pub endpoint: String,
}

/// The region the SDK is configured with; a deployment without one fails
/// at init with a clear message.
pub fn region(sdk: &aws_config::SdkConfig) -> Result<String, ConfigError> {
    sdk.region()
        .map(|r| r.as_ref().to_owned())
        .ok_or_else(|| ConfigError("no AWS region is configured (AWS_REGION)".into()))
}

impl S3ClientSettings {
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let region = region(sdk)?;
        Ok(S3ClientSettings {
            endpoint: optional(
                lookup,
                "S3_CLIENT_ENDPOINT",
                format!("https://s3.{region}.amazonaws.com"),
            )?,
            region,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_takes_region_and_endpoint_from_its_environment() {
        let vars = |name: &str| match name {
            "AWS_REGION" => Some("sa-east-1".to_owned()),
            "AWS_DEFAULT_REGION" => Some("us-west-2".to_owned()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".to_owned()),
            _ => None,
        };
        let config = lambda_sdk_config_from(&vars);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("sa-east-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());

        let deployed = |name: &str| match name {
            "AWS_DEFAULT_REGION" => Some("us-west-2".to_owned()),
            "AWS_ENDPOINT_URL" => Some(String::new()),
            _ => None,
        };
        let config = lambda_sdk_config_from(&deployed);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(
            config.endpoint_url(),
            None,
            "empty means AWS's own endpoint"
        );
    }

    #[test]
    fn every_call_has_an_operation_timeout_under_the_functions() {
        let timeout = |value: Option<&str>| {
            let value = value.map(str::to_owned);
            let vars =
                move |name: &str| (name == "SDK_TIMEOUT_MS").then(|| value.clone()).flatten();
            let config = lambda_sdk_config_from(&vars);
            let t = config.timeout_config().expect("a timeout config");
            (t.operation_timeout(), t.connect_timeout())
        };
        let ms = |ms| Some(std::time::Duration::from_millis(ms));
        assert_eq!(timeout(None), (ms(2_000), ms(2_000)));
        assert_eq!(timeout(Some("1000")), (ms(1_000), ms(1_000)));
        assert_eq!(timeout(Some("10000")), (ms(10_000), ms(3_100)));
        assert_eq!(timeout(Some("soon")), (ms(2_000), ms(2_000)));
        assert_eq!(timeout(Some("")), (ms(2_000), ms(2_000)));
    }

    #[test]
    fn only_provisioned_and_managed_instances_initialise_ahead_of_requests() {
        let ahead = |kind: Option<&str>| {
            let kind = kind.map(str::to_owned);
            initialised_ahead(&move |name: &str| {
                assert_eq!(name, "AWS_LAMBDA_INITIALIZATION_TYPE");
                kind.clone()
            })
        };
        assert!(ahead(Some("provisioned-concurrency")));
        assert!(ahead(Some("lambda-managed-instances")));
        assert!(!ahead(Some("on-demand")));
        assert!(!ahead(Some("snap-start")));
        assert!(!ahead(None));
    }

    #[test]
    fn logs_at_rust_log_then_lambdas_level_then_info() {
        use lambda_runtime::tracing::Level;
        use lambda_runtime::tracing::subscriber::filter::LevelFilter;
        let filter = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            log_filter(&move |name: &str| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
        };
        let default = filter(&[]);
        assert!(default.would_enable("nuvem_aws", &Level::INFO));
        assert!(!default.would_enable("nuvem_aws", &Level::DEBUG));
        let lambda = filter(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]);
        assert_eq!(lambda.default_level(), Some(LevelFilter::WARN));
        let rust_log = filter(&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "debug")]);
        assert_eq!(rust_log.default_level(), Some(LevelFilter::DEBUG));
        let targets = filter(&[("RUST_LOG", "aws_smithy_runtime=trace,error")]);
        assert!(targets.would_enable("aws_smithy_runtime::client", &Level::TRACE));
        assert!(!targets.would_enable("nuvem_aws", &Level::WARN));
        assert!(targets.would_enable("nuvem_aws", &Level::ERROR));
        // Not a filter: Lambda's level (or info) rather than nothing logged.
        let garbage = filter(&[("RUST_LOG", "==="), ("AWS_LAMBDA_LOG_LEVEL", "error")]);
        assert_eq!(garbage.default_level(), Some(LevelFilter::ERROR));
    }

    #[test]
    fn an_empty_or_blank_optional_variable_takes_the_default() {
        for set in ["", "  "] {
            let lookup = |_: &str| Some(set.to_owned());
            assert_eq!(optional(&lookup, "X", 7).unwrap(), 7);
        }
        assert_eq!(optional(&|_| None, "X", 7).unwrap(), 7);
        assert_eq!(optional(&|_| Some("9".into()), "X", 7).unwrap(), 9);
        assert!(optional(&|_| Some("nine".into()), "X", 7).is_err());
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Logs to stdout for CloudWatch: JSON lines when Lambda's log format is
/// JSON (`AWS_LAMBDA_LOG_FORMAT`, the template's `LoggingConfig`), plain
/// text otherwise; no time stamp (CloudWatch records one), no target.
///
/// Why not `lambda_runtime::tracing::init_default_subscriber`, which does
/// the same: its `EnvFilter` links a regex engine (`regex-automata`,
/// `regex-syntax`: about 0.2 MB of every function) for directives we never
/// use. [`log_filter`] reads the same variables into a `Targets` filter.
pub fn init_tracing() {
    use lambda_runtime::tracing::subscriber::{self, prelude::*};
    let lookup = |name: &str| std::env::var(name).ok();
    let json = lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let format = subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = subscriber::registry().with(log_filter(&lookup));
    if json {
        registry.with(format.json()).init();
    } else {
        registry.with(format).init();
    }
}

/// What to log, as `lambda_runtime` reads it: `RUST_LOG` (the template's
/// `LogLevel`: a level, or `target=level` pairs) when it parses, else the
/// level of `AWS_LAMBDA_LOG_LEVEL` (Lambda's `ApplicationLogLevel`), else
/// `info`.
pub fn log_filter(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> lambda_runtime::tracing::subscriber::filter::Targets {
    use lambda_runtime::tracing::subscriber::filter::{LevelFilter, Targets};
    let level = lookup("AWS_LAMBDA_LOG_LEVEL")
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    lookup("RUST_LOG")
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.trim().parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(level))
}
