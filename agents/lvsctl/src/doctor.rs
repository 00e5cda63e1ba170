//! `lvsctl doctor`: what this host's IPVS services (or, with
//! `--realserver`, a DR/TUN real server) need from the kernel around them,
//! and the command that fixes what is missing. The facts are gathered once
//! ([`gather`], [`gather_realserver`]); judging them is a pure function
//! ([`judge`], [`judge_realserver`]), so each rule has a unit test.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use lvs_ipvs::{conns, Connector, Family, ForwardMethod, ServiceKey, SyncDaemon, Table};
use lvs_net::{self as net, REALSERVER_ARP_SYSCTLS};
use lvs_sync::config::Record;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Which rule: ip_forward, send_redirects, conn_tab, sync, vip, ...
    pub check: &'static str,
    pub message: String,
    /// The command that fixes it, when there is one.
    pub fix: Option<String>,
}

/// What doctor looks at on a director.
#[derive(Debug, Default)]
pub struct Facts {
    pub table: Option<Table>,
    /// sysctl name → value, for those read (a missing one was not there).
    pub sysctls: BTreeMap<String, String>,
    /// This host's addresses: address, interface (not the label), prefix.
    pub addrs: Vec<(IpAddr, String, u8)>,
    /// Entries in the kernel's connection table.
    pub connections: usize,
    pub daemons: Vec<SyncDaemon>,
    /// ocf:lvs:sync resources' records (instance, record).
    pub sync_records: Vec<(String, Record)>,
    /// A local IPv4 VIP → the MAC of another host that answered an ARP
    /// probe for it.
    pub answered_by: BTreeMap<IpAddr, String>,
}

fn sysctl(f: &BTreeMap<String, String>, name: &str) -> Option<u32> {
    f.get(name).and_then(|v| v.trim().parse().ok())
}

/// The interface holding `ip` here, if any.
fn holder(addrs: &[(IpAddr, String, u8)], ip: IpAddr) -> Option<&str> {
    addrs.iter().find(|(a, _, _)| *a == ip).map(|(_, i, _)| i.as_str())
}

fn service_ip(key: &ServiceKey) -> Option<IpAddr> {
    match key {
        ServiceKey::Addr { addr, .. } => Some(*addr),
        ServiceKey::FwMark { .. } => None,
    }
}

