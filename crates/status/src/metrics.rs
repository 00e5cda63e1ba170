//! The IPVS table and the health daemons' state as Prometheus metrics, in
//! the text exposition format 0.0.4 (what node_exporter's textfile
//! collector and every Prometheus scrape read). One renderer for
//! `lvsctl metrics` and the realservers agent's `metrics_listen`.
//!
//! Names and labels:
//! - kernel counters per service (`service`) and per destination (`service`,
//!   `real`): `lvs_{service,destination}_{connections,incoming_packets,
//!   outgoing_packets,incoming_bytes,outgoing_bytes}_total`; per
//!   destination `lvs_destination_weight` (with `forward`),
//!   `lvs_destination_{active,inactive}_connections`;
//! - per real of a realservers resource (`resource`, `service`, `real`):
//!   `lvs_real_up`, `lvs_real_weight`, `lvs_real_last_transition_timestamp_seconds`,
//!   the histogram `lvs_real_check_duration_seconds`, and
//!   `lvs_real_check_failures_total` by `reason` (one of [`REASONS`]);
//! - per realservers resource: `lvs_realservers_checks_total`,
//!   `lvs_realservers_checks_per_second`, `lvs_realservers_checks_in_flight`,
//!   `lvs_realservers_{reals,healthy_reals}`, `lvs_realservers_state_timestamp_seconds`;
//! - per sorry resource (`resource`, `service`, `fallback`): `lvs_sorry_active`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{AllStates, RealserversState, SorryState};
use lvs_ipvs::{Stats, Table, TableEntry};
use lvs_probe::CheckOutcome;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds in seconds of the check-duration histogram's buckets
/// (`+Inf` follows): from a loopback connect to a check timing out.
pub const CHECK_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The values of the `reason` label of `lvs_real_check_failures_total`: a
/// short closed set, so a real's failures make a handful of series.
pub const REASONS: [&str; 9] =
    ["timeout", "refused", "reset", "unreachable", "status", "content", "command", "off", "other"];

/// What a failed check's reason (as [`CheckOutcome::Down`] words it) counts as.
pub fn failure_reason(why: &str) -> &'static str {
    let has = |s: &str| why.contains(s);
    if why.starts_with("timeout") || has("timed out") {
        "timeout"
    } else if has("refused") {
        "refused"
    } else if has("reset") || has("closed by peer") || has("aborted") {
        "reset"
    } else if has("unreachable") || has("not available") || has("no echo reply") {
        "unreachable"
    } else if has(" status ") || why.starts_with("dns ") || has("error") || has("resultCode") {
        "status"
    } else if has("does not match") || has("md5") || has("body") || has(" is not ") || has("no ") {
        "content"
    } else if why.starts_with("command") {
        "command"
    } else if why == "check is off" {
        "off"
    } else {
        "other"
    }
}

/// One real's checks since its daemon started: how many, how long they
/// took (cumulative histogram counts per [`CHECK_BUCKETS`] bound), and its
/// failures by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckStats {
    pub checks: u64,
    pub seconds_sum: f64,
    /// Checks that took at most each bound of [`CHECK_BUCKETS`].
    pub buckets: [u64; CHECK_BUCKETS.len()],
    pub failures: BTreeMap<String, u64>,
}

impl CheckStats {
    pub fn observe(&mut self, outcome: &CheckOutcome, took: Duration) {
        let secs = took.as_secs_f64();
        self.checks += 1;
        self.seconds_sum += secs;
        for (count, bound) in self.buckets.iter_mut().zip(CHECK_BUCKETS) {
            *count += u64::from(secs <= bound);
        }
        if let CheckOutcome::Down(why) = outcome {
            *self.failures.entry(failure_reason(why).to_string()).or_insert(0) += 1;
        }
    }
}

/// Metric families in the order first seen, each with its samples; the
/// format wants a family's samples together under one HELP and TYPE.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
    index: BTreeMap<&'static str, usize>,
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: String,
}

