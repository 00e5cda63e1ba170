//! Fake backends for the probe tests: small servers on loopback ports the
//! kernel picks (port 0), healthy or broken on purpose.
//!
//! All fakes run as tasks of one background current-thread runtime on its
//! own thread, so a test's runtime and the fakes never share a scheduler
//! and a fake that never answers blocks nothing but its own connection.
//! Fakes live until the test process exits.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio_rustls::rustls;

fn bg() -> &'static Handle {
    static HANDLE: OnceLock<Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("fake runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("fake-backends".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("fake thread");
        handle
    })
}

fn ip(addr: &str) -> IpAddr {
    addr.parse().expect("fake address")
}

/// A TCP fake: every accepted connection goes to `handler`.
pub fn tcp<F, Fut>(addr: &str, handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let std = StdTcpListener::bind((ip(addr), 0)).expect("bind fake tcp");
    std.set_nonblocking(true).expect("nonblocking");
    let local = std.local_addr().expect("local addr");
    let handler = Arc::new(handler);
    bg().spawn(async move {
        let listener = TcpListener::from_std(std).expect("tokio listener");
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    });
    local
}

/// A UDP fake: `reply` maps each datagram to what to send back (None: stay silent).
pub fn udp<F>(addr: &str, reply: F) -> SocketAddr
where
    F: Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let std = StdUdpSocket::bind((ip(addr), 0)).expect("bind fake udp");
    std.set_nonblocking(true).expect("nonblocking");
    let local = std.local_addr().expect("local addr");
    bg().spawn(async move {
        let sock = UdpSocket::from_std(std).expect("tokio udp");
        let mut buf = vec![0u8; 65536];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            if let Some(out) = reply(&buf[..n]) {
                let _ = sock.send_to(&out, peer).await;
            }
        }
    });
    local
}

/// An address where nothing listens (TCP: refused; UDP: port unreachable).
pub fn closed_port(addr: &str) -> SocketAddr {
    let l = StdTcpListener::bind((ip(addr), 0)).expect("bind");
    let a = l.local_addr().expect("local addr");
    drop(l);
    // Make sure no UDP socket holds it either.
    drop(StdUdpSocket::bind(a));
    a
}

/// Accepts connections and never says a word.
pub fn silent_tcp(addr: &str) -> SocketAddr {
    tcp(addr, |stream| async move {
        let _keep = stream;
        std::future::pending::<()>().await;
    })
}

/// Receives datagrams and never answers.
pub fn silent_udp(addr: &str) -> SocketAddr {
    udp(addr, |_| None)
}

/// Peers seen by a fake, for asserting source-address binding.
pub type Seen = Arc<Mutex<Vec<SocketAddr>>>;

/// Accepts, notes the peer address, closes.
pub fn tcp_accept_and_close(addr: &str) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let a = tcp(addr, move |stream| {
        let s = s.clone();
        async move {
            if let Ok(p) = stream.peer_addr() {
                s.lock().unwrap().push(p);
            }
        }
    });
    (a, seen)
}

async fn read_line(stream: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match stream.read(&mut b).await {
            Ok(1) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return Some(String::from_utf8_lossy(&line).into_owned());
                }
            }
            _ => return None,
        }
    }
}

/// A line protocol: `greeting`, then for each line read, the reply of the
/// first `(prefix, reply)` whose prefix starts the line (case-insensitive);
/// lines starting with QUIT or containing LOGOUT end the session.
pub fn line_protocol(
    addr: &str,
    greeting: &'static str,
    replies: &'static [(&'static str, &'static str)],
) -> SocketAddr {
    tcp(addr, move |mut stream| async move {
        if stream.write_all(greeting.as_bytes()).await.is_err() {
            return;
        }
        while let Some(line) = read_line(&mut stream).await {
            let upper = line.to_ascii_uppercase();
            if let Some((_, r)) = replies.iter().find(|(p, _)| upper.starts_with(&p.to_ascii_uppercase())) {
                let _ = stream.write_all(r.as_bytes()).await;
            }
            if upper.starts_with("QUIT") || upper.contains("LOGOUT") {
                return;
            }
        }
    })
}

