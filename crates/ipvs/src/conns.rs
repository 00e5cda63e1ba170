//! The kernel's connection table, as `ipvsadm -Lnc` lists it. The kernel
//! offers it only as /proc/net/ip_vs_conn (IPVS netlink has no connection
//! dump), so this reads that file, of the calling process's network
//! namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::key::fmt_addr_port;
use crate::error::{Error, Result};

pub const CONN_FILE: &str = "/proc/net/ip_vs_conn";

/// One connection entry (or persistence template: protocol "IP").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// As the kernel names it: TCP, UDP, SCTP, IP (a template), ...
    pub protocol: String,
    pub client: SocketAddr,
    pub virtual_addr: SocketAddr,
    pub destination: SocketAddr,
    /// ESTABLISHED, FIN_WAIT, ... (UDP entries say UDP; templates NONE or
    /// ASSURED).
    pub state: String,
    /// Seconds until the entry expires.
    pub expires: u64,
    /// The persistence engine's name and data, when it has some.
    pub pe: Option<(String, String)>,
}

/// Parses the whole file: a title line, then one entry per line. IPv4
/// addresses are 8 hex digits, IPv6 ones in full colon form; ports 4 hex
/// digits. A line that does not parse is skipped, as ipvsadm skips it, and
/// counted (the second value).
pub fn parse(text: &str) -> Result<(Vec<Connection>, usize)> {
    let mut lines = text.lines();
    match lines.next() {
        Some(title) if title.starts_with("Pro ") => {}
        other => return Err(Error::decode(format!("{CONN_FILE}: unexpected title {other:?}"))),
    }
    let (mut conns, mut skipped) = (Vec::new(), 0);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Ok(c) => conns.push(c),
            Err(_) => skipped += 1,
        }
    }
    Ok((conns, skipped))
}

fn parse_line(line: &str) -> Result<Connection> {
    let bad = |why: &str| Error::decode(format!("{CONN_FILE}: {why} in {line:?}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 9 && f.len() != 11 {
        return Err(bad("not 9 or 11 fields"));
    }
    let port = |s: &str| u16::from_str_radix(s, 16).map_err(|_| bad("bad port"));
    let addr = |s: &str| -> Result<IpAddr> {
        if s.contains(':') {
            s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad("bad IPv6 address"))
        } else {
            u32::from_str_radix(s, 16).map(|a| IpAddr::V4(Ipv4Addr::from(a))).map_err(|_| bad("bad IPv4 address"))
        }
    };
    Ok(Connection {
        protocol: f[0].to_string(),
        client: SocketAddr::new(addr(f[1])?, port(f[2])?),
        virtual_addr: SocketAddr::new(addr(f[3])?, port(f[4])?),
        destination: SocketAddr::new(addr(f[5])?, port(f[6])?),
        state: f[7].to_string(),
        expires: f[8].parse().map_err(|_| bad("bad expiry"))?,
        pe: (f.len() == 11).then(|| (f[9].to_string(), f[10].to_string())),
    })
}

/// Reads and parses [`CONN_FILE`] (bytes that are not UTF-8 are replaced,
/// not fatal).
pub fn read() -> Result<(Vec<Connection>, usize)> {
    let bytes = std::fs::read(CONN_FILE).map_err(|e| Error::io(format!("reading {CONN_FILE}"), e))?;
    parse(&String::from_utf8_lossy(&bytes))
}

/// How many entries the kernel's connection table holds, counted without
/// parsing them (a busy director has millions).
pub fn count() -> Result<usize> {
    use std::io::BufRead;
    let f = std::fs::File::open(CONN_FILE).map_err(|e| Error::io(format!("reading {CONN_FILE}"), e))?;
    let mut n: usize = 0;
    for line in std::io::BufReader::new(f).split(b'\n') {
        line.map_err(|e| Error::io(format!("reading {CONN_FILE}"), e))?;
        n += 1;
    }
    Ok(n.saturating_sub(1))
}

fn endpoint(a: &SocketAddr) -> String {
    fmt_addr_port(&a.ip(), a.port())
}

