//! HTTP and HTTPS checks through reqwest.
//!
//! Clients are shared across checks (one per TLS/source/SNI setting, not
//! one per check) but keep no idle connections: every check opens a fresh
//! connection, as ldirectord and keepalived do, so it tests the real's
//! accept path and not a kept-alive socket. At most [`MAX_CLIENTS`] are
//! kept (least recently used go first), and a reload drops them all.

use std::collections::HashMap;
use std::error::Error as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use md5::{Digest, Md5};
use reqwest::header::{CONNECTION, HOST};
use tokio::sync::Semaphore;

use super::checks::{CaFile, HttpCheck, HttpMethod};
use super::{io_reason, Target};

type R<T = ()> = std::result::Result<T, String>;

/// Bodies are read (for `receive` or `digest`) up to this size: plenty
/// for a status page, and a real sending an endless body costs no more.
pub const MAX_BODY: usize = 128 * 1024;

/// Memory all bodies being read at once may take, however many reals send
/// endless ones. A body reserves its declared length (MAX_BODY when it has
/// none or more) before its first byte is read, all at once, so that
/// checks never wait on each other's partial reservations; a check waits
/// for its share on its timeout's clock. Each body read also holds the
/// HTTP library's read buffer (up to about as much again), hence 4 MiB:
/// with 1,000 reals in flight their connections cost more than the bodies.
pub const BODY_BUDGET: usize = 4 << 20;

/// BODY_BUDGET, counted in KiB.
static BODIES: Semaphore = Semaphore::const_new(BODY_BUDGET >> 10);

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    verify: bool,
    ca: Option<Arc<CaFile>>,
    source: Option<IpAddr>,
    /// TLS with a name: connect to this address while sending the name as SNI.
    sni: Option<(String, SocketAddr)>,
}

/// HTTP clients kept for reuse. Each TLS real checked with a server name
/// needs its own (the name resolves to that real), and each costs its TLS
/// setup (with verify=yes, a parsed root store), so there is a bound.
pub const MAX_CLIENTS: usize = 1024;

#[derive(Default)]
struct Clients {
    map: HashMap<ClientKey, (reqwest::Client, u64)>,
    /// Counts lookups: an entry's stamp is when it was last used.
    clock: u64,
}

fn clients() -> std::sync::MutexGuard<'static, Clients> {
    static CLIENTS: OnceLock<Mutex<Clients>> = OnceLock::new();
    // A poisoned lock only means another check panicked mid-insert; the map is fine.
    CLIENTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Drops every kept client: after a reload, reals, names and CA files
/// may have changed, and clients for the old ones would only take memory.
pub fn forget_clients() {
    clients().map.clear();
}

fn client(key: &ClientKey) -> R<reqwest::Client> {
    let mut cache = clients();
    cache.clock += 1;
    let now = cache.clock;
    if let Some((c, used)) = cache.map.get_mut(key) {
        *used = now;
        return Ok(c.clone());
    }
    let c = build(key)?;
    if cache.map.len() >= MAX_CLIENTS {
        // O(MAX_CLIENTS), only on a miss with the cache full.
        let oldest = cache.map.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            cache.map.remove(&k);
        }
    }
    cache.map.insert(key.clone(), (c.clone(), now));
    Ok(c)
}

fn build(key: &ClientKey) -> R<reqwest::Client> {
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
    b.build().map_err(|e| format!("http client: {e}"))
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
    body(scheme, &mut resp, h).await
}

/// Reads the body as `receive` and `digest` need it: hashed as it comes,
/// and only the first MAX_BODY bytes kept, for `receive`, which matches
/// against them (a longer body is cut there; `digest` then fails, as it
/// cannot see the whole body).
async fn body(scheme: &str, resp: &mut reqwest::Response, h: &HttpCheck) -> R {
    let declared = resp.content_length().and_then(|n| usize::try_from(n).ok());
    let want = declared.unwrap_or(MAX_BODY).min(MAX_BODY);
    let kib = u32::try_from(want.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    // Never closed, so acquiring cannot fail; no share means no read.
    let _share = BODIES.acquire_many(kib).await.map_err(|_| format!("{scheme}: no body budget"))?;
    let mut md5 = h.digest.map(|_| Md5::new());
    let mut window: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut complete = true;
    while let Some(chunk) = resp.chunk().await.map_err(|e| reason(scheme, &e))? {
        let take = chunk.len().min(MAX_BODY - total);
        total += take;
        if let Some(md5) = &mut md5 {
            md5.update(&chunk[..take]);
        }
        if h.receive.is_some() && take > 0 {
            // Exact growth: the window never holds more than MAX_BODY.
            let grow = (window.len() + take).max(window.capacity().saturating_mul(2)).min(want.max(total));
            window.reserve_exact(grow.saturating_sub(window.len()));
            window.extend_from_slice(&chunk[..take]);
        }
        if take < chunk.len() {
            complete = false;
            break;
        }
    }
    if let (Some(md5), Some(want)) = (md5, &h.digest) {
        if !complete {
            return Err(format!("body larger than {} KiB: no digest", MAX_BODY >> 10));
        }
        let got: [u8; 16] = md5.finalize().into();
        if &got != want {
            return Err(format!("body md5 {} is not {}", hex(&got), hex(want)));
        }
    }
    if let Some(re) = &h.receive {
        if !re.is_match(&window) {
            return Err(match complete {
                true => format!("body does not match /{}/", re.as_str()),
                false => format!("the first {} KiB of the body do not match /{}/", MAX_BODY >> 10, re.as_str()),
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_cache_is_bounded_and_keeps_what_is_used() {
        forget_clients();
        let key = |i: usize| ClientKey {
            verify: false,
            ca: None,
            source: None,
            sni: Some((format!("r{i}.test.example"), SocketAddr::from(([127, 0, 0, 1], 443)))),
        };
        client(&key(0)).unwrap();
        for i in 1..MAX_CLIENTS + 50 {
            client(&key(i)).unwrap();
            // Real 0 is checked all along: it stays.
            client(&key(0)).unwrap();
        }
        let cache = clients();
        assert_eq!(cache.map.len(), MAX_CLIENTS);
        assert!(cache.map.contains_key(&key(0)), "the most used client was evicted");
        assert!(!cache.map.contains_key(&key(1)), "the least recently used client was kept");
        drop(cache);
        forget_clients();
        assert!(clients().map.is_empty());
    }
}
