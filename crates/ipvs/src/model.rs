//! The typed IPVS table: services, destinations and their options, in the
//! kernel's units (seconds, be32 masks, IP_VS_* flag bits).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

use super::key::{Family, Protocol, ServiceKey};
use crate::error::{Error, Result};

/// Scheduler names the kernel ships (`ip_vs_<name>` modules).
pub const SCHEDULERS: &[&str] =
    &["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"];

/// The kernel's default scheduler, as ipvsadm's.
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// ipvsadm's default persistence timeout for `-p` without a value.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 300;

/// IP_VS_SCHEDNAME_MAXLEN / IP_VS_PENAME_MAXLEN include the NUL.
const NAME_MAXLEN: usize = 16;

pub fn validate_scheduler(name: &str) -> Result<()> {
    if SCHEDULERS.contains(&name) {
        Ok(())
    } else {
        Err(Error::invalid(format!("unknown scheduler '{name}': expected one of {}", SCHEDULERS.join(", "))))
    }
}

/// Virtual-service flags (IP_VS_SVC_F_*). SCHED1..3 mean different things
/// per scheduler, hence the aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(u32);

impl ServiceFlags {
    pub const PERSISTENT: ServiceFlags = ServiceFlags(0x0001);
    /// Set by the kernel while the service is in its hash table; never sent,
    /// stripped when listed.
    pub const HASHED: ServiceFlags = ServiceFlags(0x0002);
    /// One-packet scheduling (`ipvsadm -o`, "ops").
    pub const ONE_PACKET: ServiceFlags = ServiceFlags(0x0004);
    pub const SCHED1: ServiceFlags = ServiceFlags(0x0008);
    pub const SCHED2: ServiceFlags = ServiceFlags(0x0010);
    pub const SCHED3: ServiceFlags = ServiceFlags(0x0020);
    pub const SH_FALLBACK: ServiceFlags = ServiceFlags::SCHED1;
    pub const SH_PORT: ServiceFlags = ServiceFlags::SCHED2;
    pub const MH_FALLBACK: ServiceFlags = ServiceFlags::SCHED1;
    pub const MH_PORT: ServiceFlags = ServiceFlags::SCHED2;
    pub const SCHED_MASK: ServiceFlags = ServiceFlags(0x0038);

    pub const fn empty() -> ServiceFlags {
        ServiceFlags(0)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Keeps unknown bits: a newer kernel's flag must survive an edit.
    pub const fn from_bits_retain(bits: u32) -> ServiceFlags {
        ServiceFlags(bits)
    }

    pub const fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: ServiceFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn insert(&mut self, other: ServiceFlags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: ServiceFlags) {
        self.0 &= !other.0;
    }

    pub fn set(&mut self, other: ServiceFlags, on: bool) {
        if on {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }

    pub const fn without(self, other: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 & !other.0)
    }

    /// Parses ipvsadm's `-b` list for `scheduler`: `sh-fallback,sh-port`,
    /// `mh-fallback,mh-port` or `flag-1,flag-2,flag-3`.
    pub fn parse_sched_flags(list: &str, scheduler: &str) -> Result<ServiceFlags> {
        let mut flags = ServiceFlags::empty();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (bit, only_for) = match word {
                "flag-1" => (ServiceFlags::SCHED1, None),
                "flag-2" => (ServiceFlags::SCHED2, None),
                "flag-3" => (ServiceFlags::SCHED3, None),
                "sh-fallback" => (ServiceFlags::SH_FALLBACK, Some("sh")),
                "sh-port" => (ServiceFlags::SH_PORT, Some("sh")),
                "mh-fallback" => (ServiceFlags::MH_FALLBACK, Some("mh")),
                "mh-port" => (ServiceFlags::MH_PORT, Some("mh")),
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid scheduler flag '{word}': expected sh-fallback, sh-port, \
                         mh-fallback, mh-port, flag-1, flag-2 or flag-3"
                    )))
                }
            };
            if let Some(sched) = only_for {
                if sched != scheduler {
                    return Err(Error::invalid(format!(
                        "scheduler flag '{word}' needs scheduler '{sched}', not '{scheduler}'"
                    )));
                }
            }
            flags.insert(bit);
        }
        Ok(flags)
    }

    /// The scheduler flags in ipvsadm's words for `scheduler`.
    pub fn sched_flag_names(self, scheduler: &str) -> Vec<&'static str> {
        let names: [(ServiceFlags, &'static str); 3] = match scheduler {
            "sh" => [
                (ServiceFlags::SH_FALLBACK, "sh-fallback"),
                (ServiceFlags::SH_PORT, "sh-port"),
                (ServiceFlags::SCHED3, "flag-3"),
            ],
            "mh" => [
                (ServiceFlags::MH_FALLBACK, "mh-fallback"),
                (ServiceFlags::MH_PORT, "mh-port"),
                (ServiceFlags::SCHED3, "flag-3"),
            ],
            _ => [(ServiceFlags::SCHED1, "flag-1"), (ServiceFlags::SCHED2, "flag-2"), (ServiceFlags::SCHED3, "flag-3")],
        };
        names.iter().filter(|(bit, _)| self.contains(*bit)).map(|(_, name)| *name).collect()
    }
}

