//! `lvsctl import`: ldirectord.cf and keepalived.conf into configuration for
//! our agents. Every directive is either translated or reported, with its
//! line number, as unsupported.

use std::fmt::Write as _;

use lvs_ipvs::{parse_addr_port, validate_scheduler, Family, ServiceKey};
use lvs_ocf::Params;
use lvs_probe::Check;
use lvs_realservers::reals;
use lvs_sync::config as sync;

/// One primitive to emit: agent, parameters (name, value), monitor interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Primitive {
    pub name: String,
    pub agent: &'static str,
    pub params: Vec<(String, String)>,
    pub monitor_s: u32,
}

/// What an import produced.
#[derive(Debug, Default)]
pub struct Imported {
    pub primitives: Vec<Primitive>,
    /// Groups: name and member primitive names, in start order.
    pub groups: Vec<(String, Vec<String>)>,
    /// `(line, text)` of directives not translated.
    pub unsupported: Vec<(usize, String)>,
    pub notes: Vec<String>,
    /// Primitives to run as clones (on every director).
    pub clones: Vec<String>,
    /// (group or VIP, VIP): the first runs where the second is, after it
    /// (a virtual server with its VIP; the VIPs of one vrrp_instance).
    pub with_vip: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ldirectord,
    Keepalived,
}

/// Which daemon's file `text` is: ldirectord's `virtual=` lines decide for
/// ldirectord, keepalived's block keywords for keepalived (a `{` inside a
/// value, `receive="[0-9]{3}"`, decides nothing).
pub fn detect(text: &str) -> Kind {
    let first_word = |l: &str| {
        let l = l.trim_start();
        l.split(|c: char| c.is_whitespace() || c == '=' || c == '{').next().unwrap_or("").to_string()
    };
    let words: Vec<String> = text.lines().map(first_word).collect();
    if words.iter().any(|w| w == "virtual" || w == "virtual6") {
        Kind::Ldirectord
    } else if words.iter().any(|w| {
        matches!(
            w.as_str(),
            "virtual_server" | "vrrp_instance" | "global_defs" | "virtual_server_group" | "vrrp_sync_group"
        )
    }) {
        Kind::Keepalived
    } else {
        Kind::Ldirectord
    }
}

/// The file's text: UTF-8, or else Latin-1 (each byte one character), as
/// the old daemons read bytes; the second element says which.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (bytes.iter().map(|b| char::from(*b)).collect(), true),
    }
}