impl Exposition {
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) -> &mut String {
        let i = *self.index.entry(name).or_insert_with(|| {
            self.families.push(Family { name, kind, help, samples: String::new() });
            self.families.len() - 1
        });
        &mut self.families[i].samples
    }

    fn sample(&mut self, (name, kind, help): Meta, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let out = self.family(name, kind, help);
        out.push_str(name);
        out.push_str(suffix);
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", number(value));
    }

    /// The kernel's counters and destinations of each service in `table`.
    pub fn ipvs(&mut self, table: &Table) {
        for entry in &table.entries {
            self.service(entry);
        }
    }

    /// One service's counters and its destinations.
    pub fn service(&mut self, entry: &TableEntry) {
        let service = entry.service.key.to_string();
        if let Some(s) = &entry.service.stats {
            self.stats("service", &[("service", &service)], s);
        }
        for d in &entry.destinations {
            let real = d.endpoint().to_string();
            let labels = [("service", service.as_str()), ("real", real.as_str())];
            if let Some(s) = &d.stats {
                self.stats("destination", &labels, s);
            }
            let forward = d.forward.to_string();
            let with_forward = [labels[0], labels[1], ("forward", forward.as_str())];
            self.sample(DEST_WEIGHT, "", &with_forward, f64::from(d.weight));
            self.sample(DEST_ACTIVE, "", &labels, f64::from(d.active_conns));
            self.sample(DEST_INACTIVE, "", &labels, f64::from(d.inactive_conns));
        }
    }

    fn stats(&mut self, of: &str, labels: &[(&str, &str)], s: &Stats) {
        let metas = if of == "service" { SERVICE_STATS } else { DEST_STATS };
        for (meta, value) in metas.into_iter().zip([s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]) {
            // Counters past 2^53 lose their last digits as floats; print exactly.
            self.sample_u64(meta, labels, value);
        }
    }

    fn sample_u64(&mut self, meta: Meta, labels: &[(&str, &str)], value: u64) {
        let out = self.family(meta.0, meta.1, meta.2);
        out.push_str(meta.0);
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(out, "}} {value}");
    }

    /// One realservers resource's daemon state.
    pub fn realservers(&mut self, resource: &str, s: &RealserversState) {
        let own = [("resource", resource), ("service", s.service.as_str())];
        self.sample(CHECKS_TOTAL, "", &own, s.checks_total as f64);
        self.sample(CHECKS_RATE, "", &own, s.checks_per_second);
        self.sample(IN_FLIGHT, "", &own, s.checks_in_flight as f64);
        self.sample(REALS, "", &own, s.reals.len() as f64);
        self.sample(HEALTHY, "", &own, s.healthy as f64);
        self.sample(UPDATED, "", &own, s.updated as f64);
        for r in &s.reals {
            let labels = [own[0], own[1], ("real", r.real.as_str())];
            self.sample(REAL_UP, "", &labels, f64::from(u8::from(r.up)));
            if let Some(w) = r.weight {
                self.sample(REAL_WEIGHT, "", &labels, f64::from(w));
            }
            self.sample(REAL_SINCE, "", &labels, r.since as f64);
            let c = &r.checks;
            for (i, bound) in CHECK_BUCKETS.iter().enumerate() {
                let le = number(*bound);
                self.sample(DURATION, "_bucket", &[labels[0], labels[1], labels[2], ("le", &le)], c.buckets[i] as f64);
            }
            self.sample(DURATION, "_bucket", &[labels[0], labels[1], labels[2], ("le", "+Inf")], c.checks as f64);
            self.sample(DURATION, "_sum", &labels, c.seconds_sum);
            self.sample(DURATION, "_count", &labels, c.checks as f64);
            for reason in REASONS {
                let n = c.failures.get(reason).copied().unwrap_or(0);
                self.sample(FAILURES, "", &[labels[0], labels[1], labels[2], ("reason", reason)], n as f64);
            }
        }
    }

    /// One sorry resource's daemon state.
    pub fn sorry(&mut self, resource: &str, s: &SorryState) {
        let labels = [("resource", resource), ("service", s.service.as_str()), ("fallback", s.fallback.as_str())];
        self.sample(SORRY_ACTIVE, "", &labels, f64::from(u8::from(s.active)));
    }

    /// Every daemon state found.
    pub fn daemons(&mut self, all: &AllStates) {
        for (name, s) in &all.realservers {
            self.realservers(name, s);
        }
        for (name, s) in &all.sorry {
            self.sorry(name, s);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            out.push_str(&f.samples);
        }
        out
    }
}

