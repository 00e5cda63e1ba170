//! Check specifications: what to check, parsed from ldirectord-like words.
//!
//! Text form (one string, shell-like quoting but no expansion of any kind):
//!
//! ```text
//! KIND [key=value ...]
//! ```
//!
//! KIND is `connect`, `http`, `https`, `udp`, `ping`, `external`, `on`,
//! `off`, a negotiate service (`simpletcp`, `smtp`, `pop`, `imap`, `ftp`,
//! `dns`, `mysql`, `pgsql`, `sip`, `ldap`, `none`), or ldirectord's
//! `negotiate` with `service=NAME`. Values may be quoted: `"..."` keeps
//! everything but `\"` and `\\`, `'...'` keeps everything. Examples:
//!
//! ```text
//! http request=/health virtualhost=www.example.com status=200,301-302 receive='ok|ready'
//! https verify=yes ca=/etc/ssl/private-ca.pem digest=9b3a0c85a887a256d6939da88aabd8cd
//! simpletcp request="PING\r\n" receive='^\+PONG'
//! dns request=www.example.com type=AAAA receive=2001:db8::1
//! udp request="\x01\x02" reply=yes receive='^ok'
//! external command="/usr/local/bin/check-app --deep"
//! ```
//!
//! `request` and UDP payloads understand `\n \r \t \0 \\ \xHH` escapes, as
//! ldirectord's simpletcp expands `\n`; `receive` is a regex (Rust syntax,
//! close to Perl's for the usual cases), at most [`MAX_REGEX_SIZE`] compiled
//! (and [`REGEX_BUDGET`] for all distinct ones built through one [`Shared`]).
//!
//! Checks built through one [`Shared`] share what they parse: each distinct
//! regex is compiled once and each CA file read once, however many reals
//! use them.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};

use crate::dns::DnsType;
use crate::error::{Error, Result};

/// A parsed check: its kind with its typed options, and the text it came from.
#[derive(Debug, Clone)]
pub struct Check {
    pub kind: CheckKind,
    /// The spec as given, for logs and state files.
    pub spec: String,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Always up (ldirectord `on`, service `none`).
    On,
    /// Always down (ldirectord `off`).
    Off,
    /// TCP connect, then close.
    Connect,
    Http(HttpCheck),
    Negotiate(Exchange),
    Udp(UdpCheck),
    /// ICMP echo (raw socket as root, ping socket otherwise).
    Ping,
    External(ExternalCheck),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Head,
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub tls: bool,
    pub method: HttpMethod,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Host header, and TLS SNI when it is a name.
    pub virtualhost: Option<String>,
    pub status: StatusRanges,
    pub receive: Option<Arc<Regex>>,
    /// MD5 of the whole body (keepalived's HTTP_GET `digest`).
    pub digest: Option<[u8; 16]>,
    /// Verify the certificate chain and name; off by default like SSL_GET.
    pub verify: bool,
    /// Extra trust anchor (PEM), read when the spec is parsed.
    pub ca: Option<Arc<CaFile>>,
    /// The URL parsed once, its host and port set per real by the check
    /// (parsing an address as a URL host goes through IDNA processing, a
    /// visible share of a check's user time at thousands of checks/s).
    pub(crate) url: reqwest::Url,
}

impl HttpCheck {
    /// The name sent as TLS SNI (and put in the URL): an https check's
    /// virtualhost when it is a name, not an address.
    pub fn sni_name(&self) -> Option<&str> {
        sni_name(self.tls, self.virtualhost.as_deref())
    }
}

