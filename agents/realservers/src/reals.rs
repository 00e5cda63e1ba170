//! The `real` parameter: a list of real servers in ldirectord's words,
//! `192.168.7.10:80 gate 1, 192.168.7.20:80 masq 3`. Shared by the
//! realservers agent and `lvsctl` (import, lint).
//!
//! Each entry: `ADDRESS[:PORT] [METHOD] [WEIGHT] ["REQUEST" ["RECEIVE"]]`
//! - ADDRESS: IPv4, `[IPv6]`, or an IPv4 range `192.168.6.2->192.168.6.7`;
//! - PORT: defaults to the virtual service's port (0 for fwmark services);
//! - METHOD: gate (default, like ldirectord), masq, ipip, ipip+gue:PORT,
//!   ipip+gre (also dr/route, nat, tun, local);
//! - WEIGHT: 0..=2147483647, default 1;
//! - REQUEST/RECEIVE: per-real overrides of the check's request/receive.
//!
//! Addresses must be unicast (not 0.0.0.0/8, 255.255.255.255, multicast,
//! `::`) and ports non-zero unless the service's own port is 0 (fwmark or
//! all-ports services): the kernel refuses the others on every attempt.
//! At most [`MAX_REALS`] reals in all.
//!
//! Fields may also be separated by `/` (`192.168.7.10:80/masq/1`), so a
//! list can be written without spaces where a caller splits on them, as
//! heartbeat's haresources does.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use lvs_ipvs::{Destination, ForwardMethod, ServiceKey, TunnelFlags, TunnelType};
use lvs_ocf::{Error, Result};

/// One real server as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Real {
    pub destination: Destination,
    /// Shared by every real of one entry (a range expands to many).
    pub request: Option<Arc<str>>,
    pub receive: Option<Arc<str>>,
}

/// The most addresses one range may expand to: a typo such as
/// `10.0.0.1->10.9.0.1` must not create a million destinations.
pub const MAX_RANGE: u32 = 65_536;

/// The most reals one list may hold, ranges expanded: every real costs a
/// table entry, a check per interval and a line in the state file.
pub const MAX_REALS: usize = 65_536;

fn bad(msg: String) -> Error {
    Error::Configured(msg)
}

/// Splits on commas and whitespace outside double quotes; quoted words
/// keep their content (without the quotes). Returns entries of words.
fn tokenize(text: &str) -> Result<Vec<Vec<(String, bool)>>> {
    let mut entries = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A quoted word runs to the next quote, commas included.
                let mut q = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    q.push(c);
                }
                if !closed {
                    return Err(bad(format!("unclosed quote in real list: {text}")));
                }
                word.push_str(&q);
                in_word = true;
                quoted = true;
            }
            ',' | ' ' | '\t' | '\n' | '/' => {
                if in_word {
                    if let Some(e) = entries.last_mut() {
                        e.push((std::mem::take(&mut word), quoted));
                    }
                    in_word = false;
                    quoted = false;
                }
                if c == ',' {
                    entries.push(Vec::new());
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        if let Some(e) = entries.last_mut() {
            e.push((word, quoted));
        }
    }
    Ok(entries.into_iter().filter(|e| !e.is_empty()).collect())
}

/// The addresses of one entry: one, or an IPv4 range (inclusive).
enum Addrs {
    One(IpAddr),
    Range(u32, u32),
}

impl Addrs {
    fn len(&self) -> usize {
        match self {
            Addrs::One(_) => 1,
            Addrs::Range(f, t) => (t - f) as usize + 1,
        }
    }

    fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let (one, range) = match *self {
            Addrs::One(a) => (Some(a), None),
            Addrs::Range(f, t) => (None, Some(f..=t)),
        };
        one.into_iter().chain(range.into_iter().flatten().map(|a| IpAddr::V4(Ipv4Addr::from(a))))
    }
}

