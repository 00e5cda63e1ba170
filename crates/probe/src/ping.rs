//! ICMP echo, IPv4 and IPv6. Raw sockets need CAP_NET_RAW (the agents run
//! as root); without it we fall back to the kernel's ping sockets, which
//! work where net.ipv4.ping_group_range allows.
//!
//! Up to three echo requests are sent, a third of the timeout apart, and
//! any matching reply is enough (ldirectord's ping tries `checkcount` times).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::{io_reason, nonce, Target};

type R<T = ()> = std::result::Result<T, String>;

pub async fn ping(target: &Target, timeout: Duration) -> R {
    let dst = target.addr;
    let v4 = dst.is_ipv4();
    let (domain, proto) = if v4 { (Domain::IPV4, Protocol::ICMPV4) } else { (Domain::IPV6, Protocol::ICMPV6) };
    let (sock, raw) = match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(s) => (s, true),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let s = Socket::new(domain, Type::DGRAM, Some(proto)).map_err(|e| io_reason("icmp socket", &e))?;
            (s, false)
        }
        Err(e) => return Err(io_reason("raw socket", &e)),
    };
    sock.set_nonblocking(true).map_err(|e| io_reason("icmp socket", &e))?;
    if let Some(src) = target.source {
        sock.bind(&SocketAddr::new(src, 0).into()).map_err(|e| io_reason(&format!("bind {src}"), &e))?;
    }
    // Connected: the kernel hands us only packets from the real.
    sock.connect(&SocketAddr::new(dst, 0).into()).map_err(|e| io_reason("ping", &e))?;
    // tokio's UdpSocket only calls send/recv on its fd, which is all an
    // ICMP socket needs, and it takes ownership without unsafe code.
    let fd =
        tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(sock)).map_err(|e| io_reason("icmp socket", &e))?;

    let n = nonce();
    let [.., hi, lo] = n.to_be_bytes();
    let id = u16::from_be_bytes([hi, lo]);
    let token = n.to_be_bytes();
    let gap = (timeout / 3).max(Duration::from_millis(50));
    let mut buf = vec![0u8; 2048];
    for seq in 0u16..4 {
        if seq < 3 {
            let pkt = echo_request(v4, id, seq, &token);
            fd.send(&pkt).await.map_err(|e| io_reason("ping", &e))?;
        }
        let deadline = tokio::time::Instant::now() + gap;
        loop {
            match tokio::time::timeout_at(deadline, fd.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(io_reason("ping", &e)),
                Ok(Ok(len)) => {
                    if is_reply(&buf[..len], v4, raw, id, &token) {
                        return Ok(());
                    }
                }
            }
        }
    }
    Err("no echo reply".into())
}

/// Echo request: type, code, checksum, id, sequence, then our token.
pub(super) fn echo_request(v4: bool, id: u16, seq: u16, token: &[u8]) -> Vec<u8> {
    let mut p = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(token);
    // ICMPv6 checksums cover a pseudo-header the kernel fills in itself.
    if v4 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

pub(super) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Folded: at most 0xffff.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// Whether a received packet is the reply to our request. Raw IPv4
/// sockets see the IP header; ping sockets rewrite the id, so only the
/// token (unique per check) is compared there.
pub(super) fn is_reply(pkt: &[u8], v4: bool, raw: bool, id: u16, token: &[u8]) -> bool {
    let icmp = if v4 && raw {
        let Some(first) = pkt.first() else { return false };
        match pkt.get(((first & 0x0f) as usize) * 4..) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        pkt
    };
    let want_type = if v4 { 0 } else { 129 };
    icmp.len() >= 8 + token.len()
        && icmp[0] == want_type
        && (!raw || icmp[4..6] == id.to_be_bytes())
        && &icmp[8..8 + token.len()] == token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_encoding() {
        let p = echo_request(true, 0x1234, 1, b"abcdefgh");
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        let p6 = echo_request(false, 0x1234, 1, b"abcdefgh");
        assert_eq!(&p6[..4], &[128, 0, 0, 0]);
        assert_eq!(checksum(&[0xff]), !0xff00);

        // A raw IPv4 reply: 20-byte header, then the echo reply.
        let mut reply = vec![0x45; 1];
        reply.resize(20, 0);
        let mut icmp = p.clone();
        icmp[0] = 0;
        reply.extend_from_slice(&icmp);
        assert!(is_reply(&reply, true, true, 0x1234, b"abcdefgh"));
        assert!(!is_reply(&reply, true, true, 0x1235, b"abcdefgh"), "other id");
        assert!(!is_reply(&reply, true, true, 0x1234, b"abcdefgX"), "other token");
        assert!(!is_reply(&reply[..30], true, true, 0x1234, b"abcdefgh"), "short");
        assert!(!is_reply(&p, true, false, 0x1234, b"abcdefgh"), "our own request is not a reply");
        assert!(is_reply(&icmp, true, false, 0x9999, b"abcdefgh"), "ping sockets rewrite the id");
        let mut r6 = p6.clone();
        r6[0] = 129;
        assert!(is_reply(&r6, false, true, 0x1234, b"abcdefgh"));
        assert!(!is_reply(&[], true, true, 0, b""));
    }
}