/// The director's rules, in the order they are reported.
pub fn judge(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(table) = &f.table else {
        out.push(Finding {
            severity: Severity::Error,
            check: "ipvs",
            message: "cannot read the IPVS table (is the ip_vs module loaded, and are you root?)".into(),
            fix: Some("modprobe ip_vs".into()),
        });
        return out;
    };
    let uses = |m: ForwardMethod, v6: bool| {
        table.entries.iter().filter(move |e| {
            (e.service.key.family() == Family::Inet6) == v6 && e.destinations.iter().any(|d| d.forward == m)
        })
    };
    for (v6, name) in [(false, "net.ipv4.ip_forward"), (true, "net.ipv6.conf.all.forwarding")] {
        let nat: Vec<String> = uses(ForwardMethod::Masq, v6).map(|e| e.service.key.to_string()).collect();
        if !nat.is_empty() && sysctl(&f.sysctls, name) != Some(1) {
            out.push(Finding {
                severity: Severity::Error,
                check: "ip_forward",
                message: format!(
                    "NAT (masq) for {} needs {name} = 1 (it is {}): the reals' replies are not routed back; \
                     keep it in /etc/sysctl.d/",
                    nat.join(", "),
                    f.sysctls.get(name).map(String::as_str).unwrap_or("unreadable")
                ),
                fix: Some(format!("sysctl -w {name}=1")),
            });
        }
    }
    // Redirects off on DR directors, as LVS-DR setups have them: a
    // director that sends ICMP redirects on the VIP's LAN can teach
    // clients a route around it.
    for e in uses(ForwardMethod::Route, false) {
        let iface = service_ip(&e.service.key).and_then(|ip| holder(&f.addrs, ip));
        let mut on = Vec::new();
        for conf in ["all"].into_iter().chain(iface) {
            let name = net::ipv4_conf(conf, "send_redirects");
            if sysctl(&f.sysctls, &name) != Some(0) {
                on.push(name);
            }
        }
        if !on.is_empty() {
            out.push(Finding {
                severity: Severity::Warning,
                check: "send_redirects",
                message: format!(
                    "{} forwards by direct routing (gate) and {} is not 0: the director may send ICMP \
                     redirects that teach clients to bypass it",
                    e.service.key,
                    on.join(" and ")
                ),
                fix: Some(format!("sysctl -w {}", on.iter().map(|n| format!("{n}=0")).collect::<Vec<_>>().join(" "))),
            });
        }
    }
    let size = table.info.conn_tab_size as usize;
    if size > 0 && f.connections > 4 * size {
        // Enough buckets for one entry each, as a power of two.
        let bits = (usize::BITS - f.connections.leading_zeros()).clamp(8, 20);
        out.push(Finding {
            severity: Severity::Warning,
            check: "conn_tab",
            message: format!(
                "{} connection entries in a table of {size} buckets (more than 4 per bucket): lookups \
                 walk long chains; the size applies when ip_vs loads, and unloading it empties the \
                 IPVS table, so reload it on a standby or at the next reboot",
                f.connections
            ),
            fix: Some(format!("echo 'options ip_vs conn_tab_bits={bits}' >> /etc/modprobe.d/ip_vs.conf")),
        });
    }
    for (instance, record) in &f.sync_records {
        for e in &record.daemons {
            if !f.daemons.iter().any(|d| e.is(d)) {
                out.push(Finding {
                    severity: Severity::Error,
                    check: "sync",
                    message: format!(
                        "the ocf:lvs:sync resource {instance} runs a {} sync daemon, but the kernel runs none \
                         like it: connections are not synced (a cleanup makes Pacemaker start it again)",
                        e.state().map(|s| s.to_string()).unwrap_or_else(|| "?".into())
                    ),
                    fix: Some(format!("crm_resource --cleanup -r {instance}")),
                });
            }
        }
    }
    let mut seen = Vec::new();
    for e in &table.entries {
        let Some(ip) = service_ip(&e.service.key) else { continue };
        if seen.contains(&ip) {
            continue;
        }
        seen.push(ip);
        match holder(&f.addrs, ip) {
            None => out.push(Finding {
                severity: Severity::Warning,
                check: "vip",
                message: format!(
                    "no address {ip} on this host: traffic for {} does not come here (the VIP is on another \
                     director, or nowhere)",
                    e.service.key
                ),
                fix: None,
            }),
            Some(iface) => {
                if let Some(mac) = f.answered_by.get(&ip) {
                    out.push(Finding {
                        severity: Severity::Error,
                        check: "vip",
                        message: format!(
                            "{ip} (on {iface}) is also answered by {mac}: another host holds the VIP (a second \
                             director, or a DR real server that answers ARP for it)"
                        ),
                        fix: Some(format!("on that host: lvsctl doctor --realserver {ip}")),
                    });
                }
            }
        }
    }
    out
}

/// What doctor looks at on a real server.
#[derive(Debug, Default)]
pub struct RealserverFacts {
    pub vip: Option<IpAddr>,
    pub addrs: Vec<(IpAddr, String, u8)>,
    pub sysctls: BTreeMap<String, String>,
    /// Interfaces other than lo.
    pub interfaces: Vec<String>,
}

