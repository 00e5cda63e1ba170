//! Links, addresses and routes over rtnetlink; gratuitous ARP, unsolicited
//! Neighbor Advertisements and the RFC 5227 duplicate probe; sysctls.
//! Everything the vip agent does to the host's networking goes through here.

pub mod error;
mod frames;
mod packet;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

pub use frames::{arp_frame, na_packet, parse_arp, ArpFrame, ArpOp, ARP_FRAME_LEN};
pub use packet::{probe_duplicate, send_gratuitous_arp, send_unsolicited_na};

pub use crate::error::{Error, Result};

/// Which ARP operation announces an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpMode {
    /// ARP requests, like `arping -U`.
    Request,
    /// ARP replies, like `arping -A`.
    Reply,
    /// One of each per round.
    Both,
}

/// A network interface as the agents need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub admin_up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub oper_up: bool,
    pub mac: Option<[u8; 6]>,
    pub loopback: bool,
}

/// An address to add, with IPaddr2's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSpec {
    pub ip: IpAddr,
    pub prefix: u8,
    pub broadcast: Option<Ipv4Addr>,
    pub label: Option<String>,
    /// Seconds; None is forever.
    pub preferred_lft: Option<u32>,
    pub nodad: bool,
    pub noprefixroute: bool,
}

/// An address as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
    pub label: Option<String>,
    pub broadcast: Option<Ipv4Addr>,
    pub tentative: bool,
    pub dadfailed: bool,
    pub deprecated: bool,
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn nl_error(context: impl Into<String>, e: rtnetlink::Error) -> Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => {
            Error::Kernel { context: context.into(), errno: m.code.map(|c| -c.get()).unwrap_or(libc::EIO) }
        }
        other => Error::failed(format!("{}: {other}", context.into())),
    }
}

fn link_from(msg: LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        oper_up: msg.header.flags.contains(LinkFlags::LowerUp),
        mac: None,
        loopback: msg.header.flags.contains(LinkFlags::Loopback),
    };
    for a in msg.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => {}
        }
    }
    link
}

fn address_from(msg: AddressMessage) -> Option<AddressInfo> {
    let mut ip = None;
    let mut local = None;
    let mut label = None;
    let mut broadcast = None;
    // The 8-bit header flags are superseded by IFA_FLAGS when present.
    let mut flags = AddressFlags::from_bits_retain(msg.header.flags.bits() as u32);
    for a in msg.attributes {
        match a {
            AddressAttribute::Address(a) => ip = Some(a),
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Label(l) => label = Some(l),
            AddressAttribute::Broadcast(b) => broadcast = Some(b),
            AddressAttribute::Flags(f) => flags = f,
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
    let ip = local.or(ip)?;
    Some(AddressInfo {
        index: msg.header.index,
        ip,
        prefix: msg.header.prefix_len,
        label,
        broadcast,
        tentative: flags.contains(AddressFlags::Tentative),
        dadfailed: flags.contains(AddressFlags::Dadfailed),
        deprecated: flags.contains(AddressFlags::Deprecated),
    })
}

/// A route as findif needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpAddr,
    pub prefix: u8,
    pub oif: u32,
    /// Routing table (254 main, 255 local).
    pub table: u32,
    /// rtm_scope (253 link, 254 host, 0 universe).
    pub scope: u8,
    /// RTN_LOCAL (the local table's addresses of this host), not unicast.
    pub local: bool,
    /// The preferred source (`src` in `ip route`): the base address.
    pub prefsrc: Option<IpAddr>,
    /// Reached through a gateway (`via`), not directly connected.
    pub gateway: bool,
}

const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;

fn in_prefix(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if prefix <= 32 => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if prefix <= 128 => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// IPaddr2's findif.sh over a route dump: of the main table's routes that
/// contain `ip` (and `ip/netmask` when a netmask is given), on `nic` when
/// one is given, the most specific, the last of equals. Default and host
/// routes never count (findif only reads lines with a `/`), and for IPv4
/// only directly connected ones (`scope link`: a gateway route is not the
/// VIP's subnet). An IPv4 127/8 address with no such route falls back to
/// the local table, as findif does for loopback addresses.
pub fn findif(routes: &[RouteEntry], ip: IpAddr, nic: Option<u32>, netmask: Option<u8>) -> Option<RouteEntry> {
    let host = if ip.is_ipv4() { 32 } else { 128 };
    let within = netmask.unwrap_or(host);
    let best = routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && !r.local && r.prefix > 0 && r.prefix < host)
        .filter(|r| !ip.is_ipv4() || r.scope == RT_SCOPE_LINK)
        .filter(|r| r.prefix <= within && in_prefix(ip, r.dst, r.prefix))
        .filter(|r| nic.is_none_or(|n| r.oif == n))
        .max_by_key(|r| r.prefix)
        .copied();
    if best.is_some() {
        return best;
    }
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 127 => routes
            .iter()
            .find(|r| {
                r.table == RT_TABLE_LOCAL
                    && r.local
                    && r.scope == RT_SCOPE_HOST
                    && r.prefix > 0
                    && r.prefix < 32
                    && in_prefix(ip, r.dst, r.prefix)
            })
            .copied(),
        _ => None,
    }
}

