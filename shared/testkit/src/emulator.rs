//! moto's server as the local AWS emulator.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::{REGION, workspace_root};

/// An email the emulator accepted through SES or SESv2 `SendEmail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentEmail {
    /// The sender as given (may be `Name <address>`).
    pub from: String,
    /// To, Cc and Bcc recipients.
    pub to: Vec<String>,
    pub subject: String,
    /// The plain-text body. moto keeps only one body of a `Simple` message:
    /// the HTML one when both are sent, so `text` is then `None`.
    pub text: Option<String>,
    pub html: Option<String>,
}

/// A running emulator: its endpoint and, when this process started it, the
/// process (group) that is stopped when an owned emulator is dropped.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    process: Option<Process>,
}

#[derive(Debug)]
struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        // The watchdog shell and moto share a process group of their own.
        let pgid = self.child.id() as libc::pid_t;
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// How long an emulator someone else runs may take to answer: generous,
/// as it may be busy serving a loaded machine's other tests.
const EXISTING_ANSWER_WITHIN: Duration = Duration::from_secs(60);
/// How long a moto server of ours may take to start answering (a Python
/// start-up that a loaded machine can slow down a lot).
const OWNED_ANSWER_WITHIN: Duration = Duration::from_secs(180);

static SHARED: OnceCell<Emulator> = OnceCell::const_new();

/// The process-wide emulator. With `NUVEM_EMULATOR_URL` set, that emulator
/// (which must answer); otherwise moto's server from the workspace's `.venv`,
/// started once per process on a free port and stopped when the process exits.
pub async fn emulator() -> &'static Emulator {
    SHARED
        .get_or_init(|| async {
            let found = tokio::task::spawn_blocking(|| match std::env::var("NUVEM_EMULATOR_URL") {
                Ok(url) if !url.trim().is_empty() => Emulator::existing(url.trim()),
                _ => Emulator::start_owned(),
            })
            .await
            .expect("emulator start task");
            match found {
                Ok(emu) => emu,
                Err(e) => panic!("{e:#}"),
            }
        })
        .await
}

/// Where the emulator is expected: `NUVEM_MOTO_SERVER`, else
/// `<workspace>/.venv/bin/nuvem-emulator` (moto's server with DynamoDB calls
/// serialised, installed by `make venv` from `scripts/emulator.py`).
pub fn moto_server_path() -> PathBuf {
    match std::env::var_os("NUVEM_MOTO_SERVER") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/nuvem-emulator"),
    }
}

const WATCHDOG: &str = r#"
"$0" -H 127.0.0.1 -p "$1" >"$3" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$2" 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 0.5; done
kill $moto 2>/dev/null
wait $moto
"#;