/// A DR/TUN real server's rules for `vip`.
pub fn judge_realserver(f: &RealserverFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(vip) = f.vip else { return out };
    match holder(&f.addrs, vip) {
        None => out.push(Finding {
            severity: Severity::Error,
            check: "vip",
            message: format!("{vip} is not on this host: packets the director routes here for it are dropped"),
            fix: Some(format!("ip addr add {vip}/{} dev lo (or ocf:lvs:vip mode=realserver)", host_prefix(vip))),
        }),
        Some(i) if i != "lo" && !i.starts_with("tunl") && !i.starts_with("ip6tnl") => {
            let prefix = f.addrs.iter().find(|(a, _, _)| *a == vip).map(|(_, _, p)| *p).unwrap_or(host_prefix(vip));
            out.push(Finding {
                severity: Severity::Error,
                check: "vip",
                message: format!(
                    "{vip} is on {i}: this real server answers ARP for the VIP and takes the director's traffic"
                ),
                fix: Some(format!(
                    "ip addr del {vip}/{prefix} dev {i} && ip addr add {vip}/{} dev lo",
                    host_prefix(vip)
                )),
            })
        }
        Some(_) => {}
    }
    if vip.is_ipv4() {
        // The kernel applies the larger of `all` and the interface's value.
        let fix = format!(
            "sysctl -w {}",
            REALSERVER_ARP_SYSCTLS.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
        );
        for (param, least) in [("arp_ignore", 1), ("arp_announce", 2)] {
            let all = sysctl(&f.sysctls, &format!("net.ipv4.conf.all.{param}")).unwrap_or(0);
            let short: Vec<String> = f
                .interfaces
                .iter()
                .filter(|i| all.max(sysctl(&f.sysctls, &net::ipv4_conf(i, param)).unwrap_or(0)) < least)
                .cloned()
                .collect();
            if !short.is_empty() {
                out.push(Finding {
                    severity: Severity::Error,
                    check: param,
                    message: format!(
                        "{param} is below {least} on {} (the larger of all and the interface): {}",
                        short.join(", "),
                        if param == "arp_ignore" {
                            "they answer ARP for the VIP held on lo"
                        } else {
                            "they may announce the VIP as a source address"
                        }
                    ),
                    fix: Some(fix.clone()),
                });
            }
        }
        if f.interfaces.iter().any(|i| i == "tunl0") {
            let all = sysctl(&f.sysctls, "net.ipv4.conf.all.rp_filter").unwrap_or(0);
            let tun = sysctl(&f.sysctls, "net.ipv4.conf.tunl0.rp_filter").unwrap_or(0);
            if all.max(tun) == 1 {
                out.push(Finding {
                    severity: Severity::Warning,
                    check: "rp_filter",
                    message: "strict reverse-path filtering on tunl0: packets the director tunnels here (LVS-TUN) \
                              are dropped when the client's route leaves by another interface"
                        .into(),
                    fix: Some("sysctl -w net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.all.rp_filter=0".into()),
                });
            }
        }
    }
    out
}

fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// This host's addresses, with their interfaces (an address label such
/// as lo:0 is cut at the colon) and prefix lengths.
fn addresses() -> Vec<(IpAddr, String, u8)> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().into_iter().flatten() {
        let Some(a) = ifa.address else { continue };
        let iface = ifa.interface_name.split(':').next().unwrap_or_default().to_string();
        let mask = ifa.netmask.as_ref();
        if let Some(v4) = a.as_sockaddr_in() {
            let prefix =
                mask.and_then(|m| m.as_sockaddr_in()).and_then(|m| u8::try_from(m.ip().to_bits().count_ones()).ok());
            out.push((IpAddr::V4(v4.ip()), iface, prefix.unwrap_or(32)));
        } else if let Some(v6) = a.as_sockaddr_in6() {
            let prefix =
                mask.and_then(|m| m.as_sockaddr_in6()).and_then(|m| u8::try_from(m.ip().to_bits().count_ones()).ok());
            out.push((IpAddr::V6(v6.ip()), iface, prefix.unwrap_or(128)));
        }
    }
    out
}

/// The network interfaces other than lo (directories in /sys/class/net,
/// not files such as bonding_masters).
fn interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names
}

fn read_sysctls(names: impl IntoIterator<Item = String>) -> BTreeMap<String, String> {
    names.into_iter().filter_map(|n| net::read_sysctl(&n).ok().map(|v| (n, v))).collect()
}

/// Another host answering an ARP probe for `ip` on `iface` (as the vip
/// agent's start-time guard asks), or None.
fn probe(ip: IpAddr, iface: &str) -> Option<String> {
    let IpAddr::V4(v4) = ip else { return None };
    let index = nix::net::if_::if_nametoindex(iface).ok()?;
    let mac = nix::ifaddrs::getifaddrs()
        .ok()?
        .find(|i| i.interface_name == iface)
        .and_then(|i| i.address?.as_link_addr()?.addr())?;
    if mac == [0; 6] {
        return None;
    }
    net::probe_duplicate(index, mac, v4, Duration::from_millis(300)).ok()?.map(|m| net::format_mac(&m))
}