fn sni_name(tls: bool, virtualhost: Option<&str>) -> Option<&str> {
    virtualhost.filter(|v| tls && v.parse::<IpAddr>().is_err())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CaFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// Negotiate services: a short protocol exchange over TCP (UDP for dns, sip).
#[derive(Debug, Clone)]
pub enum Exchange {
    /// Send `request` (may be empty), half-close, read until `receive` matches.
    SimpleTcp { request: Vec<u8>, receive: Arc<Regex> },
    /// 220 banner, EHLO answered 250, QUIT.
    Smtp { helo: String },
    /// `+OK` greeting, QUIT.
    Pop,
    /// `* OK` greeting, LOGOUT.
    Imap,
    /// 220 banner, QUIT.
    Ftp,
    /// One UDP query; up on a NOERROR answer of `qtype` (containing `expect` if set).
    Dns { name: String, qtype: DnsType, expect: Option<IpAddr> },
    /// Server greeting with protocol version 10.
    Mysql,
    /// SSLRequest answered `S` or `N`.
    Pgsql,
    /// OPTIONS over UDP, response status within `status`.
    Sip { user: Option<String>, status: StatusRanges },
    /// Anonymous simple bind answered with resultCode 0.
    Ldap,
}

#[derive(Debug, Clone)]
pub struct UdpCheck {
    pub payload: Vec<u8>,
    /// Without a required reply the check only fails on an ICMP error.
    pub require_reply: bool,
    pub receive: Option<Arc<Regex>>,
}

#[derive(Debug, Clone)]
pub struct ExternalCheck {
    /// Program and its arguments; vip, vport, rip, rport are appended.
    pub argv: Vec<String>,
}

/// Accepted status codes, as inclusive ranges: `200,301-302`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(pub Vec<(u16, u16)>);

impl StatusRanges {
    pub fn parse(text: &str) -> Result<StatusRanges> {
        let bad = |why: &str| Error::invalid(format!("bad status list '{text}': {why}"));
        let mut ranges = Vec::new();
        for part in text.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let num = |s: &str| -> Result<u16> {
                match s.parse::<u16>() {
                    Ok(n) if (100..=999).contains(&n) => Ok(n),
                    _ => Err(bad(&format!("'{s}' is not a status code (100-999)"))),
                }
            };
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(bad(&format!("range {lo}-{hi} is backwards")));
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(bad("empty"));
        }
        Ok(StatusRanges(ranges))
    }

    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl Default for StatusRanges {
    /// 200-299, like ldirectord's `is_success` and keepalived's default.
    fn default() -> Self {
        StatusRanges(vec![(200, 299)])
    }
}

impl fmt::Display for StatusRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Splits text into words: whitespace separates, quotes group, nothing expands.
pub fn split_words(text: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(Error::invalid(format!("unterminated ' in '{text}'"))),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            // Other backslashes are the value's own (regex, escapes).
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(Error::invalid(format!("unterminated \" in '{text}'"))),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(Error::invalid(format!("unterminated \" in '{text}'"))),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(Error::invalid(format!("trailing \\ in '{text}'"))),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Expands `\n \r \t \0 \\ \xHH` into bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let next = bytes.get(i + 1).copied();
        i += 2;
        match next {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = bytes.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => out.push(v),
                    None => return Err(Error::invalid(format!("bad \\x escape in '{text}'"))),
                }
                i += 2;
            }
            Some(c) => {
                return Err(Error::invalid(format!("unknown escape \\{} in '{text}'", c as char)));
            }
            None => return Err(Error::invalid(format!("trailing \\ in '{text}'"))),
        }
    }
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(Error::invalid(format!("{key}={v}: expected yes or no"))),
    }
}

/// The most memory one compiled `receive` regex may take (the regex
/// crate's own default is 10 MiB; `\w{200}` alone takes more).
pub const MAX_REGEX_SIZE: usize = 1 << 20;

/// What all distinct regexes of one configuration may take together,
/// each counted by the smallest of REGEX_CLASSES it compiles within: a
/// 4,096 short patterns (a host name per real) or 16 large ones.
pub const REGEX_BUDGET: usize = 16 << 20;

const REGEX_CLASSES: [usize; 3] = [4 << 10, 64 << 10, MAX_REGEX_SIZE];

/// What checks built from one configuration share, so that thousands of
/// reals with one override cost one compiled regex and one CA read.
#[derive(Debug, Default)]
pub struct Shared {
    regexes: HashMap<String, Arc<Regex>>,
    /// REGEX_BUDGET spent so far.
    regex_bytes: usize,
    cas: HashMap<String, Arc<CaFile>>,
}