impl BitOr for ServiceFlags {
    type Output = ServiceFlags;
    fn bitor(self, rhs: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for ServiceFlags {
    fn bitor_assign(&mut self, rhs: ServiceFlags) {
        self.0 |= rhs.0;
    }
}

/// Persistence granularity: which client addresses share a persistence
/// template. IPv4 keeps a mask (be32 on the wire), IPv6 a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u8),
}

impl Netmask {
    /// One client address per template: what ipvsadm sends without `-M`.
    pub fn host(family: Family) -> Netmask {
        match family {
            Family::Inet => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::Inet6 => Netmask::V6(128),
        }
    }

    pub fn family(self) -> Family {
        match self {
            Netmask::V4(_) => Family::Inet,
            Netmask::V6(_) => Family::Inet6,
        }
    }

    /// Parses `255.255.255.0` / `24` for IPv4 and `64` for IPv6.
    pub fn parse(s: &str, family: Family) -> Result<Netmask> {
        let bad = || {
            Error::invalid(format!(
                "invalid persistence netmask '{s}' for {family}: expected {}",
                match family {
                    Family::Inet => "a dotted mask like 255.255.255.0 or a prefix length 0-32",
                    Family::Inet6 => "a prefix length 1-128",
                }
            ))
        };
        let s = s.trim();
        match family {
            Family::Inet => {
                if let Ok(mask) = s.parse::<Ipv4Addr>() {
                    return Ok(Netmask::V4(mask));
                }
                let len: u8 = s.parse().map_err(|_| bad())?;
                if len > 32 {
                    return Err(bad());
                }
                let bits = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                Ok(Netmask::V4(Ipv4Addr::from(bits)))
            }
            Family::Inet6 => match s.parse::<u8>() {
                Ok(len) if (1..=128).contains(&len) => Ok(Netmask::V6(len)),
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{m}"),
            Netmask::V6(len) => write!(f, "{len}"),
        }
    }
}

/// Traffic counters and rates (the kernel's 64-bit set when it has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A virtual service. `stats` is filled when listed and ignored when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: String,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds; meaningful with `PERSISTENT`.
    pub timeout: u32,
    pub netmask: Netmask,
    /// Persistence engine, e.g. "sip".
    pub pe_name: Option<String>,
    pub stats: Option<Stats>,
}

impl Service {
    /// A non-persistent service with ipvsadm's defaults.
    pub fn new(key: ServiceKey, scheduler: impl Into<String>) -> Service {
        Service {
            key,
            scheduler: scheduler.into(),
            flags: ServiceFlags::empty(),
            timeout: 0,
            netmask: Netmask::host(key.family()),
            pe_name: None,
            stats: None,
        }
    }

    /// Turns on persistence (`ipvsadm -p timeout -M netmask`).
    pub fn with_persistence(mut self, timeout: u32, netmask: Netmask) -> Service {
        self.flags.insert(ServiceFlags::PERSISTENT);
        self.timeout = timeout;
        self.netmask = netmask;
        self
    }