/// An rtnetlink connection on the current tokio runtime.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket; the connection task runs on the current runtime.
    pub fn connect() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::io("opening an rtnetlink socket", e))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let mut s = self.handle.link().get().match_name(name.to_string()).execute();
        match s.try_next().await {
            Ok(m) => Ok(m.map(link_from)),
            Err(rtnetlink::Error::NetlinkError(m)) if m.code.map(|c| -c.get()) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(format!("looking up interface {name}"), e)),
        }
    }

    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let mut s = self.handle.link().get().match_index(index).execute();
        match s.try_next().await {
            Ok(m) => Ok(m.map(link_from)),
            Err(rtnetlink::Error::NetlinkError(m)) if m.code.map(|c| -c.get()) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(format!("looking up interface {index}"), e)),
        }
    }

    /// Unicast and local routes of every table for `ip`'s family.
    pub async fn routes(&self, v4: bool) -> Result<Vec<RouteEntry>> {
        let msg: RouteMessage = if v4 {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        };
        let mut s = self.handle.route().get(msg).execute();
        let mut out = Vec::new();
        while let Some(r) = s.try_next().await.map_err(|e| nl_error("listing routes", e))? {
            let local = match r.header.kind {
                RouteType::Unicast => false,
                RouteType::Local => true,
                _ => continue,
            };
            let mut table = u32::from(r.header.table);
            let mut dst = None;
            let mut oif = None;
            let mut prefsrc = None;
            let mut gateway = false;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
                    RouteAttribute::PrefSource(RouteAddress::Inet(a)) => prefsrc = Some(IpAddr::V4(*a)),
                    RouteAttribute::PrefSource(RouteAddress::Inet6(a)) => prefsrc = Some(IpAddr::V6(*a)),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => gateway = true,
                    _ => {}
                }
            }
            let dst =
                dst.unwrap_or(if v4 { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) });
            if let Some(oif) = oif {
                out.push(RouteEntry {
                    dst,
                    prefix: r.header.destination_prefix_length,
                    oif,
                    table,
                    scope: u8::from(r.header.scope),
                    local,
                    prefsrc,
                    gateway,
                });
            }
        }
        Ok(out)
    }

    /// Sets a link administratively up (IPaddr2 does on start).
    pub async fn set_link_up(&self, index: u32) -> Result<()> {
        let msg = rtnetlink::LinkUnspec::new_with_index(index).up().build();
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(format!("setting link {index} up"), e))
    }

    /// Every address, or those of one link.
    pub async fn addresses(&self, index: Option<u32>) -> Result<Vec<AddressInfo>> {
        let mut req = self.handle.address().get();
        if let Some(i) = index {
            req = req.set_link_index_filter(i);
        }
        let mut s = req.execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await.map_err(|e| nl_error("listing addresses", e))? {
            if let Some(a) = address_from(m) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// `ip` on any link.
    pub async fn find_address(&self, ip: IpAddr) -> Result<Option<AddressInfo>> {
        Ok(self.addresses(None).await?.into_iter().find(|a| a.ip == ip))
    }

    /// Adds the address; already there counts as done.
    pub async fn add_address(&self, index: u32, spec: &AddressSpec) -> Result<()> {
        let mut req = self.handle.address().add(index, spec.ip, spec.prefix);
        let m = req.message_mut();
        // As ip(8): loopback addresses are host-scoped (the kernel refuses
        // 127/8 with universe scope on lo).
        if matches!(spec.ip, IpAddr::V4(v4) if v4.is_loopback()) {
            m.header.scope = rtnetlink::packet_route::address::AddressScope::Host;
        }
        // The builder may set a broadcast of its own; ours decides.
        m.attributes.retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
        if let Some(b) = spec.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = &spec.label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        let mut flags = AddressFlags::empty();
        if spec.nodad {
            flags |= AddressFlags::Nodad;
        }
        if spec.noprefixroute {
            flags |= AddressFlags::Noprefixroute;
        }
        if !flags.is_empty() {
            m.attributes.push(AddressAttribute::Flags(flags));
        }
        if let Some(p) = spec.preferred_lft {
            let mut ci = rtnetlink::packet_route::address::CacheInfo::default();
            ci.ifa_preferred = p;
            ci.ifa_valid = u32::MAX; // valid forever, preferred for p seconds
            m.attributes.push(AddressAttribute::CacheInfo(ci));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.code.map(|c| -c.get()) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_error(format!("adding {}/{}", spec.ip, spec.prefix), e)),
        }
    }

    /// Deletes the address; Ok(false) when it was not there (or its link
    /// is gone), which stop treats as success.
    pub async fn delete_address(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<bool> {
        let Some(have) = self.addresses(Some(index)).await?.into_iter().find(|a| a.ip == ip) else {
            return Ok(false);
        };
        let mut msg = AddressMessage::default();
        msg.header.family = if ip.is_ipv4() {
            rtnetlink::packet_route::AddressFamily::Inet
        } else {
            rtnetlink::packet_route::AddressFamily::Inet6
        };
        msg.header.index = index;
        msg.header.prefix_len = if prefix == 0 { have.prefix } else { prefix };
        msg.attributes.push(AddressAttribute::Local(ip));
        if ip.is_ipv6() {
            msg.attributes.push(AddressAttribute::Address(ip));
        }
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(e.code.map(|c| -c.get()), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) =>
            {
                Ok(false)
            }
            Err(e) => Err(nl_error(format!("deleting {ip}"), e)),
        }
    }

    /// Waits for IPv6 duplicate address detection to finish.
    pub async fn wait_dad(&self, index: u32, ip: Ipv6Addr, timeout: Duration) -> Result<()> {
        let began = Instant::now();
        loop {
            let a = self
                .addresses(Some(index))
                .await?
                .into_iter()
                .find(|a| a.ip == IpAddr::V6(ip))
                .ok_or_else(|| Error::failed(format!("{ip} vanished during duplicate address detection")))?;
            if a.dadfailed {
                return Err(Error::failed(format!(
                    "duplicate address detection failed for {ip}: another host uses it"
                )));
            }
            if !a.tentative {
                return Ok(());
            }
            if began.elapsed() >= timeout {
                return Err(Error::failed(format!(
                    "duplicate address detection for {ip} did not finish in {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A sysctl's file. As sysctl(8) reads names: dots separate, and a slash
/// stands for a dot within a part (`net.ipv4.conf.eth0/100.rp_filter` is
/// VLAN eth0.100's).
fn sysctl_path(name: &str) -> String {
    let path: String = name
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    format!("/proc/sys/{path}")
}

/// The sysctl name of `param` of interface `iface` under net.ipv4.conf,
/// in sysctl(8)'s form (a dot in the interface name written as a slash).
pub fn ipv4_conf(iface: &str, param: &str) -> String {
    format!("net.ipv4.conf.{}.{param}", iface.replace('.', "/"))
}

/// What an LVS-DR or LVS-TUN real server needs so that it never answers
/// ARP for the VIP it holds on lo, and never announces it: each sysctl and
/// the least value that does it. `ocf:lvs:vip mode=realserver` sets them,
/// `lvsctl doctor --realserver` checks them (the kernel applies the larger
/// of `all` and the interface's own value).
pub const REALSERVER_ARP_SYSCTLS: [(&str, u32); 4] = [
    ("net.ipv4.conf.all.arp_ignore", 1),
    ("net.ipv4.conf.lo.arp_ignore", 1),
    ("net.ipv4.conf.all.arp_announce", 2),
    ("net.ipv4.conf.lo.arp_announce", 2),
];

pub fn write_sysctl(name: &str, value: &str) -> Result<()> {
    std::fs::write(sysctl_path(name), value).map_err(|e| Error::io(format!("setting {name}={value}"), e))
}

pub fn read_sysctl(name: &str) -> Result<String> {
    std::fs::read_to_string(sysctl_path(name))
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(format!("reading {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dst: &str, prefix: u8, oif: u32) -> RouteEntry {
        RouteEntry {
            dst: dst.parse().unwrap(),
            prefix,
            oif,
            table: RT_TABLE_MAIN,
            scope: RT_SCOPE_LINK,
            local: false,
            prefsrc: None,
            gateway: false,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn findif_takes_the_longest_non_default_match() {
        let routes = [r("0.0.0.0", 0, 1), r("10.0.0.0", 8, 2), r("10.0.0.0", 24, 3), r("192.168.1.0", 24, 4)];
        assert_eq!(findif(&routes, ip("10.0.0.100"), None, None), Some(routes[2]));
        assert_eq!(findif(&routes, ip("10.9.0.1"), None, None), Some(routes[1]));
        assert_eq!(findif(&routes, ip("172.16.0.1"), None, None), None, "the default route never counts");
        let v6 = [r("2001:db8::", 64, 5), r("::", 0, 1)];
        assert_eq!(findif(&v6, ip("2001:db8::100"), None, None), Some(v6[0]));
        assert_eq!(findif(&v6, ip("2001:db9::1"), None, None), None);
        assert_eq!(findif(&routes, ip("2001:db8::1"), None, None), None, "families never mix");
    }

    #[test]
    fn findif_filters_like_ipaddr2() {
        let mut gw = r("10.0.0.0", 8, 2);
        gw.scope = 0;
        assert_eq!(findif(&[gw], ip("10.1.2.3"), None, None), None, "IPv4 gateway routes are not connected");
        let mut gw6 = r("2001:db8:99::", 48, 2);
        (gw6.scope, gw6.gateway) = (0, true);
        assert_eq!(findif(&[gw6], ip("2001:db8:99::1"), None, None), Some(gw6), "IPv6 reads every scope");
        let host = r("192.0.2.5", 32, 1);
        assert_eq!(findif(&[host], ip("192.0.2.5"), None, None), None, "host routes have no prefix to give");
        let tie = [r("192.0.2.0", 24, 1), r("192.0.2.0", 24, 2)];
        assert_eq!(findif(&tie, ip("192.0.2.9"), None, None), Some(tie[1]), "the last of equals");
        assert_eq!(findif(&tie, ip("192.0.2.9"), Some(1), None), Some(tie[0]), "only the named nic");
        assert_eq!(findif(&tie, ip("192.0.2.9"), Some(3), None), None);
        let subnet = [r("192.0.2.0", 24, 1)];
        assert_eq!(findif(&subnet, ip("192.0.2.9"), None, Some(28)), Some(subnet[0]), "narrower netmask");
        assert_eq!(findif(&subnet, ip("192.0.2.9"), None, Some(16)), None, "wider than the subnet");
        let mut lo = r("127.0.0.0", 8, 1);
        (lo.table, lo.scope, lo.local) = (RT_TABLE_LOCAL, RT_SCOPE_HOST, true);
        assert_eq!(findif(&[lo], ip("127.0.0.3"), None, None), Some(lo), "loopback from the local table");
        assert_eq!(findif(&[lo], ip("10.0.0.3"), None, None), None);
    }

    #[test]
    fn sysctl_names_map_to_proc_paths() {
        assert_eq!(sysctl_path("net.ipv4.conf.lo.arp_ignore"), "/proc/sys/net/ipv4/conf/lo/arp_ignore");
        assert_eq!(sysctl_path(&ipv4_conf("eth0.100", "rp_filter")), "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
    }

    #[test]
    fn mac_formatting() {
        assert_eq!(format_mac(&[0, 0x1b, 0x21, 0xa, 0xbc, 0xff]), "00:1b:21:0a:bc:ff");
    }
}
