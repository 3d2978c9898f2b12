//! A small HTTP/1 client for outbound webhooks, on hyper (already in the tree) and rustls
//! (ring). It resolves the host itself, refuses private, loopback and link-local addresses
//! unless the operator allows them, and connects to the address it vetted (no second lookup,
//! so DNS rebinding cannot swap it). Redirects are not followed; every step has a deadline;
//! the answer's body is read up to a cap.
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// The most of an answer's body read (the rest is not waited for).
pub const BODY_READ_LIMIT: usize = 64 * 1024;
/// How much of it the delivery log keeps.
pub const BODY_LOG_LIMIT: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("{0}")]
    PrivateAddress(String),
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Tls(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Http(String),
    #[error("the endpoint's secret cannot be opened: check KEYGATE_MASTER_KEY")]
    SecretUnavailable,
}

impl SendError {
    /// The stable code shown in the delivery log.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::InvalidUrl(_) => "INVALID_URL",
            SendError::PrivateAddress(_) => "PRIVATE_ADDRESS",
            SendError::Dns(_) => "DNS_FAILED",
            SendError::Connect(_) => "CONNECT_FAILED",
            SendError::Tls(_) => "TLS_FAILED",
            SendError::Timeout(_) => "TIMEOUT",
            SendError::Http(_) => "HTTP_ERROR",
            SendError::SecretUnavailable => "SECRET_UNAVAILABLE",
        }
    }
}

/// A checked endpoint URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub https: bool,
    /// The host in canonical form: an IP address as `Display` writes it (whatever spelling
    /// the URL used), or the name in lower case without a trailing dot.
    pub host: String,
    /// The address, when the host is one (in any spelling `inet_aton` accepts).
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
    pub path_and_query: String,
}

/// Accepts `http(s)://host[:port][/path][?query]` without credentials. The host is read the
/// way the system resolver would read it, so a check on the result holds at delivery:
/// numeric IPv4 in every `inet_aton` spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`,
/// `127.1`) becomes that address, a trailing dot is dropped, and what no resolver reads the
/// same way twice is refused (IPv6 zone ids, a malformed numeric host, a port outside
/// 1-65535, which `port_u16` would silently turn into the default port).
pub fn parse_url(url: &str) -> Result<Target, SendError> {
    let bad = |why: &str| SendError::InvalidUrl(format!("`url` {why}"));
    if url.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| bad("is not a valid absolute URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("must start with http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry credentials (user:password@)"));
    }
    let written = authority.host();
    // Read from the text: `port_u16` is `None` both for "no port" and for one above 65535.
    let port = match authority.as_str()[written.len()..].strip_prefix(':') {
        None | Some("") => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has a port outside 1-65535"))?,
    };
    if written.is_empty() {
        return Err(bad("has no host"));
    }
    let (host, ip) = if let Some(inner) = written.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| bad("has a malformed IPv6 address"))?;
        if inner.contains('%') {
            return Err(bad("must not name an IPv6 zone (`%25...`)"));
        }
        let v6: std::net::Ipv6Addr = inner
            .parse()
            .map_err(|_| bad("has a malformed IPv6 address"))?;
        (v6.to_string(), Some(IpAddr::V6(v6)))
    } else {
        let name = written.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_string();
        if name.is_empty() || name.contains('%') || name.split('.').any(str::is_empty) {
            return Err(bad("has a malformed host"));
        }
        if ends_in_a_number(&name) {
            let v4 = inet_aton(&name)
                .ok_or_else(|| bad("has a host that is neither a name nor an IPv4 address"))?;
            (v4.to_string(), Some(IpAddr::V4(v4)))
        } else {
            (name, None)
        }
    };
    Ok(Target {
        https,
        host,
        ip,
        port,
        authority: authority.as_str().to_string(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

/// A host resolvers read as an IPv4 address: its last label is a number (decimal, or
/// `0x` hex). WHATWG URL's rule; glibc's `getaddrinfo` reads such hosts with `inet_aton`.
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.chars().all(|c| c.is_ascii_digit()))
}

/// `inet_aton`: 1 to 4 parts, each decimal, `0x` hex or `0` octal; the last part fills the
/// remaining bytes (`127.1` = 127.0.0.1, `2130706433` = 127.0.0.1).
fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(4);
    for part in &parts {
        let (digits, radix) = if let Some(h) = part.strip_prefix("0x") {
            (h, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (*part, 10)
        };
        let n = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        numbers.push(n);
    }
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|n| *n > 255) || *last >= 1u64 << (8 * (4 - leading.len())) {
        return None;
    }
    let mut value: u32 = *last as u32;
    for (i, n) in leading.iter().enumerate() {
        value |= (*n as u32) << (8 * (3 - i));
    }
    Some(Ipv4Addr::from(value))
}

