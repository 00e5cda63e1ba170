//! UDP checks: a datagram out, maybe one back. Requests are resent with
//! backoff (datagrams get lost); the caller's timeout ends the wait.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::checks::{StatusRanges, UdpCheck};
use super::dns::{self, DnsType, Reply};
use super::{excerpt, io_reason, nonce, Target};

type R<T = ()> = std::result::Result<T, String>;

/// First resend after this; doubles up to [`MAX_RESEND`] (SIP's T1).
const FIRST_RESEND: Duration = Duration::from_millis(500);
const MAX_RESEND: Duration = Duration::from_secs(2);

async fn socket(target: &Target) -> R<UdpSocket> {
    let addr = target.check_addr();
    let local = match (target.source, addr) {
        (Some(src), _) => SocketAddr::new(src, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        (None, SocketAddr::V6(_)) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let sock = UdpSocket::bind(local).await.map_err(|e| io_reason(&format!("bind {local}"), &e))?;
    // Connected: only the real's datagrams reach us, and ICMP errors surface.
    sock.connect(addr).await.map_err(|e| io_reason("connect", &e))?;
    Ok(sock)
}

fn recv_reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "port unreachable".into()
    } else {
        io_reason("recv", e)
    }
}

/// Sends `request` until `accept` says what a datagram means (None: not ours).
async fn exchange(sock: &UdpSocket, request: &[u8], mut accept: impl FnMut(&[u8]) -> Option<R>) -> R {
    let mut buf = vec![0u8; 65536];
    let mut resend = FIRST_RESEND;
    loop {
        sock.send(request).await.map_err(|e| recv_reason(&e))?;
        let deadline = tokio::time::Instant::now() + resend;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(recv_reason(&e)),
                Ok(Ok(n)) => {
                    if let Some(result) = accept(&buf[..n]) {
                        return result;
                    }
                }
            }
        }
        resend = (resend * 2).min(MAX_RESEND);
    }
}

pub async fn udp(target: &Target, u: &UdpCheck, timeout: Duration) -> R {
    let sock = socket(target).await?;
    if u.require_reply {
        return exchange(&sock, &u.payload, |reply| match &u.receive {
            Some(re) if !re.is_match(reply) => Some(Err(format!("reply does not match /{}/", re.as_str()))),
            _ => Some(Ok(())),
        })
        .await;
    }
    // No reply expected: only an ICMP error within half the timeout fails
    // it (keepalived's UDP_CHECK waits for one the same way); the other
    // half keeps this wait inside the caller's hard timeout.
    sock.send(&u.payload).await.map_err(|e| recv_reason(&e))?;
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(timeout / 2, sock.recv(&mut buf)).await {
        Ok(Err(e)) => Err(recv_reason(&e)),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

pub async fn dns(target: &Target, name: &str, qtype: DnsType, expect: Option<IpAddr>) -> R {
    let sock = socket(target).await?;
    let [.., hi, lo] = nonce().to_be_bytes();
    let id = u16::from_be_bytes([hi, lo]);
    let query = dns::encode_query(id, name, qtype).map_err(|e| e.to_string())?;
    exchange(&sock, &query, |msg| match dns::decode_reply(msg, id, qtype)? {
        Reply::Rcode(rc) => Some(Err(format!("dns {}", dns::rcode_name(rc)))),
        Reply::Answer(addrs) if addrs.is_empty() => {
            let t = if qtype == DnsType::A { "A" } else { "AAAA" };
            Some(Err(format!("dns: no {t} record for {name}")))
        }
        Reply::Answer(addrs) => match expect {
            Some(want) if !addrs.contains(&want) => Some(Err(format!("dns: {name} is not {want}"))),
            _ => Some(Ok(())),
        },
    })
    .await
}

/// OPTIONS over UDP (RFC 3261 §11); up when the final response's status is
/// in `status` (200 unless configured).
pub async fn sip(target: &Target, user: Option<&str>, status: &StatusRanges) -> R {
    let sock = socket(target).await?;
    let local = sock.local_addr().map_err(|e| io_reason("local address", &e))?;
    let n = nonce();
    let user = match user {
        Some(u) => u.to_string(),
        None => format!("lvs-agents@{}", bracket(target.addr)),
    };
    let call_id = format!("{n:016x}@lvs-agents");
    let request = format!(
        "OPTIONS sip:{user} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {}:{};branch=z9hG4bK{n:x}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{user}>\r\n\
         From: <sip:{user}>;tag={:x}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        bracket(local.ip()),
        local.port(),
        n >> 16,
    );
    exchange(&sock, request.as_bytes(), |reply| {
        let text = String::from_utf8_lossy(reply);
        // Stray or late datagrams from an earlier check are not ours.
        if !text.contains(&call_id) {
            return None;
        }
        let code = text.strip_prefix("SIP/2.0 ").and_then(|r| r.get(..3)).and_then(|c| c.parse::<u16>().ok());
        match code {
            None => Some(Err(format!("not a SIP response: {}", excerpt(reply)))),
            Some(c) if status.contains(c) => Some(Ok(())),
            Some(c) if c < 200 => None, // provisional, the final one follows
            Some(c) => Some(Err(format!("sip status {c}"))),
        }
    })
    .await
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
