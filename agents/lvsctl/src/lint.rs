//! `lvsctl lint`: checks the lvs primitives of a `crm configure` text or a
//! list of `pcs resource create` commands, offline, against the agents'
//! meta-data and the same parsers the agents use.

use std::collections::{BTreeMap, BTreeSet};

use lvs_common::ipvs::{parse_addr_port, validate_scheduler, Family, ServiceKey};
use lvs_common::ocf::Params;
use lvs_common::probe::Check;
use lvs_common::reals;
use lvs_common::sync;

/// The meta-data each agent prints, checked in as metadata/*.xml. Embedded
/// so lint needs no installed files and cannot disagree with the build.
const METADATA: [(&str, &str); 5] = [
    ("vip", include_str!("../../../metadata/vip.xml")),
    ("service", include_str!("../../../metadata/service.xml")),
    ("realservers", include_str!("../../../metadata/realservers.xml")),
    ("sorry", include_str!("../../../metadata/sorry.xml")),
    ("sync", include_str!("../../../metadata/sync.xml")),
];

/// Parameter names and whether each is required, from meta-data XML.
fn declared(agent: &str) -> Option<BTreeMap<String, bool>> {
    use quick_xml::events::Event;
    let xml = METADATA.iter().find(|(a, _)| *a == agent)?.1;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = BTreeMap::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref() == "parameter" => {
                let (mut name, mut req) = (String::new(), false);
                for a in e.attributes().flatten() {
                    let v = a.value.to_string();
                    match a.key.as_ref() {
                        "name" => name = v,
                        "required" => req = v == "1",
                        _ => {}
                    }
                }
                out.insert(name, req);
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    Some(out)
}

/// Shell-like words (double and single quotes, backslash escapes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    if d == c {
                        break;
                    }
                    if d == '\\' && c == '"' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                        continue;
                    }
                    cur.push(d);
                }
            }
            // as sh reads it: pcs output quotes a ' as '\''
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// One lvs primitive found in the input.
#[derive(Debug)]
struct Prim {
    line: usize,
    name: String,
    agent: String,
    params: Vec<(String, String)>,
}

/// Logical lines (backslash continuations joined) with their first line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, l) in text.lines().enumerate() {
        let (n, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        let t = l.trim_end();
        if let Some(body) = t.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((n, acc));
        } else {
            acc.push_str(t);
            out.push((n, acc));
        }
    }
    out.extend(pending);
    out
}

fn primitives(text: &str) -> (Vec<Prim>, Vec<String>) {
    let mut prims = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in logical_lines(text) {
        let w = words(&line);
        let (name, class, rest) = match w.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["primitive", name, class, rest @ ..] => {
                (name.to_string(), class.to_string(), rest.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            }
            ["pcs", "resource", "create", name, class, rest @ ..] => {
                (name.to_string(), class.to_string(), rest.iter().map(|s| s.to_string()).collect())
            }
            _ => continue,
        };
        let Some(agent) = class.strip_prefix("ocf:lvs:") else { continue };
        let mut params = Vec::new();
        // pcs puts parameters right after the agent; crm after `params`.
        let mut in_params = w[0] == "pcs";
        let mut skip_next = false;
        for word in rest {
            if skip_next {
                skip_next = false;
                continue;
            }
            match word.as_str() {
                "params" => in_params = true,
                // pcs: `... op monitor ... clone` makes the primitive a clone.
                "op" | "meta" | "utilization" | "clone" | "promotable" => in_params = false,
                "--group" | "--before" | "--after" => skip_next = true,
                w if w.starts_with("--") => {}
                w if in_params => match w.split_once('=') {
                    Some((k, v)) => params.push((k.to_string(), v.to_string())),
                    None => problems.push(format!("line {n}: '{w}' in {name} is not name=value")),
                },
                _ => {}
            }
        }
        prims.push(Prim { line: n, name, agent: agent.to_string(), params });
    }
    (prims, problems)
}

