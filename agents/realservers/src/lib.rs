//! `ocf:lvs:realservers` — the real servers of one virtual service, kept
//! in the kernel table according to health checks (what ldirectord and
//! keepalived's checkers do). A daemon per resource checks every real
//! concurrently each interval and owns exactly these destinations.

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lvs_daemon::{Instance, Signals, Wake};
use lvs_ipvs::{Connector, Destination, Ipvs, ServiceKey};
use lvs_ocf::{self as ocf, spec::positional_in_order, AgentSpec, Context, Heartbeat, Outcome, ParamSpec, Params};
use lvs_probe::{self as probe, Check, CheckKind, Health, Initial, Job, Scheduler, Target, Transition, Virtual};
use lvs_status::metrics::{self, CheckStats, Exposition};
pub mod reals;
use crate::reals::Real;
use lvs_ocf::Error;
use lvs_ocf::Result;
use lvs_status::{RealState, RealserversState as State};

pub static SPEC: AgentSpec = AgentSpec {
    name: "realservers",
    version: "1.0",
    shortdesc: "Health-checked real servers of an IPVS virtual service",
    longdesc: "Adds the listed real servers to an IPVS virtual service and keeps each one in \
        rotation only while its health check passes: a failing real is quiesced (weight 0, \
        existing connections finish) or removed (quiescent=false) within check_interval + \
        check_timeout, and restored when it recovers. A daemon per resource checks all reals \
        concurrently, so a hung server never delays the others; it re-adds its reals if the table \
        is flushed, logs every change, and keeps its view in /run/lvs-agents. It touches no \
        destination it does not own. Monitor fails when the daemon is dead or hung (no \
        heartbeat, on CLOCK_BOOTTIME, for 3 x check_interval + 1 s; wall-clock steps do not \
        count), or when its \
        kernel writes have failed 3 routine passes in a row (a pass each check_interval; past \
        1,000 reals, every ceil(reals/1000) intervals); OCF_CHECK_LEVEL=10 also compares the \
        kernel table with the daemon's view. Stop removes the reals the daemon ran with (its \
        last start or reload) and those real names now; it reads only service, real and \
        cleanstop, so a check parameter that no longer parses (a ca= file since removed) cannot \
        keep the reals in the table. Reload applies changed parameters (e.g. the real list) without stopping. \
        heartbeat v1 form: lvs-realservers::service::real[::check[::request[::receive]]].",
    params: &[
        lvs_service::params::SERVICE_SHARED,
        lvs_service::params::FAMILY,
        ParamSpec::string("real", "Real servers").required().long(
            "Comma-separated real servers: ADDRESS[:PORT] [gate|masq|ipip|ipip+gue:PORT|ipip+gre] \
                [WEIGHT] [\"REQUEST\" [\"RECEIVE\"]]. IPv6 in brackets; IPv4 ranges as \
                192.168.6.2->192.168.6.7:80. Port defaults to the service's, method to gate, weight \
                to 1; quoted strings override request/receive for that real. Fields may also be \
                separated by / (192.168.7.10:80/masq/1,192.168.7.20:80/masq/3), which heartbeat's \
                haresources needs since it splits on spaces. At most 65,536 reals in all, ranges \
                expanded. Under wrr (and mh) each addition and removal makes the kernel walk the \
                whole list, so stop (and a reload that drops reals) removes more than 1,024 \
                reals under rr and puts the scheduler back after (65,536 reals: about 5 s in an emulated VM; see README); \
                filling such a list stays slow (minutes), start returns before it ends. Addresses must be unicast (not 0.0.0.0/8, 255.255.255.255, multicast or \
                ::) and ports above 0, except port 0 for a service without a port (fwmark, or \
                port 0). Each distinct request/receive pair is parsed once and shared by the reals \
                that use it.",
        ),
        ParamSpec::string("check", "Check type").default("connect").long(
            "connect (TCP connect), http, https, negotiate (with check_service), simpletcp, \
                smtp, pop, imap, ftp, dns, mysql, pgsql, sip, ldap, udp, ping, external (with \
                check_command), on (always up) or off (always down). HTTP checks use a fresh \
                connection each time and send Connection: close. With receive or digest, an HTTP \
                check reads at most the first 128 KiB of the body, and all bodies read at once \
                share 4 MiB (a check waits for its share within check_timeout); at most 1,024 \
                HTTP clients are kept for reuse.",
        ),
        ParamSpec::string("check_service", "Service spoken by a negotiate check").long(
            "For check=negotiate: http, https, simpletcp, smtp, pop, imap, ftp, dns, mysql, \
                pgsql, sip, ldap, as ldirectord's service.",
        ),
        ParamSpec::integer("check_interval", 1, 3600, "Seconds between checks").default("5"),
        ParamSpec::integer("check_timeout", 1, 3600, "Seconds a check may take").default("5"),
        ParamSpec::string("request", "Check request")
            .long("HTTP path (/test.html), simpletcp payload, DNS name or UDP payload."),
        ParamSpec::string("receive", "Expected answer").long(
            "Regular expression the response must match (HTTP body, simpletcp reply, ...); at \
                most 1 MiB compiled, and the distinct regexes of per-real overrides at most 16 MiB \
                together (each counted as 4 KiB, 64 KiB or 1 MiB, the smallest it fits: 4,096 short \
                patterns or 16 large ones). An HTTP body is matched as far as its first 128 KiB.",
        ),
        ParamSpec::string("virtualhost", "HTTP Host and TLS server name"),
        ParamSpec::select("http_method", &["GET", "HEAD"], "HTTP method").default("GET"),
        ParamSpec::string("status_codes", "Accepted HTTP status codes")
            .long("Ranges such as 200-299 (the default) or 200,301-302."),
        ParamSpec::string("check_command", "External check command").long(
            "For check=external: the command and its arguments, run without a shell; exit 0 \
                means healthy. It gets the virtual and real address and port as arguments and in \
                LVS_VIP, LVS_VPORT, LVS_RIP, LVS_RPORT, as ldirectord's checkcommand does (its \
                environment is these, LVS_CHECKPORT and PATH only), and its process group is \
                killed at check_timeout.",
        ),
        ParamSpec::string("check_options", "More check options").long(
            "Further key=value options of the check, space-separated: verify=yes ca=FILE \
                (https), digest=MD5 (http, https: of a body of at most 128 KiB), helo=NAME (smtp), \
                user=NAME (ldap, sip), type=AAAA (dns), reply=yes (udp).",
        ),
        ParamSpec::integer("checkport", 1, 65535, "Port to check instead of the real's port"),
        ParamSpec::string("source", "Source address of checks"),
        ParamSpec::integer("rise", 1, 100, "Successes that bring a real back").default("1"),
        ParamSpec::integer("fall", 1, 100, "Failures that take a real out").default("1"),
        ParamSpec::select("initial_state", &["down", "up"], "State before the first check").default("down").long(
            "down: a real enters rotation at its first successful check (it is added with \
                weight 0 when quiescent); up: it is in rotation from the start until checks fail.",
        ),
        ParamSpec::boolean("quiescent", "Quiesce instead of removing").default("true").long(
            "true: a failed real stays in the table with weight 0, so established \
                connections (and persistence) drain; false: it is removed. Its weight is restored \
                on recovery either way.",
        ),
        ParamSpec::boolean("cleanstop", "Remove the reals on stop").default("true"),
        ParamSpec::string("metrics_listen", "Address and port for Prometheus scrapes").long(
            "Off when unset. ADDRESS:PORT ([IPv6]:PORT) where the daemon answers GET /metrics in \
                Prometheus' text format: each real's health (lvs_real_up), weight, last transition, \
                check durations (histogram) and failures by reason, the daemon's checks per second \
                and checks in flight, and the service's kernel counters; lvsctl metrics prints the \
                same for every resource. The address may be one that is not up yet (IP_FREEBIND: \
                the VIP, say); if the port is taken, start fails. At most 4 scrapes are answered \
                at once, a request must arrive within 5 s, and past 1,000 reals the health part \
                is as old as the state file (up to ceil(reals/1000) intervals).",
        ),
        ParamSpec::string("node_attribute", "Pacemaker node attribute for the healthy count").long(
            "When set, the number of healthy reals is published with attrd_updater under this \
                name, so location rules can prefer the director that sees more of them. \
                attrd_updater runs in the background and is killed after 5 seconds.",
        ),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "service::real[::check[::request[::receive]]]", map: positional },
};

