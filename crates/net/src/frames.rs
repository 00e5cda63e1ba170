//! The bytes of ARP frames and Neighbor Advertisements, in one place so
//! that senders and the tests' captures read the same layout.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ARP_FRAME_LEN: usize = 42;
const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request = 1,
    Reply = 2,
}

/// The fields of an Ethernet ARP frame for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub op: ArpOp,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Gratuitous ARP as iputils `arping -U` (request) or `-A` (reply)
    /// sends it: sender and target IP are both the announced address, the
    /// target MAC is broadcast.
    pub fn gratuitous(mac: [u8; 6], ip: Ipv4Addr, op: ArpOp) -> ArpFrame {
        ArpFrame {
            eth_dst: BROADCAST,
            eth_src: mac,
            op,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: BROADCAST,
            target_ip: ip,
        }
    }

    /// RFC 5227 probe: "who has `ip`?" from sender IP 0.0.0.0, so no
    /// neighbour learns anything from it.
    pub fn probe(mac: [u8; 6], ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            eth_dst: BROADCAST,
            eth_src: mac,
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: [0; 6],
            target_ip: ip,
        }
    }
}

pub fn arp_frame(f: &ArpFrame) -> [u8; ARP_FRAME_LEN] {
    let mut b = [0u8; ARP_FRAME_LEN];
    b[0..6].copy_from_slice(&f.eth_dst);
    b[6..12].copy_from_slice(&f.eth_src);
    b[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    b[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    b[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    b[18] = 6;
    b[19] = 4;
    b[20..22].copy_from_slice(&(f.op as u16).to_be_bytes());
    b[22..28].copy_from_slice(&f.sender_mac);
    b[28..32].copy_from_slice(&f.sender_ip.octets());
    b[32..38].copy_from_slice(&f.target_mac);
    b[38..42].copy_from_slice(&f.target_ip.octets());
    b
}

/// Decodes an Ethernet frame if it is an IPv4-over-Ethernet ARP frame.
pub fn parse_arp(b: &[u8]) -> Option<ArpFrame> {
    if b.len() < ARP_FRAME_LEN || b[12..14] != ETH_P_ARP.to_be_bytes() || b[14..20] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let mac = |r: std::ops::Range<usize>| <[u8; 6]>::try_from(&b[r]).ok();
    let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let op = match u16::from_be_bytes([b[20], b[21]]) {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        _ => return None,
    };
    Some(ArpFrame {
        eth_dst: mac(0..6)?,
        eth_src: mac(6..12)?,
        op,
        sender_mac: mac(22..28)?,
        sender_ip: ip(28),
        target_mac: mac(32..38)?,
        target_ip: ip(38),
    })
}

/// ICMPv6 Neighbor Advertisement (RFC 4861 4.4) for `target` with the
/// Override flag and a target link-layer address option. The checksum is
/// left 0: the kernel fills it in for raw ICMPv6 sockets.
pub fn na_packet(target: Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 136; // Neighbor Advertisement
    b[4] = 0x20; // R=0 S=0 O=1: unsolicited, override caches
    b[8..24].copy_from_slice(&target.octets());
    b[24] = 2; // option: target link-layer address
    b[25] = 1; // length in units of 8 octets
    b[26..32].copy_from_slice(&mac);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn gratuitous_request_field_by_field() {
        let ip = Ipv4Addr::new(10, 0, 0, 100);
        let b = arp_frame(&ArpFrame::gratuitous(MAC, ip, ArpOp::Request));
        assert_eq!(&b[0..6], &[0xff; 6]);
        assert_eq!(&b[6..12], &MAC);
        assert_eq!(&b[12..14], &[0x08, 0x06]);
        assert_eq!(&b[20..22], &[0, 1]);
        assert_eq!(&b[22..28], &MAC);
        assert_eq!(&b[28..32], &[10, 0, 0, 100]);
        assert_eq!(&b[32..38], &[0xff; 6]);
        assert_eq!(&b[38..42], &[10, 0, 0, 100]);
        assert_eq!(parse_arp(&b), Some(ArpFrame::gratuitous(MAC, ip, ArpOp::Request)));
    }

    #[test]
    fn reply_and_probe() {
        let ip = Ipv4Addr::new(192, 0, 2, 1);
        let b = arp_frame(&ArpFrame::gratuitous(MAC, ip, ArpOp::Reply));
        assert_eq!(&b[20..22], &[0, 2]);
        let p = parse_arp(&arp_frame(&ArpFrame::probe(MAC, ip))).unwrap();
        assert_eq!((p.op, p.sender_ip, p.target_mac, p.target_ip), (ArpOp::Request, Ipv4Addr::UNSPECIFIED, [0; 6], ip));
        assert_eq!(parse_arp(&b[..41]), None, "short frames are not ARP");
    }

    #[test]
    fn neighbor_advertisement_layout() {
        let ip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let b = na_packet(ip, MAC);
        assert_eq!((b[0], b[1]), (136, 0));
        assert_eq!(b[4], 0x20, "override flag only");
        assert_eq!(&b[8..24], &ip.octets());
        assert_eq!((b[24], b[25]), (2, 1));
        assert_eq!(&b[26..32], &MAC);
    }
}