fn resource_name(service: &str) -> String {
    // IPv6 addresses spelled out, so that 2001:db8::1 and 2001:db8:1:: differ.
    let service = match service.parse::<ServiceKey>() {
        Ok(ServiceKey::Addr { protocol, addr: std::net::IpAddr::V6(a), port }) => {
            let segs: Vec<String> = a.segments().iter().map(|x| format!("{x:x}")).collect();
            format!("{}:{}:{port}", protocol.listing_name().to_ascii_lowercase(), segs.join("_"))
        }
        _ => service.to_string(),
    };
    let mut s = String::from("lvs_");
    for c in service.chars() {
        s.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    s.trim_end_matches('_').to_string()
}

/// A virtual service block of the old configuration (ldirectord's
/// virtual=, keepalived's virtual_server) on its way to primitives.
#[derive(Debug, Default, Clone)]
struct VirtualBlock {
    /// Where the virtual service starts in the input.
    line: usize,
    service: String,
    scheduler: Option<String>,
    persistent: Option<String>,
    netmask: Option<String>,
    /// Each real with the line it came from.
    reals: Vec<(usize, String)>,
    check: Option<String>,
    check_opts: Vec<(String, String)>,
    interval: Option<String>,
    timeout: Option<String>,
    fall: Option<String>,
    quiescent: Option<bool>,
    fallback: Option<String>,
    /// The fallback's forwarding method (the sorry agent's `forward`).
    fallback_forward: Option<String>,
    fallback_command: Option<String>,
    checkport: Option<String>,
    /// The service's scheduler flags (`flags`).
    flags: Option<String>,
    /// The persistence engine (`pe`).
    pe: Option<String>,
    /// Whether stop removes the reals (realservers' `cleanstop`).
    cleanstop: Option<bool>,
    /// Reals of the same service checked otherwise (reals, check, options,
    /// timeout, fall, checkport, quiescent used), each a resource of its own.
    more_reals: Vec<VirtualBlock>,
    /// A firewall-mark service for IPv6 packets (`family=inet6`).
    inet6: bool,
}

impl Imported {
    /// Checks what would be emitted with the agents' own parsers: anything
    /// they would refuse is reported as unsupported here instead, so an
    /// import never produces configuration `lint` rejects.
    fn checked(&mut self, mut v: VirtualBlock) -> Option<VirtualBlock> {
        let parsed = if v.inet6 {
            ServiceKey::parse_with_family(&v.service, Family::Inet6)
        } else {
            v.service.parse::<ServiceKey>().or_else(|_| ServiceKey::parse_with_family(&v.service, Family::Inet6))
        };
        let key = match parsed {
            Ok(k) => k,
            Err(e) => {
                self.unsupported.push((v.line, format!("virtual service {}: {e}", v.service)));
                return None;
            }
        };
        let line = v.line;
        let family = |p: &Primitive| p.params.iter().any(|(k, val)| k == "family" && val == "inet6");
        let same = self
            .primitives
            .iter()
            .find(|p| p.agent == "service" && p.params.first().map(|(_, s)| s) == Some(&key.to_string()));
        if let Some(other) = same.filter(|p| family(p) != v.inet6) {
            // The same mark for the other family: crm and pcs refuse two
            // resources with one value of service (a unique parameter).
            self.unsupported.push((
                line,
                format!("{key} for IPv6 and IPv4 both: {} already has service={key}, which is unique", other.name),
            ));
            return None;
        }
        if same.is_some() {
            self.unsupported.push((line, format!("virtual service {key} is defined twice")));
            return None;
        }
        v.service = key.to_string();
        let unsupported = &mut self.unsupported;
        let mut seen = std::collections::BTreeSet::new();
        v.reals.retain(|(l, r)| match reals::parse(r, &key) {
            Ok(parsed) => {
                let eps: Vec<_> = parsed.iter().map(|x| x.destination.endpoint()).collect();
                if let Some(dup) = eps.iter().find(|ep| seen.contains(*ep)) {
                    unsupported.push((*l, format!("real {dup} is listed twice")));
                    return false;
                }
                seen.extend(eps);
                true
            }
            Err(e) => {
                unsupported.push((*l, format!("real {r}: {e}")));
                false
            }
        });
        let mut bad = |what: &str, e: String| unsupported.push((line, format!("{what}: {e}")));
        if let Some(s) = v.scheduler.clone() {
            if let Err(e) = validate_scheduler(&s) {
                bad("scheduler", e.to_string());
                v.scheduler = None;
            }
        }
        for (name, val) in [
            ("persistent", &mut v.persistent),
            ("check_interval", &mut v.interval),
            ("check_timeout", &mut v.timeout),
            ("fall", &mut v.fall),
            ("checkport", &mut v.checkport),
        ] {
            if let Some(x) = val.clone() {
                if x.parse::<u32>().map(|n| n == 0 && name != "persistent").unwrap_or(true) {
                    bad(name, format!("'{x}' is not a positive number"));
                    *val = None;
                }
            }
        }
        // A granularity without persistence means nothing to IPVS (ipvsadm
        // -M without -p); the service agent refuses it, so drop it here.
        if v.netmask.is_some() && v.persistent.as_deref().is_none_or(|p| p == "0") {
            self.notes.push(format!("{}: netmask without persistence has no effect; dropped", v.service));
            v.netmask = None;
        }
        if let Some(f) = v.fallback.clone() {
            if let Err(e) = parse_addr_port(&f) {
                bad("fallback", e.to_string());
                v.fallback = None;
            }
        }
        let opts: Vec<(String, String)> = v
            .check_opts
            .iter()
            .map(|(k, val)| {
                let k = match k.as_str() {
                    "http_method" => "method",
                    "status_codes" => "status",
                    "check_command" => "command",
                    other => other,
                };
                (k.to_string(), val.clone())
            })
            .flat_map(|(k, val)| match k.as_str() {
                "check_options" => val
                    .split_whitespace()
                    .filter_map(|w| w.split_once('='))
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                _ => vec![(k, val)],
            })
            .collect();
        let pairs: Vec<(&str, &str)> = opts.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        if let Err(e) = Check::from_options(v.check.as_deref().unwrap_or("connect"), &pairs) {
            bad("check", e.to_string());
            // (on UDP a connect proves nothing: ping, as ldirectord's connect does there)
            v.check = Some(if v.service.starts_with("udp:") { "ping" } else { "connect" }.into());
            v.check_opts.clear();
        }
        Some(v)
    }

    /// Adds `p` if its agent's own checks (those of validate-all) pass;
    /// otherwise reports it, with the agent's reason, as unsupported.
    fn accept(&mut self, line: usize, p: Primitive, members: &mut Vec<String>) {
        let pairs: Vec<(&str, &str)> = p.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let checked =
            crate::agents::agent(p.agent).map(|a| Params::from_pairs(a.spec, &pairs).and_then(|ps| (a.check)(&ps)));
        match checked {
            Some(Ok(())) => {
                members.push(p.name.clone());
                self.primitives.push(p);
            }
            Some(Err(e)) => self.unsupported.push((line, format!("{} (ocf:lvs:{}): {e}", p.name, p.agent))),
            None => self.unsupported.push((line, format!("{}: no agent ocf:lvs:{}", p.name, p.agent))),
        }
    }

    fn add_virtual(&mut self, v: VirtualBlock) {
        // A block whose address did not resolve was reported already.
        if v.service.is_empty() {
            return;
        }
        if v.fallback.is_none() && v.fallback_command.is_some() {
            self.unsupported.push((v.line, format!("{}: fallbackcommand without a fallback", v.service)));
        }
        let Some(mut v) = self.checked(v) else { return };
        let base = if v.inet6 { resource_name(&format!("{}_inet6", v.service)) } else { resource_name(&v.service) };
        // The service as every primitive names it.
        let mut named = vec![("service".to_string(), v.service.clone())];
        if v.inet6 {
            named.push(("family".to_string(), "inet6".to_string()));
        }
        let mut svc = named.clone();
        if let Some(s) = &v.scheduler {
            svc.push(("scheduler".into(), s.clone()));
        }
        if let Some(p) = &v.persistent {
            svc.push(("persistent".into(), p.clone()));
        }
        if let Some(n) = &v.netmask {
            svc.push(("netmask".into(), n.clone()));
        }
        if let Some(f) = &v.flags {
            svc.push(("flags".into(), f.clone()));
        }
        if let Some(pe) = &v.pe {
            svc.push(("pe".into(), pe.clone()));
        }
        let mut members = Vec::new();
        self.accept(
            v.line,
            Primitive { name: base.clone(), agent: "service", params: svc, monitor_s: 10 },
            &mut members,
        );
        if members.is_empty() {
            return;
        }
        // A firewall-mark service's reals may have no port: with no
        // checkport there is nothing to connect to, and ldirectord checks
        // nothing (the reals count as up). Say so rather than guess a port.
        let portless = v.service.starts_with("fwmark:") && v.reals.iter().any(|(_, r)| !has_port(r));
        let needs_port = !matches!(v.check.as_deref(), Some("on" | "off" | "ping"));
        if portless && needs_port && v.checkport.is_none() {
            self.notes.push(format!(
                "{}: reals without a port and no checkport: nothing to check, so check=on (always up), as \
                 ldirectord does; set checkport to check them",
                v.service
            ));
            v.check = Some("on".into());
            v.check_opts.clear();
        }
        // Reals checked differently (keepalived's per-real checkers) go
        // to a realservers resource each, in the same group.
        let more = std::mem::take(&mut v.more_reals);
        for (i, r) in std::iter::once(&v).chain(more.iter()).enumerate() {
            if r.reals.is_empty() {
                continue;
            }
            let list: Vec<&str> = r.reals.iter().map(|(_, x)| x.as_str()).collect();
            let mut p = named.clone();
            p.push(("real".to_string(), list.join(", ")));
            if let Some(c) = &r.check {
                p.push(("check".into(), c.clone()));
            }
            p.extend(r.check_opts.iter().cloned());
            for (k, val) in [
                ("check_interval", &v.interval),
                ("check_timeout", &r.timeout),
                ("fall", &r.fall),
                ("checkport", &r.checkport),
            ] {
                if let Some(val) = val {
                    p.push((k.into(), val.clone()));
                }
            }
            if let Some(q) = r.quiescent.or(v.quiescent) {
                p.push(("quiescent".into(), q.to_string()));
            }
            if let Some(c) = v.cleanstop {
                p.push(("cleanstop".into(), c.to_string()));
            }
            let name = if i == 0 { format!("{base}_reals") } else { format!("{base}_reals{}", i + 1) };
            let line = r.reals.first().map(|(l, _)| *l).unwrap_or(v.line);
            self.accept(line, Primitive { name, agent: "realservers", params: p, monitor_s: 10 }, &mut members);
        }
        if let Some(f) = &v.fallback {
            let mut p = named.clone();
            p.push(("fallback".to_string(), f.clone()));
            if let Some(m) = &v.fallback_forward {
                p.push(("forward".into(), m.clone()));
            }
            if let Some(c) = &v.fallback_command {
                p.push(("fallback_command".into(), c.clone()));
            }
            let name = format!("{base}_sorry");
            self.accept(v.line, Primitive { name, agent: "sorry", params: p, monitor_s: 10 }, &mut members);
        }
        self.groups.push((format!("{base}_group"), members));
    }
}

/// Whether a real as the agent reads it (`ADDRESS[:PORT] ...`) names a port.
fn has_port(real: &str) -> bool {
    let ep = real.split_whitespace().next().unwrap_or("");
    match ep.strip_prefix('[') {
        Some(rest) => rest.split_once(']').is_some_and(|(_, port)| port.starts_with(':')),
        None => ep.contains(':') && ep.parse::<std::net::IpAddr>().is_err(),
    }
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v).to_string()
}