    pub fn is_persistent(&self) -> bool {
        self.flags.contains(ServiceFlags::PERSISTENT)
    }

    /// Checks what the kernel would refuse with a bare EINVAL/ENOENT, so the
    /// operator gets a message that names the problem.
    pub fn validate(&self) -> Result<()> {
        validate_scheduler(&self.scheduler)?;
        if self.netmask.family() != self.key.family() {
            return Err(Error::invalid(format!(
                "persistence netmask {} does not fit {} service {}",
                self.netmask,
                self.key.family(),
                self.key
            )));
        }
        if let Netmask::V6(len) = self.netmask {
            if !(1..=128).contains(&len) {
                return Err(Error::invalid(format!("IPv6 persistence prefix length {len} is out of range 1-128")));
            }
        }
        if let ServiceKey::Addr { port: 0, .. } = self.key {
            if !self.is_persistent() {
                return Err(Error::invalid(format!(
                    "virtual service {} has port 0, which only a persistent service may use",
                    self.key
                )));
            }
        }
        if let ServiceKey::Addr { protocol, .. } = self.key {
            if self.flags.contains(ServiceFlags::ONE_PACKET) && protocol != Protocol::Udp {
                return Err(Error::invalid(format!(
                    "one-packet scheduling is only for UDP services, not {}",
                    self.key
                )));
            }
        }
        if let Some(pe) = &self.pe_name {
            if pe.is_empty() || pe.len() >= NAME_MAXLEN || pe.contains('\0') {
                return Err(Error::invalid(format!("invalid persistence engine name '{pe}'")));
            }
        }
        Ok(())
    }
}

/// How packets reach a destination (IP_VS_CONN_F_* forwarding methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (`ipvsadm -m`).
    Masq,
    /// Delivered to this host.
    Local,
    /// IP-in-IP/GUE/GRE encapsulation (`ipvsadm -i`).
    Tunnel,
    /// Direct routing (`ipvsadm -g`, "gate").
    Route,
    /// Cache bypass.
    Bypass,
}

impl ForwardMethod {
    pub const fn raw(self) -> u32 {
        match self {
            ForwardMethod::Masq => 0,
            ForwardMethod::Local => 1,
            ForwardMethod::Tunnel => 2,
            ForwardMethod::Route => 3,
            ForwardMethod::Bypass => 4,
        }
    }

    /// Reads the method out of connection flags (IP_VS_CONN_F_FWD_MASK).
    pub fn from_raw(flags: u32) -> Option<ForwardMethod> {
        match flags & 0x7 {
            0 => Some(ForwardMethod::Masq),
            1 => Some(ForwardMethod::Local),
            2 => Some(ForwardMethod::Tunnel),
            3 => Some(ForwardMethod::Route),
            4 => Some(ForwardMethod::Bypass),
            _ => None,
        }
    }

    /// The word `ipvsadm -L` prints in the Forward column.
    pub fn listing_name(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Route => "Route",
            ForwardMethod::Bypass => "Bypass",
        }
    }
}

/// ipvsadm's words: masq, gate, ipip, plus local and bypass.
impl fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardMethod::Masq => "masq",
            ForwardMethod::Local => "local",
            ForwardMethod::Tunnel => "ipip",
            ForwardMethod::Route => "gate",
            ForwardMethod::Bypass => "bypass",
        })
    }
}

impl FromStr for ForwardMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "masq" | "masquerading" => Ok(ForwardMethod::Masq),
            "gate" | "gatewaying" | "route" => Ok(ForwardMethod::Route),
            "ipip" | "tunnel" => Ok(ForwardMethod::Tunnel),
            "local" => Ok(ForwardMethod::Local),
            "bypass" => Ok(ForwardMethod::Bypass),
            _ => Err(Error::invalid(format!("invalid forwarding method '{s}': expected masq, gate or ipip"))),
        }
    }
}

/// Encapsulation of a tunnel destination (IP_VS_CONN_F_TUNNEL_TYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub const fn raw(self) -> u8 {
        match self {
            TunnelType::Ipip => 0,
            TunnelType::Gue => 1,
            TunnelType::Gre => 2,
        }
    }

    pub fn from_raw(t: u8) -> Option<TunnelType> {
        match t {
            0 => Some(TunnelType::Ipip),
            1 => Some(TunnelType::Gue),
            2 => Some(TunnelType::Gre),
            _ => None,
        }
    }
}

