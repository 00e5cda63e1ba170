//! Attribute sets of the IPVS generic-netlink family (include/uapi/linux/
//! ip_vs.h): building them as neli attributes and reading them back.
//!
//! Byte orders that bite: ports (service, destination, tunnel) are be16, an
//! IPv4 persistence netmask is a be32 mask while an IPv6 one is a host-order
//! prefix length, addresses are the 16-byte `nf_inet_addr` union; everything
//! else is host order.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use neli::attr::Attribute;
use neli::genl::{AttrTypeBuilder, Nlattr, NlattrBuilder};
use neli::types::{Buffer, GenlBuffer};
use neli::FromBytesWithInput;

use super::key::{Family, Protocol, ServiceKey};
use super::model::{
    Destination, ForwardMethod, Info, Netmask, Service, ServiceFlags, Stats, SyncDaemon, SyncState, Timeouts,
    TunnelFlags, TunnelType,
};
use crate::error::{Error, Result};

pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;

pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_NEW_DAEMON: u8 = 9;
pub const IPVS_CMD_DEL_DAEMON: u8 = 10;
pub const IPVS_CMD_GET_DAEMON: u8 = 11;
pub const IPVS_CMD_SET_CONFIG: u8 = 12;
pub const IPVS_CMD_GET_CONFIG: u8 = 13;
pub const IPVS_CMD_SET_INFO: u8 = 14;
pub const IPVS_CMD_GET_INFO: u8 = 15;
pub const IPVS_CMD_ZERO: u8 = 16;
pub const IPVS_CMD_FLUSH: u8 = 17;

pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
pub const IPVS_CMD_ATTR_DAEMON: u16 = 3;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

pub const IPVS_DAEMON_ATTR_STATE: u16 = 1;
pub const IPVS_DAEMON_ATTR_MCAST_IFN: u16 = 2;
pub const IPVS_DAEMON_ATTR_SYNC_ID: u16 = 3;
pub const IPVS_DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
pub const IPVS_DAEMON_ATTR_MCAST_GROUP: u16 = 5;
pub const IPVS_DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
pub const IPVS_DAEMON_ATTR_MCAST_PORT: u16 = 7;
pub const IPVS_DAEMON_ATTR_MCAST_TTL: u16 = 8;

pub const IPVS_STATS_ATTR_CONNS: u16 = 1;
pub const IPVS_STATS_ATTR_INPKTS: u16 = 2;
pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
pub const IPVS_STATS_ATTR_CPS: u16 = 6;
pub const IPVS_STATS_ATTR_INPPS: u16 = 7;
pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
pub const IPVS_STATS_ATTR_INBPS: u16 = 9;
pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10;

pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

/// HASHED is the kernel's bookkeeping: sending it would be meaningless and
/// reading it back would make every listed service differ from its spec.
const SVC_FLAGS_USER: u32 = !ServiceFlags::HASHED.bits();

pub type Attr = Nlattr<u16, Buffer>;
pub type Attrs = GenlBuffer<u16, Buffer>;

/// How much of an entry to put in an attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Only what identifies it (delete, get, dump the destinations of).
    Key,
    /// Everything a caller sets (new, set).
    Full,
    /// Also the read-only counters, as the kernel lists them; for tests
    /// that play the kernel's part.
    Listed,
}

fn build_err(e: impl std::fmt::Display) -> Error {
    Error::decode(format!("building an IPVS netlink attribute: {e}"))
}

pub fn attr(ty: u16, payload: &[u8]) -> Result<Attr> {
    NlattrBuilder::default()
        .nla_type(AttrTypeBuilder::default().nla_type(ty).build().map_err(build_err)?)
        .nla_payload(payload)
        .build()
        .map_err(build_err)
}

pub fn nest(ty: u16, children: &[Attr]) -> Result<Attr> {
    let mut parent = attr(ty, &[])?;
    for child in children {
        parent = parent.nest(child).map_err(build_err)?;
    }
    Ok(parent)
}

fn attr_u8(ty: u16, v: u8) -> Result<Attr> {
    attr(ty, &[v])
}

fn attr_u16(ty: u16, v: u16) -> Result<Attr> {
    attr(ty, &v.to_ne_bytes())
}

fn attr_be16(ty: u16, v: u16) -> Result<Attr> {
    attr(ty, &v.to_be_bytes())
}

fn attr_u32(ty: u16, v: u32) -> Result<Attr> {
    attr(ty, &v.to_ne_bytes())
}

