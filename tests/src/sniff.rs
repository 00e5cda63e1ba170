//! Capturing what a namespace's interface receives (ARP and ICMPv6 NA),
//! decoded with the same frame layout the senders use.

use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lvs_net::{parse_arp, ArpFrame};

/// A Neighbor Advertisement as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Na {
    pub eth_src: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub flags: u8,
    pub target: Ipv6Addr,
    pub option_mac: Option<[u8; 6]>,
}

#[derive(Debug, Default)]
pub struct Captured {
    pub arp: Vec<ArpFrame>,
    pub na: Vec<Na>,
}

fn parse_na(b: &[u8]) -> Option<Na> {
    if b.len() < 54 + 24 || b[12..14] != [0x86, 0xdd] || b[20] != 58 || b[54] != 136 {
        return None;
    }
    let v6 = |o: usize| <[u8; 16]>::try_from(&b[o..o + 16]).ok().map(Ipv6Addr::from);
    let option_mac =
        (b.len() >= 54 + 32 && b[78] == 2 && b[79] == 1).then(|| <[u8; 6]>::try_from(&b[80..86]).ok()).flatten();
    Some(Na {
        eth_src: <[u8; 6]>::try_from(&b[6..12]).ok()?,
        src: v6(22)?,
        dst: v6(38)?,
        hop_limit: b[21],
        flags: b[58],
        target: v6(62)?,
        option_mac,
    })
}

/// Starts capturing on `ifname` in namespace `ns` for `duration`; the
/// returned receiver yields the capture once it is over. Returns only when
/// the socket is open, so nothing sent afterwards is missed.
pub fn capture(ns: &str, ifname: &str, duration: Duration) -> mpsc::Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let cname = std::ffi::CString::new(ifname).expect("ifname");
        let eth_p_all = u16::try_from(libc::ETH_P_ALL).unwrap().to_be();
        // SAFETY: socket(2), and the fresh descriptor owned right away.
        let sock = unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(eth_p_all));
            assert!(fd >= 0, "packet socket");
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: cname is a valid C string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
        addr.sll_protocol = eth_p_all;
        addr.sll_ifindex = i32::try_from(index).unwrap();
        // SAFETY: addr is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
            )
        };
        assert_eq!(rc, 0, "bind packet socket");
        let _ = ready_tx.send(());
        let mut out = Captured::default();
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        while start.elapsed() < duration {
            let left = duration.saturating_sub(start.elapsed());
            let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let wait = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, wait) } <= 0 {
                continue;
            }
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else { continue };
            let b = &buf[..n];
            if let Some(a) = parse_arp(b) {
                out.arp.push(a);
            } else if let Some(na) = parse_na(b) {
                out.na.push(na);
            }
        }
        let _ = tx.send(out);
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("capture ready");
    rx
}
