//! The whole IPVS table, printed the way `ipvsadm -Ln` prints it, so logs
//! and monitor output read like what operators already know.

use std::fmt;

use super::key::{fmt_addr_port, Family, ServiceKey};
use super::model::{Destination, Info, Netmask, Service, ServiceFlags, Stats, Timeouts};

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
        f.write_str(&listing(self, Columns::Table, false, None))
    }
}

/// What a listing shows of each service and destination: `ipvsadm -Ln`'s
/// table, `--stats` (counters) or `--rate` (the kernel's estimates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    Table,
    Stats,
    Rate,
}

/// A listing as `ipvsadm -Ln [--stats|--rate] [--exact]` prints it: the
/// version line, the column titles, then each service and its
/// destinations. With `only` (ipvsadm's `-t`/`-u`/`-f`) just that service,
/// and without the version line, as ipvsadm does.
pub fn listing(table: &Table, columns: Columns, exact: bool, only: Option<&ServiceKey>) -> String {
    let mut out = String::new();
    if only.is_none() {
        out.push_str(&format!(
            "IP Virtual Server version {} (size={})\n",
            table.info.version_string(),
            table.info.conn_tab_size
        ));
    }
    let titles = match columns {
        Columns::Table => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
                .to_string()
        }
        Columns::Stats => format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Columns::Rate => format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
    };
    out.push_str(&titles);
    for e in table.entries.iter().filter(|e| only.is_none_or(|k| &e.service.key == k)) {
        let stats = e.service.stats.unwrap_or_default();
        let name = service_name(&e.service.key);
        match columns {
            Columns::Table => out.push_str(&service_line(&e.service)),
            Columns::Stats => out.push_str(&format!("{name:<33}{}", stat_columns(&stats, exact))),
            Columns::Rate => out.push_str(&format!("{name:<33}{}", rate_columns(&stats, exact))),
        }
        out.push('\n');
        for d in &e.destinations {
            let s = d.stats.unwrap_or_default();
            let name = fmt_addr_port(&d.addr, d.port);
            match columns {
                Columns::Table => out.push_str(&destination_line(d)),
                Columns::Stats => out.push_str(&format!("  -> {name:<28}{}", stat_columns(&s, exact))),
                // ipvsadm prints a destination's CPS, InPPS and OutPPS in
                // full, whatever --exact says; only the byte rates shrink.
                Columns::Rate => out.push_str(&format!(
                    "  -> {name:<28} {:>8} {:>8} {:>8}{}{}",
                    s.cps,
                    s.inpps,
                    s.outpps,
                    large_number(s.inbps, exact),
                    large_number(s.outbps, exact)
                )),
            }
            out.push('\n');
        }
    }
    out
}

fn stat_columns(s: &Stats, exact: bool) -> String {
    [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].iter().map(|n| large_number(*n, exact)).collect()
}

fn rate_columns(s: &Stats, exact: bool) -> String {
    [s.cps, s.inpps, s.outpps, s.inbps, s.outbps].iter().map(|n| large_number(*n, exact)).collect()
}

/// A counter in a 9-character column, as ipvsadm prints it: in full below
/// 10^8 (or always, `exact`), otherwise truncated to thousands (K),
/// millions (M), 10^9 (G) or 10^12 (T).
pub fn large_number(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 { 9 } else { digits.len() + 1 };
        return format!("{digits:>width$}");
    }
    match n {
        0..=99_999_999 => format!("{n:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", n / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", n / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", n / 1_000_000_000),
        _ => format!("{:>8}T", n / 1_000_000_000_000),
    }
}

/// `ipvsadm -Ln --timeout`'s line.
pub fn timeouts_line(t: &Timeouts) -> String {
    format!("Timeout (tcp tcpfin udp): {} {} {}\n", t.tcp, t.tcp_fin, t.udp)
}

#[cfg(test)]
mod listing_tests {
    use super::*;
    use crate::ForwardMethod;

    #[test]
    fn large_numbers_shrink_as_ipvsadm_shrinks_them() {
        let cases: [(u64, &str); 9] = [
            (0, "        0"),
            (99_999_999, " 99999999"),
            (100_000_000, "  100000K"),
            (999_999_999, "  999999K"),
            (1_000_000_000, "    1000M"),
            (99_999_999_999, "   99999M"),
            (100_000_000_000, "     100G"),
            (99_999_999_999_999, "   99999G"),
            (100_000_000_000_000, "     100T"),
        ];
        for (n, shown) in cases {
            assert_eq!(large_number(n, false), shown, "{n}");
        }
        assert_eq!(large_number(12, true), "       12");
        assert_eq!(large_number(123_456_789, true), " 123456789");
        assert_eq!(large_number(12_345_678_901, true), " 12345678901");
    }

    #[test]
    fn stats_and_rate_lines_have_ipvsadms_columns() {
        let mut svc = Service::new("tcp:10.0.0.1:80".parse().unwrap(), "wlc");
        svc.stats = Some(Stats {
            conns: 12,
            inpkts: 345,
            inbytes: 123_456_789,
            outbytes: 12_345_678_901,
            ..Default::default()
        });
        let mut d = Destination::new("192.168.1.10".parse().unwrap(), 80, ForwardMethod::Masq);
        d.stats = Some(Stats {
            conns: 6,
            inpkts: 170,
            inbytes: 99_999_999,
            cps: 1,
            inpps: 200_000_000,
            inbps: 1200,
            ..Default::default()
        });
        let table = Table::new(
            Info { version: 0x010201, conn_tab_size: 4096 },
            vec![TableEntry { service: svc, destinations: vec![d] }],
        );
        let stats = listing(&table, Columns::Stats, false, None);
        assert_eq!(
            stats,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
             \x20 -> RemoteAddress:Port\n\
             TCP  10.0.0.1:80                        12      345        0  123456K   12345M\n\
             \x20 -> 192.168.1.10:80                     6      170        0 99999999        0\n"
        );
        let rate = listing(&table, Columns::Rate, false, Some(&"tcp:10.0.0.1:80".parse().unwrap()));
        // A destination's packet rates are never shortened.
        assert_eq!(
            rate.lines().collect::<Vec<_>>(),
            [
                "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
                "  -> RemoteAddress:Port",
                "TCP  10.0.0.1:80                         0        0        0        0        0",
                "  -> 192.168.1.10:80                     1 200000000        0     1200        0",
            ]
        );
        assert_eq!(listing(&table, Columns::Table, false, None), table.to_string());
    }
}