fn attr_u64(ty: u16, v: u64) -> Result<Attr> {
    attr(ty, &v.to_ne_bytes())
}

fn attr_str(ty: u16, s: &str) -> Result<Attr> {
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    bytes.push(0);
    attr(ty, &bytes)
}

/// The `nf_inet_addr` union, as ipvsadm sends it.
fn inet_addr_bytes(addr: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
    }
    out
}

fn netmask_bytes(mask: Netmask) -> [u8; 4] {
    match mask {
        Netmask::V4(m) => m.octets(),
        Netmask::V6(len) => u32::from(len).to_ne_bytes(),
    }
}

/// One level of attributes, by type. The kernel never repeats a type in
/// the sets read here.
#[derive(Debug, Default)]
pub struct AttrMap {
    what: &'static str,
    map: BTreeMap<u16, Vec<u8>>,
}

impl AttrMap {
    pub fn from_attrs(what: &'static str, attrs: &Attrs) -> AttrMap {
        let map = attrs.iter().map(|a| (*a.nla_type().nla_type(), a.payload().as_ref().to_vec())).collect();
        AttrMap { what, map }
    }

    /// Parses a nested attribute's payload.
    pub fn parse(what: &'static str, bytes: &[u8]) -> Result<AttrMap> {
        let attrs = Attrs::from_bytes_with_input(&mut Cursor::new(bytes), bytes.len())
            .map_err(|e| Error::decode(format!("malformed {what} attributes from the kernel: {e}")))?;
        Ok(AttrMap::from_attrs(what, &attrs))
    }

    pub fn has(&self, ty: u16) -> bool {
        self.map.contains_key(&ty)
    }

    pub fn raw(&self, ty: u16) -> Option<&[u8]> {
        self.map.get(&ty).map(Vec::as_slice)
    }

    fn missing(&self, ty: u16) -> Error {
        Error::decode(format!("the kernel's {} attributes lack attribute {ty}", self.what))
    }

    fn bytes<const N: usize>(&self, ty: u16) -> Result<[u8; N]> {
        let raw = self.raw(ty).ok_or_else(|| self.missing(ty))?;
        raw.get(..N).and_then(|b| <[u8; N]>::try_from(b).ok()).ok_or_else(|| {
            Error::decode(format!("the kernel's {} attribute {ty} has {} bytes, expected {N}", self.what, raw.len()))
        })
    }

    pub fn u8(&self, ty: u16) -> Result<u8> {
        Ok(self.bytes::<1>(ty)?[0])
    }

    pub fn u16(&self, ty: u16) -> Result<u16> {
        Ok(u16::from_ne_bytes(self.bytes(ty)?))
    }

    pub fn be16(&self, ty: u16) -> Result<u16> {
        Ok(u16::from_be_bytes(self.bytes(ty)?))
    }

    pub fn u32(&self, ty: u16) -> Result<u32> {
        Ok(u32::from_ne_bytes(self.bytes(ty)?))
    }

    pub fn u64(&self, ty: u16) -> Result<u64> {
        Ok(u64::from_ne_bytes(self.bytes(ty)?))
    }

