//! The HTTP client of webhook deliveries, built once per instance by its
//! first delivery: no redirects, no proxies, rustls, and an SSRF guard that
//! checks every address a host name resolves to, on every new connection
//! (so a name that is re-pointed at a private address between attempts is
//! caught).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nuvem_domain::webhook::delivery::{EXCERPT_LIMIT, excerpt};
use nuvem_domain::webhook::retry::Response;
use nuvem_domain::webhook::ssrf::{Blocked, check_ip};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub type LookupFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Resolves a host name to its addresses (the system resolver in Lambda; a
/// fixed table in tests, to prove the guard without a DNS server).
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> LookupFuture;
}

/// The operating system's resolver (getaddrinfo on a blocking thread).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> LookupFuture {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Why a delivery did not reach its receiver's address.
#[derive(Debug, thiserror::Error)]
#[error("address {ip} refused: {reason}")]
pub struct BlockedAddress {
    pub ip: IpAddr,
    pub reason: Blocked,
}

struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = self.lookup.clone();
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let ips = lookup.lookup(name.as_str().to_owned()).await?;
            // One refused address refuses the name: a receiver has no reason
            // to mix public and private addresses, an attacker has.
            for &ip in &ips {
                check_ip(ip, allow_loopback).map_err(|reason| BlockedAddress { ip, reason })?;
            }
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// One request to a receiver.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Empty for GET and DELETE.
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// What came back, in the domain's terms, with what the attempt log keeps.
#[derive(Debug, Clone)]
pub struct Sent {
    pub response: Response,
    pub retry_after: Option<String>,
    pub excerpt: String,
    pub duration: Duration,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Sender {
    /// Built by the first delivery (see [`crate::lazy`] for why not at init).
    client: Arc<OnceLock<reqwest::Client>>,
    lookup: Arc<dyn Lookup>,
    allow_loopback: bool,
}

impl Sender {
    /// `allow_loopback` is for local development and tests only
    /// (`WEBHOOK_ALLOW_LOOPBACK`); every other guarded range stays refused.
    pub fn new(allow_loopback: bool) -> Self {
        Self::with_lookup(allow_loopback, Arc::new(SystemLookup))
    }

    pub fn with_lookup(allow_loopback: bool, lookup: Arc<dyn Lookup>) -> Self {
        Sender {
            client: Arc::default(),
            lookup,
            allow_loopback,
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            crate::api_client::install_crypto_provider();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("nuvem-webhooks/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(30))
                .dns_resolver(Arc::new(GuardedResolver {
                    lookup: self.lookup.clone(),
                    allow_loopback: self.allow_loopback,
                }))
                .build()
                .expect("the webhook HTTP client's fixed settings are valid")
        })
    }

    pub async fn send(&self, out: Outgoing) -> Sent {
        let started = Instant::now();
        let failed = |response, error: String| Sent {
            response,
            retry_after: None,
            excerpt: String::new(),
            duration: started.elapsed(),
            error: Some(error),
        };
        // An IP literal never reaches the resolver: check it here.
        match literal_ip(&out.url) {
            Err(e) => return failed(Response::Network, e),
            Ok(Some(ip)) => {
                if let Err(reason) = check_ip(ip, self.allow_loopback) {
                    return failed(Response::Blocked, BlockedAddress { ip, reason }.to_string());
                }
            }
            Ok(None) => {}
        }
        let mut request = self
            .client()
            .request(out.method, &out.url)
            .timeout(out.timeout)
            .body(out.body);
        for (name, value) in &out.headers {
            request = request.header(name, value);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(classify(&e), describe(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Only the excerpt is read: a huge or endless body costs nothing more.
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < EXCERPT_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    error = Some(describe(&e));
                    break;
                }
            }
        }
        Sent {
            response: Response::Status(status),
            retry_after,
            excerpt: excerpt(&body),
            duration: started.elapsed(),
            error,
        }
    }
}

fn literal_ip(url: &str) -> Result<Option<IpAddr>, String> {
    let url = reqwest::Url::parse(url).map_err(|e| format!("invalid url: {e}"))?;
    Ok(match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

fn blocked_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BlockedAddress> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(blocked) = c.downcast_ref::<BlockedAddress>() {
            return Some(blocked);
        }
        cause = c.source();
    }
    None
}

fn classify(e: &reqwest::Error) -> Response {
    if blocked_cause(e).is_some() {
        Response::Blocked
    } else if e.is_timeout() {
        Response::Timeout
    } else {
        Response::Network
    }
}

/// The innermost useful cause (reqwest's own message is generic).
fn describe(e: &reqwest::Error) -> String {
    if let Some(blocked) = blocked_cause(e) {
        return blocked.to_string();
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message = c.to_string();
        cause = c.source();
    }
    message
}