impl fmt::Display for TunnelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        })
    }
}

impl FromStr for TunnelType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ipip" => Ok(TunnelType::Ipip),
            "gue" => Ok(TunnelType::Gue),
            "gre" => Ok(TunnelType::Gre),
            _ => Err(Error::invalid(format!("invalid tunnel type '{s}': expected ipip, gue or gre"))),
        }
    }
}

/// Checksum handling of GUE/GRE tunnels (IP_VS_TUNNEL_ENCAP_FLAG_*); empty
/// is "nocsum".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TunnelFlags(u16);

impl TunnelFlags {
    pub const CSUM: TunnelFlags = TunnelFlags(1 << 0);
    pub const REMCSUM: TunnelFlags = TunnelFlags(1 << 1);

    pub const fn empty() -> TunnelFlags {
        TunnelFlags(0)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn from_bits_retain(bits: u16) -> TunnelFlags {
        TunnelFlags(bits)
    }

    pub const fn contains(self, other: TunnelFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for TunnelFlags {
    type Output = TunnelFlags;
    fn bitor(self, rhs: TunnelFlags) -> TunnelFlags {
        TunnelFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for TunnelFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("nocsum"),
            1 => f.write_str("csum"),
            2 => f.write_str("remcsum"),
            other => write!(f, "{other:#x}"),
        }
    }
}

impl FromStr for TunnelFlags {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nocsum" | "" => Ok(TunnelFlags::empty()),
            "csum" => Ok(TunnelFlags::CSUM),
            "remcsum" => Ok(TunnelFlags::REMCSUM),
            _ => Err(Error::invalid(format!("invalid tunnel checksum option '{s}': expected nocsum, csum or remcsum"))),
        }
    }
}

/// A real server of a virtual service. The counters and `stats` are filled
/// when listed and ignored when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// May be of the other family than the service only with `Tunnel`.
    pub addr: IpAddr,
    pub port: u16,
    pub forward: ForwardMethod,
    pub weight: u32,
    /// 0 means no limit.
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    pub tunnel: TunnelType,
    /// GUE destination port; required for GUE.
    pub tunnel_port: u16,
    pub tunnel_flags: TunnelFlags,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub stats: Option<Stats>,
}

impl Destination {
    /// Weight 1, no thresholds: `ipvsadm -a` without options.
    pub fn new(addr: IpAddr, port: u16, forward: ForwardMethod) -> Destination {
        Destination {
            addr,
            port,
            forward,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: TunnelType::Ipip,
            tunnel_port: 0,
            tunnel_flags: TunnelFlags::empty(),
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats: None,
        }
    }

    pub fn with_weight(mut self, weight: u32) -> Destination {
        self.weight = weight;
        self
    }

    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Destination {
        self.upper_threshold = upper;
        self.lower_threshold = lower;
        self
    }

    pub fn with_tunnel(mut self, tunnel: TunnelType, port: u16, flags: TunnelFlags) -> Destination {
        self.tunnel = tunnel;
        self.tunnel_port = port;
        self.tunnel_flags = flags;
        self
    }

    /// What identifies this destination within its service.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// True when the settings an operator chooses are equal (counters and
    /// stats aside).
    pub fn same_settings(&self, other: &Destination) -> bool {
        self.addr == other.addr
            && self.port == other.port
            && self.forward == other.forward
            && self.weight == other.weight
            && self.upper_threshold == other.upper_threshold
            && self.lower_threshold == other.lower_threshold
            && self.tunnel == other.tunnel
            && self.tunnel_port == other.tunnel_port
            && self.tunnel_flags == other.tunnel_flags
    }