pub fn gather(run_dir: &Path) -> Facts {
    let client = Connector::Kernel.connect();
    let table = client.as_ref().ok().and_then(|c| c.table().ok());
    let daemons = client.as_ref().ok().and_then(|c| c.daemons().ok()).unwrap_or_default();
    let addrs = addresses();
    let mut names = vec!["net.ipv4.ip_forward".to_string(), "net.ipv6.conf.all.forwarding".into()];
    names.push("net.ipv4.conf.all.send_redirects".into());
    let mut answered_by = BTreeMap::new();
    // One probe per VIP (300 ms each), however many services share it.
    let mut probed = std::collections::BTreeSet::new();
    if let Some(t) = &table {
        for e in &t.entries {
            let Some(ip) = service_ip(&e.service.key) else { continue };
            if let Some(iface) = holder(&addrs, ip) {
                names.push(net::ipv4_conf(iface, "send_redirects"));
                if iface != "lo" && probed.insert(ip) {
                    if let Some(mac) = probe(ip, iface) {
                        answered_by.insert(ip, mac);
                    }
                }
            }
        }
    }
    Facts {
        table,
        sysctls: read_sysctls(names),
        addrs,
        connections: conns::count().unwrap_or(0),
        daemons,
        sync_records: lvs_sync::config::records(run_dir),
        answered_by,
    }
}

pub fn gather_realserver(vip: IpAddr) -> RealserverFacts {
    let interfaces = interfaces();
    let mut names = Vec::new();
    for i in ["all", "lo"].iter().map(|s| s.to_string()).chain(interfaces.iter().cloned()) {
        for p in ["arp_ignore", "arp_announce", "rp_filter"] {
            names.push(net::ipv4_conf(&i, p));
        }
    }
    RealserverFacts { vip: Some(vip), addrs: addresses(), sysctls: read_sysctls(names), interfaces }
}