impl Shared {
    fn regex(&mut self, key: &str, v: &str) -> Result<Arc<Regex>> {
        if let Some(re) = self.regexes.get(v) {
            return Ok(re.clone());
        }
        let bad = |e: regex::Error| Error::invalid(format!("{key}: bad regex /{v}/: {e}"));
        let mut compiled = None;
        // Smallest class first: a pattern too big for one aborts early.
        for class in REGEX_CLASSES {
            match RegexBuilder::new(v).size_limit(class).dfa_size_limit(class).build() {
                Ok(re) => {
                    compiled = Some((re, class));
                    break;
                }
                Err(e @ regex::Error::CompiledTooBig(_)) if class == MAX_REGEX_SIZE => return Err(bad(e)),
                Err(regex::Error::CompiledTooBig(_)) => continue,
                Err(e) => return Err(bad(e)),
            }
        }
        let Some((re, size)) = compiled else {
            return Err(Error::invalid(format!("{key}: bad regex /{v}/")));
        };
        if self.regex_bytes + size > REGEX_BUDGET {
            return Err(Error::invalid(format!(
                "{key}: the distinct regexes together compile to more than {} MiB at /{v}/: \
                 let reals share patterns",
                REGEX_BUDGET >> 20
            )));
        }
        self.regex_bytes += size;
        let re = Arc::new(re);
        self.regexes.insert(v.to_string(), re.clone());
        Ok(re)
    }

    fn ca(&mut self, path: &str) -> Result<Arc<CaFile>> {
        if let Some(ca) = self.cas.get(path) {
            return Ok(ca.clone());
        }
        let pem = std::fs::read(path).map_err(|e| Error::invalid(format!("ca={path}: {e}")))?;
        if reqwest::Certificate::from_pem_bundle(&pem).map(|c| c.is_empty()).unwrap_or(true) {
            return Err(Error::invalid(format!("ca={path}: no PEM certificate in it")));
        }
        let ca = Arc::new(CaFile { path: PathBuf::from(path), pem });
        self.cas.insert(path.to_string(), ca.clone());
        Ok(ca)
    }
}

fn parse_digest(v: &str) -> Result<[u8; 16]> {
    let bad = || Error::invalid(format!("digest={v}: expected 32 hex digits (an MD5)"));
    if v.len() != 32 || !v.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The options of one spec; each kind takes what it knows and the rest is an error.
struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    fn new(options: &[(&str, &str)]) -> Result<Options> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in options {
            let lower = k.to_ascii_lowercase();
            let key = canonical_key(&lower);
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(Error::invalid(format!("option '{k}' given twice")));
            }
            pairs.push((key.to_string(), v.to_string()));
        }
        Ok(Options { pairs })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let pos = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(pos).1)
    }

    fn finish(self, kind: &str) -> Result<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((k, _)) => Err(Error::invalid(format!("option '{k}' does not apply to a {kind} check"))),
        }
    }
}

/// ldirectord and keepalived spellings of the same option.
fn canonical_key(key: &str) -> &str {
    match key {
        "path" | "url" => "request",
        "httpmethod" => "method",
        "status_code" | "expect" => "status",
        "checkcommand" => "command",
        "helo_name" => "helo",
        "qtype" => "type",
        "payload" => "request",
        "require_reply" => "reply",
        "login" => "user",
        other => other,
    }
}

/// The protocols a negotiate check speaks (the check's name).
pub const SERVICES: &[&str] =
    &["simpletcp", "smtp", "pop", "imap", "ftp", "dns", "mysql", "pgsql", "sip", "ldap", "none", "http", "https"];

