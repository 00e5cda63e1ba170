//! Health checks of real servers: what to check ([`Check`], parsed from
//! ldirectord-like words), how to check one real ([`check`]), when a real
//! counts as up ([`Health`], pure rise/fall), and checking many at once
//! ([`Scheduler`]).
//!
//! Every check is bounded by its timeout as a whole (connect, TLS, request
//! and body together), so a hung backend costs one timeout and nothing
//! else: checks run concurrently as tasks, never one after another.

#![forbid(unsafe_code)]

pub mod checks;
pub mod dns;
pub mod error;
mod external;
pub mod health;
mod http;
mod ping;
mod sched;
mod tcp;
mod udp;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use checks::{Check, CheckKind, Exchange, ExternalCheck, HttpCheck, HttpMethod, StatusRanges, UdpCheck};
pub use dns::DnsType;
pub use error::{Error, Result};
pub use health::{Health, Initial, Transition};
pub use http::{forget_clients, BODY_BUDGET, MAX_BODY, MAX_CLIENTS};
pub use sched::{Job, Report, Scheduler};

/// The virtual service a real belongs to, passed to external checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Virtual {
    Addr(SocketAddr),
    Fwmark(u32),
}

/// One real server as a check sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: IpAddr,
    pub port: u16,
    /// Check this port instead of `port` (ldirectord's `checkport`).
    pub checkport: Option<u16>,
    /// Source address to bind for the check's traffic.
    pub source: Option<IpAddr>,
    pub virtual_service: Option<Virtual>,
}

impl Target {
    pub fn new(addr: IpAddr, port: u16) -> Target {
        Target { addr, port, checkport: None, source: None, virtual_service: None }
    }

    /// Where checks connect to: the real's address at `checkport` or `port`.
    pub fn check_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.checkport.unwrap_or(self.port))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", SocketAddr::new(self.addr, self.port))
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Up,
    /// With a short reason for logs: `http status 503`, `connect refused`.
    Down(String),
}

impl CheckOutcome {
    pub fn is_up(&self) -> bool {
        matches!(self, CheckOutcome::Up)
    }
}

impl fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckOutcome::Up => f.write_str("up"),
            CheckOutcome::Down(r) => write!(f, "down: {r}"),
        }
    }
}

/// Runs one check against one real, never for longer than `timeout`.
pub async fn check(target: &Target, check: &Check, timeout: Duration) -> CheckOutcome {
    check_until(target, check, timeout, tokio::time::Instant::now() + timeout).await
}

/// [`check`] with its deadline given: a scheduler starting many checks
/// at once reads the clock once for all of them (in a VM whose clock has
/// no vDSO, every reading is a system call).
pub async fn check_until(
    target: &Target,
    check: &Check,
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> CheckOutcome {
    match tokio::time::timeout_at(deadline, run(target, check, timeout)).await {
        Ok(outcome) => outcome,
        Err(_) => CheckOutcome::Down(format!("timeout after {}", fmt_duration(timeout))),
    }
}

async fn run(target: &Target, check: &Check, timeout: Duration) -> CheckOutcome {
    let result = match &check.kind {
        CheckKind::On => Ok(()),
        CheckKind::Off => Err("check is off".to_string()),
        CheckKind::Connect => tcp::connect(target).await.map(drop),
        // The other kinds' futures are boxed: a task is as big as its
        // largest possible future, and ten thousand connect checks should
        // not each carry room for an HTTP client's state.
        CheckKind::Http(h) => Box::pin(http::check(target, h)).await,
        CheckKind::Negotiate(s) => match s {
            Exchange::Dns { name, qtype, expect } => Box::pin(udp::dns(target, name, *qtype, *expect)).await,
            Exchange::Sip { user, status } => Box::pin(udp::sip(target, user.as_deref(), status)).await,
            tcp_service => Box::pin(tcp::negotiate(target, tcp_service)).await,
        },
        CheckKind::Udp(u) => Box::pin(udp::udp(target, u, timeout)).await,
        CheckKind::Ping => Box::pin(ping::ping(target, timeout)).await,
        CheckKind::External(e) => Box::pin(external::run(target, e)).await,
    };
    match result {
        Ok(()) => CheckOutcome::Up,
        Err(reason) => CheckOutcome::Down(reason),
    }
}

/// `2s`, `1.5s`, `300ms`: short, for reasons.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// `connect refused`, `read reset`: the verb and what the kernel said.
fn io_reason(what: &str, e: &io::Error) -> String {
    use io::ErrorKind::*;
    let why = match e.kind() {
        ConnectionRefused => "refused",
        ConnectionReset => "reset",
        ConnectionAborted => "aborted",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        UnexpectedEof => "closed by peer",
        BrokenPipe => "closed by peer",
        _ => return format!("{what}: {e}"),
    };
    format!("{what} {why}")
}

/// A value different in every call and every process, for ids and nonces.
fn nonce() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Shows bytes from a peer in a reason: printable, short.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().filter(|c| !c.is_control()).take(60).collect();
    if line.chars().count() > 60 {
        out.push('…');
    }
    if out.is_empty() {
        out = format!("{} bytes", bytes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_reasons() {
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason("connect", &e), "connect refused");
        assert_eq!(excerpt(b"554 go away\r\nmore"), "554 go away");
        assert_eq!(excerpt(b""), "0 bytes");
        assert_ne!(nonce(), nonce());
        let t = Target { checkport: Some(8080), ..Target::new("127.0.0.1".parse().unwrap(), 80) };
        assert_eq!(t.check_addr().to_string(), "127.0.0.1:8080");
        assert_eq!(t.to_string(), "127.0.0.1:80");
    }

    #[test]
    fn a_connect_check_is_a_small_future() {
        // Thousands of these are alive at once; see the boxing in run().
        let t = Target::new("127.0.0.1".parse().unwrap(), 1);
        let c = Check::parse("connect").unwrap();
        let f = check(&t, &c, Duration::from_secs(1));
        let size = std::mem::size_of_val(&f);
        drop(f);
        assert!(size <= 1024, "a connect check's future is {size} bytes");
    }

    #[tokio::test]
    async fn static_checks() {
        let c = Check::parse("off").unwrap();
        let t = Target::new("127.0.0.1".parse().unwrap(), 1);
        assert_eq!(check(&t, &c, Duration::from_secs(1)).await, CheckOutcome::Down("check is off".into()));
        assert_eq!(check(&t, &Check::parse("on").unwrap(), Duration::from_secs(1)).await, CheckOutcome::Up);
    }
}
