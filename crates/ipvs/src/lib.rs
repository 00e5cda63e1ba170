//! IPVS generic-netlink client (family "IPVS").
//!
//! - `key`: virtual-service identity and the operator syntax
//!   (`tcp:10.0.0.100:80`, `fwmark:100`).
//! - `model`: services, destinations, flags, timeouts, sync daemons.
//! - `wire`: the attribute sets of include/uapi/linux/ip_vs.h over neli.
//! - `api`: the [`Ipvs`] trait the agents use, and [`Connector`] (kernel or fake).
//! - `genl`: the generic-netlink transport (socket, sequence numbers, family
//!   lookup, batched requests, replies).
//! - `client`: [`IpvsClient`], the IPVS commands over it.
//! - `fake`: [`FakeIpvs`], an in-memory table that answers as the kernel does.
//! - `table`: the whole table, printed like `ipvsadm -Ln`.
//! - `reconcile`: the operations that make owned destinations match.
//! - `conns`: the connection table (/proc/net/ip_vs_conn), like `ipvsadm -Lnc`.

#![forbid(unsafe_code)]

mod api;
mod client;
pub mod conns;
pub mod error;
mod fake;
mod genl;
mod key;
mod model;
mod reconcile;
mod table;
pub mod wire;

#[cfg(test)]
mod tests;

pub use api::{Connector, Ipvs};
pub use client::IpvsClient;
pub use error::{Error, Result};
pub use fake::FakeIpvs;
pub use key::{fmt_addr_port, parse_addr_port, Family, Protocol, ServiceKey};
pub use model::{
    validate_scheduler, Destination, ForwardMethod, Info, Netmask, Service, ServiceFlags, Stats, SyncDaemon, SyncState,
    Timeouts, TunnelFlags, TunnelType, DEFAULT_PERSISTENCE_TIMEOUT, DEFAULT_SCHEDULER, SCHEDULERS,
};
pub use reconcile::{reconcile, DestOp};
pub use table::{
    destination_line, large_number, listing, service_line, service_name, timeouts_line, Columns, Table, TableEntry,
};

/// Whether the ip_vs module is loaded. Without it there is no service to
/// stop or monitor, and stop and probes must not load it just to learn that.
pub fn loaded() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
}

/// Why the kernel would refuse `addr` as a destination, if it would:
/// it takes only unicast (or local) addresses.
pub fn not_unicast(addr: std::net::IpAddr) -> Option<&'static str> {
    match addr {
        std::net::IpAddr::V4(a) if a.octets()[0] == 0 => Some("in 0.0.0.0/8 (this network)"),
        std::net::IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        std::net::IpAddr::V4(a) if a.is_multicast() => Some("multicast"),
        std::net::IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        std::net::IpAddr::V6(a) if a.is_multicast() => Some("multicast"),
        _ => None,
    }
}