/// The report and the exit status: 0 clean, 1 warnings, 2 errors.
pub fn report(findings: &[Finding], as_json: bool) -> (String, u8) {
    let status = match findings.iter().map(|f| f.severity).max() {
        None => 0,
        Some(Severity::Warning) => 1,
        Some(Severity::Error) => 2,
    };
    if as_json {
        let list: Vec<Value> = findings
            .iter()
            .map(|f| {
                json!({"severity": if f.severity == Severity::Error { "error" } else { "warning" },
                       "check": f.check, "message": f.message, "fix": f.fix})
            })
            .collect();
        return (format!("{:#}\n", json!({"status": status, "findings": list})), status);
    }
    let mut out = String::new();
    for f in findings {
        let tag = if f.severity == Severity::Error { "error" } else { "warning" };
        out.push_str(&format!("{tag}: {} ({})\n", f.message, f.check));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("  fix: {fix}\n"));
        }
    }
    if findings.is_empty() {
        out.push_str("ok: nothing to fix\n");
    }
    (out, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_ipvs::{Destination, Info, Service, TableEntry};

    fn table(service: &str, forward: ForwardMethod) -> Table {
        let svc = Service::new(service.parse().unwrap(), "wlc");
        let d = Destination::new("192.168.7.10".parse().unwrap(), 80, forward);
        Table::new(
            Info { version: 0x010201, conn_tab_size: 4096 },
            vec![TableEntry { service: svc, destinations: vec![d] }],
        )
    }

    fn facts(forward: ForwardMethod, sysctls: &[(&str, &str)]) -> Facts {
        Facts {
            table: Some(table("tcp:10.0.0.100:80", forward)),
            sysctls: sysctls.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            addrs: vec![("10.0.0.100".parse().unwrap(), "eth0".into(), 24)],
            ..Facts::default()
        }
    }

    fn checks(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|x| (x.check, x.severity)).collect()
    }

    #[test]
    fn nat_needs_forwarding() {
        let f = judge(&facts(ForwardMethod::Masq, &[("net.ipv4.ip_forward", "0")]));
        assert_eq!(checks(&f), [("ip_forward", Severity::Error)]);
        assert_eq!(f[0].fix.as_deref(), Some("sysctl -w net.ipv4.ip_forward=1"), "{f:?}");
        assert!(judge(&facts(ForwardMethod::Masq, &[("net.ipv4.ip_forward", "1")])).is_empty());
        // DR does not need it.
        let dr = [("net.ipv4.conf.all.send_redirects", "0"), ("net.ipv4.conf.eth0.send_redirects", "0")];
        assert!(judge(&facts(ForwardMethod::Route, &dr)).is_empty());
    }

    #[test]
    fn dr_directors_send_no_redirects() {
        let f = judge(&facts(
            ForwardMethod::Route,
            &[("net.ipv4.conf.all.send_redirects", "0"), ("net.ipv4.conf.eth0.send_redirects", "1")],
        ));
        assert_eq!(checks(&f), [("send_redirects", Severity::Warning)]);
        assert_eq!(f[0].fix.as_deref(), Some("sysctl -w net.ipv4.conf.eth0.send_redirects=0"));
    }

    #[test]
    fn vip_missing_or_answered_elsewhere() {
        let mut f = facts(ForwardMethod::Masq, &[("net.ipv4.ip_forward", "1")]);
        f.addrs.clear();
        assert_eq!(checks(&judge(&f)), [("vip", Severity::Warning)]);
        let mut f = facts(ForwardMethod::Masq, &[("net.ipv4.ip_forward", "1")]);
        f.answered_by.insert("10.0.0.100".parse().unwrap(), "52:54:00:00:00:01".into());
        let found = judge(&f);
        assert_eq!(checks(&found), [("vip", Severity::Error)]);
        assert!(found[0].message.contains("52:54:00:00:00:01"), "{found:?}");
    }

    #[test]
    fn a_crowded_connection_table_and_a_missing_sync_daemon() {
        let mut f = facts(ForwardMethod::Masq, &[("net.ipv4.ip_forward", "1")]);
        f.connections = 4 * 4096 + 1;
        let found = judge(&f);
        assert_eq!(checks(&found), [("conn_tab", Severity::Warning)]);
        assert!(found[0].fix.as_deref().unwrap().contains("conn_tab_bits=15"), "{found:?}");
        f.connections = 4 * 4096;
        assert!(judge(&f).is_empty());
        let record: Record = serde_json::from_str(
            r#"{"daemons":[{"requested":{"state":"master","interface":"eth1","syncid":5,"maxlen":null,"group":null,"port":null,"ttl":null},"kernel":null,"owned":true}]}"#,
        )
        .unwrap();
        f.sync_records.push(("sync".into(), record));
        assert_eq!(checks(&judge(&f)), [("sync", Severity::Error)]);
    }

    #[test]
    fn no_table_is_an_error_with_the_fix() {
        let f = judge(&Facts::default());
        assert_eq!(checks(&f), [("ipvs", Severity::Error)]);
        assert_eq!(report(&f, false).1, 2);
        assert_eq!(report(&[], false), ("ok: nothing to fix\n".to_string(), 0));
    }

    #[test]
    fn realserver_rules() {
        let good: Vec<(&str, &str)> = vec![
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
            ("net.ipv4.conf.eth0.arp_ignore", "0"),
            ("net.ipv4.conf.eth0.arp_announce", "0"),
        ];
        let rs = |addrs: Vec<(IpAddr, String, u8)>, s: &[(&str, &str)]| RealserverFacts {
            vip: Some("10.0.0.100".parse().unwrap()),
            addrs,
            sysctls: s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            interfaces: vec!["eth0".into()],
        };
        let on_lo = vec![("10.0.0.100".parse().unwrap(), "lo".to_string(), 32)];
        assert!(judge_realserver(&rs(on_lo.clone(), &good)).is_empty());
        // The interface's own value counts when all's is lower.
        let own = [("net.ipv4.conf.eth0.arp_ignore", "1"), ("net.ipv4.conf.eth0.arp_announce", "2")];
        assert!(judge_realserver(&rs(on_lo.clone(), &own)).is_empty());
        let f = judge_realserver(&rs(on_lo.clone(), &[]));
        assert_eq!(checks(&f), [("arp_ignore", Severity::Error), ("arp_announce", Severity::Error)]);
        assert!(f[0].fix.as_deref().unwrap().contains("net.ipv4.conf.lo.arp_announce=2"), "{f:?}");
        assert_eq!(checks(&judge_realserver(&rs(vec![], &good))), [("vip", Severity::Error)]);
        let on_eth0 = vec![("10.0.0.100".parse().unwrap(), "eth0".to_string(), 24)];
        let f = judge_realserver(&rs(on_eth0, &good));
        assert_eq!(checks(&f), [("vip", Severity::Error)]);
        assert_eq!(f[0].fix.as_deref(), Some("ip addr del 10.0.0.100/24 dev eth0 && ip addr add 10.0.0.100/32 dev lo"));
    }
}
