//! Sending ARP frames on AF_PACKET sockets, Neighbor Advertisements on a
//! raw ICMPv6 socket, and listening for answers to a duplicate probe.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::frames::{arp_frame, na_packet, parse_arp, ArpFrame, ArpOp};
use super::ArpMode;
use crate::error::{Error, Result};

const ETH_P_ARP: u16 = 0x0806;

/// The length of a sockaddr_ll (20 bytes), as the socket calls take it.
#[expect(clippy::cast_possible_truncation, reason = "20 bytes")]
const SOCKADDR_LL_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;

/// An AF_PACKET socket bound to one interface, for ARP only.
fn packet_socket(ifindex: u32) -> Result<OwnedFd> {
    let proto = ETH_P_ARP.to_be();
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
    if fd < 0 {
        return Err(Error::io("opening a packet socket", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = sockaddr_ll(ifindex, [0; 6])?;
    // SAFETY: addr is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(sock.as_raw_fd(), &addr as *const libc::sockaddr_ll as *const libc::sockaddr, SOCKADDR_LL_LEN)
    };
    if rc < 0 {
        return Err(Error::io(
            format!("binding a packet socket to interface {ifindex}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(sock)
}

fn sockaddr_ll(ifindex: u32, dst: [u8; 6]) -> Result<libc::sockaddr_ll> {
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET).unwrap_or_default();
    a.sll_protocol = ETH_P_ARP.to_be();
    a.sll_ifindex =
        i32::try_from(ifindex).map_err(|_| Error::Failed(format!("interface index {ifindex} out of range")))?;
    a.sll_halen = 6;
    a.sll_addr[..6].copy_from_slice(&dst);
    Ok(a)
}

fn send_frame(sock: &OwnedFd, ifindex: u32, frame: &ArpFrame) -> Result<()> {
    let bytes = arp_frame(frame);
    let addr = sockaddr_ll(ifindex, frame.eth_dst)?;
    // SAFETY: buffer and address are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
            0,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            SOCKADDR_LL_LEN,
        )
    };
    if rc < 0 {
        return Err(Error::io("sending an ARP frame", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Announces `ip` with `count` rounds of gratuitous ARP, `interval` apart.
pub fn send_gratuitous_arp(
    ifindex: u32,
    mac: [u8; 6],
    ip: Ipv4Addr,
    mode: ArpMode,
    count: u32,
    interval: Duration,
) -> Result<()> {
    let sock = packet_socket(ifindex)?;
    let ops: &[ArpOp] = match mode {
        ArpMode::Request => &[ArpOp::Request],
        ArpMode::Reply => &[ArpOp::Reply],
        ArpMode::Both => &[ArpOp::Request, ArpOp::Reply],
    };
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(interval);
        }
        for op in ops {
            send_frame(&sock, ifindex, &ArpFrame::gratuitous(mac, ip, *op))?;
        }
    }
    tracing::info!("sent {count} gratuitous ARP ({mode:?}) for {ip}");
    Ok(())
}

/// Announces `ip` with `count` unsolicited Neighbor Advertisements to all
/// nodes (ff02::1), hop limit 255 as RFC 4861 requires.
pub fn send_unsolicited_na(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr, count: u32, interval: Duration) -> Result<()> {
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(|e| Error::io("opening an ICMPv6 socket", e))?;
    sock.set_multicast_hops_v6(255).map_err(|e| Error::io("setting the hop limit", e))?;
    sock.set_unicast_hops_v6(255).map_err(|e| Error::io("setting the hop limit", e))?;
    sock.set_multicast_if_v6(ifindex).map_err(|e| Error::io("choosing the interface", e))?;
    // Source = the announced address when the kernel lets us (it is not
    // tentative any more); otherwise the kernel picks the link-local one.
    let _ = sock.bind(&SockAddr::from(SocketAddrV6::new(ip, 0, 0, ifindex)));
    let to = SockAddr::from(SocketAddrV6::new("ff02::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED), 0, 0, ifindex));
    let pkt = na_packet(ip, mac);
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(interval);
        }
        sock.send_to(&pkt, &to).map_err(|e| Error::io("sending a neighbor advertisement", e))?;
    }
    tracing::info!("sent {count} unsolicited neighbor advertisements for {ip}");
    Ok(())
}

/// RFC 5227: asks who has `ip` (sender 0.0.0.0) three times over `wait`
/// and returns the MAC of another host that answers or probes for it.
pub fn probe_duplicate(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr, wait: Duration) -> Result<Option<[u8; 6]>> {
    let sock = packet_socket(ifindex)?;
    let probe = ArpFrame::probe(mac, ip);
    let began = Instant::now();
    let mut sent = 0u32;
    let mut buf = [0u8; 128];
    while began.elapsed() < wait {
        if sent < 3 && began.elapsed() >= wait / 3 * sent {
            send_frame(&sock, ifindex, &probe)?;
            sent += 1;
        }
        let left = wait.saturating_sub(began.elapsed()).min(wait / 3).max(Duration::from_millis(1));
        let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, i32::try_from(left.as_millis()).unwrap_or(i32::MAX)) };
        if rc <= 0 {
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_DONTWAIT)
        };
        let Ok(n) = usize::try_from(n) else { continue };
        let Some(f) = parse_arp(&buf[..n]) else { continue };
        if f.sender_mac == mac {
            continue;
        }
        // An owner answers (sender ip = ip); another prober asks for the
        // same address from 0.0.0.0 at the same time.
        let conflict =
            f.sender_ip == ip || (f.sender_ip.is_unspecified() && f.target_ip == ip && f.op == ArpOp::Request);
        if conflict {
            return Ok(Some(f.sender_mac));
        }
    }
    Ok(None)
}