/// Scrapes answered at once; more wait in the listen queue.
const SCRAPES_AT_ONCE: usize = 4;
/// A request's head must arrive within this and fit in this.
const REQUEST_TIME: Duration = Duration::from_secs(5);
const REQUEST_BYTES: usize = 8 << 10;

/// The socket `metrics_listen` names, listening. IP_FREEBIND: the address
/// may be one that is not up yet (the VIP, which a group starts last).
pub fn listen(addr: SocketAddr) -> lvs_ocf::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let fail = |e: std::io::Error| lvs_ocf::Error::io(format!("metrics_listen {addr}"), e);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket.set_cloexec(true).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    match addr {
        SocketAddr::V4(_) => socket.set_freebind_v4(true),
        SocketAddr::V6(_) => socket.set_freebind_v6(true),
    }
    .map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(64).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(socket.into())
}

/// Answers `GET /metrics` (and HEAD) on `listener` with what `render`
/// returns, until this future is dropped; any other path is 404.
pub async fn serve(
    listener: std::net::TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> lvs_ocf::Result<()> {
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| lvs_ocf::Error::io("metrics listener", e))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(SCRAPES_AT_ONCE));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return Ok(()) };
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of files, say: not this daemon's health checks' business.
            Err(e) => {
                tracing::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &*render).await {
                tracing::debug!("metrics: {e}");
            }
            drop(slot);
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream, render: &(dyn Fn() -> String + Send + Sync)) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(512);
    let read = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_BYTES {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        std::io::Result::Ok(())
    };
    tokio::time::timeout(REQUEST_TIME, read).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", render()),
        ("GET" | "HEAD", _) => ("404 Not Found", "metrics are at /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
    };
    let kind = if status.starts_with("200") { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let mut reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        reply.push_str(&body);
    }
    tokio::time::timeout(REQUEST_TIME, stream.write_all(reply.as_bytes()))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let _ = stream.shutdown().await;
    Ok(())
}