/// ldirectord's service for a virtual's port when none is given
/// (`ld_port_to_service`); "none" checks nothing.
fn ldirectord_service_of_port(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

/// A port as ldirectord takes it: a number, or a service name looked up in
/// /etc/services at import time (as getservbyname would on the director).
fn resolve_port(port: &str, notes: &mut Vec<String>) -> Option<u16> {
    if let Ok(n) = port.parse::<u16>() {
        return Some(n);
    }
    let services = std::fs::read_to_string("/etc/services").ok()?;
    let n = services.lines().find_map(|l| {
        let mut w = l.split('#').next().unwrap_or("").split_whitespace();
        let (name, num) = (w.next()?, w.next()?);
        let aliases: Vec<&str> = w.collect();
        (name == port || aliases.contains(&port)).then(|| num.split('/').next()?.parse::<u16>().ok()).flatten()
    })?;
    notes.push(format!("port {port} is {n} (/etc/services on this machine)"));
    Some(n)
}

/// An address as ldirectord takes it: an IP, or a host name resolved at
/// import time (ldirectord resolves it when it reads its file).
fn resolve_host(host: &str, notes: &mut Vec<String>) -> Option<String> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Some(host.to_string());
    }
    // Offline (and the fuzz tests, whose names must not reach a resolver):
    // names are reported, not looked up.
    if std::env::var_os("LVSCTL_NO_RESOLVE").is_some() {
        return None;
    }
    use std::net::ToSocketAddrs;
    let addr = (host, 0).to_socket_addrs().ok()?.map(|a| a.ip()).find(|ip| ip.is_ipv4())?;
    notes.push(format!("host {host} is {addr} (resolved at import time)"));
    Some(addr.to_string())
}

/// `HOST[:PORT]` or `[V6][:PORT]` split, the port resolved; None when the
/// host or port does not resolve.
fn ldirectord_endpoint(ep: &str, notes: &mut Vec<String>) -> Option<(String, Option<u16>)> {
    let (host, port) = match ep.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            (h.to_string(), after.strip_prefix(':').map(str::to_string))
        }
        None => match ep.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (ep.to_string(), None),
        },
    };
    let host = if host.contains("->") { host } else { resolve_host(&host, notes)? };
    let port = match port {
        Some(p) => Some(resolve_port(&p, notes)?),
        None => None,
    };
    Some((host, port))
}

fn join_ep(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => fmt_ep(host, &p.to_string()),
        None if host.contains(':') => format!("[{host}]"),
        None => host.to_string(),
    }
}

