//! The daemon of one `ocf:lvs:realservers` resource: it checks every real
//! each interval, keeps the destinations' weights in line with health,
//! writes the state monitor and lvsctl read, publishes the healthy count
//! and serves metrics.

use super::*;
use lvs_probe as probe;

/// The healthy count as a node attribute, published with attrd_updater
/// in the background: the daemon's thread never waits for it (a hung
/// attribute daemon must not stop the checks). One run at a time, killed
/// after [`ATTRD_TIMEOUT`]; a failed or killed run is retried at the next
/// sync.
pub(super) struct Attribute {
    /// The command before `-n NAME -U VALUE` (attrd_updater; tests swap it).
    argv: Vec<String>,
    running: Option<(std::process::Child, usize, Instant)>,
    published: Option<usize>,
}

pub(super) const ATTRD_TIMEOUT: Duration = Duration::from_secs(5);

impl Attribute {
    pub(super) fn new(argv: &[&str]) -> Attribute {
        Attribute { argv: argv.iter().map(|a| a.to_string()).collect(), running: None, published: None }
    }

    pub(super) fn update(&mut self, name: &str, healthy: usize) {
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
pub(super) const KERNEL_FAILURES_FATAL: u32 = 3;

/// Where the daemon leaves the reason monitor must fail with, while its
/// kernel writes keep failing (a small file: monitor reads no state).
pub(super) fn faultfile(instance: &Instance) -> std::path::PathBuf {
    instance.statefile().with_extension("fault")
}

/// Whether monitor should fail for kernel writes, and why.
pub(super) fn kernel_fault(instance: &Instance) -> Result<()> {
    match instance.read_json::<String>(&faultfile(instance))? {
        Some((reason, _)) => Err(Error::generic(reason)),
        None => Ok(()),
    }
}

/// What went wrong bringing the kernel in line with the health state.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) text: String,
    /// A write failed; otherwise the service is absent and we wait for it.
    pub(super) write_failed: bool,
}

/// Health per real, carried across reloads for reals that stay.
pub(super) struct Daemon {
    pub(super) cfg: Config,
    pub(super) health: HashMap<SocketAddr, Health>,
    pub(super) since: HashMap<SocketAddr, SystemTime>,
    pub(super) attribute: Attribute,
    /// Routine passes in a row whose writes failed.
    pub(super) kernel_failures: u32,
    /// Whether the fault file is there.
    pub(super) faulted: bool,
    /// Every check's duration and failure reason, per real, for metrics.
    pub(super) checks: HashMap<SocketAddr, CheckStats>,
    pub(super) checks_total: u64,
    /// Checks per second between the last two routine passes, and the
    /// count and time of the last one.
    pub(super) rate: f64,
    pub(super) rate_mark: (Instant, u64),
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Where a metrics server reads the state from.
    pub(super) publish: Option<tokio::sync::watch::Sender<Option<Arc<State>>>>,
}

impl Daemon {
    pub(super) fn new(
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

    pub(super) fn is_up(&self, ep: SocketAddr) -> bool {
        self.health.get(&ep).is_some_and(Health::is_up)
    }

    /// Takes one check's result; true when the real changed state.
    pub(super) fn record(&mut self, r: probe::Report<SocketAddr>) -> bool {
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
    pub(super) fn sync(&mut self, ipvs: &dyn Ipvs, instance: &Instance, routine: bool) -> Result<()> {
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

    pub(super) fn state(&self, last_error: Option<String>) -> State {
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
    pub(super) fn count(&mut self, problem: Option<&Problem>, routine: bool) -> Option<String> {
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
    pub(super) fn apply(&self, ipvs: &dyn Ipvs, instance: &Instance) -> Option<Problem> {
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
    pub(super) fn checks_name(&self) -> String {
        self.checks.first().map(|c| c.to_string()).unwrap_or_default()
    }
}

/// Thousands of concurrent checks need thousands of sockets: take the
/// hard limit of open files as the soft one, and return what is left for
/// checks once the daemon's own files (state, netlink, logs) are counted.
pub(super) fn check_sockets() -> usize {
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
pub(super) const MAX_IN_FLIGHT: usize = 4096;

/// Transitions close together go to the kernel in one pass: each pass
/// reads the service's whole destination list back.
pub(super) const MIN_SYNC_GAP: Duration = Duration::from_millis(50);

/// Reals per interval whose table entries and state a routine pass may
/// re-read and rewrite. Past this, routine passes come every
/// `ceil(reals / SYNC_BATCH)` intervals (a pass is O(reals) in the kernel,
/// in netlink and in JSON) and the intervals between only refresh the
/// state file's time for monitor; changes still go out as they happen.
pub(super) const SYNC_BATCH: usize = 1000;

/// Serves `cfg`'s metrics_listen, if set, from what the daemon publishes
/// and the service's kernel counters read at each scrape.
pub(super) fn metrics_server(
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
        let kernel = Connector::Kernel.connect().and_then(|c| {
            let s = c.service(&service)?;
            Ok(lvs_ipvs::TableEntry { service: s, destinations: c.destinations(&service)? })
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

pub(super) fn daemon(spec: &AgentSpec, instance: &Instance, name: &str) -> Result<()> {
    let in_flight = check_sockets();
    lvs_daemon::run(instance, async {
        let mut signals = Signals::new()?;
        let ipvs = Connector::Kernel.connect()?;
        let ipvs = &*ipvs;
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
        d.apply(ipvs, instance);
        let sched = Scheduler::new(in_flight, d.cfg.timeout)?.counting_in(d.in_flight.clone());
        let jobs = d.cfg.jobs();
        let round = sched.round(&jobs);
        tokio::pin!(round);
        // Thousands of checks that time out make a long first round. A
        // timer beats here, not the work: each check is bounded by
        // check_timeout, so the round ends.
        let mut beat = tokio::time::interval(lvs_daemon::ALIVE_EVERY);
        let reports = loop {
            tokio::select! {
                reports = &mut round => break reports,
                _ = beat.tick() => instance.sign_of_life(),
            }
        };
        for report in reports {
            d.record(report);
        }
        d.sync(ipvs, instance, true)?;
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
            let gap = MIN_SYNC_GAP.saturating_mul(u32::try_from(every).unwrap_or(u32::MAX));
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
                        d.sync(ipvs, instance, false)?;
                        last_sync = tokio::time::Instant::now();
                    }
                    // Every interval even without changes: the state file
                    // shows we are alive, and a flushed table is repaired.
                    _ = tick.tick() => {
                        ticks += 1;
                        if ticks % every == 0 || due.is_some() {
                            due = None;
                            d.sync(ipvs, instance, true)?;
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
                    if let Some(cfg) = lvs_daemon::reloaded(instance, spec, Config::from_params) {
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
                        let removed = lvs_service::swap::removing_many(ipvs, &old_service, gone.len(), || {
                            ipvs.delete_destinations(&old_service, &gone, &mut || instance.sign_of_life())
                        });
                        match removed {
                            Ok(errnos) => {
                                for (ep, errno) in gone.iter().zip(errnos) {
                                    let e = lvs_ipvs::Error::kernel(format!("removing {ep}"), errno);
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
                        d.sync(ipvs, instance, false)?;
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
    use super::super::tests::{cfg, BASE};
    use super::*;

    #[test]
    fn health_survives_a_reload_for_reals_that_stay() {
        let c = cfg(&BASE).unwrap();
        let mut d = Daemon::new(c, HashMap::new(), HashMap::new()).unwrap();
        let ep: SocketAddr = "192.168.7.20:80".parse().unwrap();
        let up = || probe::Report {
            key: ep,
            outcome: probe::CheckOutcome::Up,
            started: Instant::now(),
            elapsed: Duration::ZERO,
        };
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

    /// The weights of `key`'s destinations, sorted by address.
    fn weights(ipvs: &lvs_ipvs::FakeIpvs, key: &ServiceKey) -> Vec<(String, u32)> {
        let mut w: Vec<(String, u32)> =
            ipvs.destinations(key).unwrap().iter().map(|d| (d.endpoint().to_string(), d.weight)).collect();
        w.sort();
        w
    }

    /// Passes on a table that answers as the kernel's (FakeIpvs): they put
    /// our reals in with the weights health says, repair a flushed table
    /// once the service is back, never touch a destination not ours, and
    /// turn kernel refusals into a fault monitor sees only after three
    /// routine passes, gone with the first pass that writes again.
    #[test]
    fn passes_follow_health_repair_a_flushed_table_and_touch_only_our_reals() {
        let ipvs = lvs_ipvs::FakeIpvs::new();
        let dir = std::env::temp_dir().join(format!("lvs-rs-passes-{}", std::process::id()));
        let inst = Instance::in_dir("realservers", "passes", dir.clone());
        let c = cfg(&[BASE[0], BASE[1], ("quiescent", "true")]).unwrap();
        let key = c.service;
        ipvs.add_service(&lvs_ipvs::Service::new(key, "wlc")).unwrap();
        let foreign =
            Destination::new("192.168.9.9".parse().unwrap(), 80, lvs_ipvs::ForwardMethod::Route).with_weight(4);
        ipvs.add_destination(&key, &foreign).unwrap();
        let mut d = Daemon::new(c, HashMap::new(), HashMap::new()).unwrap();
        let report = |addr: &str, outcome| probe::Report {
            key: addr.parse().unwrap(),
            outcome,
            started: Instant::now(),
            elapsed: Duration::ZERO,
        };
        d.record(report("192.168.7.20:80", probe::CheckOutcome::Up));
        d.sync(&ipvs, &inst, true).unwrap();
        let want = [("192.168.7.10:80".to_string(), 0), ("192.168.7.20:80".into(), 3), ("192.168.9.9:80".into(), 4)];
        assert_eq!(weights(&ipvs, &key), want);

        // Flushed: waiting is no fault; the service back, so are the reals.
        ipvs.flush().unwrap();
        for _ in 0..5 {
            d.sync(&ipvs, &inst, true).unwrap();
        }
        assert!(kernel_fault(&inst).is_ok());
        let (state, _): (State, _) = inst.read_json(&inst.statefile()).unwrap().unwrap();
        assert!(state.last_error.as_deref().unwrap_or_default().contains("not in the kernel table"), "{state:?}");
        ipvs.add_service(&lvs_ipvs::Service::new(key, "wlc")).unwrap();
        d.sync(&ipvs, &inst, true).unwrap();
        assert_eq!(weights(&ipvs, &key), want[..2]);

        // The kernel refuses writes: a fault after three routine passes.
        d.record(report("192.168.7.10:80", probe::CheckOutcome::Up));
        ipvs.fail_with(Some(libc::EINVAL));
        d.sync(&ipvs, &inst, true).unwrap();
        d.sync(&ipvs, &inst, true).unwrap();
        assert!(kernel_fault(&inst).is_ok(), "two failed passes are no fault yet");
        d.sync(&ipvs, &inst, true).unwrap();
        assert!(kernel_fault(&inst).is_err(), "three are");
        ipvs.fail_with(None);
        d.sync(&ipvs, &inst, false).unwrap();
        assert!(kernel_fault(&inst).is_ok(), "one pass that writes clears it");
        assert_eq!(weights(&ipvs, &key), [("192.168.7.10:80".to_string(), 1), ("192.168.7.20:80".into(), 3)]);
        let _ = std::fs::remove_dir_all(dir);
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