/// Loopback, private, link-local, CGNAT, unspecified, multicast, broadcast, documentation,
/// benchmarking and unique-local addresses, and IPv4 addresses inside IPv6 (mapped,
/// translated, compatible, NAT64, 6to4; Teredo and local-use NAT64 whole, as their IPv4 side
/// cannot be vetted from here).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // IPv4-compatible (::a.b.c.d, deprecated), IPv4-translated (::ffff:0:a.b.c.d)
            // and NAT64 (64:ff9b::/96): the IPv4 address is the last 32 bits.
            if (s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
                || s[..6] == [0, 0, 0, 0, 0xffff, 0]
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                return forbidden_v4(embedded(s[6], s[7]));
            }
            // 6to4 (2002::/16): bits 16-47.
            if s[0] == 0x2002 {
                return forbidden_v4(embedded(s[1], s[2]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || (s[0] == 0x3fff && (s[1] & 0xf000) == 0) // documentation 3fff::/20
                || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32
                || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0) // benchmarking 2001:2::/48
                || (s[0] == 0x2001 && (s[1] & 0xffe0) == 0x0020) // ORCHIDv2 2001:20::/28
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID 2001:10::/28
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
                || s[..4] == [0x100, 0, 0, 0] // discard 100::/64
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

/// Names that are local by definition (RFC 6761 `localhost`, mDNS `.local`, ICANN's private
/// `.internal`, `.home.arpa`), refused without a lookup. `host` is canonical (lower case, no
/// trailing dot).
fn local_name(host: &str) -> bool {
    host == "localhost"
        || host == "localhost.localdomain"
        || [".localhost", ".local", ".internal", ".home.arpa"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}

/// A host refused without a lookup: a forbidden address in any spelling, or a local name.
pub fn literal_forbidden(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_forbidden(ip);
    }
    match parse_url(&format!("http://{host}/")) {
        Ok(t) => t.ip.map_or_else(|| local_name(&t.host), is_forbidden),
        Err(_) => false,
    }
}

/// The addresses the target may be reached at: the one check creation and delivery share.
/// An address host is checked as it is; a local name is refused; any other name is resolved
/// and refused when every address it has is forbidden.
pub async fn vet(target: &Target, allow_private: bool) -> Result<Vec<SocketAddr>, SendError> {
    let resolved: Vec<SocketAddr> = match target.ip {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None if !allow_private && local_name(&target.host) => {
            return Err(SendError::PrivateAddress(format!(
                "`{}` is a local name: refused unless the operator sets \
                 KEYGATE_OUTBOUND_ALLOW_PRIVATE",
                target.host
            )));
        }
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| SendError::Dns(format!("cannot resolve `{}`: {e}", target.host)))?
            .collect(),
    };
    if resolved.is_empty() {
        return Err(SendError::Dns(format!("`{}` has no address", target.host)));
    }
    if allow_private {
        return Ok(resolved);
    }
    let allowed: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| !is_forbidden(a.ip()))
        .collect();
    if allowed.is_empty() && target.ip.is_some() {
        return Err(SendError::PrivateAddress(format!(
            "`{}` is a private, loopback or link-local address: refused unless the operator \
             sets KEYGATE_OUTBOUND_ALLOW_PRIVATE",
            target.host
        )));
    }
    if allowed.is_empty() {
        return Err(SendError::PrivateAddress(format!(
            "`{}` resolves to {} only: private, loopback and link-local addresses are refused \
             (KEYGATE_OUTBOUND_ALLOW_PRIVATE)",
            target.host,
            resolved
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(allowed)
}

/// How long creation waits for a name to resolve before accepting it unchecked.
const CREATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The check when a URL is stored (an endpoint, a platform API base): the same parsing and
/// [`vet`] as delivery. A name that does not resolve (yet) is accepted: it is vetted again
/// on the addresses it has at each delivery, which is what stops DNS rebinding.
pub async fn check_destination(url: &str, allow_private: bool) -> Result<Target, SendError> {
    let target = parse_url(url)?;
    if allow_private {
        // Every address is allowed: a lookup could only delay the answer.
        return Ok(target);
    }
    match tokio::time::timeout(CREATION_LOOKUP_TIMEOUT, vet(&target, allow_private)).await {
        Ok(Ok(_)) | Ok(Err(SendError::Dns(_))) | Err(_) => Ok(target),
        Ok(Err(e)) => Err(e),
    }
}

/// The answer to a delivery.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The start of the body (at most what was asked to keep: [`BODY_LOG_LIMIT`] bytes for a
    /// delivery; lossy UTF-8).
    pub body: String,
    /// Whether the body was longer than what was kept.
    pub truncated: bool,
}

static TLS: LazyLock<TlsConnector> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
});

/// POSTs `body` to the target with `headers`, within `timeout` in all.
pub async fn post(
    target: &Target,
    allow_private: bool,
    headers: &[(&str, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let request = Outgoing {
        method: hyper::Method::POST,
        headers,
        body,
        keep: BODY_LOG_LIMIT,
        user_agent: concat!("Keygate-Webhooks/", env!("CARGO_PKG_VERSION")),
    };
    within(timeout, send(target, allow_private, request, timeout)).await
}

/// GETs the target (a platform's API), within `timeout` in all, keeping up to `keep` bytes
/// of the answer's body.
pub async fn get(
    target: &Target,
    allow_private: bool,
    headers: &[(&str, String)],
    keep: usize,
    timeout: Duration,
) -> Result<Answer, SendError> {
    api_request(
        target,
        allow_private,
        hyper::Method::GET,
        headers,
        Bytes::new(),
        keep,
        timeout,
    )
    .await
}

/// A request to a platform's API (a GET, a GraphQL or JSON-API POST, a token exchange),
/// within `timeout` in all, keeping up to `keep` bytes of the answer's body.
pub async fn api_request(
    target: &Target,
    allow_private: bool,
    method: hyper::Method,
    headers: &[(&str, String)],
    body: Bytes,
    keep: usize,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let request = Outgoing {
        method,
        headers,
        body,
        keep,
        user_agent: concat!("Keygate/", env!("CARGO_PKG_VERSION")),
    };
    within(timeout, send(target, allow_private, request, timeout)).await
}

async fn within(
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<Answer, SendError>>,
) -> Result<Answer, SendError> {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Timeout(timeout)),
    }
}

struct Outgoing<'a> {
    method: hyper::Method,
    headers: &'a [(&'a str, String)],
    body: Bytes,
    /// How much of the answer's body to keep.
    keep: usize,
    user_agent: &'static str,
}