/// Parses the address part: one address or a range, and the port.
fn endpoint(word: &str, default_port: u16) -> Result<(Addrs, u16)> {
    let (addrs, port) = if let Some(rest) = word.strip_prefix('[') {
        let (a, after) = rest.split_once(']').ok_or_else(|| bad(format!("'{word}': missing ]")))?;
        let ip: IpAddr = a.parse().map_err(|_| bad(format!("'{a}' is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad(format!("'{word}': expected :port after ]")))?),
        };
        (Addrs::One(ip), port)
    } else {
        let (a, port) = match word.rsplit_once(':') {
            // A bare IPv6 address has colons but no port.
            Some((a, p)) if !a.contains(':') => (a, Some(p)),
            Some(_) => return Err(bad(format!("'{word}': write IPv6 addresses in brackets, [2001:db8::1]:80"))),
            None => (word, None),
        };
        let addrs = match a.split_once("->") {
            Some((from, to)) => range(from, to)?,
            None => Addrs::One(IpAddr::V4(a.parse().map_err(|_| bad(format!("'{a}' is not an IPv4 address")))?)),
        };
        (addrs, port)
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().map_err(|_| bad(format!("'{p}' is not a port in '{word}'")))?,
    };
    Ok((addrs, port))
}

fn range(from: &str, to: &str) -> Result<Addrs> {
    let f: Ipv4Addr = from.parse().map_err(|_| bad(format!("'{from}' is not an IPv4 address")))?;
    let t: Ipv4Addr = to.parse().map_err(|_| bad(format!("'{to}' is not an IPv4 address")))?;
    let (f, t) = (u32::from(f), u32::from(t));
    if t < f {
        return Err(bad(format!("range {from}->{to} runs backwards")));
    }
    if t - f >= MAX_RANGE {
        return Err(bad(format!("range {from}->{to} has more than {MAX_RANGE} addresses")));
    }
    Ok(Addrs::Range(f, t))
}

/// A forwarding-method word, with tunnel details for ipip.
fn method(word: &str) -> Option<Result<(ForwardMethod, TunnelType, u16)>> {
    let lower = word.to_ascii_lowercase();
    let plain = |m| Some(Ok((m, TunnelType::Ipip, 0)));
    match lower.as_str() {
        "gate" | "dr" | "route" | "g" => plain(ForwardMethod::Route),
        "masq" | "nat" | "m" => plain(ForwardMethod::Masq),
        "ipip" | "tun" | "tunnel" | "i" => plain(ForwardMethod::Tunnel),
        "local" => plain(ForwardMethod::Local),
        "ipip+gre" => Some(Ok((ForwardMethod::Tunnel, TunnelType::Gre, 0))),
        s if s.starts_with("ipip+gue") => Some(match s.strip_prefix("ipip+gue:").map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => Ok((ForwardMethod::Tunnel, TunnelType::Gue, p)),
            _ => Err(bad(format!("'{word}': GUE needs a port, ipip+gue:6080"))),
        }),
        _ => None,
    }
}