    /// Checks, for `service`, what the kernel would refuse with a bare
    /// EINVAL.
    pub fn validate(&self, service: &ServiceKey) -> Result<()> {
        let ep = super::key::fmt_addr_port(&self.addr, self.port);
        if self.weight > i32::MAX as u32 {
            return Err(Error::invalid(format!("weight {} of {ep} is out of range 0-{}", self.weight, i32::MAX)));
        }
        if self.lower_threshold > self.upper_threshold {
            return Err(Error::invalid(format!(
                "lower threshold {} of {ep} is above its upper threshold {}",
                self.lower_threshold, self.upper_threshold
            )));
        }
        if self.family() != service.family() && self.forward != ForwardMethod::Tunnel {
            return Err(Error::invalid(format!(
                "{ep} is {} but service {service} is {}: mixed families need ipip forwarding",
                self.family(),
                service.family()
            )));
        }
        let plain = self.tunnel == TunnelType::Ipip && self.tunnel_port == 0 && self.tunnel_flags.is_empty();
        if self.forward != ForwardMethod::Tunnel && !plain {
            return Err(Error::invalid(format!("tunnel options for {ep} need ipip forwarding, not {}", self.forward)));
        }
        // The options ipvsadm allows per tunnel type; the kernel ignores
        // the others silently.
        match self.tunnel {
            TunnelType::Gue if self.tunnel_port == 0 => {
                return Err(Error::invalid(format!("GUE tunnel to {ep} needs a tunnel port")))
            }
            TunnelType::Ipip | TunnelType::Gre if self.tunnel_port != 0 => {
                return Err(Error::invalid(format!(
                    "a tunnel port applies to GUE only, not to the {} tunnel to {ep}",
                    self.tunnel
                )))
            }
            _ => {}
        }
        let allowed = match self.tunnel {
            TunnelType::Ipip => TunnelFlags::empty(),
            TunnelType::Gre => TunnelFlags::CSUM,
            TunnelType::Gue => TunnelFlags::CSUM | TunnelFlags::REMCSUM,
        };
        if self.tunnel_flags.bits() & !allowed.bits() != 0 {
            return Err(Error::invalid(format!(
                "checksum option {} does not apply to the {} tunnel to {ep}",
                self.tunnel_flags, self.tunnel
            )));
        }
        if self.tunnel_flags.contains(TunnelFlags::CSUM | TunnelFlags::REMCSUM) {
            return Err(Error::invalid(format!("tunnel to {ep} cannot use both csum and remcsum")));
        }
        Ok(())
    }
}

/// IPVS version and connection-table size (`ipvsadm --version` / `-L`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Packed as 0x00MMmmpp.
    pub version: u32,
    pub conn_tab_size: u32,
}

impl Info {
    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", (self.version >> 16) & 0xff, (self.version >> 8) & 0xff, self.version & 0xff)
    }
}

/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`). When
/// set, 0 leaves that timeout unchanged, as in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Role of a connection-synchronisation daemon (IP_VS_STATE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncState {
    Master,
    Backup,
}

impl SyncState {
    pub const fn raw(self) -> u32 {
        match self {
            SyncState::Master => 1,
            SyncState::Backup => 2,
        }
    }

    pub fn from_raw(s: u32) -> Option<SyncState> {
        match s {
            1 => Some(SyncState::Master),
            2 => Some(SyncState::Backup),
            _ => None,
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        })
    }
}

impl FromStr for SyncState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "master" => Ok(SyncState::Master),
            "backup" => Ok(SyncState::Backup),
            _ => Err(Error::invalid(format!("invalid sync daemon state '{s}': expected master or backup"))),
        }
    }
}

/// A connection-synchronisation daemon. Options left `None` take the
/// kernel's defaults when started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemon {
    pub state: SyncState,
    pub mcast_ifn: String,
    pub syncid: u8,
    pub sync_maxlen: Option<u16>,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

impl SyncDaemon {
    pub fn new(state: SyncState, mcast_ifn: impl Into<String>, syncid: u8) -> SyncDaemon {
        SyncDaemon {
            state,
            mcast_ifn: mcast_ifn.into(),
            syncid,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.mcast_ifn.is_empty() || self.mcast_ifn.len() >= NAME_MAXLEN || self.mcast_ifn.contains('\0') {
            return Err(Error::invalid(format!("invalid sync daemon interface name '{}'", self.mcast_ifn)));
        }
        Ok(())
    }
}