/// ldirectord's `real=HOST[:PORT] METHOD [WEIGHT] ["REQUEST"[, ]"RECEIVE"]`
/// as our `real` entry: the request gets the leading "/" ldirectord gives
/// it, the comma form becomes ours.
fn ldirectord_real(text: &str, notes: &mut Vec<String>) -> Result<String, String> {
    let (head, quoted) = match text.find('"') {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let mut words = head.split_whitespace();
    let ep = words.next().ok_or("no address")?;
    let (host, port) = ldirectord_endpoint(ep, notes).ok_or_else(|| format!("{ep} does not resolve"))?;
    let mut out = join_ep(&host, port);
    for w in words {
        out.push(' ');
        out.push_str(w);
    }
    if let Some(q) = quoted {
        let strings: Vec<&str> = q.split('"').collect();
        // "a" "b" -> ["", a, " ", b, rest]; "a","b" -> ["", a, ",", b, rest]
        let (req, sep, recv, rest) = match strings.as_slice() {
            [_, req, sep, recv, rest @ ..] => (*req, *sep, *recv, rest.join("\"")),
            _ => return Err(format!("{q}: expected \"REQUEST\" \"RECEIVE\"")),
        };
        if !matches!(sep.trim(), "" | ",") {
            return Err(format!("{q}: expected \"REQUEST\" \"RECEIVE\""));
        }
        let req = if req.starts_with('/') { req.to_string() } else { format!("/{req}") };
        out.push_str(&format!(" \"{req}\" \"{recv}\"{}", rest.trim_end()));
    }
    Ok(out)
}

/// Our check for ldirectord's checktype and service (`service` already
/// defaulted from the port), on a UDP service or not.
fn ldirectord_check(checktype: &str, service: &str, udp: bool, notes: &mut Vec<String>, what: &str) -> Option<String> {
    let negotiate = |notes: &mut Vec<String>| match service {
        "none" => {
            notes.push(format!(
                "{what}: ldirectord negotiates nothing with service none: check=on (reals always up), as it does"
            ));
            Some("on".to_string())
        }
        s if lvs_probe::checks::SERVICES.contains(&s) || s == "http" || s == "https" => Some(s.to_string()),
        _ => None,
    };
    match checktype {
        // A "connect" on UDP is an ICMP ping in ldirectord.
        "connect" if udp => Some("ping".into()),
        "connect" => Some("connect".into()),
        "ping" => Some("ping".into()),
        "on" => Some("on".into()),
        "off" => Some("off".into()),
        "external" | "external-perl" => Some("external".into()),
        "negotiate" => negotiate(notes),
        n if n.parse::<u32>().is_ok() => {
            notes.push(format!(
                "{what}: checktype={n} connects every interval and negotiates every {n}th; translated as the \
                 negotiate check every interval"
            ));
            negotiate(notes)
        }
        _ => None,
    }
}

/// One ldirectord virtual block being read.
struct LdVirtual {
    v: VirtualBlock,
    port: Option<u16>,
    checktype: Option<String>,
    service: Option<String>,
    checktimeout: Option<String>,
    negotiatetimeout: Option<String>,
}

pub fn ldirectord(text: &str) -> Imported {
    let mut out = Imported::default();
    out.notes.push("ldirectord.cf has no virtual IP: add an ocf:lvs:vip primitive for each virtual address".into());
    let mut globals: Vec<(usize, String, String)> = Vec::new();
    let mut current: Option<LdVirtual> = None;
    let finish = |out: &mut Imported, cur: Option<LdVirtual>, g: &[(usize, String, String)]| {
        let Some(mut cur) = cur else { return };
        let global = |k: &str| g.iter().rev().find(|(_, gk, _)| gk == k).map(|(_, _, gv)| gv.clone());
        let v = &mut cur.v;
        // ldirectord's defaults where the file says nothing.
        v.interval = v.interval.take().or_else(|| global("checkinterval")).or(Some("10".into()));
        v.fall = v.fall.take().or_else(|| global("failurecount"));
        if v.quiescent.is_none() {
            v.quiescent = Some(global("quiescent").is_some_and(|q| q == "yes"));
        }
        if v.cleanstop.is_none() {
            v.cleanstop = global("cleanstop").map(|c| c != "no");
        }
        if v.scheduler.is_none() {
            v.scheduler = Some("wrr".into());
        }
        if v.fallback.is_none() {
            if let Some(f) = global("fallback") {
                let mut w = f.split_whitespace();
                let ep = w.next().unwrap_or("");
                match ldirectord_endpoint(ep, &mut out.notes) {
                    // A fwmark service (port 0) finds no global fallback in
                    // ldirectord: it keeps them per protocol.
                    Some(_) if v.service.starts_with("fwmark:") => {}
                    Some((host, port)) => {
                        v.fallback = Some(join_ep(&host, port.or(cur.port).filter(|p| *p != 0)));
                        v.fallback_forward = Some(w.next().unwrap_or("gate").to_string());
                    }
                    None => out.unsupported.push((v.line, format!("fallback {f}: does not resolve"))),
                }
            }
        }
        if v.fallback_command.is_none() && v.fallback.is_some() {
            v.fallback_command = global("fallbackcommand");
        }
        let udp = v.service.starts_with("udp:");
        let checktype = cur.checktype.clone().unwrap_or_else(|| "negotiate".into()).to_ascii_lowercase();
        let service = cur
            .service
            .clone()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_else(|| cur.port.map(ldirectord_service_of_port).unwrap_or("none").to_string());
        let what = v.service.clone();
        v.check = ldirectord_check(&checktype, &service, udp, &mut out.notes, &what);
        if v.check.is_none() {
            out.notes
                .push(format!("{what}: checktype {checktype} with service {service} has no equivalent; using connect"));
            v.check = Some(if udp { "ping" } else { "connect" }.into());
        }
        // ldirectord asks http for a relative path ("test.html") as "/test.html".
        if matches!(v.check.as_deref(), Some("http" | "https")) {
            for (k, val) in v.check_opts.iter_mut() {
                if k == "request" && !val.starts_with('/') {
                    *val = format!("/{val}");
                }
            }
        }
        // Negotiate checks take negotiatetimeout (30 s by default), the
        // others checktimeout (5 s), each falling back on the other.
        let negotiating = !matches!(v.check.as_deref(), Some("connect" | "ping" | "on" | "off" | "external"));
        let (first, second) = if negotiating {
            (("negotiatetimeout", &cur.negotiatetimeout), ("checktimeout", &cur.checktimeout))
        } else {
            (("checktimeout", &cur.checktimeout), ("negotiatetimeout", &cur.negotiatetimeout))
        };
        v.timeout = first
            .1
            .clone()
            .or_else(|| second.1.clone())
            .or_else(|| global(first.0))
            .or_else(|| global(second.0))
            .or(Some(if negotiating { "30" } else { "5" }.into()));
        out.add_virtual(cur.v);
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        // ldirectord drops everything from the first '#' (inside quotes too).
        let line = raw.split('#').next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let indented = raw.starts_with(' ') || raw.starts_with('\t');
        let Some((k, v)) = line.trim().split_once('=') else {
            out.unsupported.push((n, raw.trim().to_string()));
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), unquote(v));
        if k == "virtual" || k == "virtual6" {
            let prev = current.take();
            finish(&mut out, prev, &globals);
            let mut cur = LdVirtual {
                v: VirtualBlock { line: n, ..Default::default() },
                port: None,
                checktype: None,
                service: None,
                checktimeout: None,
                negotiatetimeout: None,
            };
            if v.chars().all(|c| c.is_ascii_digit()) {
                // virtual6=N: the mark applies to IPv6 packets.
                cur.v.service = format!("fwmark:{v}");
                cur.v.inet6 = k == "virtual6";
            } else {
                match ldirectord_endpoint(&v, &mut out.notes) {
                    Some((host, Some(port))) => {
                        // Port 53 is UDP unless the file says otherwise.
                        let proto = if port == 53 { "udp" } else { "tcp" };
                        cur.v.service = format!("{proto}:{}", fmt_ep(&host, &port.to_string()));
                        cur.port = Some(port);
                    }
                    _ => {
                        out.unsupported.push((n, format!("{}: no address and port that resolve", raw.trim())));
                        // Its lines must not land in the previous block.
                        cur.v.service = String::new();
                    }
                }
            }
            current = Some(cur);
            continue;
        }
        match (&mut current, indented) {
            (Some(cur), true) => {
                let virt = &mut cur.v;
                match k.as_str() {
                    "real" | "real6" => match ldirectord_real(&v, &mut out.notes) {
                        Ok(r) => virt.reals.push((n, r)),
                        Err(e) => out.unsupported.push((n, format!("{}: {e}", raw.trim()))),
                    },
                    "scheduler" => virt.scheduler = Some(v),
                    "schedflags" => virt.flags = Some(v),
                    "persistent" => virt.persistent = Some(v),
                    "netmask" => virt.netmask = Some(v),
                    "protocol" => match v.as_str() {
                        "tcp" | "udp" | "sctp" => {
                            if let Some(rest) = virt.service.split_once(':').map(|(_, r)| r.to_string()) {
                                if !virt.service.starts_with("fwmark:") {
                                    virt.service = format!("{v}:{rest}");
                                }
                            }
                        }
                        "fwm" => {}
                        _ => out.unsupported.push((n, raw.trim().to_string())),
                    },
                    "checktype" => cur.checktype = Some(v),
                    "service" => cur.service = Some(v),
                    "request" => virt.check_opts.push(("request".into(), v)),
                    "receive" => virt.check_opts.push(("receive".into(), v)),
                    "virtualhost" => virt.check_opts.push(("virtualhost".into(), v)),
                    "httpmethod" => virt.check_opts.push(("http_method".into(), v.to_ascii_uppercase())),
                    "checkport" => virt.checkport = Some(v),
                    "checkinterval" => virt.interval = Some(v),
                    "checktimeout" => cur.checktimeout = Some(v),
                    "negotiatetimeout" => cur.negotiatetimeout = Some(v),
                    "failurecount" => virt.fall = Some(v),
                    "quiescent" => virt.quiescent = Some(v == "yes"),
                    "cleanstop" => virt.cleanstop = Some(v != "no"),
                    "fallback" | "fallback6" => {
                        let mut w = v.split_whitespace();
                        let ep = w.next().unwrap_or("");
                        match ldirectord_endpoint(ep, &mut out.notes) {
                            Some((host, port)) => {
                                virt.fallback = Some(join_ep(&host, port.or(cur.port).filter(|p| *p != 0)));
                                virt.fallback_forward = Some(w.next().unwrap_or("gate").to_string());
                            }
                            None => out.unsupported.push((n, format!("{}: does not resolve", raw.trim()))),
                        }
                    }
                    "fallbackcommand" => virt.fallback_command = Some(v),
                    "checkcommand" => virt.check_opts.push(("check_command".into(), v)),
                    // Only ever ldirectord's number of ping attempts.
                    "checkcount" => out.notes.push(format!("line {n}: checkcount (ping attempts) dropped")),
                    _ => out.unsupported.push((n, raw.trim().to_string())),
                }
            }
            _ => match k.as_str() {
                "checktimeout" | "negotiatetimeout" | "checkinterval" | "failurecount" | "quiescent" | "fallback"
                | "fallbackcommand" | "cleanstop" => globals.push((n, k, v)),
                // Pacemaker owns logging, reloads and the daemon's life.
                "logfile" | "autoreload" | "supervised" | "fork" => {
                    out.notes.push(format!("line {n}: {k} is the cluster manager's business; dropped"))
                }
                _ => out.unsupported.push((n, raw.trim().to_string())),
            },
        }
    }
    let prev = current.take();
    finish(&mut out, prev, &globals);
    out
}

