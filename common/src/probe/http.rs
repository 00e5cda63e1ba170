//! HTTP and HTTPS checks through reqwest.
//!
//! Clients are shared across checks (one per TLS/source/SNI setting, not
//! one per check) but keep no idle connections: every check opens a fresh
//! connection, as ldirectord and keepalived do, so it tests the real's
//! accept path and not a kept-alive socket.

use std::collections::HashMap;
use std::error::Error as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use md5::{Digest, Md5};
use reqwest::header::{CONNECTION, HOST};

use super::spec::{CaFile, HttpCheck, HttpMethod};
use super::{io_reason, Target};

type R<T = ()> = std::result::Result<T, String>;

/// Bodies are read (for `receive` or `digest`) up to this size.
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    verify: bool,
    ca: Option<Arc<CaFile>>,
    source: Option<IpAddr>,
    /// TLS with a name: connect to this address while sending the name as SNI.
    sni: Option<(String, SocketAddr)>,
}

fn client(key: &ClientKey) -> R<reqwest::Client> {
    static CLIENTS: OnceLock<Mutex<HashMap<ClientKey, reqwest::Client>>> = OnceLock::new();
    let cache = CLIENTS.get_or_init(Default::default);
    // A poisoned lock only means another check panicked mid-insert; the map is fine.
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // A check is one attempt. reqwest only ever retries HTTP/2 and /3
        // refusals, which we do not speak, yet by default copies every
        // request in case; allowing no retries skips the copy.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .pool_max_idle_per_host(0)
        .user_agent(concat!("lvs-agents/", env!("CARGO_PKG_VERSION"), " health check"))
        // hyper-util sets TCP_NODELAY either way; on, TLS's small writes
        // are never held back waiting for an ACK.
        .tcp_nodelay(true)
        // A check's connection lives for one request, bounded by the
        // check's timeout: reqwest's keepalive and user-timeout socket
        // options (five setsockopt calls a check) buy nothing.
        .tcp_keepalive(None)
        .tcp_keepalive_interval(None)
        .tcp_keepalive_retries(None)
        .tcp_user_timeout(None)
        .local_address(key.source)
        .danger_accept_invalid_certs(!key.verify)
        .tls_built_in_root_certs(key.verify);
    if let Some(ca) = &key.ca {
        let certs =
            reqwest::Certificate::from_pem_bundle(&ca.pem).map_err(|e| format!("ca {}: {e}", ca.path.display()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some((name, addr)) = &key.sni {
        b = b.resolve(name, *addr);
    }
    let c = b.build().map_err(|e| format!("http client: {e}"))?;
    map.insert(key.clone(), c.clone());
    Ok(c)
}

pub async fn check(target: &Target, h: &HttpCheck) -> R {
    let addr = target.check_addr();
    let scheme = h.url.scheme();
    let sni_name = h.sni_name();
    let mut url = h.url.clone();
    // With a TLS name the URL keeps the name (see HttpCheck::url).
    let host = if sni_name.is_none() { url.set_ip_host(addr.ip()) } else { Ok(()) };
    host.and_then(|()| url.set_port(Some(addr.port()))).map_err(|()| format!("{scheme}: cannot address {addr}"))?;
    let key = ClientKey {
        verify: h.verify,
        ca: h.ca.clone(),
        source: target.source,
        sni: sni_name.map(|n| (n.to_string(), addr)),
    };
    let client = client(&key)?;
    let method = match h.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
    };
    // One request per connection (ldirectord and keepalived ask the same):
    // the real may close first, so TIME_WAIT lands on it, not on the director.
    let mut req = client.request(method, url).header(CONNECTION, "close");
    if let Some(vh) = &h.virtualhost {
        req = req.header(HOST, vh.as_str());
    }
    let mut resp = req.send().await.map_err(|e| reason(scheme, &e))?;
    let status = resp.status().as_u16();
    if !h.status.contains(status) {
        return Err(format!("{scheme} status {status}"));
    }
    if h.receive.is_none() && h.digest.is_none() {
        return Ok(());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| reason(scheme, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("body larger than {} MiB", MAX_BODY >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(want) = &h.digest {
        let got: [u8; 16] = Md5::digest(&body).into();
        if &got != want {
            return Err(format!("body md5 {} is not {}", hex(&got), hex(want)));
        }
    }
    if let Some(re) = &h.receive {
        if !re.is_match(&body) {
            return Err(format!("body does not match /{}/", re.as_str()));
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The kernel's word when there is one (`http connect refused`), else the
/// root cause (`https: invalid peer certificate: UnknownIssuer`).
fn reason(scheme: &str, e: &reqwest::Error) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.source();
    let mut root = None;
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            let what = if e.is_connect() { format!("{scheme} connect") } else { scheme.to_string() };
            let r = io_reason(&what, io);
            if !r.contains(": ") {
                return r;
            }
        }
        root = Some(c);
        cause = c.source();
    }
    match root {
        Some(c) => format!("{scheme}: {c}"),
        None => format!("{scheme}: {e}"),
    }
}
