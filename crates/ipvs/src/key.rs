//! Virtual-service identity and the operator syntax every agent accepts:
//! `tcp:10.0.0.100:80`, `udp:[2001:db8::1]:53`, `sctp:10.0.0.1:5060`,
//! `fwmark:100`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::{Error, Result};

/// Address family, as the kernel's `AF_INET` / `AF_INET6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    #[expect(clippy::cast_possible_truncation, reason = "AF_INET and AF_INET6 are 2 and 10")]
    pub const fn raw(self) -> u16 {
        match self {
            Family::Inet => libc::AF_INET as u16,
            Family::Inet6 => libc::AF_INET6 as u16,
        }
    }

    pub fn from_raw(af: u16) -> Option<Family> {
        match i32::from(af) {
            libc::AF_INET => Some(Family::Inet),
            libc::AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }

    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }

    /// The all-zero address of this family.
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        })
    }
}

impl FromStr for Family {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inet" | "ipv4" | "4" => Ok(Family::Inet),
            "inet6" | "ipv6" | "6" => Ok(Family::Inet6),
            _ => Err(Error::invalid(format!("invalid address family '{s}': expected inet or inet6"))),
        }
    }
}

/// Transport protocol of a virtual service (IPPROTO_* numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    #[expect(clippy::cast_possible_truncation, reason = "IPPROTO_* are 6, 17 and 132")]
    pub const fn raw(self) -> u16 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u16,
            Protocol::Udp => libc::IPPROTO_UDP as u16,
            Protocol::Sctp => libc::IPPROTO_SCTP as u16,
        }
    }

    pub fn from_raw(p: u16) -> Option<Protocol> {
        match i32::from(p) {
            libc::IPPROTO_TCP => Some(Protocol::Tcp),
            libc::IPPROTO_UDP => Some(Protocol::Udp),
            libc::IPPROTO_SCTP => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The upper-case name `ipvsadm -L` prints.
    pub fn listing_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

impl FromStr for Protocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(Error::invalid(format!("invalid protocol '{s}': expected tcp, udp, sctp or fwmark"))),
        }
    }
}

/// What identifies a virtual service in the kernel: protocol, address and
/// port, or a firewall mark (plus the family the mark applies to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    Addr { protocol: Protocol, addr: IpAddr, port: u16 },
    FwMark { family: Family, mark: u32 },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::FwMark { family, .. } => *family,
        }
    }

    /// Parses the operator syntax for a given `family=inet|inet6`. The family
    /// decides what a `fwmark:N` service matches; for an address it must
    /// agree with the address.
    pub fn parse_with_family(s: &str, family: Family) -> Result<ServiceKey> {
        let key = parse_key(s, family)?;
        if key.family() != family {
            return Err(Error::invalid(format!(
                "virtual service '{s}' is {} but family={family} was given",
                key.family()
            )));
        }
        Ok(key)
    }

    /// The kernel's order, as `ipvsadm -L` sorts: fwmark services after
    /// address services, then family, protocol, address, port.
    pub(crate) fn sort_key(&self) -> (u32, Family, u16, IpAddr, u16) {
        match *self {
            ServiceKey::Addr { protocol, addr, port } => (0, Family::of(&addr), protocol.raw(), addr, port),
            ServiceKey::FwMark { family, mark } => (mark, family, 0, family.unspecified(), 0),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr, port } => write!(f, "{protocol}:{}", fmt_addr_port(addr, *port)),
            ServiceKey::FwMark { mark, .. } => write!(f, "fwmark:{mark}"),
        }
    }
}

/// `fwmark:N` means an IPv4 mark; use [`ServiceKey::parse_with_family`] for
/// IPv6.
impl FromStr for ServiceKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_key(s, Family::Inet)
    }
}

/// `10.0.0.1:80` or `[2001:db8::1]:80`, the way ipvsadm prints endpoints.
pub fn fmt_addr_port(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Parses `10.0.0.1:80` or `[2001:db8::1]:80` (brackets required for IPv6
/// so the port is never ambiguous).
pub fn parse_addr_port(s: &str) -> Result<(IpAddr, u16)> {
    let bad =
        |why: &str| Error::invalid(format!("invalid address '{s}': {why} (expected 10.0.0.1:80 or [2001:db8::1]:80)"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        let port = after.strip_prefix(':').ok_or_else(|| bad("missing port"))?;
        let ip: Ipv6Addr = host.parse().map_err(|_| bad("not an IPv6 address"))?;
        (IpAddr::V6(ip), port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
        if host.contains(':') {
            return Err(bad("IPv6 addresses must be written in brackets"));
        }
        let ip: Ipv4Addr = host.parse().map_err(|_| bad("not an IPv4 address"))?;
        (IpAddr::V4(ip), port)
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("port is not a number"));
    }
    let port: u16 = port.parse().map_err(|_| bad("port is out of range"))?;
    Ok((host, port))
}

fn parse_key(s: &str, family: Family) -> Result<ServiceKey> {
    let text = s.trim();
    let (kind, rest) = text.split_once(':').ok_or_else(|| {
        Error::invalid(format!(
            "invalid virtual service '{s}': expected PROTOCOL:ADDRESS:PORT \
             (tcp:10.0.0.100:80, udp:[2001:db8::1]:53) or fwmark:MARK"
        ))
    })?;
    if kind.eq_ignore_ascii_case("fwmark") {
        let mark = parse_mark(rest).ok_or_else(|| {
            Error::invalid(format!(
                "invalid virtual service '{s}': the firewall mark must be a number from 1 to {}",
                u32::MAX
            ))
        })?;
        return Ok(ServiceKey::FwMark { family, mark });
    }
    let protocol: Protocol = kind.parse()?;
    let (addr, port) = parse_addr_port(rest)?;
    Ok(ServiceKey::Addr { protocol, addr, port })
}

fn parse_mark(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|m| *m != 0)
}
