//! The HTTP client the outside-API clients share ([`crate::graph`],
//! [`crate::chat`]): built by the first call that needs it, not at init (see
//! [`crate::lazy`] for why), rustls with the crypto provider the AWS SDK
//! already links (aws-lc-rs, as the webhook sender does), no redirects (an
//! API that answers 3xx is failing, and a bearer token is never carried
//! anywhere else), no proxies. Timeouts are set per request by each client.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Connections that take longer than this are not going to answer in time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes aws-lc-rs the process's rustls provider unless one is installed
/// already (then this does nothing): reqwest's rustls takes the process
/// default, so no second crypto library ships in the binary.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A `reqwest::Client` built on first use; clones share it.
#[derive(Clone)]
pub struct LazyHttpClient {
    client: Arc<OnceLock<reqwest::Client>>,
    user_agent: &'static str,
}

impl LazyHttpClient {
    pub fn new(user_agent: &'static str) -> Self {
        LazyHttpClient {
            client: Arc::default(),
            user_agent,
        }
    }

    pub fn get(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            install_crypto_provider();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(self.user_agent)
                .connect_timeout(CONNECT_TIMEOUT)
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .expect("the API HTTP client's fixed settings are valid")
        })
    }
}

impl std::fmt::Debug for LazyHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyHttpClient")
            .field("user_agent", &self.user_agent)
            .field("built", &self.client.get().is_some())
            .finish()
    }
}

/// Why a call got no complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// Over the request's timeout (connecting, waiting or reading).
    Timeout,
    /// Refused, reset, DNS or TLS failure: the innermost cause.
    Network(String),
}

impl Unanswered {
    pub fn of(e: &reqwest::Error) -> Unanswered {
        if e.is_timeout() {
            return Unanswered::Timeout;
        }
        // reqwest's own message is generic ("error sending request"); the
        // innermost cause says what happened. No URL is included, so no
        // query string is ever repeated.
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            message = c.to_string();
            cause = c.source();
        }
        Unanswered::Network(message)
    }
}

/// Reads at most `limit` bytes of a body: an answer larger than any the
/// API sends costs nothing more.
pub async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, Unanswered> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(Unanswered::of(&e)),
        }
    }
    body.truncate(limit);
    Ok(body)
}

/// A base URL from configuration: absolute `http(s)`, with a host, no
/// query or fragment; a trailing `/` is dropped.
pub fn parse_base_url(name: &str, value: &str) -> Result<url::Url, crate::config::ConfigError> {
    let bad = |why: &str| crate::config::ConfigError(format!("{name}: {why}"));
    let url = url::Url::parse(value.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(bad("must name a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

/// `base` with `segments` appended as path segments (each percent-encoded,
/// so an id can never change the path's shape).
pub fn endpoint(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("base URLs are checked to have a path")
        .pop_if_empty()
        .extend(segments);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_and_endpoints() {
        let base = parse_base_url("X", "https://openrouter.ai/api/v1/").unwrap();
        assert_eq!(
            endpoint(&base, &["chat", "completions"]).as_str(),
            "https://openrouter.ai/api/v1/chat/completions"
        );
        let base = parse_base_url("X", "http://127.0.0.1:8080").unwrap();
        assert_eq!(
            endpoint(&base, &["v26.0", "1/../2?x", "messages"]).as_str(),
            "http://127.0.0.1:8080/v26.0/1%2F..%2F2%3Fx/messages"
        );
        for bad in [
            "",
            "graph.facebook.com",
            "ftp://x",
            "https://x/?a=1",
            "mailto:a@b",
        ] {
            assert!(parse_base_url("X", bad).is_err(), "{bad}");
        }
    }
}
