//! `lvsctl lint`: checks the lvs primitives of a `crm configure` text or a
//! list of `pcs resource create` commands, offline, with each agent's own
//! declaration and configuration checks (those of its `validate-all`, less
//! what needs this node's kernel or interfaces), plus what only the whole
//! configuration shows: services defined twice or never, sync daemons run
//! twice, ids used twice and `unique` parameters shared, which crm and pcs
//! refuse.

use std::collections::{BTreeMap, HashMap};

use crate::agents::Agent;
use lvs_ipvs::{ServiceKey, SyncState};
use lvs_ocf::Params;

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

/// One lvs primitive found in the input.
#[derive(Debug)]
struct Prim {
    line: usize,
    name: String,
    agent: String,
    params: Vec<(String, String)>,
}

/// What the input defines: lvs primitives, and every id any line claims
/// (primitives of any class, groups, clones, constraints), with its line.
#[derive(Debug, Default)]
struct Parsed {
    prims: Vec<Prim>,
    ids: Vec<(usize, String, &'static str)>,
    problems: Vec<String>,
}

/// The words of a crm or pcs command line without the command itself:
/// `crm configure primitive ...` and `pcs -f cib.xml resource create ...`
/// read as `primitive ...` and `resource create ...`.
fn command(words: &[String]) -> (&'static str, &[String]) {
    let mut w = words;
    match w.first().map(String::as_str) {
        Some("crm") | Some("pcs") => {
            let tool = if w[0] == "crm" { "crm" } else { "pcs" };
            w = &w[1..];
            while let Some(opt) = w.first().filter(|o| o.starts_with('-')) {
                // pcs -f FILE; other options stand alone
                let takes_value = opt.as_str() == "-f";
                w = &w[if takes_value { 2.min(w.len()) } else { 1 }..];
            }
            if tool == "crm" && w.first().map(String::as_str) == Some("configure") {
                w = &w[1..];
            }
            (tool, w)
        }
        _ => ("crm", w),
    }
}

fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (n, line) in logical_lines(text) {
        let all = words(&line);
        let (tool, w) = command(&all);
        let strs: Vec<&str> = w.iter().map(String::as_str).collect();
        let (name, class, rest): (&str, &str, &[&str]) = match (tool, strs.as_slice()) {
            ("crm", ["primitive", name, class, rest @ ..]) => (name, class, rest),
            ("crm", [kind @ ("group" | "clone" | "ms" | "location" | "colocation" | "order" | "tag"), id, ..]) => {
                let kind = match *kind {
                    "group" => "group",
                    "clone" => "clone",
                    "ms" => "ms",
                    "location" => "location",
                    "colocation" => "colocation",
                    "order" => "order",
                    _ => "tag",
                };
                out.ids.push((n, id.to_string(), kind));
                continue;
            }
            ("pcs", ["resource", "create", name, class, rest @ ..]) => (name, class, rest),
            _ => continue,
        };
        out.ids.push((n, name.to_string(), "primitive"));
        if tool == "pcs" {
            // --group G: a group pcs makes (or adds to) on the way
            if let Some(g) = rest.iter().position(|w| *w == "--group").and_then(|i| rest.get(i + 1)) {
                out.ids.push((n, g.to_string(), "group"));
            }
        }
        let Some(agent) = class.strip_prefix("ocf:lvs:") else { continue };
        let mut params = Vec::new();
        // pcs puts parameters right after the agent; crm after the agent,
        // with or without the `params` keyword. Both end them at the next
        // keyword: op, meta, utilization; pcs also at clone/promotable,
        // whose options follow.
        let mut in_params = true;
        let mut skip_next = false;
        for word in rest.iter().copied() {
            if skip_next {
                skip_next = false;
                continue;
            }
            match word {
                "params" if tool == "crm" => in_params = true,
                "op" | "meta" | "utilization" => in_params = false,
                "clone" | "promotable" if tool == "pcs" => in_params = false,
                "--group" | "--before" | "--after" => skip_next = true,
                w if w.starts_with("--") => {}
                w if tool == "crm" && w.starts_with("description=") => {}
                w if in_params => match w.split_once('=') {
                    Some((k, v)) => params.push((k.to_string(), v.to_string())),
                    None => out.problems.push(format!("line {n}: '{w}' in {name} is not name=value")),
                },
                _ => {}
            }
        }
        out.prims.push(Prim { line: n, name: name.to_string(), agent: agent.to_string(), params });
    }
    out
}