impl Emulator {
    /// An emulator someone else runs (e.g. `make dev`'s), checked to answer.
    pub fn existing(url: &str) -> Result<Emulator> {
        let endpoint = url.trim_end_matches('/').to_owned();
        let addr = host_port(&endpoint)?;
        let deadline = Instant::now() + EXISTING_ANSWER_WITHIN;
        while !answers(&addr) {
            if Instant::now() > deadline {
                bail!(
                    "the emulator at {endpoint} (NUVEM_EMULATOR_URL) does not answer within {} s",
                    EXISTING_ANSWER_WITHIN.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Emulator {
            endpoint,
            process: None,
        })
    }

    /// A dedicated moto server on a free port of 127.0.0.1, stopped when the
    /// returned value is dropped, and by a watchdog when this process exits
    /// without dropping it.
    ///
    /// Panics if moto's server is not installed.
    pub fn start_owned() -> Result<Emulator> {
        let moto = moto_server_path();
        if !moto.is_file() {
            panic!(
                "the emulator (moto's server) was not found at {}: run `make venv` (or set NUVEM_EMULATOR_URL)",
                moto.display()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("no free port on 127.0.0.1")?
            .port();
        let log = std::env::temp_dir().join(format!("nuvem-moto-{port}.log"));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg(&moto)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", moto.display()))?;
        let mut process = Process { child, log };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + OWNED_ANSWER_WITHIN;
        while !answers(&addr) {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                bail!("moto_server exited ({status}) before answering on {addr}:\n{log}");
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not answer on {addr} within {} s (log: {})",
                    OWNED_ANSWER_WITHIN.as_secs(),
                    process.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::debug!(%addr, "moto_server ready");
        Ok(Emulator {
            endpoint: format!("http://{addr}"),
            process: Some(process),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// True when this value started (and will stop) the emulator process.
    pub fn is_owned(&self) -> bool {
        self.process.is_some()
    }

    /// SDK configuration for the emulator: region us-east-1, static dummy
    /// credentials, every service at the emulator's endpoint. (S3 clients
    /// also need `force_path_style(true)`.)
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let credentials = aws_sdk_sqs::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "nuvem-testkit",
        );
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    /// Every email the emulator accepted (from every stack using it), oldest
    /// first, read from moto's `/moto-api/data.json`. Filter by recipient to
    /// isolate one test's mail.
    pub async fn sent_emails(&self) -> Result<Vec<SentEmail>> {
        Ok(parse_sent_emails(&self.data().await?))
    }

    /// moto's dump of every backend. moto builds it while other requests
    /// change those backends, and it can fail when one changes under it
    /// (a 500): such a dump is asked for again, a few times.
    async fn data(&self) -> Result<Value> {
        let url = format!("{}/moto-api/data.json", self.endpoint);
        let http = reqwest::Client::new();
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            if resp.status().is_server_error() && tries < 5 {
                continue;
            }
            return resp
                .error_for_status()?
                .json()
                .await
                .with_context(|| format!("GET {url}: not JSON"));
        }
    }
}

fn parse_sent_emails(data: &Value) -> Vec<SentEmail> {
    let mut out = Vec::new();
    let ses = &data["ses"];
    for m in ses["Message"].as_array().into_iter().flatten() {
        let body = m["body"].as_str().unwrap_or_default().to_owned();
        let (text, html) = if looks_like_html(&body) {
            (None, Some(body))
        } else {
            (Some(body), None)
        };
        out.push(SentEmail {
            from: m["source"].as_str().unwrap_or_default().to_owned(),
            to: destinations(&m["destinations"]),
            subject: m["subject"].as_str().unwrap_or_default().to_owned(),
            text,
            html,
        });
    }
    for m in ses["RawMessage"].as_array().into_iter().flatten() {
        let raw = m["raw_data"].as_str().unwrap_or_default();
        let mime = crate::emulator::mime::parse(raw);
        let mut to: Vec<String> = m["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect();
        if to.is_empty() {
            to = mime.to;
        }
        out.push(SentEmail {
            from: m["source"]
                .as_str()
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
                .unwrap_or(mime.from),
            to,
            subject: mime.subject,
            text: mime.text,
            html: mime.html,
        });
    }
    out
}

fn destinations(d: &Value) -> Vec<String> {
    ["ToAddresses", "CcAddresses", "BccAddresses"]
        .iter()
        .flat_map(|k| d[*k].as_array().into_iter().flatten())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn looks_like_html(body: &str) -> bool {
    let t = body.trim_start();
    t.starts_with('<') && body.contains('>')
}

/// `host:port` of an `http://host:port[/...]` URL.
fn host_port(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("emulator URL must be http://host:port, got {url}"))?;
    let hp = rest.split('/').next().unwrap_or_default();
    if hp.contains(':') {
        Ok(hp.to_owned())
    } else {
        Ok(format!("{hp}:80"))
    }
}

/// True when something at `addr` answers an HTTP request.
fn answers(addr: &str) -> bool {
    let Ok(sock) = addr.parse::<std::net::SocketAddr>().or_else(|_| {
        std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|_| ())
            .and_then(|mut a| a.next().ok_or(()))
    }) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    head[..got].starts_with(b"HTTP/1.")
}

/// Just enough MIME to read back a raw email: top-level headers, and the
/// first text/plain and text/html parts (base64 or quoted-printable).
mod mime {
    use base64::Engine;

    #[derive(Default)]
    pub struct Mail {
        pub from: String,
        pub to: Vec<String>,
        pub subject: String,
        pub text: Option<String>,
        pub html: Option<String>,
    }

    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let mut mail = Mail::default();
        let (headers, body) = split(&raw);
        mail.from = decode_words(&header(&headers, "from").unwrap_or_default());
        mail.to = header(&headers, "to")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        mail.subject = decode_words(&header(&headers, "subject").unwrap_or_default());
        walk(&headers, body, &mut mail);
        mail
    }

    fn split(part: &str) -> (Vec<(String, String)>, &str) {
        let (head, body) = match part.find("\n\n") {
            Some(i) => (&part[..i], &part[i + 2..]),
            None => (part, ""),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        (headers, body)
    }

    fn header(headers: &[(String, String)], name: &str) -> Option<String> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn param(value: &str, name: &str) -> Option<String> {
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_owned())
        })
    }

    fn walk(headers: &[(String, String)], body: &str, mail: &mut Mail) {
        let ctype = header(headers, "content-type").unwrap_or_else(|| "text/plain".into());
        let lower = ctype.to_ascii_lowercase();
        if lower.starts_with("multipart/") {
            let Some(boundary) = param(&ctype, "boundary") else {
                return;
            };
            let delim = format!("--{boundary}");
            for chunk in body.split(&delim).skip(1) {
                if chunk.starts_with("--") {
                    break;
                }
                let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
                let (h, b) = split(chunk);
                walk(&h, b, mail);
            }
            return;
        }
        let encoding = header(headers, "content-transfer-encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let text = decode_body(body, &encoding);
        if lower.starts_with("text/html") {
            mail.html.get_or_insert(text);
        } else if lower.starts_with("text/plain") {
            mail.text.get_or_insert(text);
        }
    }

    fn decode_body(body: &str, encoding: &str) -> String {
        match encoding {
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|_| body.to_owned())
            }
            "quoted-printable" => quoted_printable(body, false),
            _ => body.trim_end_matches('\n').to_owned(),
        }
    }

    fn quoted_printable(s: &str, underscore_space: bool) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'=' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
                b'=' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 3;
                        }
                        None => {
                            out.push(b'=');
                            i += 1;
                        }
                    }
                }
                b'_' if underscore_space => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out)
            .trim_end_matches('\n')
            .to_owned()
    }

    /// RFC 2047 encoded words (`=?UTF-8?B?...?=`, `=?UTF-8?Q?...?=`).
    fn decode_words(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("=?") {
            let after = &rest[start + 2..];
            let parts: Vec<&str> = after.splitn(3, '?').collect();
            let end = parts.get(2).and_then(|p| p.find("?="));
            match (parts.len(), end) {
                (3, Some(end)) => {
                    let prefix = &rest[..start];
                    if !prefix.trim().is_empty() || out.is_empty() {
                        out.push_str(prefix);
                    }
                    let text = &parts[2][..end];
                    let decoded = if parts[1].eq_ignore_ascii_case("b") {
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_else(|_| text.to_owned())
                    } else {
                        quoted_printable(text, true)
                    };
                    out.push_str(&decoded);
                    let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
                    rest = &rest[consumed..];
                }
                _ => {
                    out.push_str(&rest[..start + 2]);
                    rest = &rest[start + 2..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn reads_a_multipart_raw_email() {
            let raw = "From: Nuvem <nuvem@nuvem.example>\r\nTo: a@b.com, c@d.com\r\nSubject: =?UTF-8?B?T2zDoQ==?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nol=C3=A1 mundo\r\n--XX\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+b2k8L3A+\r\n--XX--\r\n";
            let m = super::parse(raw);
            assert_eq!(m.from, "Nuvem <nuvem@nuvem.example>");
            assert_eq!(m.to, ["a@b.com", "c@d.com"]);
            assert_eq!(m.subject, "Olá");
            assert_eq!(m.text.as_deref(), Some("olá mundo"));
            assert_eq!(m.html.as_deref(), Some("<p>oi</p>"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_moto_model_data() {
        let data = serde_json::json!({"ses": {"Message": [
            {"body": "<p>oi</p>", "destinations": {"ToAddresses": ["a@b.com"], "CcAddresses": ["c@b.com"]},
             "id": "x", "source": "nuvem@nuvem.example", "subject": "Olá"},
            {"body": "só texto", "destinations": {"ToAddresses": ["d@b.com"]}, "id": "y", "source": "n@n.example", "subject": "S"}
        ], "RawMessage": []}});
        let mails = parse_sent_emails(&data);
        assert_eq!(mails.len(), 2);
        assert_eq!(mails[0].to, ["a@b.com", "c@b.com"]);
        assert_eq!(mails[0].html.as_deref(), Some("<p>oi</p>"));
        assert_eq!(mails[0].text, None);
        assert_eq!(mails[1].text.as_deref(), Some("só texto"));
    }

    #[test]
    fn host_port_of_urls() {
        assert_eq!(
            host_port("http://127.0.0.1:4566").unwrap(),
            "127.0.0.1:4566"
        );
        assert_eq!(host_port("http://localhost/x").unwrap(), "localhost:80");
        assert!(host_port("https://x").is_err());
    }
}
