//! `ocf:lvs:realservers` — the real servers of one virtual service, kept
//! in the kernel table according to health checks (what ldirectord and
//! keepalived's checkers do). A daemon per resource checks every real
//! concurrently each interval and owns exactly these destinations.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lvs_common::daemon::{Instance, Signals, Supervisor, Wake};
use lvs_common::ipvs::{Destination, IpvsClient, IpvsErrorExt, ServiceKey};
use lvs_common::metrics::{self, CheckStats, Exposition};
use lvs_common::ocf::{
    self, spec::positional_in_order, Action, AgentSpec, Context, Heartbeat, Outcome, ParamSpec, Params,
};
use lvs_common::probe::{self, Check, CheckKind, Health, Initial, Job, Scheduler, Target, Transition, Virtual};
use lvs_common::reals::{self, Real};
use lvs_common::status::{RealState, RealserversState as State};
use lvs_common::{agent, Error, Result};

static SPEC: AgentSpec = AgentSpec {
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
        agent::SERVICE_SHARED,
        agent::FAMILY,
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

fn main() -> std::process::ExitCode {
    ocf::run_with_daemon(
        &SPEC,
        |ctx| {
            let instance = Instance::new(SPEC.name, &ctx.instance);
            if ctx.action == Action::Stop {
                // What the daemon ran with (its last start or reload), read
                // before stopping it removes the file.
                let recorded = instance.read_params(&SPEC).ok();
                // The daemon goes first, whatever the parameters say now.
                let sup = Supervisor { instance: &instance, name: &ctx.instance, updated_every: Duration::ZERO };
                sup.stop(ctx.timeout)?;
                let _ = std::fs::remove_file(faultfile(&instance));
                for removal in Removal::for_stop(&ctx.params, recorded.as_ref())? {
                    removal.remove_all()?;
                }
                return Ok(Outcome::NotRunning);
            }
            let cfg = Config::from_params(&ctx.params)?;
            let sup = Supervisor { instance: &instance, name: &ctx.instance, updated_every: cfg.interval };
            match ctx.action {
                Action::ValidateAll => Ok(Outcome::Running),
                Action::Start => {
                    IpvsClient::connect()?;
                    // A port taken is said here, not only in the daemon's log.
                    if let Some(addr) = cfg.metrics_listen {
                        drop(metrics::listen(addr)?);
                    }
                    sup.start(&ctx.params, ctx.timeout.saturating_sub(Duration::from_secs(2)))?;
                    Ok(Outcome::Running)
                }
                Action::Reload => sup.reload(&ctx.params),
                Action::Monitor => monitor(&cfg, &sup, &instance, ctx),
                Action::Stop => Ok(Outcome::NotRunning),
            }
        },
        Some(daemon),
    )
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
    for word in probe::spec::split_words(p.str("check_options").unwrap_or_default())? {
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
        let service = agent::service_key(p)?;
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
    fn remove_all(&self) -> Result<()> {
        if !agent::ipvs_loaded() {
            return Ok(());
        }
        let ipvs = IpvsClient::connect()?;
        let removed = agent::removing_many(&ipvs, &self.service, self.owned.len(), || {
            ipvs.reconcile_destinations(&self.service, &self.owned, &[])
        });
        match removed {
            Ok(ops) if !ops.is_empty() => tracing::info!("removed {} real servers from {}", ops.len(), self.service),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

impl Config {
    fn from_params(p: &Params) -> Result<Config> {
        let service = agent::service_key(p)?;
        let reals = reals::parse(p.str("real").unwrap_or_default(), &service)?;
        let kind = p.str("check").unwrap_or("connect");
        let (base, texts_at) = check_options(p)?;
        let (request, receive) = (p.str("request"), p.str("receive"));
        // One check per distinct request/receive pair, built once and
        // shared; `parsed` shares compiled regexes and CA files between them.
        let mut parsed = probe::spec::Shared::default();
        let mut build = |req: Option<&str>, rcv: Option<&str>| -> Result<Arc<Check>> {
            let mut pairs: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let texts = [("request", req.or(request)), ("receive", rcv.or(receive))];
            let texts = texts.into_iter().filter_map(|(k, v)| v.map(|v| (k, v)));
            pairs.splice(texts_at..texts_at, texts);
            Check::from_options_shared(kind, &pairs, &mut parsed).map(Arc::new)
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
        let secs = |n: &str, d: i64| Duration::from_secs(p.int(n).unwrap_or(d) as u64);
        let source = p
            .str("source")
            .map(|s| s.parse().map_err(|_| Error::configured(format!("source '{s}' is not an address"))))
            .transpose()?;
        let metrics_listen = p.str("metrics_listen").map(metrics_address).transpose()?;
        Ok(Config {
            service,
            reals,
            checks,
            interval: secs("check_interval", 5),
            timeout: secs("check_timeout", 5),
            rise: p.int("rise").unwrap_or(1) as u32,
            fall: p.int("fall").unwrap_or(1) as u32,
            initial: if p.str("initial_state") == Some("up") { Initial::Up } else { Initial::Down },
            quiescent: p.flag("quiescent"),
            checkport: p.int("checkport").map(|n| n as u16),
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

fn monitor(cfg: &Config, sup: &Supervisor, instance: &Instance, ctx: &Context) -> Result<Outcome> {
    let outcome = sup.monitor()?;
    if outcome != Outcome::Running {
        return Ok(outcome);
    }
    kernel_fault(instance)?;
    if ctx.check_level < 10 {
        return Ok(outcome);
    }
    let (state, _): (State, _) =
        instance.read_json(&instance.statefile())?.ok_or_else(|| Error::generic("the daemon has written no state"))?;
    let ipvs = IpvsClient::connect()?;
    let have: HashMap<SocketAddr, u32> = match ipvs.destinations(&cfg.service) {
        Ok(d) => d.iter().map(|d| (d.endpoint(), d.weight)).collect(),
        Err(e) if e.is_not_found() => {
            return Err(Error::generic(format!("{} is not in the kernel table", cfg.service)))
        }
        Err(e) => return Err(e),
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

/// The healthy count as a node attribute, published with attrd_updater
/// in the background: the daemon's thread never waits for it (a hung
/// attribute daemon must not stop the checks). One run at a time, killed
/// after [`ATTRD_TIMEOUT`]; a failed or killed run is retried at the next
/// sync.
struct Attribute {
    /// The command before `-n NAME -U VALUE` (attrd_updater; tests swap it).
    argv: Vec<String>,
    running: Option<(std::process::Child, usize, Instant)>,
    published: Option<usize>,
}

const ATTRD_TIMEOUT: Duration = Duration::from_secs(5);

impl Attribute {
    fn new(argv: &[&str]) -> Attribute {
        Attribute { argv: argv.iter().map(|a| a.to_string()).collect(), running: None, published: None }
    }

    fn update(&mut self, name: &str, healthy: usize) {
        if let Some((child, value, began)) = &mut self.running {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => self.published = Some(*value),
                Ok(Some(st)) => {
                    let mut text = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut text);
                    }
                    tracing::warn!("attrd_updater -n {name}: {st}: {}", text.trim());
                }
                Ok(None) if began.elapsed() < ATTRD_TIMEOUT => return,
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    tracing::warn!("attrd_updater -n {name}: killed after {}s", ATTRD_TIMEOUT.as_secs());
                }
                Err(e) => tracing::warn!("attrd_updater -n {name}: {e}"),
            }
            self.running = None;
        }
        if self.published == Some(healthy) {
            return;
        }
        let Some((program, args)) = self.argv.split_first() else { return };
        let child = std::process::Command::new(program)
            .args(args)
            .args(["-n", name, "-U", &healthy.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        match child {
            Ok(c) => self.running = Some((c, healthy, Instant::now())),
            Err(e) => tracing::warn!("attrd_updater: {e}"),
        }
    }
}

/// Routine passes in a row whose kernel writes fail before monitor fails:
/// one may lose a race with another agent; three mean a table we cannot keep.
const KERNEL_FAILURES_FATAL: u32 = 3;

/// Where the daemon leaves the reason monitor must fail with, while its
/// kernel writes keep failing (a small file: monitor reads no state).
fn faultfile(instance: &Instance) -> std::path::PathBuf {
    instance.statefile().with_extension("fault")
}

/// Whether monitor should fail for kernel writes, and why.
fn kernel_fault(instance: &Instance) -> Result<()> {
    match instance.read_json::<String>(&faultfile(instance))? {
        Some((reason, _)) => Err(Error::generic(reason)),
        None => Ok(()),
    }
}

/// What went wrong bringing the kernel in line with the health state.
#[derive(Debug)]
struct Problem {
    text: String,
    /// A write failed; otherwise the service is absent and we wait for it.
    write_failed: bool,
}

/// Health per real, carried across reloads for reals that stay.
struct Daemon {
    cfg: Config,
    health: HashMap<SocketAddr, Health>,
    since: HashMap<SocketAddr, SystemTime>,
    attribute: Attribute,
    /// Routine passes in a row whose writes failed.
    kernel_failures: u32,
    /// Whether the fault file is there.
    faulted: bool,
    /// Every check's duration and failure reason, per real, for metrics.
    checks: HashMap<SocketAddr, CheckStats>,
    checks_total: u64,
    /// Checks per second between the last two routine passes, and the
    /// count and time of the last one.
    rate: f64,
    rate_mark: (Instant, u64),
    in_flight: Arc<AtomicUsize>,
    /// Where a metrics server reads the state from.
    publish: Option<tokio::sync::watch::Sender<Option<Arc<State>>>>,
}

impl Daemon {
    fn new(
        cfg: Config,
        mut old: HashMap<SocketAddr, Health>,
        mut since: HashMap<SocketAddr, SystemTime>,
    ) -> Result<Daemon> {
        let now = Instant::now();
        let mut health = HashMap::new();
        for ep in cfg.owned() {
            let h = match old.remove(&ep) {
                Some(h) => h,
                None => Health::new(cfg.rise, cfg.fall, cfg.initial, now)?,
            };
            health.insert(ep, h);
            since.entry(ep).or_insert_with(SystemTime::now);
        }
        since.retain(|ep, _| health.contains_key(ep));
        Ok(Daemon {
            cfg,
            health,
            since,
            attribute: Attribute::new(&["attrd_updater"]),
            kernel_failures: 0,
            faulted: false,
            checks: HashMap::new(),
            checks_total: 0,
            rate: 0.0,
            rate_mark: (Instant::now(), 0),
            in_flight: Arc::default(),
            publish: None,
        })
    }

    fn is_up(&self, ep: SocketAddr) -> bool {
        self.health.get(&ep).is_some_and(Health::is_up)
    }

    /// Takes one check's result; true when the real changed state.
    fn record(&mut self, r: probe::Report<SocketAddr>) -> bool {
        let Some(h) = self.health.get_mut(&r.key) else { return false };
        self.checks.entry(r.key).or_default().observe(&r.outcome, r.elapsed);
        self.checks_total += 1;
        // When the check ended, without reading the clock again.
        match h.record(&r.outcome, r.started + r.elapsed) {
            Some(Transition::Up) => {
                tracing::info!("real {} up: {} ({}/{})", r.key, self.cfg.checks_name(), h.successes(), self.cfg.rise);
            }
            Some(Transition::Down(reason)) => {
                tracing::warn!("real {} down: {reason} ({}/{})", r.key, h.failures(), self.cfg.fall);
            }
            None => return false,
        }
        self.since.insert(r.key, SystemTime::now());
        true
    }

    /// The kernel table, the state file and the node attribute brought in
    /// line with the health state. A state file that cannot be written
    /// is not fatal: the table still follows the checks (monitor says so).
    /// `routine`: the pass of an interval, which counts towards failing
    /// monitor (passes prompted by changes come in bursts; they do not).
    fn sync(&mut self, ipvs: &IpvsClient, instance: &Instance, routine: bool) -> Result<()> {
        let problem = self.apply(ipvs, instance);
        let fault = self.count(problem.as_ref(), routine);
        if routine {
            let now = Instant::now();
            let secs = now.duration_since(self.rate_mark.0).as_secs_f64();
            if secs > 0.0 {
                self.rate = (self.checks_total - self.rate_mark.1) as f64 / secs;
            }
            self.rate_mark = (now, self.checks_total);
        }
        let state = self.state(problem.map(|p| p.text));
        instance.write_state(&state);
        match fault {
            Some(reason) if !self.faulted => {
                tracing::error!("{reason}: monitor fails until a write succeeds");
                // Not fatal either (a full /run): tried again next pass.
                match instance.write_json(&faultfile(instance), &reason) {
                    Ok(()) => self.faulted = true,
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            None if self.faulted => {
                tracing::info!("kernel writes to {} succeed again", self.cfg.service);
                match std::fs::remove_file(faultfile(instance)) {
                    Ok(()) => self.faulted = false,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.faulted = false,
                    Err(e) => tracing::warn!("removing {}: {e}", faultfile(instance).display()),
                }
            }
            _ => {}
        }
        if let Some(name) = &self.cfg.node_attribute {
            self.attribute.update(name, state.healthy);
        }
        // A copy of the state (megabytes at 10,000 reals) only for a server.
        if let Some(p) = self.publish.as_ref().filter(|_| self.cfg.metrics_listen.is_some()) {
            p.send_replace(Some(Arc::new(state)));
        }
        Ok(())
    }

    fn state(&self, last_error: Option<String>) -> State {
        let desired: HashMap<SocketAddr, u32> =
            self.cfg.desired(|ep| self.is_up(ep)).iter().map(|d| (d.endpoint(), d.weight)).collect();
        let reals: Vec<RealState> = self
            .cfg
            .reals
            .iter()
            .map(|r| {
                let ep = r.destination.endpoint();
                let h = self.health.get(&ep);
                RealState {
                    real: ep.to_string(),
                    up: self.is_up(ep),
                    weight: desired.get(&ep).copied(),
                    last_result: h
                        .and_then(|h| h.last())
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "not checked yet".into()),
                    since: self.since.get(&ep).map(|t| unix(*t)).unwrap_or(0),
                    successes: h.map(Health::successes).unwrap_or(0),
                    failures: h.map(Health::failures).unwrap_or(0),
                    checks: self.checks.get(&ep).cloned().unwrap_or_default(),
                }
            })
            .collect();
        State {
            service: self.cfg.service.to_string(),
            updated: unix(SystemTime::now()),
            interval_s: self.cfg.interval.as_secs(),
            healthy: reals.iter().filter(|r| r.up).count(),
            reals,
            last_error,
            checks_total: self.checks_total,
            checks_per_second: self.rate,
            checks_in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Counts a pass; the reason monitor must fail with, once kernel writes
    /// have failed KERNEL_FAILURES_FATAL routine passes in a row.
    fn count(&mut self, problem: Option<&Problem>, routine: bool) -> Option<String> {
        match problem {
            Some(p) if p.write_failed => self.kernel_failures += u32::from(routine),
            _ => self.kernel_failures = 0,
        }
        let p = problem.filter(|_| self.kernel_failures >= KERNEL_FAILURES_FATAL)?;
        Some(format!(
            "kernel writes to {} failed {} passes in a row: {}",
            self.cfg.service, self.kernel_failures, p.text
        ))
    }

    /// Makes the kernel match the health state; returns a problem to report.
    /// `instance` beats while the writes go on (see [`Instance::sign_of_life`]).
    fn apply(&self, ipvs: &IpvsClient, instance: &Instance) -> Option<Problem> {
        let desired = self.cfg.desired(|ep| self.is_up(ep));
        match ipvs.reconcile_destinations_with(&self.cfg.service, &self.cfg.owned(), &desired, &mut || {
            instance.sign_of_life()
        }) {
            Ok(ops) => {
                for op in ops {
                    tracing::debug!("{}: {op:?}", self.cfg.service);
                }
                None
            }
            Err(e) if e.is_not_found() => {
                let text = format!("{} is not in the kernel table; waiting for it", self.cfg.service);
                tracing::warn!("{text}");
                Some(Problem { text, write_failed: false })
            }
            Err(e) => {
                tracing::error!("updating {}: {e}", self.cfg.service);
                Some(Problem { text: e.to_string(), write_failed: true })
            }
        }
    }
}

impl Config {
    fn checks_name(&self) -> String {
        self.checks.first().map(|c| c.to_string()).unwrap_or_default()
    }
}

/// Thousands of concurrent checks need thousands of sockets: take the
/// hard limit of open files as the soft one, and return what is left for
/// checks once the daemon's own files (state, netlink, logs) are counted.
fn check_sockets() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const OWN_FILES: u64 = 64;
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() => hard,
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    };
    usize::try_from(soft.saturating_sub(OWN_FILES)).unwrap_or(usize::MAX).clamp(16, MAX_IN_FLIGHT)
}

/// Checks in flight at once, which bounds the open sockets, not the reals.
/// (Fewer when the open-files limit is lower: see check_sockets.)
const MAX_IN_FLIGHT: usize = 4096;

/// Transitions close together go to the kernel in one pass: each pass
/// reads the service's whole destination list back.
const MIN_SYNC_GAP: Duration = Duration::from_millis(50);

/// Reals per interval whose table entries and state a routine pass may
/// re-read and rewrite. Past this, routine passes come every
/// `ceil(reals / SYNC_BATCH)` intervals (a pass is O(reals) in the kernel,
/// in netlink and in JSON) and the intervals between only refresh the
/// state file's time for monitor; changes still go out as they happen.
const SYNC_BATCH: usize = 1000;

/// Serves `cfg`'s metrics_listen, if set, from what the daemon publishes
/// and the service's kernel counters read at each scrape.
fn metrics_server(
    cfg: &Config,
    name: &str,
    published: &tokio::sync::watch::Receiver<Option<Arc<State>>>,
) -> Result<Option<tokio::task::JoinHandle<Result<()>>>> {
    let Some(addr) = cfg.metrics_listen else { return Ok(None) };
    let listener = metrics::listen(addr)?;
    let (name, service, published) = (name.to_string(), cfg.service, published.clone());
    let render = move || {
        let mut e = Exposition::default();
        if let Some(state) = published.borrow().clone() {
            e.realservers(&name, &state);
        }
        let kernel = IpvsClient::connect().and_then(|c| {
            let s = c.service(&service)?;
            Ok(lvs_common::ipvs::TableEntry { service: s, destinations: c.destinations(&service)? })
        });
        match kernel {
            Ok(entry) => e.service(&entry),
            Err(err) => tracing::debug!("metrics: {service}: {err}"),
        }
        e.render()
    };
    tracing::info!("serving metrics on http://{addr}/metrics");
    Ok(Some(tokio::spawn(metrics::serve(listener, Arc::new(render)))))
}

fn daemon(spec: &AgentSpec, instance: &Instance, name: &str) -> Result<()> {
    let in_flight = check_sockets();
    lvs_common::daemon::run(instance, async {
        let mut signals = Signals::new()?;
        let ipvs = IpvsClient::connect()?;
        let cfg = Config::from_params(&instance.read_params(spec)?)?;
        let mut d = Daemon::new(cfg, HashMap::new(), HashMap::new())?;
        let (publish, published) = tokio::sync::watch::channel(None);
        d.publish = Some(publish);
        let mut server = metrics_server(&d.cfg, name, &published)?;
        // A fault left by an earlier daemon is not ours to report.
        let _ = std::fs::remove_file(faultfile(instance));
        tracing::info!(
            "checking {} reals of {} every {}s, up to {in_flight} at once (adaptive)",
            d.cfg.reals.len(),
            d.cfg.service,
            d.cfg.interval.as_secs()
        );
        // Reals that start up go in before any check; then one round of
        // every real at once, whose state file tells start we are ready.
        d.apply(&ipvs, instance);
        let sched = Scheduler::new(in_flight, d.cfg.timeout)?.counting_in(d.in_flight.clone());
        let jobs = d.cfg.jobs();
        let round = sched.round(&jobs);
        tokio::pin!(round);
        // Thousands of checks that time out make a long first round. A
        // timer beats here, not the work: each check is bounded by
        // check_timeout, so the round ends.
        let mut beat = tokio::time::interval(lvs_common::daemon::ALIVE_EVERY);
        let reports = loop {
            tokio::select! {
                reports = &mut round => break reports,
                _ = beat.tick() => instance.sign_of_life(),
            }
        };
        for report in reports {
            d.record(report);
        }
        d.sync(&ipvs, instance, true)?;
        loop {
            // From here each real has its own timer, spread over the
            // interval: an even load, and when the machine cannot keep up
            // checks come late instead of piling up until they time out.
            let sched = Scheduler::new(in_flight, d.cfg.timeout)?.counting_in(d.in_flight.clone());
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            let checks = sched.run(d.cfg.jobs(), d.cfg.interval, tx);
            tokio::pin!(checks);
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval_at(start + d.cfg.interval, d.cfg.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_sync = start;
            let mut due: Option<tokio::time::Instant> = None;
            let every = d.cfg.reals.len().div_ceil(SYNC_BATCH).max(1);
            let gap = MIN_SYNC_GAP * every as u32;
            let mut ticks = 0usize;
            let mut reports = Vec::with_capacity(256);
            let wake = loop {
                tokio::select! {
                    ended = &mut checks => {
                        ended?;
                        return Err(Error::generic("the health checks stopped"));
                    }
                    // Every report waiting, in one turn of this loop.
                    n @ 1.. = rx.recv_many(&mut reports, 256) => {
                        let changed = reports.drain(..n).fold(false, |changed, r| d.record(r) | changed);
                        if changed && due.is_none() {
                            due = Some((last_sync + gap).max(tokio::time::Instant::now()));
                        }
                    }
                    _ = tokio::time::sleep_until(due.unwrap_or(start)), if due.is_some() => {
                        due = None;
                        d.sync(&ipvs, instance, false)?;
                        last_sync = tokio::time::Instant::now();
                    }
                    // Every interval even without changes: the state file
                    // shows we are alive, and a flushed table is repaired.
                    _ = tick.tick() => {
                        ticks += 1;
                        if ticks % every == 0 || due.is_some() {
                            due = None;
                            d.sync(&ipvs, instance, true)?;
                            last_sync = tokio::time::Instant::now();
                        } else {
                            instance.touch_state();
                        }
                    }
                    w = signals.recv() => break w,
                }
            };
            match wake {
                Wake::Reload => {
                    if let Some(cfg) = lvs_common::daemon::reloaded(instance, spec, Config::from_params) {
                        // Reals no longer listed leave the table now; all of
                        // them when the service itself changed.
                        let old_service = d.cfg.service;
                        let gone: Vec<SocketAddr> = if cfg.service == old_service {
                            d.cfg.owned().difference(&cfg.owned()).copied().collect()
                        } else {
                            d.cfg.owned().into_iter().collect()
                        };
                        // Clients for old names and CA files would only take memory.
                        probe::forget_clients();
                        let listen_before = d.cfg.metrics_listen;
                        let Daemon {
                            health,
                            since,
                            kernel_failures,
                            faulted,
                            mut checks,
                            checks_total,
                            rate,
                            rate_mark,
                            in_flight,
                            publish,
                            ..
                        } = d;
                        d = Daemon::new(cfg, health, since)?;
                        (d.kernel_failures, d.faulted) = (kernel_failures, faulted);
                        checks.retain(|ep, _| d.health.contains_key(ep));
                        (d.checks, d.checks_total, d.rate, d.rate_mark) = (checks, checks_total, rate, rate_mark);
                        (d.in_flight, d.publish) = (in_flight, publish);
                        if d.cfg.metrics_listen != listen_before {
                            if let Some(old) = server.take() {
                                old.abort();
                                // The old socket closes before the new one binds.
                                let _ = old.await;
                            }
                            match metrics_server(&d.cfg, name, &published) {
                                Ok(s) => server = s,
                                Err(e) => tracing::error!("{e}; serving no metrics until the next reload"),
                            }
                        }
                        // In batches, and under rr when many leave a wrr service (as stop does).
                        let removed = agent::removing_many(&ipvs, &old_service, gone.len(), || {
                            ipvs.delete_destinations(&old_service, &gone, &mut || instance.sign_of_life())
                        });
                        match removed {
                            Ok(errnos) => {
                                for (ep, errno) in gone.iter().zip(errnos) {
                                    let e = Error::Netlink { context: format!("removing {ep}"), errno };
                                    match errno {
                                        0 => tracing::info!("real {ep} removed from the list"),
                                        _ if e.is_not_found() => {}
                                        _ => tracing::warn!("{e}"),
                                    }
                                }
                            }
                            Err(e) if e.is_not_found() => {}
                            Err(e) => tracing::warn!("removing the reals no longer listed: {e}"),
                        }
                        d.sync(&ipvs, instance, false)?;
                        tracing::info!("reloaded: {} reals", d.cfg.reals.len());
                    }
                }
                Wake::Tick => {}
                Wake::Terminate => return Ok(()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config> {
        let p = Params::from_pairs(&SPEC, pairs)?;
        Config::from_params(&p)
    }

    const BASE: [(&str, &str); 2] =
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

    #[test]
    fn health_survives_a_reload_for_reals_that_stay() {
        let c = cfg(&BASE).unwrap();
        let mut d = Daemon::new(c, HashMap::new(), HashMap::new()).unwrap();
        let ep: SocketAddr = "192.168.7.20:80".parse().unwrap();
        let up =
            || probe::Report { key: ep, outcome: probe::Outcome::Up, started: Instant::now(), elapsed: Duration::ZERO };
        assert!(d.record(up()), "down -> up is a transition");
        assert!(!d.record(up()), "up -> up is not");
        assert!(d.is_up(ep));
        let c2 = cfg(&[BASE[0], ("real", "192.168.7.20:80 gate 3, 192.168.7.30:80")]).unwrap();
        let Daemon { health, since, .. } = d;
        let d2 = Daemon::new(c2, health, since).unwrap();
        assert!(d2.is_up(ep));
        assert!(!d2.is_up("192.168.7.30:80".parse().unwrap()));
        assert_eq!(d2.health.len(), 2);
        let s = d2.state(None);
        assert_eq!(s.healthy, 1);
        assert_eq!(s.reals[0].weight, Some(3));
        assert_eq!(s.reals[1].weight, Some(0));
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
    fn monitor_fails_once_kernel_writes_fail_three_routine_passes_in_a_row() {
        let mut d = Daemon::new(cfg(&BASE).unwrap(), HashMap::new(), HashMap::new()).unwrap();
        let failed = Problem { text: "Invalid argument (os error 22)".into(), write_failed: true };
        let waiting = Problem { text: "not in the kernel table".into(), write_failed: false };
        assert_eq!(d.count(Some(&failed), true), None);
        // Passes prompted by changes come in bursts: they do not count.
        for _ in 0..10 {
            assert_eq!(d.count(Some(&failed), false), None);
        }
        assert_eq!(d.count(Some(&failed), true), None);
        let reason = d.count(Some(&failed), true).expect("a fault after 3 failed routine passes");
        assert!(reason.contains("failed 3 passes in a row: Invalid argument (os error 22)"), "{reason}");
        // One write that succeeds clears it; waiting for the service is no fault.
        assert_eq!(d.count(None, false), None);
        assert_eq!(d.count(Some(&failed), true), None);
        for _ in 0..10 {
            assert_eq!(d.count(Some(&waiting), true), None);
        }
        // The reason reaches monitor through the fault file.
        let dir = std::env::temp_dir().join(format!("lvs-rs-fault-{}", std::process::id()));
        let inst = Instance::in_dir("realservers", "fault-test", dir.clone());
        assert!(kernel_fault(&inst).is_ok());
        inst.write_json(&faultfile(&inst), &reason).unwrap();
        assert!(matches!(kernel_fault(&inst), Err(Error::Generic(m)) if m == reason));
        let _ = std::fs::remove_dir_all(dir);
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
        assert!(text("receive").contains(&format!("{} MiB compiled", probe::spec::MAX_REGEX_SIZE >> 20)));
        assert!(text("receive").contains(&format!("at most {} MiB together", probe::spec::REGEX_BUDGET >> 20)));
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

    #[test]
    fn the_node_attribute_is_published_without_waiting_and_a_hung_run_is_killed() {
        let dir = std::env::temp_dir().join(format!("lvs-attrd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("calls");
        // records its arguments, then hangs the first time
        let script = format!(
            "printf '%s\\n' \"$*\" >> {0}; [ -e {0}.once ] || {{ touch {0}.once; exec sleep 30; }}",
            log.display()
        );
        let mut a = Attribute::new(&["/bin/sh", "-c", &script, "attrd"]);
        let began = Instant::now();
        a.update("lvs-healthy", 2);
        assert!(began.elapsed() < Duration::from_millis(500), "the daemon waited {:?}", began.elapsed());
        assert_eq!(a.published, None);
        let pid = a.running.as_ref().map(|(c, ..)| c.id()).unwrap();
        let hung = dir.join("calls.once");
        while !hung.exists() && began.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        a.running.as_mut().unwrap().2 -= ATTRD_TIMEOUT; // its time is up
        a.update("lvs-healthy", 2);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the hung run was not killed");
        // retried at once, and this run succeeds
        std::thread::sleep(Duration::from_millis(500));
        a.update("lvs-healthy", 2);
        assert_eq!(a.published, Some(2));
        let calls = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(calls.lines().collect::<Vec<_>>(), ["-n lvs-healthy -U 2", "-n lvs-healthy -U 2"]);
    }
}