fn positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    positional_in_order(&["service", "real", "check", "request", "receive"], args)
}

/// The checks validate-all makes (all of them need no kernel; a `ca=`
/// file is read, so it must exist where this runs).
pub fn check(p: &Params) -> Result<()> {
    Config::from_params(p).map(drop)
}

/// The agent's binary: every action, as Pacemaker and heartbeat call it.
pub fn main() -> std::process::ExitCode {
    lvs_daemon::run_agent(&SPEC, |ctx| act(ctx, &Instance::new(SPEC.name, &ctx.instance), &Connector::Kernel), daemon)
}

/// One action on `kernel`'s table, with `instance`'s records and daemon
/// (the daemon itself always works on the kernel).
pub fn act(ctx: &Context, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    lvs_daemon::agent::act(&Agent { kernel }, &SPEC, ctx, instance)
}

struct Agent<'a> {
    kernel: &'a Connector,
}

impl lvs_daemon::agent::DaemonAgent for Agent<'_> {
    type Config = Config;

    fn config(&self, p: &Params) -> Result<Config> {
        Config::from_params(p)
    }

    fn interval(&self, cfg: &Config) -> Duration {
        cfg.interval
    }

    fn before_start(&self, cfg: &Config, _instance: &Instance) -> Result<()> {
        self.kernel.connect()?;
        // A port taken is said here, not only in the daemon's log.
        if let Some(addr) = cfg.metrics_listen {
            drop(metrics::listen(addr)?);
        }
        Ok(())
    }

    fn after_stop(&self, p: &Params, ran_with: Option<&Params>, instance: &Instance) -> Result<()> {
        let _ = std::fs::remove_file(faultfile(instance));
        for removal in Removal::for_stop(p, ran_with)? {
            removal.remove_all(self.kernel)?;
        }
        Ok(())
    }

    fn monitor(&self, cfg: &Config, ctx: &Context, instance: &Instance) -> Result<Outcome> {
        monitor(cfg, instance, ctx, self.kernel)
    }
}