/// The listing of `ipvsadm -Lnc` (`persistent`: `--persistent-conn`'s
/// wider form, with the persistence engine's columns where an entry has
/// them). Expiry is minutes:seconds, minutes uncapped.
pub fn listing(conns: &[Connection], persistent: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}\n",
            "state", "source", "virtual", "destination", "pe name", "pe_data"
        ));
    } else {
        out.push_str(&format!("pro expire {:<11} {:<18} {:<18} {}\n", "state", "source", "virtual", "destination"));
    }
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let (client, virt, dest) = (endpoint(&c.client), endpoint(&c.virtual_addr), endpoint(&c.destination));
        match (&c.pe, persistent) {
            (Some((name, data)), true) => out.push_str(&format!(
                "{:<3} {expire:<6} {:<11} {client:<18} {virt:<18} {dest:<16} {name:<18} {data}\n",
                c.protocol, c.state
            )),
            _ => {
                out.push_str(&format!("{:<3} {expire:<6} {:<11} {client:<18} {virt:<18} {dest}\n", c.protocol, c.state))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC: &str = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
        TCP C0A80105 C822 0A000001 0050 C0A8010A 0050 ESTABLISHED     898\n\
        IP  C0A80105 0000 0A000001 0050 C0A8010A 0050 NONE           3600\n\
        UDP 0A000005 13C4 0A000001 13C4 C0A8010A 13C4 UDP             299 sip abc123\n\
        TCP 2001:0db8:0000:0000:0000:0000:0000:0005 9C40 2001:0db8:0000:0000:0000:0000:0000:0001 01BB 2001:0db8:0000:0000:0000:0000:0000:0010 01BB FIN_WAIT        100\n";

    #[test]
    fn the_kernels_file_is_read_field_by_field() {
        let (c, skipped) = parse(PROC).unwrap();
        assert_eq!((c.len(), skipped), (4, 0));
        assert_eq!(c[0].client, "192.168.1.5:51234".parse().unwrap());
        assert_eq!(c[0].virtual_addr, "10.0.0.1:80".parse().unwrap());
        assert_eq!(c[0].destination, "192.168.1.10:80".parse().unwrap());
        assert_eq!((c[0].state.as_str(), c[0].expires, &c[0].pe), ("ESTABLISHED", 898, &None));
        assert_eq!(c[2].pe, Some(("sip".into(), "abc123".into())));
        assert_eq!(c[3].client, "[2001:db8::5]:40000".parse().unwrap());
    }

    #[test]
    fn listed_as_ipvsadm_lists_them() {
        let (c, _) = parse(PROC).unwrap();
        let text = listing(&c, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "IPVS connection entries");
        assert_eq!(lines[1], "pro expire state       source             virtual            destination");
        assert_eq!(lines[2], "TCP 14:58  ESTABLISHED 192.168.1.5:51234  10.0.0.1:80        192.168.1.10:80");
        assert_eq!(lines[3], "IP  60:00  NONE        192.168.1.5:0      10.0.0.1:80        192.168.1.10:80");
        assert_eq!(lines[5], "TCP 01:40  FIN_WAIT    [2001:db8::5]:40000 [2001:db8::1]:443  [2001:db8::10]:443");
        let wide = listing(&c, true);
        assert!(wide.lines().nth(1).unwrap().ends_with("destination        pe name          pe_data"), "{wide}");
        assert_eq!(
            wide.lines().nth(4).unwrap(),
            "UDP 04:59  UDP         10.0.0.5:5060      10.0.0.1:5060      192.168.1.10:5060 sip                abc123"
        );
    }

    #[test]
    fn a_malformed_file_is_an_error_and_a_malformed_line_is_skipped() {
        for text in ["", "nonsense\n"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        for text in ["Pro x\nTCP 1 2 3\n", "Pro x\nTCP ZZ 0050 0A000001 0050 0A000001 0050 S 1\n"] {
            assert_eq!(parse(text).unwrap(), (vec![], 1), "{text:?}");
        }
    }
}