/// Writes `bytes` as soon as a connection is accepted, then reads until EOF.
pub fn greeter(addr: &str, bytes: &'static [u8]) -> SocketAddr {
    tcp(addr, move |mut stream| async move {
        let _ = stream.write_all(bytes).await;
        let mut sink = [0u8; 512];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
}

/// Reads `want` bytes, then answers `reply` (pgsql SSLRequest, ldap bind);
/// an empty reply closes the connection instead.
pub fn request_reply(addr: &str, want: usize, reply: &'static [u8]) -> SocketAddr {
    tcp(addr, move |mut stream| async move {
        let mut buf = vec![0u8; want];
        if stream.read_exact(&mut buf).await.is_err() || reply.is_empty() {
            return;
        }
        let _ = stream.write_all(reply).await;
        let mut sink = [0u8; 512];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
}

/// Reads until the client half-closes, then answers `reply` (simpletcp).
pub fn read_all_then_reply(addr: &str, reply: &'static [u8]) -> SocketAddr {
    tcp(addr, move |mut stream| async move {
        let mut req = Vec::new();
        if stream.read_to_end(&mut req).await.is_ok() {
            let _ = stream.write_all(reply).await;
        }
    })
}

/// What an HTTP fake saw of one request.
#[derive(Debug, Clone, Default)]
pub struct SeenRequest {
    pub request_line: String,
    pub host: Option<String>,
    pub connection: Option<String>,
    /// TLS server name the client sent, for HTTPS fakes.
    pub sni: Option<String>,
}

pub type SeenRequests = Arc<Mutex<Vec<SeenRequest>>>;

#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub body: Vec<u8>,
}

async fn serve_http<S>(mut stream: S, reply: HttpReply, seen: SeenRequests, sni: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or("").to_string();
    let header = |name: &str| {
        text.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let (host, connection) = (header("host"), header("connection"));
    let head_only = request_line.starts_with("HEAD ");
    seen.lock().unwrap().push(SeenRequest { request_line, host, connection, sni });
    let mut out = format!(
        "HTTP/1.1 {} Fake\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        reply.status,
        reply.body.len(),
        if (300..400).contains(&reply.status) { "Location: /elsewhere\r\n" } else { "" },
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// A plain HTTP/1.1 fake answering every request with `status` and `body`.
pub fn http(addr: &str, status: u16, body: &str) -> (SocketAddr, SeenRequests) {
    let seen: SeenRequests = Arc::default();
    let reply = HttpReply { status, body: body.as_bytes().to_vec() };
    let s = seen.clone();
    let a = tcp(addr, move |stream| serve_http(stream, reply.clone(), s.clone(), None));
    (a, seen)
}

/// A self-signed certificate for `localhost`, `www.test.example`,
/// 127.0.0.1 and ::1, with its PEM written to a file for `ca=`.
pub struct TestCert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub key_der: Vec<u8>,
    pub pem_path: PathBuf,
}

pub fn test_cert() -> &'static TestCert {
    static CERT: OnceLock<TestCert> = OnceLock::new();
    CERT.get_or_init(|| {
        let names = ["localhost", "www.test.example", "127.0.0.1", "::1"].map(String::from).to_vec();
        let ck = rcgen::generate_simple_self_signed(names).expect("self-signed cert");
        let pem_path = std::env::temp_dir().join(format!("lvs-probe-test-ca-{}.pem", std::process::id()));
        std::fs::write(&pem_path, ck.cert.pem()).expect("write cert pem");
        TestCert { der: ck.cert.der().clone(), key_der: ck.signing_key.serialize_der(), pem_path }
    })
}

/// An HTTPS fake with [`test_cert`]; records the SNI each client sent.
pub fn https(addr: &str, status: u16, body: &str) -> (SocketAddr, SeenRequests) {
    let cert = test_cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_der.clone().into()))
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let seen: SeenRequests = Arc::default();
    let reply = HttpReply { status, body: body.as_bytes().to_vec() };
    let s = seen.clone();
    let a = tcp(addr, move |stream| {
        let acceptor = acceptor.clone();
        let reply = reply.clone();
        let s = s.clone();
        async move {
            // A client that refuses our certificate aborts here.
            if let Ok(tls) = acceptor.accept(stream).await {
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                serve_http(tls, reply, s, sni).await;
            }
        }
    });
    (a, seen)
}

/// DNS over UDP: answers A/AAAA questions for `name` with `addrs`
/// (NXDOMAIN for other names).
pub fn dns(addr: &str, name: &'static str, addrs: Vec<IpAddr>) -> SocketAddr {
    udp(addr, move |q| {
        if q.len() < 12 {
            return None;
        }
        // Question name as dotted text, and where the question ends.
        let mut at = 12;
        let mut labels = Vec::new();
        while at < q.len() && q[at] != 0 {
            let l = q[at] as usize;
            labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + l)?).into_owned());
            at += 1 + l;
        }
        let qtype = u16::from_be_bytes([*q.get(at + 1)?, *q.get(at + 2)?]);
        let qend = at + 5;
        let mut r = q.get(..qend)?.to_vec();
        r[2] = 0x81; // QR, RD
        r[3] = 0x80; // RA, NOERROR
        r[6] = 0;
        r[7] = 0;
        if !labels.join(".").eq_ignore_ascii_case(name) {
            r[3] |= 3;
            return Some(r);
        }
        let mut count = 0u8;
        for a in &addrs {
            let (t, data) = match a {
                IpAddr::V4(v4) => (1u16, v4.octets().to_vec()),
                IpAddr::V6(v6) => (28u16, v6.octets().to_vec()),
            };
            if t != qtype {
                continue;
            }
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            r.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
            r.extend_from_slice(&data);
            count += 1;
        }
        r[7] = count;
        Some(r)
    })
}