/// Every problem found, each with its line number; empty when clean.
pub fn lint(text: &str) -> Vec<String> {
    let (prims, mut problems) = primitives(text);
    let mut services: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut used: Vec<(usize, String, String)> = Vec::new();
    let mut sync_states: std::collections::HashMap<lvs_common::ipvs::SyncState, (usize, String)> =
        std::collections::HashMap::new();
    for p in &prims {
        let at = |msg: String| format!("line {}: {} ({}): {msg}", p.line, p.name, p.agent);
        let Some(decl) = declared(&p.agent) else {
            problems.push(at(format!("no agent ocf:lvs:{}", p.agent)));
            continue;
        };
        let get = |k: &str| p.params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        for (k, _) in &p.params {
            if !decl.contains_key(k) {
                problems.push(at(format!("unknown parameter '{k}'")));
            }
        }
        for (k, req) in &decl {
            if *req && get(k).is_none() {
                problems.push(at(format!("required parameter '{k}' is missing")));
            }
        }
        let key = get("service").map(|s| {
            let family = get("family").unwrap_or("inet").parse::<Family>().unwrap_or(Family::Inet);
            ServiceKey::parse_with_family(s, family)
                .or_else(|_| s.parse::<ServiceKey>())
                .or_else(|_| ServiceKey::parse_with_family(s, Family::Inet6))
        });
        if let Some(Err(e)) = &key {
            problems.push(at(e.to_string()));
        }
        let key = key.and_then(Result::ok);
        match p.agent.as_str() {
            "service" => {
                if let Some(k) = key {
                    if let Some((l, other)) = services.insert(k.to_string(), (p.line, p.name.clone())) {
                        problems.push(at(format!("service {k} is also defined by {other} (line {l})")));
                    }
                }
                if let Some(s) = get("scheduler") {
                    if let Err(e) = validate_scheduler(s) {
                        problems.push(at(e.to_string()));
                    }
                }
            }
            "realservers" => {
                if let (Some(k), Some(r)) = (key, get("real")) {
                    if let Err(e) = reals::parse(r, &k) {
                        problems.push(at(e.to_string()));
                    }
                    used.push((p.line, p.name.clone(), k.to_string()));
                }
                let mut opts: Vec<(&str, &str)> = Vec::new();
                for (ours, theirs) in [
                    ("check_service", "service"),
                    ("request", "request"),
                    ("receive", "receive"),
                    ("virtualhost", "virtualhost"),
                    ("http_method", "method"),
                    ("status_codes", "status"),
                    ("check_command", "command"),
                ] {
                    if let Some(v) = get(ours) {
                        opts.push((theirs, v));
                    }
                }
                let extra: Vec<(String, String)> = get("check_options")
                    .map(|o| {
                        o.split_whitespace()
                            .filter_map(|w| w.split_once('='))
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                opts.extend(extra.iter().map(|(a, b)| (a.as_str(), b.as_str())));
                if let Err(e) = Check::from_options(get("check").unwrap_or("connect"), &opts) {
                    problems.push(at(e.to_string()));
                }
            }
            "sorry" => {
                if let Some(k) = key {
                    used.push((p.line, p.name.clone(), k.to_string()));
                }
                if let Some(f) = get("fallback") {
                    if let Err(e) = parse_addr_port(f) {
                        problems.push(at(e.to_string()));
                    }
                }
            }
            // The agent's own checks: the same Params and Config as its
            // validate-all, less the interface's existence.
            "sync" if get("interface").is_some() => {
                let pairs: Vec<(&str, &str)> = p.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                match Params::from_pairs(&sync::SPEC, &pairs).and_then(|ps| sync::Config::from_params(&ps)) {
                    Err(e) => problems.push(at(e.to_string())),
                    Ok(cfg) => {
                        for d in &cfg.daemons {
                            if let Some((l, other)) = sync_states.insert(d.state, (p.line, p.name.clone())) {
                                problems.push(at(format!(
                                    "a {} sync daemon is also run by {other} (line {l}); the kernel runs one \
                                     per network namespace",
                                    d.state
                                )));
                            }
                        }
                    }
                }
            }
            "vip" => {
                if let Some(ip) = get("ip") {
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        problems.push(at(format!("ip '{ip}' is not an address")));
                    }
                }
            }
            _ => {}
        }
    }
    let defined: BTreeSet<&String> = services.keys().collect();
    for (line, name, svc) in used {
        if !defined.contains(&svc) {
            problems.push(format!("line {line}: {name}: no ocf:lvs:service primitive defines {svc}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_declares_what_the_agents_take() {
        let d = declared("realservers").unwrap();
        assert_eq!(d.get("real"), Some(&true));
        assert_eq!(d.get("quiescent"), Some(&false));
        assert!(declared("nosuch").is_none());
    }

    #[test]
    fn words_and_continuations() {
        assert_eq!(words(r#"a b="c d" 'e f'"#), vec!["a", "b=c d", "e f"]);
        let l = logical_lines("primitive x \\\n  params a=1\nnext");
        assert_eq!(l, vec![(1, "primitive x    params a=1".to_string()), (3, "next".to_string())]);
    }
}