impl Check {
    /// Parses the text form (see the module docs).
    pub fn parse(text: &str) -> Result<Check> {
        let words = split_words(text)?;
        let Some((kind, rest)) = words.split_first() else {
            return Err(Error::invalid("empty check spec"));
        };
        let mut pairs = Vec::with_capacity(rest.len());
        for w in rest {
            match w.split_once('=') {
                Some((k, v)) if !k.is_empty() => pairs.push((k, v)),
                _ => return Err(Error::invalid(format!("'{w}' in check spec is not key=value"))),
            }
        }
        let mut check = Check::from_options(kind, &pairs)?;
        check.spec = text.trim().to_string();
        Ok(check)
    }

    /// Builds a check from a kind and key/value options, as an agent's
    /// parameters give them (`check_type=negotiate`, `service=http`, ...).
    pub fn from_options(kind: &str, options: &[(&str, &str)]) -> Result<Check> {
        Check::from_options_shared(kind, options, &mut Shared::default())
    }

    /// [`Check::from_options`], reusing (and adding to) what `shared` has
    /// already parsed.
    pub fn from_options_shared(kind: &str, options: &[(&str, &str)], shared: &mut Shared) -> Result<Check> {
        let mut opts = Options::new(options)?;
        let mut kind = kind.trim().to_ascii_lowercase();
        if kind == "negotiate" {
            kind = match opts.take("service") {
                Some(s) => s.to_ascii_lowercase(),
                None => return Err(Error::invalid("negotiate needs service=NAME")),
            };
            if !SERVICES.contains(&kind.as_str()) {
                return Err(Error::invalid(format!("unknown negotiate service '{kind}'")));
            }
        }
        let check_kind = match kind.as_str() {
            "on" | "none" => CheckKind::On,
            "off" => CheckKind::Off,
            "connect" => CheckKind::Connect,
            "ping" => CheckKind::Ping,
            "http" | "https" => CheckKind::Http(http(kind == "https", &mut opts, shared)?),
            "udp" => CheckKind::Udp(udp(&mut opts, shared)?),
            "external" => CheckKind::External(external(&mut opts)?),
            s if SERVICES.contains(&s) => CheckKind::Negotiate(service(s, &mut opts, shared)?),
            "" => return Err(Error::invalid("empty check type")),
            other => return Err(Error::invalid(format!("unknown check type '{other}'"))),
        };
        opts.finish(&kind)?;
        let spec = std::iter::once(kind.clone())
            .chain(options.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Check { kind: check_kind, spec })
    }
}

impl std::str::FromStr for Check {
    type Err = Error;
    fn from_str(s: &str) -> Result<Check> {
        Check::parse(s)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

fn http(tls: bool, o: &mut Options, shared: &mut Shared) -> Result<HttpCheck> {
    let path = o.take("request").unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(format!("request={path}: expected a path starting with /")));
    }
    let method = match o.take("method").map(|m| m.to_ascii_uppercase()).as_deref() {
        None | Some("GET") => HttpMethod::Get,
        Some("HEAD") => HttpMethod::Head,
        Some(m) => return Err(Error::invalid(format!("method={m}: expected GET or HEAD"))),
    };
    let virtualhost = o.take("virtualhost").filter(|v| !v.is_empty());
    if let Some(v) = &virtualhost {
        let ok = v.parse::<IpAddr>().is_ok()
            || v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if !ok {
            return Err(Error::invalid(format!("virtualhost={v}: not a host name")));
        }
    }
    let status = match o.take("status") {
        Some(s) => StatusRanges::parse(&s)?,
        None => StatusRanges::default(),
    };
    let receive = o.take("receive").filter(|r| !r.is_empty()).map(|r| shared.regex("receive", &r)).transpose()?;
    let digest = o.take("digest").map(|d| parse_digest(&d)).transpose()?;
    if method == HttpMethod::Head && (receive.is_some() || digest.is_some()) {
        return Err(Error::invalid("method=HEAD has no body: drop receive/digest"));
    }
    let verify = o.take("verify").map(|v| parse_bool("verify", &v)).transpose()?;
    let ca = match o.take("ca") {
        None => None,
        Some(path) => {
            if verify == Some(false) {
                return Err(Error::invalid("ca= needs verify=yes"));
            }
            Some(shared.ca(&path)?)
        }
    };
    if !tls && (verify.is_some() || ca.is_some()) {
        return Err(Error::invalid("verify/ca apply to https only"));
    }
    let verify = verify.unwrap_or(ca.is_some());
    let scheme = if tls { "https" } else { "http" };
    // Only TLS needs the name in the URL (for SNI and name verification);
    // plain HTTP goes to the address with the name in the Host header.
    let host = sni_name(tls, virtualhost.as_deref()).unwrap_or("0.0.0.0");
    let url = reqwest::Url::parse(&format!("{scheme}://{host}{path}"))
        .map_err(|e| Error::invalid(format!("request={path}: {e}")))?;
    Ok(HttpCheck { tls, method, path, virtualhost, status, receive, digest, verify, ca, url })
}