async fn send(
    target: &Target,
    allow_private: bool,
    outgoing: Outgoing<'_>,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let addresses = vet(target, allow_private).await?;
    let connect_timeout = CONNECT_TIMEOUT.min(timeout);
    let mut last_error = None;
    let mut stream = None;
    for address in addresses.iter().take(3) {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(format!("{address}: {e}")),
            Err(_) => {
                last_error = Some(format!(
                    "{address}: no connection within {connect_timeout:?}"
                ))
            }
        }
    }
    let stream = stream.ok_or_else(|| SendError::Connect(last_error.unwrap_or_default()))?;
    let _ = stream.set_nodelay(true);
    let mut request = Request::builder()
        .method(outgoing.method)
        .uri(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::USER_AGENT, outgoing.user_agent);
    if !outgoing.body.is_empty() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in outgoing.headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(outgoing.body))
        .map_err(|e| SendError::Http(e.to_string()))?;
    let keep = outgoing.keep;
    if target.https {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| SendError::InvalidUrl(format!("`{}`: {e}", target.host)))?;
        let tls = TLS
            .connect(name, stream)
            .await
            .map_err(|e| SendError::Tls(e.to_string()))?;
        exchange(TokioIo::new(tls), request, keep).await
    } else {
        exchange(TokioIo::new(stream), request, keep).await
    }
}

