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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ldirectord,
    Keepalived,
}

pub fn detect(text: &str) -> Kind {
    if text.contains("virtual_server") || text.contains("vrrp_instance") || text.contains('{') {
        Kind::Keepalived
    } else {
        Kind::Ldirectord
    }
}

fn resource_name(service: &str) -> String {
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
    fallback_command: Option<String>,
    checkport: Option<String>,
}

impl Imported {
    /// Checks what would be emitted with the agents' own parsers: anything
    /// they would refuse is reported as unsupported here instead, so an
    /// import never produces configuration `lint` rejects.
    fn checked(&mut self, mut v: VirtualBlock) -> Option<VirtualBlock> {
        let key =
            match v.service.parse::<ServiceKey>().or_else(|_| ServiceKey::parse_with_family(&v.service, Family::Inet6))
            {
                Ok(k) => k,
                Err(e) => {
                    self.unsupported.push((v.line, format!("virtual service {}: {e}", v.service)));
                    return None;
                }
            };
        let line = v.line;
        if self
            .primitives
            .iter()
            .any(|p| p.agent == "service" && p.params.first().map(|(_, s)| s) == Some(&key.to_string()))
        {
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
            v.check = Some("connect".into());
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
        let Some(mut v) = self.checked(v) else { return };
        let base = resource_name(&v.service);
        let mut svc = vec![("service".to_string(), v.service.clone())];
        if let Some(s) = &v.scheduler {
            svc.push(("scheduler".into(), s.clone()));
        }
        if let Some(p) = &v.persistent {
            svc.push(("persistent".into(), p.clone()));
        }
        if let Some(n) = &v.netmask {
            svc.push(("netmask".into(), n.clone()));
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
        if !v.reals.is_empty() {
            let list: Vec<&str> = v.reals.iter().map(|(_, r)| r.as_str()).collect();
            let mut p = vec![("service".to_string(), v.service.clone()), ("real".to_string(), list.join(", "))];
            if let Some(c) = &v.check {
                p.push(("check".into(), c.clone()));
            }
            p.extend(v.check_opts.iter().cloned());
            for (k, val) in [
                ("check_interval", &v.interval),
                ("check_timeout", &v.timeout),
                ("fall", &v.fall),
                ("checkport", &v.checkport),
            ] {
                if let Some(val) = val {
                    p.push((k.into(), val.clone()));
                }
            }
            if let Some(q) = v.quiescent {
                p.push(("quiescent".into(), q.to_string()));
            }
            let name = format!("{base}_reals");
            self.accept(v.line, Primitive { name, agent: "realservers", params: p, monitor_s: 10 }, &mut members);
        }
        if let Some(f) = &v.fallback {
            let mut p = vec![("service".to_string(), v.service.clone()), ("fallback".to_string(), f.clone())];
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

/// ldirectord's checktype/service words to our `check` (and options).
fn ldirectord_check(checktype: Option<&str>, service: Option<&str>) -> Option<String> {
    let svc = service.map(|s| s.to_ascii_lowercase());
    match checktype.map(|c| c.to_ascii_lowercase()).as_deref() {
        Some("connect") => Some("connect".into()),
        Some("ping") => Some("ping".into()),
        Some("on") => Some("on".into()),
        Some("off") => Some("off".into()),
        Some("external") | Some("external-perl") => Some("external".into()),
        // negotiate (ldirectord's default) speaks the service's protocol
        Some("negotiate") | None => match svc.as_deref() {
            None | Some("none") => Some("connect".into()),
            Some(s) => Some(s.to_string()),
        },
        _ => None,
    }
}

pub fn ldirectord(text: &str) -> Imported {
    let mut out = Imported::default();
    out.notes.push("ldirectord.cf has no virtual IP: add an ocf:lvs:vip primitive for each virtual address".into());
    let mut globals: Vec<(usize, String, String)> = Vec::new();
    let mut current: Option<(VirtualBlock, Option<String>, Option<String>)> = None;
    let finish = |out: &mut Imported,
                  cur: Option<(VirtualBlock, Option<String>, Option<String>)>,
                  g: &[(usize, String, String)]| {
        if let Some((mut v, checktype, service)) = cur {
            let global = |k: &str| g.iter().rev().find(|(_, gk, _)| gk == k).map(|(_, _, gv)| gv.clone());
            v.interval = v.interval.or_else(|| global("checkinterval"));
            v.timeout = v.timeout.or_else(|| global("checktimeout")).or_else(|| global("negotiatetimeout"));
            v.fall = v.fall.or_else(|| global("failurecount"));
            if v.quiescent.is_none() {
                v.quiescent = global("quiescent").map(|q| q == "yes");
            }
            v.fallback = v
                .fallback
                .or_else(|| global("fallback").map(|f| f.split_whitespace().next().unwrap_or("").to_string()));
            v.fallback_command = v.fallback_command.or_else(|| global("fallbackcommand"));
            let checktype = checktype.or_else(|| global("checktype"));
            v.check = ldirectord_check(checktype.as_deref(), service.as_deref());
            // ldirectord requests a relative path for http ("test.html").
            if matches!(v.check.as_deref(), Some("http" | "https")) {
                for (k, val) in v.check_opts.iter_mut() {
                    if k == "request" && !val.starts_with('/') {
                        *val = format!("/{val}");
                    }
                }
            }
            if v.check.is_none() {
                out.notes.push(format!("{}: checktype {:?} has no equivalent; using connect", v.service, checktype));
                v.check = Some("connect".into());
            }
            out.add_virtual(v);
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
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
        if k == "virtual" {
            let prev = current.take();
            finish(&mut out, prev, &globals);
            let service =
                if v.chars().all(|c| c.is_ascii_digit()) { format!("fwmark:{v}") } else { format!("tcp:{v}") };
            current = Some((VirtualBlock { line: n, service, ..Default::default() }, None, None));
            continue;
        }
        match (&mut current, indented) {
            (Some((virt, checktype, service)), true) => match k.as_str() {
                "real" => virt.reals.push((n, v)),
                "scheduler" => virt.scheduler = Some(v),
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
                "checktype" => *checktype = Some(v),
                "service" => *service = Some(v),
                "request" => virt.check_opts.push(("request".into(), v)),
                "receive" => virt.check_opts.push(("receive".into(), v)),
                "virtualhost" => virt.check_opts.push(("virtualhost".into(), v)),
                "httpmethod" => virt.check_opts.push(("http_method".into(), v.to_ascii_uppercase())),
                "checkport" => virt.checkport = Some(v),
                "checkinterval" => virt.interval = Some(v),
                "checktimeout" | "negotiatetimeout" | "connecttimeout" => virt.timeout = Some(v),
                "failurecount" => virt.fall = Some(v),
                "quiescent" => virt.quiescent = Some(v == "yes"),
                "fallback" => virt.fallback = Some(v.split_whitespace().next().unwrap_or("").to_string()),
                "fallbackcommand" => virt.fallback_command = Some(v),
                "checkcommand" => virt.check_opts.push(("check_command".into(), v)),
                _ => out.unsupported.push((n, raw.trim().to_string())),
            },
            _ => match k.as_str() {
                "checktimeout" | "negotiatetimeout" | "connecttimeout" | "checkinterval" | "failurecount"
                | "quiescent" | "fallback" | "fallbackcommand" | "checktype" => globals.push((n, k, v)),
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

/// keepalived.conf's tokens: words, braces, with their line numbers.
fn tokens(text: &str) -> Vec<(usize, String)> {
    let mut t = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(['#', '!']).next().unwrap_or("");
        let mut rest = line;
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
                for c in &n.children {
                    match c.words.first().map(String::as_str) {
                        Some("virtual_ipaddress") => {
                            for a in &c.children {
                                vips.push((a.line, a.words.clone()));
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
    for (line, words) in vips {
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
            None => {}
        }
        if out.primitives.iter().any(|x| x.agent == "vip" && x.params.first() == p.first()) {
            out.unsupported.push((line, format!("{ip} is listed twice")));
            continue;
        }
        let mut it = words.iter().skip(1);
        while let Some(w) = it.next() {
            match (w.as_str(), it.next()) {
                ("dev", Some(d)) => p.push(("nic".into(), d.clone())),
                ("label", Some(l)) => p.push(("iflabel".into(), l.split(':').next_back().unwrap_or(l).to_string())),
                _ => out.unsupported.push((line, words.join(" "))),
            }
        }
        out.primitives
            .insert(0, Primitive { name: resource_name(&format!("vip_{ip}")), agent: "vip", params: p, monitor_s: 10 });
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
        let service_base = match w.as_slice() {
            [_, "fwmark", mark] => format!("fwmark:{mark}"),
            [_, ip, port] => fmt_ep(ip, port),
            _ => {
                self.unsupported.push((n.line, n.words.join(" ")));
                return;
            }
        };
        let mut method = "gate";
        let mut first_check: Option<String> = None;
        for c in &n.children {
            let cw: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match cw.as_slice() {
                ["lb_algo" | "lvs_sched", s] => v.scheduler = Some(s.to_string()),
                ["lb_kind" | "lvs_method", k] => {
                    method = match k.to_ascii_uppercase().as_str() {
                        "NAT" => "masq",
                        "TUN" => "ipip",
                        _ => "gate",
                    }
                }
                ["protocol", p] => protocol = p.to_ascii_lowercase(),
                ["persistence_timeout", t] => v.persistent = Some(t.to_string()),
                ["persistence_granularity", g] => v.netmask = Some(g.to_string()),
                ["delay_loop", d] => v.interval = Some(d.to_string()),
                ["sorry_server", ip, port] => v.fallback = Some(fmt_ep(ip, port)),
                ["real_server", ip, port] => {
                    let mut weight = "1".to_string();
                    for rc in &c.children {
                        let rw: Vec<&str> = rc.words.iter().map(String::as_str).collect();
                        match rw.as_slice() {
                            ["weight", x] => weight = x.to_string(),
                            ["inhibit_on_failure"] => v.quiescent = Some(true),
                            [kind @ ("TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK"), ..] => {
                                let (check, opts) = self.check_of(kind, rc, &mut v);
                                match &first_check {
                                    None => {
                                        first_check = Some(check.clone());
                                        v.check = Some(check);
                                        v.check_opts = opts;
                                    }
                                    Some(f) if *f == check => {}
                                    Some(_) => self.unsupported.push((
                                        rc.line,
                                        format!("{kind} differs from the first real's check; one check per service"),
                                    )),
                                }
                            }
                            _ => self.unsupported.push((rc.line, rc.words.join(" "))),
                        }
                    }
                    v.reals.push((c.line, format!("{} {method} {weight}", fmt_ep(ip, port))));
                }
                _ => self.unsupported.push((c.line, c.words.join(" "))),
            }
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
            _ => "external",
        };
        let mut opts = Vec::new();
        let mut urls = 0;
        for c in &n.children {
            let cw: Vec<&str> = c.words.iter().map(String::as_str).collect();
            match cw.as_slice() {
                ["connect_timeout", t] => v.timeout = Some(t.to_string()),
                ["connect_port", p] => v.checkport = Some(p.to_string()),
                ["retry" | "nb_get_retry", r] => {
                    v.fall = Some(r.parse::<u32>().map(|r| (r + 1).to_string()).unwrap_or_else(|_| r.to_string()))
                }
                ["delay_before_retry", _] => {}
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
                            ["status_code", s] => opts.push(("status_codes".into(), s.to_string())),
                            ["digest", d] => opts.push(("check_options".into(), format!("digest={d}"))),
                            _ => self.unsupported.push((u.line, u.words.join(" "))),
                        }
                    }
                }
                ["virtualhost", h] => opts.push(("virtualhost".into(), h.to_string())),
                _ => self.unsupported.push((c.line, c.words.join(" "))),
            }
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
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_identifiers() {
        assert_eq!(resource_name("tcp:10.0.0.100:80"), "lvs_tcp_10_0_0_100_80");
        assert_eq!(resource_name("udp:[2001:db8::1]:53"), "lvs_udp_2001_db8_1_53");
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