/// Every problem found, each with its line number; empty when clean.
pub fn lint(text: &str) -> Vec<String> {
    let Parsed { prims, ids, mut problems } = parse(text);
    // pcs adds to a group named twice; any other id used twice is refused.
    let mut seen: HashMap<&str, (usize, &str)> = HashMap::new();
    for (line, id, kind) in &ids {
        match seen.get(id.as_str()) {
            Some(&(_, "group")) if *kind == "group" => {}
            Some((l, k)) => {
                problems.push(format!("line {line}: id '{id}' ({kind}) is also the id of a {k} (line {l})"))
            }
            None => {
                seen.insert(id, (*line, kind));
            }
        }
    }
    let mut services: HashMap<ServiceKey, (usize, String)> = HashMap::new();
    let mut used: Vec<(usize, String, ServiceKey)> = Vec::new();
    let mut sync_states: HashMap<SyncState, (usize, String)> = HashMap::new();
    let mut unique: HashMap<(&str, &str, &str), (usize, &str)> = HashMap::new();
    for p in &prims {
        let at = |msg: String| format!("line {}: {} ({}): {msg}", p.line, p.name, p.agent);
        let Some(Agent { spec, check }) = crate::agents::agent(&p.agent) else {
            problems.push(at(format!("no agent ocf:lvs:{}", p.agent)));
            continue;
        };
        for (k, _) in &p.params {
            if spec.param(k).is_none() {
                problems.push(at(format!("unknown parameter '{k}'")));
            }
        }
        // The last assignment wins, as in the CIB.
        let mut last: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &p.params {
            last.insert(k, v);
        }
        for (k, v) in &last {
            if let Some(ps) = spec.param(k).filter(|ps| ps.unique && !v.is_empty()) {
                if let Some((l, other)) = unique.insert((spec.name, ps.name, v), (p.line, &p.name)) {
                    problems.push(at(format!(
                        "{k}={v} is also set by {other} (line {l}); {k} is unique to one \
                         ocf:lvs:{} resource, and crm and pcs refuse a second",
                        spec.name
                    )));
                }
            }
        }
        let pairs: Vec<(&str, &str)> = last.iter().map(|(k, v)| (*k, *v)).collect();
        let params = match Params::from_pairs(spec, &pairs) {
            Ok(params) => params,
            Err(e) => {
                problems.push(at(e.to_string()));
                continue;
            }
        };
        if let Err(e) = check(&params) {
            problems.push(at(e.to_string()));
            continue;
        }
        let key = lvs_service::params::service_key(&params).ok();
        match (spec.name, key) {
            ("service", Some(k)) => {
                if let Some((l, other)) = services.insert(k, (p.line, p.name.clone())) {
                    problems.push(at(format!("service {k} is also defined by {other} (line {l})")));
                }
            }
            ("realservers" | "sorry", Some(k)) => used.push((p.line, p.name.clone(), k)),
            ("sync", _) => {
                let Ok(cfg) = lvs_sync::config::Config::from_params(&params) else { continue };
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
            _ => {}
        }
    }
    for (line, name, svc) in used {
        if !services.contains_key(&svc) {
            problems.push(format!("line {line}: {name}: no ocf:lvs:service primitive defines {svc}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_continuations() {
        assert_eq!(words(r#"a b="c d" 'e f'"#), vec!["a", "b=c d", "e f"]);
        let l = logical_lines("primitive x \\\n  params a=1\nnext");
        assert_eq!(l, vec![(1, "primitive x    params a=1".to_string()), (3, "next".to_string())]);
    }
}