/// SIP over UDP: answers every request with `status`, echoing the headers
/// a client matches responses by.
pub fn sip(addr: &str, status: u16) -> SocketAddr {
    udp(addr, move |req| {
        let text = String::from_utf8_lossy(req);
        let mut out = format!("SIP/2.0 {status} Fake\r\n");
        for line in text.lines() {
            let l = line.to_ascii_lowercase();
            if ["via:", "from:", "to:", "call-id:", "cseq:"].iter().any(|h| l.starts_with(h)) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        Some(out.into_bytes())
    })
}

/// Runs `f` on a thread inside a fresh network namespace whose loopback is
/// up, after writing `sysctls` there (paths under /proc/sys/net resolve to
/// the calling thread's namespace, so the host's stay untouched).
pub fn in_private_netns<T: Send + 'static>(
    sysctls: &'static [(&'static str, &'static str)],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): these tests run as root");
        // A child forked from this thread starts in this thread's namespace.
        let st = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
        assert!(st.success(), "ip link set lo up failed");
        for (path, value) in sysctls {
            std::fs::write(path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
        f()
    })
    .join()
    .expect("netns thread")
}

/// Whether any process has exactly this argv element (e.g. a unique sleep length).
pub fn process_with_arg(arg: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Polls until `f` holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Body bytes [`send_endless_body`] has sent, in all connections so far.
static ENDLESS_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many body bytes hostile reals have sent so far (all of them).
pub fn endless_bytes_sent() -> u64 {
    ENDLESS_SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// A hostile real's answer: 200 with a chunked body that never ends.
pub async fn send_endless_body(mut s: TcpStream) {
    // One chunk for all connections.
    static CHUNK: OnceLock<Vec<u8>> = OnceLock::new();
    let chunk = CHUNK.get_or_init(|| [b"4000\r\n".as_slice(), &[b'x'; 0x4000], b"\r\n"].concat());
    // A small send buffer: the writer only keeps up with the reader
    // instead of copying megabytes into each socket (CPU the other tests need).
    let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::SndBuf, &(16 << 10));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    if s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.is_err() {
        return;
    }
    while s.write_all(chunk).await.is_ok() {
        ENDLESS_SENT.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Hostile reals: every connection to one of `listeners` gets an endless
/// body ([`send_endless_body`]). Served by a thread and runtime of their
/// own (not the fakes' runtime): a thousand endless writers would starve
/// the other fakes. Listeners may come from any network namespace.
pub fn serve_endless_bodies(listeners: Vec<StdTcpListener>) {
    for l in &listeners {
        l.set_nonblocking(true).expect("nonblocking");
    }
    std::thread::Builder::new()
        .name("endless-bodies".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("endless runtime");
            rt.block_on(async move {
                let mut accepting = tokio::task::JoinSet::new();
                for l in listeners {
                    accepting.spawn(async move {
                        let l = TcpListener::from_std(l).expect("tokio listener");
                        while let Ok((s, _)) = l.accept().await {
                            tokio::spawn(send_endless_body(s));
                        }
                    });
                }
                while accepting.join_next().await.is_some() {}
            });
        })
        .expect("endless-bodies thread");
}