/// The parameters, checked for meaning.
#[derive(Debug, Clone)]
struct Config {
    service: ServiceKey,
    reals: Vec<Real>,
    /// One check per real (per-real request/receive make their own).
    checks: Vec<Arc<Check>>,
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
    initial: Initial,
    quiescent: bool,
    checkport: Option<u16>,
    source: Option<std::net::IpAddr>,
    node_attribute: Option<String>,
    metrics_listen: Option<SocketAddr>,
}

/// The check options the parameters set explicitly, in probe's words,
/// but request and receive, which a real may override: those go in at the
/// returned position (keeping the order the check's name shows).
fn check_options(p: &Params) -> Result<(Vec<(String, String)>, usize)> {
    let mut o: Vec<(String, String)> = Vec::new();
    let texts_at = usize::from(p.str("check_service").is_some());
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            o.push((k.to_string(), v.to_string()));
        }
    };
    put("service", p.str("check_service"));
    put("virtualhost", p.str("virtualhost"));
    if p.is_explicit("http_method") {
        put("method", p.str("http_method"));
    }
    put("status", p.str("status_codes"));
    put("command", p.str("check_command"));
    for word in probe::checks::split_words(p.str("check_options").unwrap_or_default())? {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| Error::configured(format!("check_options: '{word}' is not key=value")))?;
        o.push((k.to_string(), v.to_string()));
    }
    Ok((o, texts_at))
}