async fn exchange<T>(
    io: TokioIo<T>,
    request: Request<Full<Bytes>>,
    keep: usize,
) -> Result<Answer, SendError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| SendError::Http(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(http);
    let result = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = response.into_body();
            let mut kept = Vec::new();
            let mut read = 0usize;
            while read < BODY_READ_LIMIT.max(keep) {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            read += data.len();
                            let room = keep.saturating_sub(kept.len());
                            kept.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    // The status is what counts: a broken body after it does not undo it.
                    Some(Err(_)) | None => break,
                }
            }
            Ok(Answer {
                status,
                retry_after,
                truncated: read > kept.len(),
                body: String::from_utf8_lossy(&kept).into_owned(),
            })
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} must be allowed");
        }
        assert!(literal_forbidden("localhost"));
        assert!(literal_forbidden("api.localhost"));
        assert!(!literal_forbidden("example.com"));
        for host in [
            "localhost.",
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "0",
            "169.254.43518",
            "[::1]",
            "::ffff:0:127.0.0.1",
            "2002:7f00:1::",
            "2001::7f00:1",
            "64:ff9b:1::a9fe:a9fe",
            "100::1",
            "3fff::1",
        ] {
            assert!(literal_forbidden(host), "{host} must be refused");
        }
        for ip in ["2002:5db8:d70e::1", "64:ff9b::808:808", "2001:4860::8888"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn reads_numeric_hosts_as_inet_aton_does() {
        for (host, ip) in [
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("127.000.000.001", "127.0.0.1"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("169.254.43518", "169.254.169.254"),
            ("0", "0.0.0.0"),
            ("0x", "0.0.0.0"),
            ("8.8.8.8", "8.8.8.8"),
        ] {
            assert_eq!(inet_aton(host), Some(ip.parse().unwrap()), "{host}");
        }
        for bad in [
            "08",
            "256.1",
            "1.2.3.4.5",
            "4294967296",
            "1.16777216",
            "0x1g",
        ] {
            assert_eq!(inet_aton(bad), None, "{bad}");
        }
        let t = parse_url("http://0x7f.1:8080/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.ip, Some("127.0.0.1".parse().unwrap()));
        let t = parse_url("https://Hooks.Example.COM./x").unwrap();
        assert_eq!((t.host.as_str(), t.ip), ("hooks.example.com", None));
        for bad in [
            "https://hooks.example.com:99999/x",
            "https://hooks.example.com:0/x",
            "http://[fe80::1%25eth0]/",
            "http://1.2.3.4.5/",
            "http://a..b/",
        ] {
            assert_eq!(parse_url(bad).unwrap_err().code(), "INVALID_URL", "{bad}");
        }
    }

    #[test]
    fn parses_urls() {
        let t = parse_url("https://hooks.example.com/keygate?x=1").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("hooks.example.com", 443));
        assert_eq!(t.path_and_query, "/keygate?x=1");
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path_and_query.as_str()),
            ("::1", 8080, "/")
        );
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "https:///nohost",
            "javascript:alert(1)",
        ] {
            assert_eq!(parse_url(bad).unwrap_err().code(), "INVALID_URL", "{bad}");
        }
    }
}