fn udp(o: &mut Options, shared: &mut Shared) -> Result<UdpCheck> {
    let payload = o.take("request").map(|r| unescape(&r)).transpose()?.unwrap_or_default();
    let receive = o.take("receive").filter(|r| !r.is_empty()).map(|r| shared.regex("receive", &r)).transpose()?;
    let reply = o.take("reply").map(|v| parse_bool("reply", &v)).transpose()?;
    if reply == Some(false) && receive.is_some() {
        return Err(Error::invalid("receive= needs reply=yes"));
    }
    let require_reply = reply.unwrap_or(receive.is_some());
    Ok(UdpCheck { payload, require_reply, receive })
}

fn external(o: &mut Options) -> Result<ExternalCheck> {
    let Some(cmd) = o.take("command") else {
        return Err(Error::invalid("external needs command=PROGRAM"));
    };
    let argv = split_words(&cmd)?;
    match argv.first() {
        Some(p) if p.starts_with('/') => Ok(ExternalCheck { argv }),
        Some(p) => Err(Error::invalid(format!("command={p}: give an absolute path (no shell, no PATH search)"))),
        None => Err(Error::invalid("command= is empty")),
    }
}

fn service(name: &str, o: &mut Options, shared: &mut Shared) -> Result<Exchange> {
    Ok(match name {
        "simpletcp" => {
            let request = o.take("request").map(|r| unescape(&r)).transpose()?.unwrap_or_default();
            let Some(receive) = o.take("receive").filter(|r| !r.is_empty()) else {
                return Err(Error::invalid("simpletcp needs receive=REGEX"));
            };
            Exchange::SimpleTcp { request, receive: shared.regex("receive", &receive)? }
        }
        "smtp" => {
            let helo = o.take("helo").unwrap_or_else(|| "localhost".to_string());
            if helo.is_empty() || helo.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::invalid(format!("helo={helo}: not a host name")));
            }
            Exchange::Smtp { helo }
        }
        "pop" => Exchange::Pop,
        "imap" => Exchange::Imap,
        "ftp" => Exchange::Ftp,
        "mysql" => Exchange::Mysql,
        "pgsql" => Exchange::Pgsql,
        "ldap" => Exchange::Ldap,
        "dns" => {
            let Some(name) = o.take("request").map(|r| r.trim_start_matches('/').to_string()) else {
                return Err(Error::invalid("dns needs request=NAME to query"));
            };
            super::dns::validate_name(&name)?;
            let expect = match o.take("receive").filter(|r| !r.is_empty()) {
                None => None,
                Some(r) => Some(
                    r.parse::<IpAddr>()
                        .map_err(|_| Error::invalid(format!("receive={r}: dns expects an IP address")))?,
                ),
            };
            let qtype = match o.take("type").map(|t| t.to_ascii_uppercase()).as_deref() {
                Some("A") => DnsType::A,
                Some("AAAA") => DnsType::Aaaa,
                Some(t) => return Err(Error::invalid(format!("type={t}: expected A or AAAA"))),
                None if matches!(expect, Some(IpAddr::V6(_))) => DnsType::Aaaa,
                None => DnsType::A,
            };
            match (qtype, expect) {
                (DnsType::A, Some(IpAddr::V6(_))) | (DnsType::Aaaa, Some(IpAddr::V4(_))) => {
                    return Err(Error::invalid("dns receive= address family differs from type="));
                }
                _ => {}
            }
            Exchange::Dns { name, qtype, expect }
        }
        "sip" => {
            let user = o.take("user").filter(|u| !u.is_empty());
            if let Some(u) = &user {
                if u.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>') {
                    return Err(Error::invalid(format!("user={u}: not a SIP user@host")));
                }
            }
            let status = match o.take("status") {
                Some(s) => StatusRanges::parse(&s)?,
                None => StatusRanges(vec![(200, 200)]),
            };
            Exchange::Sip { user, status }
        }
        "none" => return Err(Error::invalid("service none is the 'on' check")),
        // http/https arrive here only through negotiate; handled by the caller.
        other => return Err(Error::invalid(format!("unknown negotiate service '{other}'"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(spec: &str) -> String {
        match Check::parse(spec) {
            Err(Error::Invalid(m)) => m,
            Err(e) => panic!("{spec}: wrong error kind {e:?}"),
            Ok(c) => panic!("{spec}: parsed as {c:?}"),
        }
    }

    #[test]
    fn words_quotes_and_escapes() {
        assert_eq!(split_words(r#"a b="c d" e='f\g' h\ i"#).unwrap(), ["a", "b=c d", r"e=f\g", "h i"]);
        assert_eq!(split_words(r#"x="a\"b\\c\d""#).unwrap(), [r#"x=a"b\c\d"#]);
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(matches!(split_words("a 'b"), Err(Error::Invalid(_))));
        assert!(matches!(split_words("a \"b"), Err(Error::Invalid(_))));
        assert!(matches!(split_words("a\\"), Err(Error::Invalid(_))));
        assert_eq!(unescape(r"GET\r\n\x41\0\\\t").unwrap(), b"GET\r\nA\0\\\t");
        assert!(unescape(r"\q").is_err());
        assert!(unescape(r"\x4").is_err());
        assert!(unescape("\\").is_err());
    }

    #[test]
    fn status_ranges() {
        let r = StatusRanges::parse("200,301-302").unwrap();
        assert_eq!(r.0, vec![(200, 200), (301, 302)]);
        assert!(r.contains(200) && r.contains(301) && r.contains(302));
        assert!(!r.contains(201) && !r.contains(303) && !r.contains(503));
        assert_eq!(r.to_string(), "200,301-302");
        assert_eq!(StatusRanges::parse("200-299 400-499 503").unwrap().0.len(), 3);
        assert!(StatusRanges::default().contains(204) && !StatusRanges::default().contains(300));
        for bad in ["", ",", "abc", "302-301", "99", "1000", "200-", "-200", "2OO", "70000"] {
            assert!(matches!(StatusRanges::parse(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn http_specs() {
        let c = Check::parse(
            "http request=/health virtualhost=www.example.com status=200,301-302 receive='ok|ready' method=head",
        )
        .err()
        .map(|e| e.to_string());
        assert!(c.unwrap().contains("HEAD"), "HEAD with receive is refused");
        let c = Check::parse("http request=/health virtualhost=www.example.com status=200,301-302 receive='ok|ready'")
            .unwrap();
        let CheckKind::Http(h) = &c.kind else { panic!("{c:?}") };
        assert!(!h.tls && h.method == HttpMethod::Get && h.path == "/health");
        assert_eq!(h.virtualhost.as_deref(), Some("www.example.com"));
        assert_eq!(h.status.0, vec![(200, 200), (301, 302)]);
        assert!(h.receive.as_ref().unwrap().is_match(b"all ready"));
        assert!(!h.verify && h.digest.is_none());
        assert_eq!(c.spec, "http request=/health virtualhost=www.example.com status=200,301-302 receive='ok|ready'");

        let c = Check::parse("https digest=9B3A0C85A887A256D6939DA88AABD8CD verify=yes").unwrap();
        let CheckKind::Http(h) = &c.kind else { panic!() };
        assert!(h.tls && h.verify && h.path == "/" && h.status == StatusRanges::default());
        assert_eq!(h.digest.unwrap()[0], 0x9b);

        // ldirectord's spelling.
        let c = Check::from_options("negotiate", &[("service", "https"), ("httpmethod", "HEAD"), ("url", "/x?y=1")])
            .unwrap();
        let CheckKind::Http(h) = &c.kind else { panic!() };
        assert!(h.tls && h.method == HttpMethod::Head && h.path == "/x?y=1" && !h.verify);
    }

    #[test]
    fn negotiate_specs() {
        let c = Check::parse(r#"simpletcp request="PING\r\n" receive='^\+PONG'"#).unwrap();
        let CheckKind::Negotiate(Exchange::SimpleTcp { request, receive }) = &c.kind else { panic!() };
        assert_eq!(request, b"PING\r\n");
        assert!(receive.is_match(b"+PONG\r\n"));

        let c = Check::parse("negotiate service=dns request=www.example.com receive=2001:db8::1").unwrap();
        let CheckKind::Negotiate(Exchange::Dns { name, qtype, expect }) = &c.kind else { panic!() };
        assert_eq!((name.as_str(), *qtype), ("www.example.com", DnsType::Aaaa));
        assert_eq!(*expect, Some("2001:db8::1".parse().unwrap()));

        let c = Check::parse("sip").unwrap();
        let CheckKind::Negotiate(Exchange::Sip { user: None, status }) = &c.kind else { panic!() };
        assert!(status.contains(200) && !status.contains(404));
        let c = Check::parse("smtp helo_name=lb1.example.com").unwrap();
        assert!(matches!(&c.kind, CheckKind::Negotiate(Exchange::Smtp { helo }) if helo == "lb1.example.com"));
        for s in ["pop", "imap", "ftp", "mysql", "pgsql", "ldap"] {
            assert!(matches!(Check::parse(s).unwrap().kind, CheckKind::Negotiate(_)), "{s}");
        }
        assert!(matches!(Check::parse("negotiate service=none").unwrap().kind, CheckKind::On));
        assert!(matches!(Check::parse("on").unwrap().kind, CheckKind::On));
        assert!(matches!(Check::parse("OFF").unwrap().kind, CheckKind::Off));
        assert!(matches!(Check::parse("connect").unwrap().kind, CheckKind::Connect));
        assert!(matches!(Check::parse("ping").unwrap().kind, CheckKind::Ping));
    }

    #[test]
    fn udp_and_external_specs() {
        let c = Check::parse(r#"udp request="\x01hi" receive=^ok"#).unwrap();
        let CheckKind::Udp(u) = &c.kind else { panic!() };
        assert!(u.require_reply && u.payload == b"\x01hi");
        let c = Check::parse("udp").unwrap();
        let CheckKind::Udp(u) = &c.kind else { panic!() };
        assert!(!u.require_reply && u.payload.is_empty() && u.receive.is_none());

        let c = Check::parse(r#"external command="/usr/local/bin/check --name 'a b'""#).unwrap();
        let CheckKind::External(e) = &c.kind else { panic!() };
        assert_eq!(e.argv, ["/usr/local/bin/check", "--name", "a b"]);
    }

    #[test]
    fn bad_specs_are_configured_errors() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("bogus", "unknown check type"),
            ("negotiate", "service="),
            ("negotiate service=gopher", "unknown negotiate service"),
            ("http request", "not key=value"),
            ("http =x", "not key=value"),
            ("http request=health", "starting with /"),
            ("http request='/a b'", "starting with /"),
            ("http method=POST", "GET or HEAD"),
            ("http status=600-500", "backwards"),
            ("http status=", "empty"),
            ("http receive='('", "bad regex"),
            ("http digest=abc", "32 hex"),
            ("http digest=zz3a0c85a887a256d6939da88aabd8cd", "32 hex"),
            ("http verify=yes", "https only"),
            ("https verify=maybe", "yes or no"),
            ("https ca=/nonexistent/ca.pem", "ca=/nonexistent"),
            ("https ca=/etc/hostname verify=no", "needs verify=yes"),
            ("https virtualhost='a b'", "not a host name"),
            ("http request=/ request=/x", "twice"),
            ("http path=/ url=/x", "twice"),
            ("connect receive=x", "does not apply"),
            ("ping request=x", "does not apply"),
            ("on x=1", "does not apply"),
            ("simpletcp request=x", "needs receive"),
            ("simpletcp receive=ok request='\\q'", "unknown escape"),
            ("dns", "needs request"),
            ("dns request=", "name"),
            ("dns request=a..b", "name"),
            ("dns request=x type=MX", "A or AAAA"),
            ("dns request=x receive=notanip", "IP address"),
            ("dns request=x type=A receive=::1", "family"),
            ("udp reply=no receive=x", "needs reply=yes"),
            ("external", "command="),
            ("external command=", "empty"),
            ("external command=true", "absolute path"),
            ("external command='/bin/x \"'", "unterminated"),
            ("sip user='a b'", "SIP"),
            ("smtp helo=", "host name"),
            ("http receive=\"unterminated", "unterminated"),
        ];
        for (spec, want) in table {
            let msg = configured(spec);
            assert!(msg.contains(want), "{spec:?}: {msg:?} does not mention {want:?}");
        }
    }

    #[test]
    fn one_shared_parse_compiles_each_regex_once_and_bounds_its_size() {
        let mut shared = Shared::default();
        let a = Check::from_options_shared("http", &[("request", "/a"), ("receive", "^ok")], &mut shared).unwrap();
        let b = Check::from_options_shared("simpletcp", &[("receive", "^ok")], &mut shared).unwrap();
        let (CheckKind::Http(h), CheckKind::Negotiate(Exchange::SimpleTcp { receive, .. })) = (&a.kind, &b.kind) else {
            panic!("{a:?} {b:?}")
        };
        assert!(Arc::ptr_eq(h.receive.as_ref().unwrap(), receive));
        // A pattern that compiles to more than MAX_REGEX_SIZE is refused.
        let msg = configured(r"http receive='\w{200}'");
        assert!(msg.contains("bad regex"), "{msg}");
        assert!(Check::parse(r"http receive='\w{8}'").is_ok());
    }

    #[test]
    fn distinct_regexes_share_one_budget() {
        // Thousands of small patterns (one per real, say its host name) fit.
        let mut shared = Shared::default();
        for i in 0..4096 {
            let receive = format!("^web{i}$");
            Check::from_options_shared("http", &[("receive", &receive)], &mut shared).unwrap();
        }
        // Large ones exhaust it (256 distinct \w{20}: 24 s and 311 MB before).
        let mut shared = Shared::default();
        let start = std::time::Instant::now();
        let refused = (0..256).find_map(|i| {
            let receive = format!(r"\w{{20}}{i}");
            Check::from_options_shared("http", &[("receive", &receive)], &mut shared).err()
        });
        assert!(matches!(&refused, Some(Error::Invalid(m)) if m.contains("together")), "{refused:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            let _ = Check::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_option_soup(
            kind in "(http|https|dns|udp|sip|simpletcp|external|negotiate|ping)",
            opts in proptest::collection::vec(("(request|receive|status|digest|verify|type|reply|command|service|virtualhost|method)", "[ -~]{0,12}"), 0..4),
        ) {
            let pairs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            match Check::from_options(&kind, &pairs) {
                Ok(_) | Err(Error::Invalid(_)) => {}
                Err(e) => proptest::prop_assert!(false, "not a Configured error: {e:?}"),
            }
        }
    }

    #[test]
    fn parse_never_panics_on_junk() {
        let junk = [
            "=",
            "==",
            "http ==",
            "\"",
            "'",
            "\\",
            "dns request=\u{0}",
            "http request=/\u{7f}",
            "udp request=\\x",
            "ĥttp",
            "external command='/bin/true' command=/x",
        ];
        for j in junk {
            let _ = Check::parse(j);
        }
    }
}