    pub fn opt<T>(&self, ty: u16, get: impl Fn(&Self, u16) -> Result<T>) -> Result<Option<T>> {
        if self.has(ty) {
            get(self, ty).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A NUL-terminated string; anything after the first NUL is ignored.
    pub fn string(&self, ty: u16) -> Result<String> {
        let raw = self.raw(ty).ok_or_else(|| self.missing(ty))?;
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        String::from_utf8(raw[..end].to_vec())
            .map_err(|_| Error::decode(format!("the kernel's {} attribute {ty} is not UTF-8", self.what)))
    }

    pub fn addr(&self, ty: u16, family: Family) -> Result<IpAddr> {
        Ok(match family {
            Family::Inet => IpAddr::V4(Ipv4Addr::from(self.bytes::<4>(ty)?)),
            Family::Inet6 => IpAddr::V6(Ipv6Addr::from(self.bytes::<16>(ty)?)),
        })
    }

    pub fn nested(&self, ty: u16, what: &'static str) -> Result<AttrMap> {
        let raw = self.raw(ty).ok_or_else(|| self.missing(ty))?;
        AttrMap::parse(what, raw)
    }

    fn family(&self, ty: u16) -> Result<Family> {
        let af = self.u16(ty)?;
        Family::from_raw(af)
            .ok_or_else(|| Error::decode(format!("the kernel's {} has unknown address family {af}", self.what)))
    }
}

/// The nested IPVS_CMD_ATTR_SERVICE holding only the key.
/// The acks in a buffer of netlink messages: (sequence number, errno; 0
/// for success) of each NLMSG_ERROR message. Anything else, or a message
/// cut short, is skipped; a length that cannot be right ends the walk.
pub fn acks(buf: &[u8]) -> Vec<(u32, i32)> {
    const HEADER: usize = 16;
    const NLMSG_ERROR: u16 = 2;
    let u32_at = |at: usize| buf.get(at..at + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = u32_at(at).map(|l| l as usize) {
        if len < HEADER || at + len > buf.len() {
            break;
        }
        let ty = buf.get(at + 4..at + 6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        if let (Some(NLMSG_ERROR), Some(seq), Some(error)) = (ty, u32_at(at + 8), u32_at(at + HEADER)) {
            out.push((seq, i32::from_ne_bytes(error.to_ne_bytes()).saturating_abs()));
        }
        at += (len + 3) & !3;
    }
    out
}

pub fn service_key_attr(key: &ServiceKey) -> Result<Attr> {
    nest(IPVS_CMD_ATTR_SERVICE, &key_attrs(key)?)
}

fn key_attrs(key: &ServiceKey) -> Result<Vec<Attr>> {
    let mut out = vec![attr_u16(IPVS_SVC_ATTR_AF, key.family().raw())?];
    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            out.push(attr_u16(IPVS_SVC_ATTR_PROTOCOL, protocol.raw())?);
            out.push(attr(IPVS_SVC_ATTR_ADDR, &inet_addr_bytes(addr))?);
            out.push(attr_be16(IPVS_SVC_ATTR_PORT, *port)?);
        }
        ServiceKey::FwMark { mark, .. } => out.push(attr_u32(IPVS_SVC_ATTR_FWMARK, *mark)?),
    }
    Ok(out)
}

/// The nested IPVS_CMD_ATTR_SERVICE for `svc`.
pub fn service_attr(svc: &Service, part: Part) -> Result<Attr> {
    let mut out = key_attrs(&svc.key)?;
    if part != Part::Key {
        out.push(attr_str(IPVS_SVC_ATTR_SCHED_NAME, &svc.scheduler)?);
        if let Some(pe) = &svc.pe_name {
            out.push(attr_str(IPVS_SVC_ATTR_PE_NAME, pe)?);
        }
        // The mask says which bits we mean: all of them, so an edit also
        // clears flags (HASHED excepted, the kernel keeps that one).
        let mut flags = [0u8; 8];
        flags[..4].copy_from_slice(&(svc.flags.bits() & SVC_FLAGS_USER).to_ne_bytes());
        flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
        out.push(attr(IPVS_SVC_ATTR_FLAGS, &flags)?);
        out.push(attr_u32(IPVS_SVC_ATTR_TIMEOUT, svc.timeout)?);
        out.push(attr(IPVS_SVC_ATTR_NETMASK, &netmask_bytes(svc.netmask))?);
    }
    if part == Part::Listed {
        if let Some(stats) = &svc.stats {
            out.push(stats_attr(IPVS_SVC_ATTR_STATS64, stats)?);
        }
    }
    nest(IPVS_CMD_ATTR_SERVICE, &out)
}

/// Reads the payload of an IPVS_CMD_ATTR_SERVICE.
pub fn decode_service(a: &AttrMap) -> Result<Service> {
    let family = a.family(IPVS_SVC_ATTR_AF)?;
    let key = if a.has(IPVS_SVC_ATTR_FWMARK) && a.u32(IPVS_SVC_ATTR_FWMARK)? != 0 {
        ServiceKey::FwMark { family, mark: a.u32(IPVS_SVC_ATTR_FWMARK)? }
    } else {
        let proto = a.u16(IPVS_SVC_ATTR_PROTOCOL)?;
        ServiceKey::Addr {
            protocol: Protocol::from_raw(proto)
                .ok_or_else(|| Error::decode(format!("the kernel listed a service of unknown protocol {proto}")))?,
            addr: a.addr(IPVS_SVC_ATTR_ADDR, family)?,
            port: a.be16(IPVS_SVC_ATTR_PORT)?,
        }
    };
    let flags = a.bytes::<8>(IPVS_SVC_ATTR_FLAGS)?;
    let bits = u32::from_ne_bytes([flags[0], flags[1], flags[2], flags[3]]);
    let mask = u32::from_ne_bytes([flags[4], flags[5], flags[6], flags[7]]);
    let netmask_raw = a.bytes::<4>(IPVS_SVC_ATTR_NETMASK)?;
    let netmask = match family {
        Family::Inet => Netmask::V4(Ipv4Addr::from(netmask_raw)),
        Family::Inet6 => {
            let len = u32::from_ne_bytes(netmask_raw);
            Netmask::V6(
                u8::try_from(len).map_err(|_| Error::decode(format!("the kernel listed an IPv6 netmask of /{len}")))?,
            )
        }
    };
    let pe_name = a.opt(IPVS_SVC_ATTR_PE_NAME, AttrMap::string)?.filter(|pe| !pe.is_empty());
    Ok(Service {
        key,
        scheduler: a.string(IPVS_SVC_ATTR_SCHED_NAME)?,
        flags: ServiceFlags::from_bits_retain(bits & mask & SVC_FLAGS_USER),
        timeout: a.u32(IPVS_SVC_ATTR_TIMEOUT)?,
        netmask,
        pe_name,
        stats: decode_stats_of(a, IPVS_SVC_ATTR_STATS64, IPVS_SVC_ATTR_STATS)?,
    })
}

/// The nested IPVS_CMD_ATTR_DEST for `dest`.
pub fn dest_attr(dest: &Destination, part: Part) -> Result<Attr> {
    // ADDR_FAMILY lets a destination differ from its service's family;
    // kernels before 3.18 ignore it.
    let mut out = vec![
        attr_u16(IPVS_DEST_ATTR_ADDR_FAMILY, dest.family().raw())?,
        attr(IPVS_DEST_ATTR_ADDR, &inet_addr_bytes(&dest.addr))?,
        attr_be16(IPVS_DEST_ATTR_PORT, dest.port)?,
    ];
    if part != Part::Key {
        out.push(attr_u32(IPVS_DEST_ATTR_FWD_METHOD, dest.forward.raw())?);
        out.push(attr_u32(IPVS_DEST_ATTR_WEIGHT, dest.weight)?);
        out.push(attr_u8(IPVS_DEST_ATTR_TUN_TYPE, dest.tunnel.raw())?);
        out.push(attr_be16(IPVS_DEST_ATTR_TUN_PORT, dest.tunnel_port)?);
        out.push(attr_u16(IPVS_DEST_ATTR_TUN_FLAGS, dest.tunnel_flags.bits())?);
        out.push(attr_u32(IPVS_DEST_ATTR_U_THRESH, dest.upper_threshold)?);
        out.push(attr_u32(IPVS_DEST_ATTR_L_THRESH, dest.lower_threshold)?);
    }
    if part == Part::Listed {
        out.push(attr_u32(IPVS_DEST_ATTR_ACTIVE_CONNS, dest.active_conns)?);
        out.push(attr_u32(IPVS_DEST_ATTR_INACT_CONNS, dest.inactive_conns)?);
        out.push(attr_u32(IPVS_DEST_ATTR_PERSIST_CONNS, dest.persist_conns)?);
        if let Some(stats) = &dest.stats {
            out.push(stats_attr(IPVS_DEST_ATTR_STATS64, stats)?);
        }
    }
    nest(IPVS_CMD_ATTR_DEST, &out)
}

/// Reads the payload of an IPVS_CMD_ATTR_DEST; `service_family` is the
/// destination's family when the kernel is too old to say.
pub fn decode_dest(a: &AttrMap, service_family: Family) -> Result<Destination> {
    let family = match a.has(IPVS_DEST_ATTR_ADDR_FAMILY) {
        true => a.family(IPVS_DEST_ATTR_ADDR_FAMILY)?,
        false => service_family,
    };
    let fwd = a.u32(IPVS_DEST_ATTR_FWD_METHOD)?;
    let tun = a.opt(IPVS_DEST_ATTR_TUN_TYPE, AttrMap::u8)?.unwrap_or(0);
    Ok(Destination {
        addr: a.addr(IPVS_DEST_ATTR_ADDR, family)?,
        port: a.be16(IPVS_DEST_ATTR_PORT)?,
        forward: ForwardMethod::from_raw(fwd)
            .ok_or_else(|| Error::decode(format!("the kernel listed unknown forwarding method {fwd}")))?,
        weight: a.u32(IPVS_DEST_ATTR_WEIGHT)?,
        upper_threshold: a.u32(IPVS_DEST_ATTR_U_THRESH)?,
        lower_threshold: a.u32(IPVS_DEST_ATTR_L_THRESH)?,
        tunnel: TunnelType::from_raw(tun)
            .ok_or_else(|| Error::decode(format!("the kernel listed unknown tunnel type {tun}")))?,
        tunnel_port: a.opt(IPVS_DEST_ATTR_TUN_PORT, AttrMap::be16)?.unwrap_or(0),
        tunnel_flags: TunnelFlags::from_bits_retain(a.opt(IPVS_DEST_ATTR_TUN_FLAGS, AttrMap::u16)?.unwrap_or(0)),
        active_conns: a.opt(IPVS_DEST_ATTR_ACTIVE_CONNS, AttrMap::u32)?.unwrap_or(0),
        inactive_conns: a.opt(IPVS_DEST_ATTR_INACT_CONNS, AttrMap::u32)?.unwrap_or(0),
        persist_conns: a.opt(IPVS_DEST_ATTR_PERSIST_CONNS, AttrMap::u32)?.unwrap_or(0),
        stats: decode_stats_of(a, IPVS_DEST_ATTR_STATS64, IPVS_DEST_ATTR_STATS)?,
    })
}

fn stats_attr(ty: u16, s: &Stats) -> Result<Attr> {
    let fields = [
        (IPVS_STATS_ATTR_CONNS, s.conns),
        (IPVS_STATS_ATTR_INPKTS, s.inpkts),
        (IPVS_STATS_ATTR_OUTPKTS, s.outpkts),
        (IPVS_STATS_ATTR_INBYTES, s.inbytes),
        (IPVS_STATS_ATTR_OUTBYTES, s.outbytes),
        (IPVS_STATS_ATTR_CPS, s.cps),
        (IPVS_STATS_ATTR_INPPS, s.inpps),
        (IPVS_STATS_ATTR_OUTPPS, s.outpps),
        (IPVS_STATS_ATTR_INBPS, s.inbps),
        (IPVS_STATS_ATTR_OUTBPS, s.outbps),
    ];
    let children = fields.iter().map(|(t, v)| attr_u64(*t, *v)).collect::<Result<Vec<_>>>()?;
    nest(ty, &children)
}

/// The 64-bit set when present; the old one mixes u32 counters and u64
/// byte counts, so each field is read at whatever width it came.
fn decode_stats_of(a: &AttrMap, ty64: u16, ty32: u16) -> Result<Option<Stats>> {
    let ty = if a.has(ty64) {
        ty64
    } else if a.has(ty32) {
        ty32
    } else {
        return Ok(None);
    };
    let s = a.nested(ty, "statistics")?;
    let get = |t: u16| -> Result<u64> {
        match s.raw(t).map(<[u8]>::len) {
            None => Ok(0),
            Some(8) => s.u64(t),
            Some(_) => s.u32(t).map(u64::from),
        }
    };
    Ok(Some(Stats {
        conns: get(IPVS_STATS_ATTR_CONNS)?,
        inpkts: get(IPVS_STATS_ATTR_INPKTS)?,
        outpkts: get(IPVS_STATS_ATTR_OUTPKTS)?,
        inbytes: get(IPVS_STATS_ATTR_INBYTES)?,
        outbytes: get(IPVS_STATS_ATTR_OUTBYTES)?,
        cps: get(IPVS_STATS_ATTR_CPS)?,
        inpps: get(IPVS_STATS_ATTR_INPPS)?,
        outpps: get(IPVS_STATS_ATTR_OUTPPS)?,
        inbps: get(IPVS_STATS_ATTR_INBPS)?,
        outbps: get(IPVS_STATS_ATTR_OUTBPS)?,
    }))
}

/// The nested IPVS_CMD_ATTR_DAEMON for starting `d`.
pub fn daemon_attr(d: &SyncDaemon) -> Result<Attr> {
    let mut out = vec![
        attr_u32(IPVS_DAEMON_ATTR_STATE, d.state.raw())?,
        attr_str(IPVS_DAEMON_ATTR_MCAST_IFN, &d.mcast_ifn)?,
        attr_u32(IPVS_DAEMON_ATTR_SYNC_ID, u32::from(d.syncid))?,
    ];
    if let Some(v) = d.sync_maxlen {
        out.push(attr_u16(IPVS_DAEMON_ATTR_SYNC_MAXLEN, v)?);
    }
    match d.mcast_group {
        Some(IpAddr::V4(g)) => out.push(attr(IPVS_DAEMON_ATTR_MCAST_GROUP, &g.octets())?),
        Some(IpAddr::V6(g)) => out.push(attr(IPVS_DAEMON_ATTR_MCAST_GROUP6, &g.octets())?),
        None => {}
    }
    if let Some(v) = d.mcast_port {
        out.push(attr_u16(IPVS_DAEMON_ATTR_MCAST_PORT, v)?);
    }
    if let Some(v) = d.mcast_ttl {
        out.push(attr_u8(IPVS_DAEMON_ATTR_MCAST_TTL, v)?);
    }
    nest(IPVS_CMD_ATTR_DAEMON, &out)
}

/// Stopping needs only the state.
pub fn daemon_state_attr(state: SyncState) -> Result<Attr> {
    nest(IPVS_CMD_ATTR_DAEMON, &[attr_u32(IPVS_DAEMON_ATTR_STATE, state.raw())?])
}

pub fn decode_daemon(a: &AttrMap) -> Result<SyncDaemon> {
    let state = a.u32(IPVS_DAEMON_ATTR_STATE)?;
    let syncid = a.u32(IPVS_DAEMON_ATTR_SYNC_ID)?;
    let mcast_group = if a.has(IPVS_DAEMON_ATTR_MCAST_GROUP) {
        Some(a.addr(IPVS_DAEMON_ATTR_MCAST_GROUP, Family::Inet)?)
    } else if a.has(IPVS_DAEMON_ATTR_MCAST_GROUP6) {
        Some(a.addr(IPVS_DAEMON_ATTR_MCAST_GROUP6, Family::Inet6)?)
    } else {
        None
    };
    Ok(SyncDaemon {
        state: SyncState::from_raw(state)
            .ok_or_else(|| Error::decode(format!("the kernel listed a sync daemon in state {state}")))?,
        mcast_ifn: a.string(IPVS_DAEMON_ATTR_MCAST_IFN)?,
        syncid: u8::try_from(syncid)
            .map_err(|_| Error::decode(format!("the kernel listed sync id {syncid}, beyond 255")))?,
        sync_maxlen: a.opt(IPVS_DAEMON_ATTR_SYNC_MAXLEN, AttrMap::u16)?,
        mcast_group,
        mcast_port: a.opt(IPVS_DAEMON_ATTR_MCAST_PORT, AttrMap::u16)?,
        mcast_ttl: a.opt(IPVS_DAEMON_ATTR_MCAST_TTL, AttrMap::u8)?,
    })
}

/// Top-level attributes of IPVS_CMD_SET_CONFIG; zero fields are left out
/// so the kernel keeps those timeouts.
pub fn timeout_attrs(t: &Timeouts) -> Result<Vec<Attr>> {
    let mut out = Vec::new();
    for (ty, v) in [
        (IPVS_CMD_ATTR_TIMEOUT_TCP, t.tcp),
        (IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t.tcp_fin),
        (IPVS_CMD_ATTR_TIMEOUT_UDP, t.udp),
    ] {
        if v != 0 {
            out.push(attr_u32(ty, v)?);
        }
    }
    Ok(out)
}

pub fn decode_timeouts(a: &AttrMap) -> Result<Timeouts> {
    Ok(Timeouts {
        tcp: a.opt(IPVS_CMD_ATTR_TIMEOUT_TCP, AttrMap::u32)?.unwrap_or(0),
        tcp_fin: a.opt(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, AttrMap::u32)?.unwrap_or(0),
        udp: a.opt(IPVS_CMD_ATTR_TIMEOUT_UDP, AttrMap::u32)?.unwrap_or(0),
    })
}

/// For tests that play the kernel's part in GET_INFO.
pub fn info_attrs(i: &Info) -> Result<Vec<Attr>> {
    Ok(vec![attr_u32(IPVS_INFO_ATTR_VERSION, i.version)?, attr_u32(IPVS_INFO_ATTR_CONN_TAB_SIZE, i.conn_tab_size)?])
}

pub fn decode_info(a: &AttrMap) -> Result<Info> {
    Ok(Info { version: a.u32(IPVS_INFO_ATTR_VERSION)?, conn_tab_size: a.u32(IPVS_INFO_ATTR_CONN_TAB_SIZE)? })
}
