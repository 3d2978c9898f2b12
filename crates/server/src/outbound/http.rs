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
    /// The host as written (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
    pub path_and_query: String,
}

/// Accepts `http(s)://host[:port][/path][?query]` without credentials.
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
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Target {
        https,
        host: host.to_string(),
        port,
        authority: authority.as_str().to_string(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

/// Loopback, private, link-local, CGNAT, unspecified, multicast, broadcast, documentation and
/// unique-local addresses, and IPv4 addresses in their IPv6 (mapped, compatible, NAT64) forms.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96).
            if (s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return forbidden_v4(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
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

/// A host named in a URL that is refused without a lookup: a literal forbidden address, or
/// `localhost`.
pub fn literal_forbidden(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(is_forbidden)
}

/// The answer to a delivery.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The start of the body (at most [`BODY_LOG_LIMIT`] bytes, lossy UTF-8).
    pub body: String,
}

/// Resolves the target to addresses it may connect to.
async fn vetted_addresses(
    target: &Target,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, SendError> {
    let resolved: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
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
    match tokio::time::timeout(
        timeout,
        post_inner(target, allow_private, headers, body, timeout),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(SendError::Timeout(timeout)),
    }
}

async fn post_inner(
    target: &Target,
    allow_private: bool,
    headers: &[(&str, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let addresses = vetted_addresses(target, allow_private).await?;
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
    let mut request = Request::post(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("Keygate-Webhooks/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| SendError::Http(e.to_string()))?;
    if target.https {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| SendError::InvalidUrl(format!("`{}`: {e}", target.host)))?;
        let tls = TLS
            .connect(name, stream)
            .await
            .map_err(|e| SendError::Tls(e.to_string()))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(stream), request).await
    }
}

async fn exchange<T>(io: TokioIo<T>, request: Request<Full<Bytes>>) -> Result<Answer, SendError>
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
            while read < BODY_READ_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            read += data.len();
                            let room = BODY_LOG_LIMIT.saturating_sub(kept.len());
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