/// What stop needs, and nothing else: a check parameter that no longer
/// parses (a `ca=` file since removed) must not keep our reals in the table.
struct Removal {
    service: ServiceKey,
    owned: BTreeSet<SocketAddr>,
    cleanstop: bool,
}

impl Removal {
    fn from_params(p: &Params) -> Result<Removal> {
        let service = lvs_service::params::service_key(p)?;
        let owned = reals::parse(p.str("real").unwrap_or_default(), &service)?
            .iter()
            .map(|r| r.destination.endpoint())
            .collect();
        Ok(Removal { service, owned, cleanstop: p.flag("cleanstop") })
    }

    /// The reals stop removes: those the daemon ran with (`recorded`) and
    /// those the parameters name now, when cleanstop says so. Parameters
    /// that no longer parse fail stop only when nothing was recorded.
    fn for_stop(now: &Params, recorded: Option<&Params>) -> Result<Vec<Removal>> {
        if now.is_explicit("cleanstop") && !now.flag("cleanstop") {
            return Ok(Vec::new());
        }
        let current = Removal::from_params(now);
        let mut all: Vec<Removal> = recorded.and_then(|p| Removal::from_params(p).ok()).into_iter().collect();
        match current {
            Ok(c) => all.push(c),
            Err(e) if all.is_empty() => return Err(e),
            Err(e) => tracing::warn!("stop: {e}; removing the reals the daemon ran with"),
        }
        all.retain(|r| r.cleanstop);
        // The same service twice (the usual case: parameters unchanged
        // since start) is one pass: one table read, one scheduler swap.
        if let [first, second] = &mut all[..] {
            if first.service == second.service {
                let owned = std::mem::take(&mut second.owned);
                first.owned.extend(owned);
                all.pop();
            }
        }
        Ok(all)
    }