/// A keepalived line without its comment: `#` or `!` starts one, except
/// inside double quotes or after a backslash (keepalived's `decomment`).
fn decomment(line: &str) -> String {
    let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                out.push(c);
                continue;
            }
            '\\' if !quoted => {
                escaped = true;
                continue;
            }
            '"' => quoted = !quoted,
            '#' | '!' if !quoted => break,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// keepalived.conf's tokens: words, braces, with their line numbers.
fn tokens(text: &str) -> Vec<(usize, String)> {
    let mut t = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = decomment(line);
        let mut rest = line.as_str();
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            rest = &rest[start..];
            if let Some(r) = rest.strip_prefix('"') {
                let end = r.find('"').unwrap_or(r.len());
                t.push((i + 1, r[..end].to_string()));
                rest = r.get(end + 1..).unwrap_or("");
            } else if rest.starts_with('{') || rest.starts_with('}') {
                t.push((i + 1, rest[..1].to_string()));
                rest = &rest[1..];
            } else {
                let end = rest.find(|c: char| c.is_whitespace() || c == '{' || c == '}').unwrap_or(rest.len());
                t.push((i + 1, rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
    }
    t
}

/// A parsed keepalived block tree.
#[derive(Debug, Default)]
struct Node {
    line: usize,
    words: Vec<String>,
    children: Vec<Node>,
}

fn tree(toks: &[(usize, String)], pos: &mut usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut cur: Option<Node> = None;
    let mut last_line = 0;
    while *pos < toks.len() {
        let (line, w) = &toks[*pos];
        *pos += 1;
        match w.as_str() {
            "{" => {
                let mut n = cur.take().unwrap_or(Node { line: *line, ..Default::default() });
                n.children = tree(toks, pos);
                nodes.push(n);
            }
            "}" => break,
            _ => {
                if cur.is_some() && *line != last_line {
                    nodes.extend(cur.take());
                }
                cur.get_or_insert(Node { line: *line, ..Default::default() }).words.push(w.clone());
            }
        }
        last_line = *line;
    }
    nodes.extend(cur);
    nodes
}

fn fmt_ep(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

pub fn keepalived(text: &str) -> Imported {
    let mut out = Imported::default();
    let toks = tokens(text);
    let mut pos = 0;
    let mut roots = Vec::new();
    while pos < toks.len() {
        roots.extend(tree(&toks, &mut pos));
    }
    let mut vips = Vec::new();
    // VRRP instance name -> virtual_router_id: keepalived's default sync ID.
    let vrids: Vec<(String, String)> = roots
        .iter()
        .filter(|n| n.words.first().map(String::as_str) == Some("vrrp_instance"))
        .filter_map(|n| {
            let name = n.words.get(1)?.clone();
            let id = n.children.iter().find_map(|c| match c.words.as_slice() {
                [k, v] if k == "virtual_router_id" => Some(v.clone()),
                _ => None,
            })?;
            Some((name, id))
        })
        .collect();
    for n in &roots {
        match n.words.first().map(String::as_str) {
            Some("virtual_server") => out.add_virtual_server(n),
            Some("vrrp_instance") => {
                let vrid = n.children.iter().find_map(|c| match c.words.as_slice() {
                    [k, v] if k == "virtual_router_id" => Some(v.clone()),
                    _ => None,
                });
                let interface = n.children.iter().find_map(|c| match c.words.as_slice() {
                    [k, v] if k == "interface" => Some(v.clone()),
                    _ => None,
                });
                for c in &n.children {
                    match c.words.first().map(String::as_str) {
                        Some("virtual_ipaddress") => {
                            for a in &c.children {
                                vips.push((a.line, a.words.clone(), interface.clone(), n.words.get(1).cloned()));
                            }
                        }
                        // The older form: the sync ID is the instance's VRID.
                        Some("lvs_sync_daemon_interface") => match c.words.as_slice() {
                            [_, ifn] => out.add_sync(c.line, ifn, vrid.as_deref(), &[], &c.words.join(" ")),
                            _ => out.unsupported.push((c.line, c.words.join(" "))),
                        },
                        // VRRP's election is the cluster manager's job here.
                        Some(
                            "state" | "priority" | "virtual_router_id" | "advert_int" | "interface" | "authentication",
                        ) => {}
                        _ => out.unsupported.push((c.line, c.words.join(" "))),
                    }
                }
                out.notes
                    .push(format!("line {}: vrrp_instance: Pacemaker decides which director holds the VIP", n.line));
            }
            Some("global_defs") => {
                let mut other = false;
                for c in &n.children {
                    let w: Vec<&str> = c.words.iter().map(String::as_str).collect();
                    match w.as_slice() {
                        ["lvs_sync_daemon", ifn, instance, opts @ ..] => {
                            let vrid = vrids.iter().find(|(name, _)| name == instance).map(|(_, id)| id.as_str());
                            if vrid.is_none() && !opts.contains(&"id") {
                                out.notes.push(format!(
                                    "line {}: vrrp_instance {instance} not found: sync ID 0 (backups take every sync ID)",
                                    c.line
                                ));
                            }
                            out.add_sync(c.line, ifn, vrid, opts, &c.words.join(" "));
                        }
                        ["lvs_sync_daemon_interface", ifn] => out.add_sync(c.line, ifn, None, &[], &c.words.join(" ")),
                        [k, ..] if k.starts_with("lvs_sync_daemon") => {
                            out.unsupported.push((c.line, c.words.join(" ")))
                        }
                        _ => other = true,
                    }
                }
                if other || n.children.is_empty() {
                    out.notes.push(format!("line {}: global_defs has nothing else to translate", n.line));
                }
            }
            _ => out.unsupported.push((n.line, n.words.join(" "))),
        }
    }
    // The first VIP of each vrrp_instance: the others go where it goes.
    let mut first_of_instance: Vec<(Option<String>, String)> = Vec::new();
    for (line, words, interface, instance) in vips {
        let Some(addr) = words.first() else { continue };
        let (ip, prefix) =
            addr.split_once('/').map(|(a, p)| (a.to_string(), Some(p.to_string()))).unwrap_or((addr.clone(), None));
        if ip.parse::<std::net::IpAddr>().is_err() {
            out.unsupported.push((line, format!("virtual_ipaddress {}: not an address", words.join(" "))));
            continue;
        }
        let mut p = vec![("ip".to_string(), ip.clone())];
        match prefix {
            Some(pr) if pr.parse::<u8>().is_ok() => p.push(("cidr_netmask".into(), pr)),
            Some(pr) => out.unsupported.push((line, format!("prefix '{pr}' of {ip}"))),
            // keepalived adds an address without a prefix as a host route.
            None => p.push(("cidr_netmask".into(), if ip.contains(':') { "128" } else { "32" }.into())),
        }
        if out.primitives.iter().any(|x| x.agent == "vip" && x.params.first() == p.first()) {
            out.unsupported.push((line, format!("{ip} is listed twice")));
            continue;
        }
        // The instance's interface, unless the address names its own.
        if let Some(ifn) = &interface {
            p.push(("nic".into(), ifn.clone()));
        }
        let mut it = words.iter().skip(1);
        while let Some(w) = it.next() {
            match (w.as_str(), it.next()) {
                ("dev", Some(d)) => {
                    p.retain(|(k, _)| k != "nic");
                    p.push(("nic".into(), d.clone()))
                }
                ("label", Some(l)) => p.push(("iflabel".into(), l.split(':').next_back().unwrap_or(l).to_string())),
                _ => out.unsupported.push((line, words.join(" "))),
            }
        }
        let name = resource_name(&format!("vip_{ip}"));
        match first_of_instance.iter().find(|(i, _)| *i == instance) {
            Some((_, first)) => out.with_vip.push((name.clone(), first.clone())),
            None => first_of_instance.push((instance, name.clone())),
        }
        out.primitives.insert(0, Primitive { name, agent: "vip", params: p, monitor_s: 10 });
    }
    // A virtual server on a VIP runs where keepalived's VRRP put that VIP:
    // with it, and after it.
    for (group, members) in &out.groups {
        let addr = out
            .primitives
            .iter()
            .find(|p| p.agent == "service" && members.contains(&p.name))
            .and_then(|p| p.params.first())
            .and_then(|(_, svc)| svc.parse::<ServiceKey>().ok())
            .and_then(|k| match k {
                ServiceKey::Addr { addr, .. } => Some(addr),
                ServiceKey::FwMark { .. } => None,
            });
        let vip = out.primitives.iter().find(|p| {
            p.agent == "vip" && p.params.first().and_then(|(_, ip)| ip.parse::<std::net::IpAddr>().ok()) == addr
        });
        if let (Some(vip), Some(_)) = (vip, addr) {
            out.with_vip.push((group.clone(), vip.name.clone()));
        }
    }
    out
}

impl Imported {
    /// keepalived's `lvs_sync_daemon IF INSTANCE [id N] [maxlen N] [port N]
    /// [ttl N] [group ADDR]` (or the older `lvs_sync_daemon_interface IF`)
    /// as an `ocf:lvs:sync` clone, checked by the agent's own validation.
    fn add_sync(&mut self, line: usize, ifn: &str, vrid: Option<&str>, opts: &[&str], text: &str) {
        if self.primitives.iter().any(|p| p.agent == "sync") {
            self.unsupported.push((line, format!("{text}: a second sync daemon configuration")));
            return;
        }
        let mut p = vec![("interface".to_string(), ifn.to_string())];
        let mut syncid = vrid.map(str::to_string);
        let mut it = opts.iter();
        while let Some(k) = it.next() {
            let name = match *k {
                "id" => "syncid",
                "maxlen" => "maxlen",
                "port" => "mcast_port",
                "ttl" => "mcast_ttl",
                "group" => "mcast_group",
                _ => {
                    self.unsupported.push((line, format!("{text}: '{k}'")));
                    return;
                }
            };
            let Some(v) = it.next() else {
                self.unsupported.push((line, format!("{text}: '{k}' without a value")));
                return;
            };
            if name == "syncid" {
                syncid = Some(v.to_string());
            } else {
                p.push((name.to_string(), v.to_string()));
            }
        }
        if let Some(id) = syncid {
            p.insert(1, ("syncid".to_string(), id));
        }
        let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Err(e) = Params::from_pairs(&sync::SPEC, &pairs).and_then(|params| sync::Config::from_params(&params)) {
            self.unsupported.push((line, format!("{text}: {e}")));
            return;
        }
        self.notes.push(format!(
            "line {line}: keepalived swaps the master and backup sync daemons with the VRRP state; \
             ocf:lvs:sync runs both (role=both) on every director as a clone: the active one sends"
        ));
        self.primitives.push(Primitive { name: "lvs_sync".into(), agent: "sync", params: p, monitor_s: 10 });
        self.clones.push("lvs_sync".into());
    }

    fn add_virtual_server(&mut self, n: &Node) {
        let w: Vec<&str> = n.words.iter().map(String::as_str).collect();
        let mut v = VirtualBlock { line: n.line, ..Default::default() };
        let mut protocol = "tcp".to_string();
        let (service_base, vport) = match w.as_slice() {
            [_, "fwmark", mark] => (format!("fwmark:{mark}"), None),
            [_, host, port] => match resolve_host(host, &mut self.notes) {
                Some(ip) => (fmt_ep(&ip, port), Some(port.to_string())),
                None => {
                    self.unsupported.push((n.line, format!("{}: {host} does not resolve", n.words.join(" "))));
                    return;
                }
            },
            _ => {
                self.unsupported.push((n.line, n.words.join(" ")));
                return;
            }
        };
        // The method applies wherever lb_kind stands, NAT when none does.
        let mut method: Option<&str> = None;
        let parse_method = |k: &str| match k {
            "NAT" => Some("masq"),
            "DR" => Some("gate"),
            "TUN" => Some("ipip"),
            _ => None,
        };
        // Each real with its method, weight and how it is checked.
        struct KaReal<'m> {
            line: usize,
            ep: String,
            method: Option<&'m str>,
            weight: String,
            checked: VirtualBlock,
        }
        let mut reals: Vec<KaReal> = Vec::new();
        let mut sorry: Option<(String, Option<String>)> = None;
        let mut sorry_method: Option<&str> = None;
        for c in &n.children {
            let cw: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match cw.as_slice() {
                ["lb_algo" | "lvs_sched", s] => v.scheduler = Some(s.to_string()),
                ["lb_kind" | "lvs_method", k, ..] => match parse_method(k) {
                    Some(m) => method = Some(m),
                    None => {
                        self.unsupported.push((c.line, format!("{}: keepalived takes it for NAT", c.words.join(" "))))
                    }
                },
                ["protocol", p] => protocol = p.to_ascii_lowercase(),
                ["persistence_timeout", t] => v.persistent = Some(t.to_string()),
                ["persistence_timeout"] => v.persistent = Some("360".into()),
                ["persistence_granularity", g] => v.netmask = Some(g.to_string()),
                ["delay_loop", d] => v.interval = Some(d.to_string()),
                ["inhibit_on_failure", ..] => v.quiescent = Some(true),
                ["ops"] => v.flags = Some("ops".into()),
                ["persistence_engine", pe] => v.pe = Some(pe.to_string()),
                ["sorry_server", ip] => sorry = Some((ip.to_string(), None)),
                ["sorry_server", ip, port] => sorry = Some((ip.to_string(), Some(port.to_string()))),
                ["sorry_server_lvs_method", k, ..] => match parse_method(k) {
                    Some(m) => sorry_method = Some(m),
                    None => self.unsupported.push((c.line, c.words.join(" "))),
                },
                ["real_server", host, port] => {
                    // keepalived resolves names when it reads its file.
                    let Some(ip) = resolve_host(host, &mut self.notes) else {
                        self.unsupported.push((c.line, format!("{}: {host} does not resolve", c.words.join(" "))));
                        continue;
                    };
                    let mut r = KaReal {
                        line: c.line,
                        ep: fmt_ep(&ip, port),
                        method: None,
                        weight: "1".into(),
                        checked: VirtualBlock::default(),
                    };
                    let mut checkers = 0;
                    for rc in &c.children {
                        let rw: Vec<&str> = rc.words.iter().map(String::as_str).collect();
                        match rw.as_slice() {
                            ["weight", x] => r.weight = x.to_string(),
                            ["inhibit_on_failure"] | ["inhibit_on_failure", "true" | "yes" | "on"] => {
                                r.checked.quiescent = Some(true)
                            }
                            ["inhibit_on_failure", _] => r.checked.quiescent = Some(false),
                            ["lvs_method", k, ..] => r.method = parse_method(k),
                            [kind @ ("TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "PING_CHECK"
                            | "UDP_CHECK" | "SMTP_CHECK" | "DNS_CHECK"), ..] => {
                                checkers += 1;
                                if checkers > 1 {
                                    self.unsupported.push((rc.line, format!("{kind}: a second checker of one real")));
                                    continue;
                                }
                                let (check, opts) = self.check_of(kind, rc, &mut r.checked);
                                r.checked.check = Some(check);
                                r.checked.check_opts = opts;
                            }
                            _ => self.unsupported.push((rc.line, rc.words.join(" "))),
                        }
                    }
                    // No checker: always up in keepalived.
                    if checkers == 0 {
                        r.checked.check = Some("on".into());
                    }
                    reals.push(r);
                }
                _ => self.unsupported.push((c.line, c.words.join(" "))),
            }
        }
        let method = method.unwrap_or("masq");
        // Reals checked alike share a resource; the first such set is the
        // service's `_reals`, the others `_reals2`, `_reals3`...
        let mut sets: Vec<VirtualBlock> = Vec::new();
        for r in reals {
            let real = (r.line, format!("{} {} {}", r.ep, r.method.unwrap_or(method), r.weight));
            let same = |s: &VirtualBlock| {
                (&s.check, &s.check_opts, &s.timeout, &s.fall, &s.checkport, s.quiescent)
                    == (
                        &r.checked.check,
                        &r.checked.check_opts,
                        &r.checked.timeout,
                        &r.checked.fall,
                        &r.checked.checkport,
                        r.checked.quiescent,
                    )
            };
            match sets.iter_mut().find(|s| same(s)) {
                Some(s) => s.reals.push(real),
                None => {
                    let mut s = r.checked;
                    s.reals.push(real);
                    sets.push(s);
                }
            }
        }
        let with_checker = sets.iter().filter(|s| s.check.as_deref() != Some("on")).count();
        if sets.len() > 1 {
            self.notes.push(format!(
                "line {}: reals checked in {} different ways: one realservers resource each",
                n.line,
                sets.len()
            ));
        }
        let mut sets = sets.into_iter();
        if let Some(first) = sets.next() {
            v.reals = first.reals;
            v.check = first.check;
            v.check_opts = first.check_opts;
            v.timeout = first.timeout;
            v.fall = first.fall;
            v.checkport = first.checkport;
            if first.quiescent.is_some() {
                v.quiescent = first.quiescent;
            }
        }
        v.more_reals = sets.collect();
        // keepalived checks every 60 s unless delay_loop says otherwise.
        if v.interval.is_none() && with_checker > 0 {
            v.interval = Some("60".into());
        }
        if v.netmask.is_some() && v.persistent.is_none() {
            // persistence_granularity alone turns persistence on (360 s).
            v.persistent = Some("360".into());
        }
        if let Some((ip, port)) = sorry {
            let port = if service_base.starts_with("fwmark:") { None } else { port.or(vport.clone()) };
            v.fallback = Some(match port {
                Some(p) => fmt_ep(&ip, &p),
                None => ip,
            });
            v.fallback_forward = Some(sorry_method.unwrap_or(method).to_string());
        }
        v.service =
            if service_base.starts_with("fwmark:") { service_base } else { format!("{protocol}:{service_base}") };
        if v.quiescent.is_none() {
            v.quiescent = Some(false);
        }
        self.add_virtual(v);
    }

    /// A keepalived checker block to our check and its options.
    fn check_of(&mut self, kind: &str, n: &Node, v: &mut VirtualBlock) -> (String, Vec<(String, String)>) {
        let check = match kind {
            "TCP_CHECK" => "connect",
            "HTTP_GET" => "http",
            "SSL_GET" => "https",
            "PING_CHECK" => "ping",
            "UDP_CHECK" => "udp",
            "SMTP_CHECK" => "smtp",
            "DNS_CHECK" => "dns",
            _ => "external",
        };
        let mut opts = Vec::new();
        let mut urls = 0;
        for c in &n.children {
            let cw: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match cw.as_slice() {
                ["connect_timeout", t] => v.timeout = Some(t.to_string()),
                ["connect_port", p] => v.checkport = Some(p.to_string()),
                // retry N: out after N+1 failures in a row (our fall is at most 100).
                ["retry" | "nb_get_retry", r] => match r.parse::<u32>() {
                    Ok(r) if r >= 100 => {
                        self.notes.push(format!("line {}: retry {r}: fall=100, our most", c.line));
                        v.fall = Some("100".into());
                    }
                    Ok(r) => v.fall = Some((r + 1).to_string()),
                    Err(_) => v.fall = Some(r.to_string()),
                },
                // We check again at the next interval, not sooner.
                ["delay_before_retry", d] => self.notes.push(format!(
                    "line {}: delay_before_retry {d}: a failed real is checked again at the next interval",
                    c.line
                )),
                ["misc_path", rest @ ..] => opts.push(("check_command".to_string(), rest.join(" "))),
                ["misc_timeout", t] => v.timeout = Some(t.to_string()),
                ["url"] => {
                    urls += 1;
                    if urls > 1 {
                        self.unsupported.push((c.line, "a second url: one request per check".into()));
                        continue;
                    }
                    for u in &c.children {
                        let uw: Vec<&str> = u.words.iter().map(String::as_str).collect();
                        match uw.as_slice() {
                            ["path", p] => opts.push(("request".into(), p.to_string())),
                            // One code, a range, or a list of both.
                            ["status_code", codes @ ..] if !codes.is_empty() => {
                                opts.push(("status_codes".into(), codes.join(",")))
                            }
                            ["digest", d] => opts.push(("check_options".into(), format!("digest={d}"))),
                            _ => self.unsupported.push((u.line, u.words.join(" "))),
                        }
                    }
                }
                ["virtualhost", h] => opts.push(("virtualhost".into(), h.to_string())),
                // DNS_CHECK: the name asked and its type.
                ["name", q] if kind == "DNS_CHECK" => opts.push(("request".into(), q.to_string())),
                ["type", t] if kind == "DNS_CHECK" => opts.push(("check_options".into(), format!("type={t}"))),
                // UDP_CHECK: an answer is required.
                ["require_reply", ..] if kind == "UDP_CHECK" => opts.push(("check_options".into(), "reply=yes".into())),
                _ => self.unsupported.push((c.line, c.words.join(" "))),
            }
        }
        // retry's default: 1 (0 for MISC_CHECK, 3 for DNS_CHECK), so two
        // failures in a row.
        if v.fall.is_none() {
            v.fall = Some(
                match kind {
                    "MISC_CHECK" => "1",
                    "DNS_CHECK" => "4",
                    _ => "2",
                }
                .into(),
            );
        }
        (check.to_string(), opts)
    }
}

/// A value as one word. crm's own parser reads double quotes; pcs lines
/// are run by a shell, where `$(...)`, backquotes and `$VAR` expand inside
/// double quotes, so for pcs only single quotes are used (a `'` inside
/// becomes `'\''`).
fn quote(v: &str, pcs: bool) -> String {
    if v.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-[],=".contains(c)) && !v.is_empty() {
        v.to_string()
    } else if pcs {
        format!("'{}'", v.replace('\'', r"'\''"))
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

pub fn render(im: &Imported, pcs: bool, source: &str) -> String {
    let mut s = format!("# imported from {source} by lvsctl import\n");
    for n in &im.notes {
        let _ = writeln!(s, "# note: {n}");
    }
    for (line, text) in &im.unsupported {
        let _ = writeln!(s, "# unsupported (line {line}): {text}");
    }
    let group_of = |name: &str| im.groups.iter().find(|(_, m)| m.iter().any(|x| x == name)).map(|(g, _)| g.clone());
    for p in &im.primitives {
        let params: Vec<String> = p.params.iter().map(|(k, v)| format!("{k}={}", quote(v, pcs))).collect();
        if pcs {
            let mut group = group_of(&p.name).map(|g| format!(" --group {g}")).unwrap_or_default();
            if im.clones.contains(&p.name) {
                group = " clone".to_string();
            }
            let _ = writeln!(
                s,
                "pcs resource create {} ocf:lvs:{} {} op monitor interval={}s{group}",
                p.name,
                p.agent,
                params.join(" "),
                p.monitor_s
            );
        } else {
            let _ = writeln!(
                s,
                "primitive {} ocf:lvs:{} params {} op monitor interval={}s",
                p.name,
                p.agent,
                params.join(" "),
                p.monitor_s
            );
        }
    }
    if !pcs {
        for (g, members) in &im.groups {
            let _ = writeln!(s, "group {g} {}", members.join(" "));
        }
        for c in &im.clones {
            let _ = writeln!(s, "clone {c}_clone {c}");
        }
    }
    for (group, vip) in &im.with_vip {
        if pcs {
            let _ = writeln!(s, "pcs constraint colocation add {group} with {vip} INFINITY");
            let _ = writeln!(s, "pcs constraint order {vip} then {group}");
        } else {
            let _ = writeln!(s, "colocation {group}_with_{vip} inf: {group} {vip}");
            let _ = writeln!(s, "order {vip}_before_{group} Mandatory: {vip} {group}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_identifiers() {
        assert_eq!(resource_name("tcp:10.0.0.100:80"), "lvs_tcp_10_0_0_100_80");
        assert_eq!(resource_name("udp:[2001:db8::1]:53"), "lvs_udp_2001_db8_0_0_0_0_0_1_53");
        assert_ne!(resource_name("tcp:[2001:db8::1]:80"), resource_name("tcp:[2001:db8:1::]:80"));
    }

    #[test]
    fn keepalived_tokens_and_blocks() {
        let t = tree(&tokens("a b {\n c 1\n d { e 2 }\n}\n"), &mut 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].words, vec!["a", "b"]);
        assert_eq!(t[0].children.len(), 2);
        assert_eq!(t[0].children[1].children[0].words, vec!["e", "2"]);
    }
}