/// A family's name, type and help.
type Meta = (&'static str, &'static str, &'static str);

const SERVICE_STATS: [Meta; 5] = [
    ("lvs_service_connections_total", "counter", "Connections the kernel scheduled for the virtual service."),
    ("lvs_service_incoming_packets_total", "counter", "Packets from clients to the virtual service."),
    ("lvs_service_outgoing_packets_total", "counter", "Packets from real servers to clients (NAT only)."),
    ("lvs_service_incoming_bytes_total", "counter", "Bytes from clients to the virtual service."),
    ("lvs_service_outgoing_bytes_total", "counter", "Bytes from real servers to clients (NAT only)."),
];
const DEST_STATS: [Meta; 5] = [
    ("lvs_destination_connections_total", "counter", "Connections the kernel scheduled to the real server."),
    ("lvs_destination_incoming_packets_total", "counter", "Packets from clients forwarded to the real server."),
    ("lvs_destination_outgoing_packets_total", "counter", "Packets from the real server to clients (NAT only)."),
    ("lvs_destination_incoming_bytes_total", "counter", "Bytes from clients forwarded to the real server."),
    ("lvs_destination_outgoing_bytes_total", "counter", "Bytes from the real server to clients (NAT only)."),
];
const DEST_WEIGHT: Meta = ("lvs_destination_weight", "gauge", "The real server's weight in the kernel table.");
const DEST_ACTIVE: Meta =
    ("lvs_destination_active_connections", "gauge", "Established connections to the real server (ActiveConn).");
const DEST_INACTIVE: Meta =
    ("lvs_destination_inactive_connections", "gauge", "Other connections to the real server (InActConn).");
const CHECKS_TOTAL: Meta = ("lvs_realservers_checks_total", "counter", "Health checks the daemon finished.");
const CHECKS_RATE: Meta =
    ("lvs_realservers_checks_per_second", "gauge", "Health checks finished per second over the last interval.");
const IN_FLIGHT: Meta = ("lvs_realservers_checks_in_flight", "gauge", "Health checks running now.");
const REALS: Meta = ("lvs_realservers_reals", "gauge", "Real servers the resource manages.");
const HEALTHY: Meta = ("lvs_realservers_healthy_reals", "gauge", "Real servers whose health is up.");
const UPDATED: Meta =
    ("lvs_realservers_state_timestamp_seconds", "gauge", "When the daemon last wrote this state (Unix time).");
const REAL_UP: Meta = ("lvs_real_up", "gauge", "1 if the real server's health is up, 0 if down.");
const REAL_WEIGHT: Meta =
    ("lvs_real_weight", "gauge", "The weight the daemon gives the real server now (absent: not in the table).");
const REAL_SINCE: Meta =
    ("lvs_real_last_transition_timestamp_seconds", "gauge", "When the real server's health last changed (Unix time).");
const DURATION: Meta = ("lvs_real_check_duration_seconds", "histogram", "How long health checks took.");
const FAILURES: Meta = ("lvs_real_check_failures_total", "counter", "Failed health checks by reason.");
const SORRY_ACTIVE: Meta =
    ("lvs_sorry_active", "gauge", "1 while the fallback server is in the service (no real has weight).");

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value as the format spells it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        (if v > 0.0 { "+Inf" } else { "-Inf" }).into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RealState;

    fn state() -> RealserversState {
        let mut checks = CheckStats::default();
        checks.observe(&CheckOutcome::Up, Duration::from_millis(3));
        checks.observe(&CheckOutcome::Down("connect refused".into()), Duration::from_micros(400));
        checks.observe(&CheckOutcome::Down("timeout after 1s".into()), Duration::from_secs(1));
        RealserversState {
            service: "tcp:10.0.0.100:80".into(),
            updated: 1_796_000_000,
            interval_s: 1,
            healthy: 1,
            reals: vec![
                RealState {
                    real: "10.0.0.11:80".into(),
                    up: true,
                    weight: Some(2),
                    last_result: "up".into(),
                    since: 1_795_999_000,
                    successes: 1,
                    failures: 0,
                    checks,
                },
                RealState {
                    real: "10.0.0.12:80".into(),
                    up: false,
                    weight: None,
                    last_result: "down: timeout after 1s".into(),
                    since: 1_795_999_500,
                    successes: 0,
                    failures: 3,
                    checks: CheckStats::default(),
                },
            ],
            last_error: None,
            checks_total: 3,
            checks_per_second: 1.5,
            checks_in_flight: 1,
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_failures_counted_by_reason() {
        let c = &state().reals[0].checks;
        assert_eq!(c.checks, 3);
        // 0.4 ms, 3 ms, 1 s against 1 ms, 2.5 ms, 5 ms, ... 1 s, 2.5 s, 5 s.
        assert_eq!(c.buckets, [1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3]);
        assert!((c.seconds_sum - 1.0034).abs() < 1e-9, "{}", c.seconds_sum);
        assert_eq!(c.failures.get("refused"), Some(&1));
        assert_eq!(c.failures.get("timeout"), Some(&1));
        assert_eq!(c.failures.len(), 2);
    }

    #[test]
    fn reasons_fall_into_the_closed_set() {
        for (why, want) in [
            ("timeout after 1s", "timeout"),
            ("connect refused", "refused"),
            ("connect timed out", "timeout"),
            ("connect reset", "reset"),
            ("closed by peer", "reset"),
            ("connect host unreachable", "unreachable"),
            ("no echo reply", "unreachable"),
            ("http status 503", "status"),
            ("https status 500", "status"),
            ("sip status 486", "status"),
            ("dns SERVFAIL", "status"),
            ("mysql error 1045: denied", "status"),
            ("ldap bind resultCode 49", "status"),
            ("reply does not match /ok/", "content"),
            ("body md5 00 is not 11", "content"),
            ("dns: no A record for x", "content"),
            ("command exited 1", "command"),
            ("check is off", "off"),
            ("check task failed", "other"),
        ] {
            assert_eq!(failure_reason(why), want, "{why}");
            assert!(REASONS.contains(&failure_reason(why)));
        }
    }

    #[test]
    fn each_family_once_with_its_samples_together() {
        let mut e = Exposition::default();
        e.realservers("web \"reals\"", &state());
        let text = e.render();
        for name in [
            "lvs_real_up",
            "lvs_real_check_duration_seconds",
            "lvs_real_check_failures_total",
            "lvs_realservers_checks_total",
        ] {
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}:\n{text}");
        }
        // Samples of one family follow its TYPE line without another family between.
        let lines: Vec<&str> = text.lines().collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut current = "";
        for l in &lines {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap_or_default();
                assert!(seen.insert(current.to_string()), "{current} twice");
            } else if !l.starts_with('#') {
                assert!(l.starts_with(current), "{l} under {current}");
            }
        }
        let labels = r#"resource="web \"reals\"",service="tcp:10.0.0.100:80",real="10.0.0.11:80""#;
        assert!(text.contains(&format!("lvs_real_up{{{labels}}} 1\n")), "{text}");
        assert!(text.contains(&format!("lvs_real_weight{{{labels}}} 2\n")), "{text}");
        assert!(text.contains(&format!("lvs_real_check_duration_seconds_bucket{{{labels},le=\"0.001\"}} 1\n")));
        assert!(text.contains(&format!("lvs_real_check_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n")));
        assert!(text.contains(&format!("lvs_real_check_duration_seconds_count{{{labels}}} 3\n")));
        assert!(text.contains(&format!("lvs_real_check_failures_total{{{labels},reason=\"refused\"}} 1\n")));
        assert!(text.contains(&format!("lvs_real_check_failures_total{{{labels},reason=\"status\"}} 0\n")));
        let down = r#"resource="web \"reals\"",service="tcp:10.0.0.100:80",real="10.0.0.12:80""#;
        assert!(text.contains(&format!("lvs_real_up{{{down}}} 0\n")), "{text}");
        assert!(!text.contains(&format!("lvs_real_weight{{{down}}}")), "no weight for a real out of the table");
        assert!(text.contains(
            "lvs_realservers_checks_per_second{resource=\"web \\\"reals\\\"\",service=\"tcp:10.0.0.100:80\"} 1.5\n"
        ));
    }

    #[test]
    fn kernel_counters_print_exactly() {
        use lvs_ipvs::{Destination, ForwardMethod, Info, Service, ServiceKey};
        let key: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
        let big = Stats { conns: (1 << 60) + 1, inpkts: 2, outpkts: 3, inbytes: 4, outbytes: 5, ..Stats::default() };
        let mut service = Service::new(key, "wrr");
        service.stats = Some(big);
        let mut d = Destination::new("10.0.0.11".parse().unwrap(), 80, ForwardMethod::Route).with_weight(3);
        d.stats = Some(big);
        d.active_conns = 7;
        let info = Info { version: 0x0001_0201, conn_tab_size: 4096 };
        let table = Table::new(info, vec![TableEntry { service, destinations: vec![d] }]);
        let mut e = Exposition::default();
        e.ipvs(&table);
        let text = e.render();
        assert!(text.contains("lvs_service_connections_total{service=\"tcp:10.0.0.100:80\"} 1152921504606846977\n"));
        let labels = "service=\"tcp:10.0.0.100:80\",real=\"10.0.0.11:80\"";
        assert!(text.contains(&format!("lvs_destination_outgoing_bytes_total{{{labels}}} 5\n")), "{text}");
        assert!(text.contains(&format!("lvs_destination_weight{{{labels},forward=\"gate\"}} 3\n")), "{text}");
        assert!(text.contains(&format!("lvs_destination_active_connections{{{labels}}} 7\n")), "{text}");
    }

    async fn ask(addr: SocketAddr, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_only_and_idle_clients_do_not_block_it() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            "# TYPE lvs_x gauge\nlvs_x 1\n".to_string()
        });
        let server = tokio::spawn(serve(listener, render));
        let ok = ask(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")), "{ok}");
        assert!(ok.ends_with("\r\n\r\n# TYPE lvs_x gauge\nlvs_x 1\n"), "{ok}");
        let head = ask(addr, "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head}");
        assert!(ask(addr, "GET / HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404 "));
        assert!(ask(addr, "POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405 "));
        assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), 2, "rendered for GET and HEAD only");
        // Three clients that say nothing hold three of the four slots;
        // the fourth still answers.
        let idle: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(ask(addr, "GET /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200 OK"));
        drop(idle);
        server.abort();
    }

    #[test]
    fn listens_on_an_address_that_is_not_up_yet() {
        // 192.0.2.0/24 is TEST-NET-1: on no interface here, as a VIP before its start.
        let l = listen("192.0.2.77:0".parse().unwrap()).expect("freebind");
        assert_eq!(l.local_addr().unwrap().ip().to_string(), "192.0.2.77");
    }
}
