//! The whole IPVS table, printed the way `ipvsadm -Ln` prints it, so logs
//! and monitor output read like what operators already know.

use std::fmt;

use super::key::{fmt_addr_port, Family, ServiceKey};
use super::model::{Destination, Info, Netmask, Service, ServiceFlags};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub service: Service,
    pub destinations: Vec<Destination>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub info: Info,
    pub entries: Vec<TableEntry>,
}

impl Table {
    /// Sorts services and destinations as ipvsadm does.
    pub fn new(info: Info, mut entries: Vec<TableEntry>) -> Table {
        entries.sort_by_key(|e| e.service.key.sort_key());
        for e in &mut entries {
            e.destinations.sort_by_key(|d| (d.family(), d.addr, d.port));
        }
        Table { info, entries }
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&TableEntry> {
        self.entries.iter().find(|e| &e.service.key == key)
    }
}

/// The service part of a listing line, e.g. `TCP  10.0.0.1:80` or
/// `FWM  100 IPv6`.
pub fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            format!("{:<4} {}", protocol.listing_name(), fmt_addr_port(addr, *port))
        }
        ServiceKey::FwMark { family: Family::Inet, mark } => format!("FWM  {mark}"),
        ServiceKey::FwMark { family: Family::Inet6, mark } => format!("FWM  {mark} IPv6"),
    }
}

/// One service line of `ipvsadm -Ln`, without the newline.
pub fn service_line(svc: &Service) -> String {
    let mut line = format!("{} {}", service_name(&svc.key), svc.scheduler);
    if svc.flags.intersects(ServiceFlags::SCHED_MASK) {
        line.push_str(&format!(" ({})", svc.flags.sched_flag_names(&svc.scheduler).join(",")));
    }
    if svc.is_persistent() {
        line.push_str(&format!(" persistent {}", svc.timeout));
        if svc.netmask != Netmask::host(svc.key.family()) {
            line.push_str(&format!(" mask {}", svc.netmask));
        }
        if let Some(pe) = &svc.pe_name {
            line.push_str(&format!(" pe {pe}"));
        }
    }
    if svc.flags.contains(ServiceFlags::ONE_PACKET) {
        line.push_str(" ops");
    }
    line
}

/// One destination line of `ipvsadm -Ln`, without the newline.
pub fn destination_line(d: &Destination) -> String {
    format!(
        "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
        fmt_addr_port(&d.addr, d.port),
        d.forward.listing_name(),
        d.weight,
        d.active_conns,
        d.inactive_conns
    )
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "IP Virtual Server version {} (size={})", self.info.version_string(), self.info.conn_tab_size)?;
        writeln!(f, "Prot LocalAddress:Port Scheduler Flags")?;
        writeln!(f, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")?;
        for e in &self.entries {
            writeln!(f, "{}", service_line(&e.service))?;
            for d in &e.destinations {
                writeln!(f, "{}", destination_line(d))?;
            }
        }
        Ok(())
    }
}