    /// cleanstop: our destinations leave the table; others stay.
    fn remove_all(&self, kernel: &Connector) -> Result<()> {
        if !kernel.loaded() {
            return Ok(());
        }
        let ipvs = kernel.connect()?;
        let ipvs = &*ipvs;
        let removed = lvs_service::swap::removing_many(ipvs, &self.service, self.owned.len(), || {
            ipvs.reconcile_destinations(&self.service, &self.owned, &[])
        });
        match removed {
            Ok(ops) if !ops.is_empty() => tracing::info!("removed {} real servers from {}", ops.len(), self.service),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

impl Config {
    fn from_params(p: &Params) -> Result<Config> {
        let service = lvs_service::params::service_key(p)?;
        let reals = reals::parse(p.str("real").unwrap_or_default(), &service)?;
        let kind = p.str("check").unwrap_or("connect");
        let (base, texts_at) = check_options(p)?;
        let (request, receive) = (p.str("request"), p.str("receive"));
        // One check per distinct request/receive pair, built once and
        // shared; `parsed` shares compiled regexes and CA files between them.
        let mut parsed = probe::checks::Shared::default();
        let mut build = |req: Option<&str>, rcv: Option<&str>| -> Result<Arc<Check>> {
            let mut pairs: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let texts = [("request", req.or(request)), ("receive", rcv.or(receive))];
            let texts = texts.into_iter().filter_map(|(k, v)| v.map(|v| (k, v)));
            pairs.splice(texts_at..texts_at, texts);
            Ok(Check::from_options_shared(kind, &pairs, &mut parsed).map(Arc::new)?)
        };
        let shared = build(None, None)?;
        type Texts = (Option<Arc<str>>, Option<Arc<str>>);
        let mut built: HashMap<Texts, Arc<Check>> = HashMap::new();
        let mut checks = Vec::with_capacity(reals.len());
        for r in &reals {
            let check = match (&r.request, &r.receive) {
                (None, None) => shared.clone(),
                texts => match built.get(&(texts.0.clone(), texts.1.clone())) {
                    Some(c) => c.clone(),
                    None => {
                        let c = build(r.request.as_deref(), r.receive.as_deref())?;
                        built.insert((r.request.clone(), r.receive.clone()), c.clone());
                        c
                    }
                },
            };
            checks.push(check);
        }
        // fwmark reals may have no port; a check then needs checkport.
        let needs_port =
            !matches!(shared.kind, CheckKind::On | CheckKind::Off | CheckKind::Ping | CheckKind::External(_));
        if needs_port && p.int("checkport").is_none() {
            if let Some(r) = reals.iter().find(|r| r.destination.port == 0) {
                return Err(Error::configured(format!(
                    "real {} has no port to check ({} service): set checkport",
                    r.destination.addr, service
                )));
            }
        }
        let secs = |n: &str| p.num_or_default(n).map(Duration::from_secs);
        let source = p
            .str("source")
            .map(|s| s.parse().map_err(|_| Error::configured(format!("source '{s}' is not an address"))))
            .transpose()?;
        let metrics_listen = p.str("metrics_listen").map(metrics_address).transpose()?;
        Ok(Config {
            service,
            reals,
            checks,
            interval: secs("check_interval")?,
            timeout: secs("check_timeout")?,
            rise: p.num_or_default("rise")?,
            fall: p.num_or_default("fall")?,
            initial: if p.str("initial_state") == Some("up") { Initial::Up } else { Initial::Down },
            quiescent: p.flag("quiescent"),
            checkport: p.num("checkport")?,
            source,
            node_attribute: p.str("node_attribute").map(String::from),
            metrics_listen,
        })
    }

    fn owned(&self) -> BTreeSet<SocketAddr> {
        self.reals.iter().map(|r| r.destination.endpoint()).collect()
    }

    /// The destinations as they should be, given who is up.
    fn desired(&self, up: impl Fn(SocketAddr) -> bool) -> Vec<Destination> {
        self.reals
            .iter()
            .filter_map(|r| {
                let d = &r.destination;
                if up(d.endpoint()) {
                    Some(d.clone())
                } else if self.quiescent {
                    Some(d.clone().with_weight(0))
                } else {
                    None
                }
            })
            .collect()
    }

    fn jobs(&self) -> Vec<Job<SocketAddr>> {
        let virt = match self.service {
            ServiceKey::Addr { addr, port, .. } => Virtual::Addr(SocketAddr::new(addr, port)),
            ServiceKey::FwMark { mark, .. } => Virtual::Fwmark(mark),
        };
        self.reals
            .iter()
            .zip(&self.checks)
            .map(|(r, check)| {
                let d = &r.destination;
                let mut target = Target::new(d.addr, d.port);
                target.checkport = self.checkport;
                target.source = self.source;
                target.virtual_service = Some(virt);
                Job { key: d.endpoint(), target, check: check.clone() }
            })
            .collect()
    }
}

/// `metrics_listen`'s value: an address (not a name) and a port above 0.
fn metrics_address(text: &str) -> Result<SocketAddr> {
    let bad = |why: &str| Error::configured(format!("metrics_listen '{text}' {why}"));
    let addr: SocketAddr = text.parse().map_err(|_| bad("is not ADDRESS:PORT ([IPv6]:PORT for IPv6)"))?;
    if addr.port() == 0 {
        return Err(bad("needs a port above 0"));
    }
    if addr.ip().is_multicast() || addr.ip() == std::net::Ipv4Addr::BROADCAST {
        return Err(bad("is not a unicast address"));
    }
    Ok(addr)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Monitor past a live daemon: a kernel fault it reported, and at depth
/// 10 the table against its view.
fn monitor(cfg: &Config, instance: &Instance, ctx: &Context, kernel: &Connector) -> Result<Outcome> {
    kernel_fault(instance)?;
    if ctx.check_level < 10 {
        return Ok(Outcome::Running);
    }
    let (state, _): (State, _) =
        instance.read_json(&instance.statefile())?.ok_or_else(|| Error::generic("the daemon has written no state"))?;
    let ipvs = kernel.connect()?;
    let ipvs = &*ipvs;
    let have: HashMap<SocketAddr, u32> = match ipvs.destinations(&cfg.service) {
        Ok(d) => d.iter().map(|d| (d.endpoint(), d.weight)).collect(),
        Err(e) if e.is_not_found() => {
            return Err(Error::generic(format!("{} is not in the kernel table", cfg.service)))
        }
        Err(e) => return Err(e.into()),
    };
    let mut wrong = Vec::new();
    for r in &state.reals {
        let ep: SocketAddr = match r.real.parse() {
            Ok(ep) => ep,
            Err(_) => continue,
        };
        let kernel = have.get(&ep).copied();
        if kernel != r.weight {
            wrong.push(format!("{} is {:?} in the kernel, {:?} in the daemon's view", r.real, kernel, r.weight));
        }
    }
    if !wrong.is_empty() {
        return Err(Error::generic(format!("table differs from health state: {}", wrong.join("; "))));
    }
    tracing::info!("{}: {}/{} reals healthy", cfg.service, state.healthy, state.reals.len());
    Ok(Outcome::Running)
}

mod daemon;
use daemon::{daemon, faultfile, kernel_fault};

#[cfg(test)]
pub(crate) mod tests {
    use super::daemon::*;
    use super::*;

    pub(super) fn cfg(pairs: &[(&str, &str)]) -> Result<Config> {
        let p = Params::from_pairs(&SPEC, pairs)?;
        Config::from_params(&p)
    }

    pub(super) const BASE: [(&str, &str); 2] =
        [("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10:80 gate 1, 192.168.7.20:80 gate 3")];

    #[test]
    fn metrics_listen_is_an_address_and_a_port() {
        let with = |v: &str| cfg(&[BASE[0], BASE[1], ("metrics_listen", v)]);
        assert_eq!(with("10.0.0.1:9464").unwrap().metrics_listen, Some("10.0.0.1:9464".parse().unwrap()));
        assert_eq!(with("[2001:db8::1]:9464").unwrap().metrics_listen, Some("[2001:db8::1]:9464".parse().unwrap()));
        assert_eq!(cfg(&BASE).unwrap().metrics_listen, None, "off by default");
        for bad in ["9464", ":9464", "localhost:9464", "10.0.0.1", "10.0.0.1:0", "2001:db8::1:9464", "224.0.0.1:9464"] {
            let e = with(bad).unwrap_err();
            assert!(matches!(e, Error::Configured(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("metrics_listen"), "{bad}: {e}");
        }
    }

    #[test]
    fn readme_example_parses() {
        let c = cfg(&[
            BASE[0],
            BASE[1],
            ("check", "http"),
            ("request", "/test.html"),
            ("receive", "test"),
            ("quiescent", "true"),
        ])
        .unwrap();
        assert_eq!(c.reals.len(), 2);
        assert!(c.quiescent);
        assert_eq!((c.interval, c.timeout, c.rise, c.fall), (Duration::from_secs(5), Duration::from_secs(5), 1, 1));
        assert!(Arc::ptr_eq(&c.checks[0], &c.checks[1]), "reals without overrides share one check");
        assert!(c.checks[0].to_string().contains("/test.html"), "{}", c.checks[0]);
    }

    #[test]
    fn down_reals_are_quiesced_or_removed() {
        let c = cfg(&BASE).unwrap();
        let first: SocketAddr = "192.168.7.10:80".parse().unwrap();
        let d = c.desired(|ep| ep != first);
        assert_eq!(
            d.iter().map(|d| (d.endpoint().to_string(), d.weight)).collect::<Vec<_>>(),
            vec![("192.168.7.10:80".to_string(), 0), ("192.168.7.20:80".to_string(), 3)]
        );
        let c = cfg(&[BASE[0], BASE[1], ("quiescent", "false")]).unwrap();
        let d = c.desired(|ep| ep != first);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].weight, 3);
    }

    #[test]
    fn per_real_request_makes_its_own_check() {
        let c = cfg(&[
            ("service", "tcp:10.0.0.100:80"),
            ("real", r#"192.168.7.10 gate 1 "/a.html" "alive", 192.168.7.20"#),
            ("check", "http"),
            ("request", "/test.html"),
        ])
        .unwrap();
        assert!(c.checks[0].to_string().contains("/a.html"));
        assert!(c.checks[1].to_string().contains("/test.html"));
    }

    #[test]
    fn check_mistakes_are_configuration_errors() {
        for extra in
            [("check", "telepathy"), ("check_options", "verify"), ("status_codes", "2xx"), ("source", "nowhere")]
        {
            let r = cfg(&[BASE[0], BASE[1], ("check", if extra.0 == "check" { extra.1 } else { "http" }), extra]);
            assert!(matches!(r, Err(Error::Configured(_))), "{extra:?}: {r:?}");
        }
        // a request given to a connect check is a mistake, not ignored
        assert!(matches!(cfg(&[BASE[0], BASE[1], ("request", "/x")]), Err(Error::Configured(_))));
    }

    #[test]
    fn fwmark_reals_without_port_need_checkport() {
        let fw = [("service", "fwmark:100"), ("real", "192.168.7.10 gate, 192.168.7.20 gate")];
        assert!(matches!(cfg(&fw), Err(Error::Configured(m)) if m.contains("checkport")));
        assert!(cfg(&[fw[0], fw[1], ("checkport", "80")]).is_ok());
        assert!(cfg(&[fw[0], fw[1], ("check", "ping")]).is_ok());
    }

    fn http_of(c: &Check) -> &probe::HttpCheck {
        match &c.kind {
            CheckKind::Http(h) => h,
            other => panic!("not an http check: {other:?}"),
        }
    }

    #[test]
    fn each_distinct_check_is_built_once_and_shared() {
        // 256 reals of one range with their own request/receive: one check.
        let c = cfg(&[
            ("service", "tcp:10.0.0.100:80"),
            ("real", r#"10.0.0.0->10.0.0.255:80 gate 1 "/id" "^ok""#),
            ("check", "http"),
        ])
        .unwrap();
        assert_eq!(c.checks.len(), 256);
        assert!(c.checks.iter().all(|k| Arc::ptr_eq(k, &c.checks[0])), "each real of the range has its own check");
        // Entries with equal overrides share a check; different requests
        // with one receive share its compiled regex, and one CA file is read once.
        let ca = lvs_tests::fake::test_cert().pem_path.display().to_string();
        let c = cfg(&[
            ("service", "tcp:10.0.0.100:443"),
            ("real", r#"10.0.0.1 gate 1 "/a" "^ok", 10.0.0.2 gate 1 "/b" "^ok", 10.0.0.3 gate 1 "/a" "^ok""#),
            ("check", "https"),
            ("check_options", &format!("verify=yes ca={ca}")),
        ])
        .unwrap();
        assert!(Arc::ptr_eq(&c.checks[0], &c.checks[2]));
        assert!(!Arc::ptr_eq(&c.checks[0], &c.checks[1]));
        let (a, b) = (http_of(&c.checks[0]), http_of(&c.checks[1]));
        assert_eq!((a.path.as_str(), b.path.as_str()), ("/a", "/b"));
        let (ra, rb) = (a.receive.as_ref().unwrap(), b.receive.as_ref().unwrap());
        assert!(std::ptr::eq(ra.as_str().as_ptr(), rb.as_str().as_ptr()), "the regex was compiled twice");
        assert!(Arc::ptr_eq(a.ca.as_ref().unwrap(), b.ca.as_ref().unwrap()), "the CA file was read twice");
    }

    #[test]
    fn stop_needs_only_the_service_and_the_reals() {
        // The CA file is gone since start: the check no longer parses, yet
        // stop must still know which reals to remove.
        let stale = [
            ("service", "tcp:10.0.0.100:443"),
            ("real", "192.168.7.10, 192.168.7.20"),
            ("check", "https"),
            ("check_options", "verify=yes ca=/nonexistent/lvs-ca.pem"),
            ("receive", "("),
        ];
        let p = Params::parse_lenient(&SPEC, &stale.map(|(k, v)| (k.to_string(), v.to_string()))).0;
        assert!(matches!(Config::from_params(&p), Err(Error::Configured(_))));
        let r = Removal::from_params(&p).unwrap();
        assert!(r.cleanstop);
        assert_eq!(r.owned.iter().map(|e| e.to_string()).collect::<Vec<_>>(), ["192.168.7.10:443", "192.168.7.20:443"]);
    }

    #[test]
    fn meta_data_states_the_bounds_the_code_keeps() {
        let text = |name: &str| SPEC.params.iter().find(|p| p.name == name).map(|p| p.longdesc).unwrap();
        let n = |v: usize| {
            let s = v.to_string();
            if s.len() > 3 {
                format!("{},{}", &s[..s.len() - 3], &s[s.len() - 3..])
            } else {
                s
            }
        };
        assert!(text("real").contains(&format!("At most {} reals", n(reals::MAX_REALS))));
        let check = text("check");
        assert!(check.contains(&format!("first {} KiB", probe::MAX_BODY >> 10)), "{check}");
        assert!(check.contains(&format!("share {} MiB", probe::BODY_BUDGET >> 20)), "{check}");
        assert!(check.contains(&format!("at most {} HTTP clients", n(probe::MAX_CLIENTS))), "{check}");
        assert!(text("receive").contains(&format!("{} MiB compiled", probe::checks::MAX_REGEX_SIZE >> 20)));
        assert!(text("receive").contains(&format!("at most {} MiB together", probe::checks::REGEX_BUDGET >> 20)));
        assert!(SPEC.longdesc.contains(&format!("failed {KERNEL_FAILURES_FATAL} routine passes")));
    }

    #[test]
    fn stop_removes_what_the_daemon_ran_with_when_real_no_longer_parses() {
        let params = |pairs: &[(&str, &str)]| {
            Params::parse_lenient(&SPEC, &pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
                .0
        };
        let ran = params(&[("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10, 192.168.7.20")]);
        let broken = params(&[("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10, nonsense")]);
        let eps = |r: &[Removal]| r.iter().flat_map(|r| r.owned.iter().map(|e| e.to_string())).collect::<Vec<_>>();
        let r = Removal::for_stop(&broken, Some(&ran)).unwrap();
        assert_eq!(eps(&r), ["192.168.7.10:80", "192.168.7.20:80"]);
        // Without a record (after a reboot) the parameters are all there is.
        assert!(matches!(Removal::for_stop(&broken, None), Err(Error::Configured(_))));
        // Both, when both parse: edited parameters do not hide the old reals.
        let edited = params(&[("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.30")]);
        let r = Removal::for_stop(&edited, Some(&ran)).unwrap();
        assert_eq!(eps(&r), ["192.168.7.10:80", "192.168.7.20:80", "192.168.7.30:80"]);
        assert_eq!(r.len(), 1, "one service: one pass");
        let moved = params(&[("service", "tcp:10.0.0.100:81"), ("real", "192.168.7.30")]);
        let r = Removal::for_stop(&moved, Some(&ran)).unwrap();
        assert_eq!(
            r.iter().map(|r| r.service.to_string()).collect::<Vec<_>>(),
            ["tcp:10.0.0.100:80", "tcp:10.0.0.100:81"]
        );
        // cleanstop=false keeps them all, said now or when the daemon started.
        let keep = params(&[("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10"), ("cleanstop", "false")]);
        assert!(Removal::for_stop(&keep, Some(&ran)).unwrap().is_empty());
        assert!(Removal::for_stop(&broken, Some(&keep)).unwrap().is_empty());
    }
}