/// Parses a whole `real` list for `service`.
pub fn parse(text: &str, service: &ServiceKey) -> Result<Vec<Real>> {
    let default_port = match service {
        ServiceKey::Addr { port, .. } => *port,
        ServiceKey::FwMark { .. } => 0,
    };
    let mut reals: Vec<Real> = Vec::new();
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    for entry in tokenize(text)? {
        let mut words = entry.into_iter().peekable();
        let Some((first, _)) = words.next() else { continue };
        let (addrs, port) = endpoint(&first, default_port)?;
        let mut forward = (ForwardMethod::Route, TunnelType::Ipip, 0);
        let mut weight = 1u32;
        let mut texts = Vec::new();
        let mut seen_weight = false;
        for (w, quoted) in words {
            if quoted {
                texts.push(w);
                continue;
            }
            if !seen_weight && texts.is_empty() {
                if let Some(m) = method(&w) {
                    forward = m?;
                    continue;
                }
                if let Ok(n) = w.parse::<u32>() {
                    if n > i32::MAX as u32 {
                        return Err(bad(format!("weight {n} of {first} is out of range")));
                    }
                    weight = n;
                    seen_weight = true;
                    continue;
                }
            }
            return Err(bad(format!(
                "'{w}' in real '{first}': expected gate|masq|ipip[+gue:PORT|+gre], a weight, or \"request\" \"receive\""
            )));
        }
        if texts.len() > 2 {
            return Err(bad(format!("real '{first}': at most a request and a receive string")));
        }
        let mut texts = texts.into_iter().map(Arc::<str>::from);
        let (request, receive) = (texts.next(), texts.next());
        // Port 0 means "the client's port", only for services without one.
        if port == 0 && default_port != 0 {
            return Err(bad(format!("real '{first}': port 0 (the service {service} has port {default_port})")));
        }
        // Before expanding: a list of large ranges must fail at once.
        if reals.len() + addrs.len() > MAX_REALS {
            return Err(bad(format!("the real list has more than {MAX_REALS} reals (ranges expanded)")));
        }
        reals.reserve(addrs.len());
        seen.reserve(addrs.len());
        for addr in addrs.iter() {
            if let Some(why) = lvs_ipvs::not_unicast(addr) {
                return Err(bad(format!("real {addr} is {why}, not a unicast address")));
            }
            let mut d = Destination::new(addr, port, forward.0).with_weight(weight);
            if forward.0 == ForwardMethod::Tunnel {
                d = d.with_tunnel(forward.1, forward.2, TunnelFlags::empty());
            }
            d.validate(service)?;
            if !seen.insert(d.endpoint()) {
                return Err(bad(format!("real {} is listed twice", d.endpoint())));
            }
            reals.push(Real { destination: d, request: request.clone(), receive: receive.clone() });
        }
    }
    if reals.is_empty() {
        return Err(bad("the real list is empty".into()));
    }
    Ok(reals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> ServiceKey {
        "tcp:10.0.0.100:80".parse().unwrap()
    }

    #[test]
    fn the_readme_example() {
        let r = parse("192.168.7.10:80 gate 1, 192.168.7.20:80 gate 3", &svc()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].destination.endpoint().to_string(), "192.168.7.10:80");
        assert_eq!(r[0].destination.forward, ForwardMethod::Route);
        assert_eq!(r[1].destination.weight, 3);
    }

    #[test]
    fn defaults_ipv6_ranges_and_tunnels() {
        let r = parse("192.168.7.10", &svc()).unwrap();
        assert_eq!(
            (r[0].destination.port, r[0].destination.weight, r[0].destination.forward),
            (80, 1, ForwardMethod::Route)
        );
        let v6: ServiceKey = "tcp:[2001:db8::100]:443".parse().unwrap();
        let r = parse("[2001:db8::10]:8443 masq 2, [2001:db8::11]", &v6).unwrap();
        assert_eq!(r[0].destination.endpoint().to_string(), "[2001:db8::10]:8443");
        assert_eq!(r[1].destination.port, 443);
        let r = parse("192.168.6.2->192.168.6.7:80 masq", &svc()).unwrap();
        assert_eq!(r.len(), 6);
        assert_eq!(r[5].destination.addr.to_string(), "192.168.6.7");
        let r = parse("192.168.7.10 ipip+gue:6080 5, 192.168.7.11 ipip+gre", &svc()).unwrap();
        assert_eq!((r[0].destination.tunnel, r[0].destination.tunnel_port), (TunnelType::Gue, 6080));
        assert_eq!(r[1].destination.tunnel, TunnelType::Gre);
        let fw: ServiceKey = "fwmark:100".parse().unwrap();
        assert_eq!(parse("192.168.7.10 gate", &fw).unwrap()[0].destination.port, 0);
    }

    #[test]
    fn slashes_separate_fields_for_space_free_lists() {
        let a = parse("192.168.7.10:80/masq/1,192.168.7.20:80/masq/2", &svc()).unwrap();
        let b = parse("192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2", &svc()).unwrap();
        assert_eq!(a, b);
        let r = parse(r#"192.168.7.10 gate 1 "/a/b.html""#, &svc()).unwrap();
        assert_eq!(r[0].request.as_deref(), Some("/a/b.html"), "quoted slashes stay");
    }

    #[test]
    fn per_real_request_and_receive_may_contain_commas() {
        let r = parse(r#"192.168.7.10:80 gate 1 "/a,b.html" "ok, fine", 192.168.7.11"#, &svc()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].request.as_deref(), Some("/a,b.html"));
        assert_eq!(r[0].receive.as_deref(), Some("ok, fine"));
        assert_eq!(r[1].request, None);
    }

    #[test]
    fn mistakes_are_configuration_errors() {
        for text in [
            "",
            "192.168.7.10:80 teleport",
            "192.168.7.10:99999",
            "2001:db8::1",
            "[2001:db8::1",
            "10.0.0.9->10.0.0.1",
            "10.0.0.1->10.9.0.1",
            "192.168.7.10 gate 1 2",
            "192.168.7.10 ipip+gue",
            "192.168.7.10, 192.168.7.10",
            r#"192.168.7.10 "unclosed"#,
            "192.168.7.10 gate 99999999999",
        ] {
            assert!(matches!(parse(text, &svc()), Err(Error::Configured(_))), "{text:?} should be refused");
        }
    }

    #[test]
    fn the_cap_on_reals_holds_and_a_full_list_parses_in_linear_time() {
        // 65,536 reals (the cap): the duplicate check must not be quadratic.
        let start = std::time::Instant::now();
        let r = parse("10.0.0.0->10.0.255.255:80 gate 1", &svc()).unwrap();
        let took = start.elapsed();
        assert_eq!(r.len(), 65_536);
        assert_eq!(r[65_535].destination.endpoint().to_string(), "10.0.255.255:80");
        // A generous guard (a debug build takes well under a second).
        assert!(took < std::time::Duration::from_secs(10), "parsing 65,536 reals took {took:?}");
        // One more, in any shape, is refused before anything is expanded.
        for text in [
            "10.0.0.0->10.0.255.255:80 gate 1, 10.1.0.0:80",
            "10.0.0.0->10.0.255.255:80, 10.1.0.0->10.1.255.255:80, 10.2.0.0->10.2.255.255:80",
        ] {
            match parse(text, &svc()) {
                Err(Error::Configured(m)) => assert!(m.contains("65536"), "{m}"),
                other => panic!("{text}: {:?}", other.map(|r| r.len())),
            }
        }
    }

    #[test]
    fn non_unicast_addresses_and_port_0_are_refused() {
        for text in [
            "0.0.0.0",
            "0.1.2.3:80",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250:80",
            "223.255.255.254->224.0.0.1:80",
            "[::]:80",
            "[ff02::1]:80",
            "192.168.7.10:0",
        ] {
            let r = parse(text, &svc());
            assert!(matches!(r, Err(Error::Configured(_))), "{text:?} should be refused: {r:?}");
        }
        let v6: ServiceKey = "tcp:[2001:db8::100]:443".parse().unwrap();
        assert!(matches!(parse("[ff05::2]", &v6), Err(Error::Configured(_))));
        assert!(matches!(parse("[::]", &v6), Err(Error::Configured(_))));
        // Port 0 is the client's port where the service has none.
        let fw: ServiceKey = "fwmark:100".parse().unwrap();
        assert_eq!(parse("192.168.7.10:0", &fw).unwrap()[0].destination.port, 0);
        let all_ports: ServiceKey = "tcp:10.0.0.100:0".parse().unwrap();
        assert_eq!(parse("192.168.7.10", &all_ports).unwrap()[0].destination.port, 0);
        // Unicast edges stay accepted (loopback serves local forwarding).
        assert_eq!(parse("1.0.0.0, 223.255.255.255, 127.0.0.1, 10.0.0.255", &svc()).unwrap().len(), 4);
    }
}
