//! `ocf:lvs:sorry` — the sorry server: a fallback destination that is in
//! the service exactly while no other destination has weight, like
//! ldirectord's `fallback`. A small daemon watches the kernel table; it
//! owns the fallback destination and nothing else.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lvs_daemon::{child, Instance, Signals, Wake};
use lvs_ipvs::{parse_addr_port, Connector, Destination, ForwardMethod, Ipvs, ServiceKey};
use lvs_ocf::Error;
use lvs_ocf::Result;
use lvs_ocf::{self as ocf, spec::positional_in_order, AgentSpec, Context, Heartbeat, Outcome, ParamSpec, Params};
use lvs_probe as probe;
use lvs_service::params::RecordedService;
use lvs_status::SorryState as State;
use serde::{Deserialize, Serialize};

pub static SPEC: AgentSpec = AgentSpec {
    name: "sorry",
    version: "1.0",
    shortdesc: "Sorry server of an IPVS virtual service",
    longdesc: "Keeps a fallback destination (a local or remote sorry server) in an IPVS virtual \
        service exactly while no other destination of that service has a weight above 0, as \
        ldirectord's fallback does: when every real server is down or quiesced, clients get the \
        sorry page instead of a refused connection; as soon as one real server has weight again, \
        the fallback is removed. A daemon checks the table every check_interval seconds; it never \
        touches other destinations. Start and reload record each fallback in /run/lvs-agents; a \
        reload that changes service or fallback removes the old fallback, and stop removes every \
        recorded fallback and the one the parameters name, needing no other parameter. Monitor \
        fails when the daemon is dead or shows no life (on CLOCK_BOOTTIME: wall-clock steps do \
        not count) for 3 x check_interval + 1 s. heartbeat v1 form: lvs-sorry::service::fallback[::forward].",
    params: &[
        lvs_service::params::SERVICE_SHARED,
        lvs_service::params::FAMILY,
        ParamSpec::string("fallback", "Fallback server").required().long(
            "The sorry server as address:port, e.g. 127.0.0.1:80 or [2001:db8::9]:80: a unicast \
                address, and port 0 only for a service without a port (fwmark).",
        ),
        ParamSpec::select("forward", &["auto", "local", "masq", "gate", "ipip"], "Forwarding method")
            .default("auto")
            .long(
                "How IPVS reaches the fallback: auto means local for an address of this host \
                and masq otherwise; gate (direct routing) needs the sorry server to hold the VIP.",
            ),
        ParamSpec::integer("weight", 1, 65535, "Weight of the fallback").default("1"),
        ParamSpec::integer("check_interval", 1, 3600, "Seconds between table checks").default("1").long(
            "Seconds between looks at the table while the fallback is out. While it is in, the \
                table is read every 100 ms, so the fallback leaves within 100 ms of a real \
                server getting weight.",
        ),
        ParamSpec::string("fallback_command", "Command run on each switch").long(
            "An absolute path and its arguments (split on spaces, quotes as in check_command; \
                no shell, no PATH search), run with the argument start when the fallback goes in \
                and stop when it comes out, like ldirectord's fallbackcommand. It runs in the \
                background, one at a time in order, in its own process group with only PATH in \
                its environment; after 10 seconds the group is killed.",
        ),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "service::fallback[::forward]", map: positional },
};

fn positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    positional_in_order(&["service", "fallback", "forward"], args)
}

/// The checks validate-all makes (all of them need no kernel).
pub fn check(p: &Params) -> Result<()> {
    Sorry::from_params(p).map(drop)
}

/// The agent's binary: every action, as Pacemaker and heartbeat call it.
pub fn main() -> std::process::ExitCode {
    lvs_daemon::run_agent(&SPEC, |ctx| act(ctx, &Instance::new(SPEC.name, &ctx.instance), &Connector::Kernel), daemon)
}

/// One action on `kernel`'s table, with `instance`'s records and daemon.
pub fn act(ctx: &Context, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    lvs_daemon::agent::act(&Agent { kernel }, &SPEC, ctx, instance)
}

struct Agent<'a> {
    kernel: &'a Connector,
}

impl lvs_daemon::agent::DaemonAgent for Agent<'_> {
    type Config = Sorry;

    fn config(&self, p: &Params) -> Result<Sorry> {
        Sorry::from_params(p)
    }

    fn interval(&self, sorry: &Sorry) -> Duration {
        sorry.interval
    }

    fn before_start(&self, sorry: &Sorry, instance: &Instance) -> Result<()> {
        self.kernel.connect()?;
        record(instance, sorry, false);
        Ok(())
    }

    /// The old fallback stays recorded until stop: the daemon removes it
    /// on reload, stop makes sure.
    fn before_reload(&self, sorry: &Sorry, instance: &Instance) {
        record(instance, sorry, true);
    }

    /// Every fallback this instance was given, whatever the parameters say now.
    fn after_stop(&self, p: &Params, _ran_with: Option<&Params>, instance: &Instance) -> Result<()> {
        stop(identity(p), instance, self.kernel).map(drop)
    }
}

/// A fallback this instance may have put into a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    service: RecordedService,
    fallback: SocketAddr,
}

/// Records `sorry`'s fallback, after the ones recorded so far when `keep`.
fn record(instance: &Instance, sorry: &Sorry, keep: bool) {
    let mut all: Vec<Recorded> = if keep { instance.load_record().unwrap_or_default() } else { Vec::new() };
    let this = Recorded { service: RecordedService::from(&sorry.service), fallback: sorry.fallback };
    if !all.contains(&this) {
        all.push(this);
    }
    instance.save_record(&all);
}

/// What stop needs of the parameters: the service and the fallback.
fn identity(p: &Params) -> Option<(ServiceKey, SocketAddr)> {
    let service = lvs_service::params::service_key(p).ok()?;
    let (addr, port) = parse_addr_port(p.str("fallback")?).ok()?;
    Some((service, SocketAddr::new(addr, port)))
}

/// Removes every recorded fallback and the one the parameters name.
fn stop(named: Option<(ServiceKey, SocketAddr)>, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    let mut all: Vec<(ServiceKey, SocketAddr)> = instance
        .load_record::<Vec<Recorded>>()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| Some((r.service.key()?, r.fallback)))
        .collect();
    if let Some(n) = named.filter(|n| !all.contains(n)) {
        all.push(n);
    }
    if all.is_empty() {
        tracing::info!("service or fallback does not parse and nothing was recorded: nothing of ours can be up");
    }
    if kernel.loaded() && !all.is_empty() {
        let ipvs = kernel.connect()?;
        let ipvs = &*ipvs;
        for (service, fallback) in &all {
            remove_fallback(ipvs, service, *fallback)?;
        }
    }
    instance.forget_record();
    Ok(Outcome::NotRunning)
}

/// The fallback goes, whoever's turn it was.
fn remove_fallback(ipvs: &dyn Ipvs, service: &ServiceKey, fallback: SocketAddr) -> Result<()> {
    match ipvs.delete_destination(service, fallback) {
        Ok(()) => tracing::info!("removed fallback {fallback} from {service}"),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Sorry {
    service: ServiceKey,
    fallback: SocketAddr,
    forward: Option<ForwardMethod>,
    weight: u32,
    interval: Duration,
    command: Vec<String>,
    /// How long fallback_command may take.
    command_timeout: Duration,
}

impl Sorry {
    fn from_params(p: &Params) -> Result<Sorry> {
        let service = lvs_service::params::service_key(p)?;
        let text = p.str("fallback").unwrap_or_default();
        let (addr, port) = parse_addr_port(text)?;
        // The kernel refuses these destinations forever: say so now.
        if let Some(why) = lvs_ipvs::not_unicast(addr) {
            return Err(Error::configured(format!("fallback {addr} is {why}, not a unicast address")));
        }
        // As for reals: port 0 only where the service has none.
        if port == 0 && matches!(service, ServiceKey::Addr { port: p, .. } if p != 0) {
            return Err(Error::configured(format!("fallback {text} has port 0, the service {service} does not")));
        }
        let forward = match p.str("forward") {
            None | Some("auto") => None,
            Some(m) => Some(m.parse::<ForwardMethod>()?),
        };
        // Words as check_command's: quotes, no shell, no PATH search.
        let command = probe::checks::split_words(p.str("fallback_command").unwrap_or_default())?;
        if let Some(prog) = command.first().filter(|p| !p.starts_with('/')) {
            return Err(Error::configured(format!(
                "fallback_command: {prog}: give an absolute path (no shell, no PATH search)"
            )));
        }
        Ok(Sorry {
            service,
            fallback: SocketAddr::new(addr, port),
            forward,
            weight: p.num_or_default("weight")?,
            interval: Duration::from_secs(p.num_or_default("check_interval")?),
            command,
            command_timeout: Duration::from_secs(10),
        })
    }

    fn destination(&self, local: bool) -> Destination {
        let method = self.forward.unwrap_or(if local { ForwardMethod::Local } else { ForwardMethod::Masq });
        Destination::new(self.fallback.ip(), self.fallback.port(), method).with_weight(self.weight)
    }

    /// Runs fallback_command with `word` in the background: the daemon's
    /// only thread never waits for it. One at a time, in the order of the
    /// switches; at `command_timeout` its whole process group is killed.
    fn run_command(&self, word: &str) {
        let Some((prog, args)) = self.command.split_first() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("fallback_command {word}: no runtime to run it on");
            return;
        };
        let mut cmd = child::command(prog);
        cmd.args(args).arg(word);
        let (what, limit) = (format!("fallback_command {prog} {word}"), self.command_timeout);
        rt.spawn(async move {
            let _turn = COMMANDS.lock().await;
            match child::run(&mut cmd, Some(limit)).await {
                Ok(st) if st.success() => tracing::info!("{what}: done"),
                Ok(st) => tracing::warn!("{what}: {st}"),
                Err(e) => tracing::warn!("{what}: {e}"),
            }
        });
    }
}

/// Turns for fallback_command runs (tokio's mutex is fair: first come,
/// first served).
static COMMANDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn is_local(addr: IpAddr) -> bool {
    // Binding succeeds only for an address of this host.
    addr.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(addr, 0)).is_ok()
}

/// One look at the table: add or remove the fallback as needed.
fn round(sorry: &Sorry, ipvs: &dyn Ipvs, local: bool) -> Result<State> {
    let dests = match ipvs.destinations(&sorry.service) {
        Ok(d) => d,
        // No service (yet): nothing to fall back for.
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let present = dests.iter().any(|d| d.endpoint() == sorry.fallback);
    let serving = dests.iter().filter(|d| d.endpoint() != sorry.fallback && d.weight > 0).count();
    let service_exists = ipvs.service(&sorry.service).is_ok();
    let mut active = present;
    if serving == 0 && !present && service_exists {
        match ipvs.add_destination(&sorry.service, &sorry.destination(local)) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!("no real server of {} has weight: fallback {} in", sorry.service, sorry.fallback);
        sorry.run_command("start");
        active = true;
    } else if serving > 0 && present {
        match ipvs.delete_destination(&sorry.service, sorry.fallback) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!("{serving} real server(s) of {} serve again: fallback {} out", sorry.service, sorry.fallback);
        sorry.run_command("stop");
        active = false;
    }
    Ok(State {
        service: sorry.service.to_string(),
        fallback: sorry.fallback.to_string(),
        active,
        serving,
        last_error: None,
    })
}

/// How often the table is read while the fallback is in.
const ACTIVE_INTERVAL: Duration = Duration::from_millis(100);

fn daemon(spec: &AgentSpec, instance: &Instance, _name: &str) -> Result<()> {
    lvs_daemon::run(instance, async {
        let mut signals = Signals::new()?;
        let mut sorry = Sorry::from_params(&instance.read_params(spec)?)?;
        let ipvs = Connector::Kernel.connect()?;
        let ipvs = &*ipvs;
        let mut local = is_local(sorry.fallback.ip());
        tracing::info!("watching {} with fallback {}", sorry.service, sorry.fallback);
        loop {
            let began = tokio::time::Instant::now();
            let state = round(&sorry, ipvs, local).unwrap_or_else(|e| {
                tracing::warn!("{e}");
                State {
                    service: sorry.service.to_string(),
                    fallback: sorry.fallback.to_string(),
                    active: false,
                    serving: 0,
                    last_error: Some(e.to_string()),
                }
            });
            instance.write_state(&state);
            // While the fallback serves, look often: clients should reach
            // a returning real at once, not up to check_interval later.
            let pause = if state.active { sorry.interval.min(ACTIVE_INTERVAL) } else { sorry.interval };
            match signals.sleep_until(began + pause).await {
                Wake::Tick => {}
                Wake::Reload => {
                    if let Some(new) = lvs_daemon::reloaded(instance, spec, Sorry::from_params) {
                        tracing::info!("reloaded parameters");
                        if (new.service, new.fallback) != (sorry.service, sorry.fallback) {
                            // The old fallback is no longer ours to keep.
                            if let Err(e) = remove_fallback(ipvs, &sorry.service, sorry.fallback) {
                                tracing::warn!("removing the old fallback: {e}");
                            }
                        } else if (new.forward, new.weight) != (sorry.forward, sorry.weight) {
                            // Same fallback: rounds never edit one that is
                            // in, so it takes the new method and weight here.
                            match ipvs.edit_destination(&new.service, &new.destination(local)) {
                                Ok(()) => tracing::info!("fallback {} edited in place", new.fallback),
                                Err(e) if e.is_not_found() => {}
                                Err(e) => tracing::warn!("editing the fallback: {e}"),
                            }
                        }
                        sorry = new;
                        local = is_local(sorry.fallback.ip());
                    }
                }
                Wake::Terminate => return Ok(()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorry(pairs: &[(&str, &str)]) -> Result<Sorry> {
        let p = Params::from_pairs(&SPEC, pairs)?;
        Sorry::from_params(&p)
    }

    fn weights(ipvs: &lvs_ipvs::FakeIpvs, key: &ServiceKey) -> Vec<(String, u32)> {
        let mut w: Vec<(String, u32)> =
            ipvs.destinations(key).unwrap().iter().map(|d| (d.endpoint().to_string(), d.weight)).collect();
        w.sort();
        w
    }

    /// The switching rule on a table that answers as the kernel's: the
    /// fallback is in exactly while no other destination has weight, and
    /// nothing is added to a service that is not there.
    #[test]
    fn the_fallback_is_in_exactly_while_no_real_has_weight() {
        let ipvs = lvs_ipvs::FakeIpvs::new();
        let s = sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", "192.0.2.9:80"), ("forward", "gate")]).unwrap();
        let state = round(&s, &ipvs, false).unwrap();
        assert!(!state.active && ipvs.services().unwrap().is_empty(), "no service: nothing added");
        ipvs.add_service(&lvs_ipvs::Service::new(s.service, "wlc")).unwrap();
        let real = Destination::new("10.0.1.1".parse().unwrap(), 80, ForwardMethod::Route);
        ipvs.add_destination(&s.service, &real.clone().with_weight(0)).unwrap();
        let state = round(&s, &ipvs, false).unwrap();
        assert!(state.active, "{state:?}");
        assert_eq!(weights(&ipvs, &s.service), [("10.0.1.1:80".into(), 0), ("192.0.2.9:80".into(), 1)]);
        assert!(round(&s, &ipvs, false).unwrap().active, "a second round keeps it");
        ipvs.edit_destination(&s.service, &real.clone().with_weight(5)).unwrap();
        let state = round(&s, &ipvs, false).unwrap();
        assert!(!state.active && state.serving == 1, "{state:?}");
        assert_eq!(weights(&ipvs, &s.service), [("10.0.1.1:80".into(), 5)]);
        // Flushed behind its back: the service comes back empty, and so
        // does the fallback.
        ipvs.flush().unwrap();
        ipvs.add_service(&lvs_ipvs::Service::new(s.service, "wlc")).unwrap();
        assert!(round(&s, &ipvs, false).unwrap().active);
    }

    #[test]
    fn a_kernel_refusal_is_reported_not_taken_for_a_switch() {
        let ipvs = lvs_ipvs::FakeIpvs::new();
        let s = sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", "192.0.2.9:80")]).unwrap();
        ipvs.add_service(&lvs_ipvs::Service::new(s.service, "wlc")).unwrap();
        ipvs.fail_with(Some(libc::ENOMEM));
        assert!(round(&s, &ipvs, false).is_err());
        ipvs.fail_with(None);
        assert!(weights(&ipvs, &s.service).is_empty());
    }

    /// Stop removes every fallback this instance recorded and the one the
    /// parameters name, and leaves the service's other destinations.
    #[test]
    fn stop_removes_recorded_and_named_fallbacks_only() {
        let ipvs = lvs_ipvs::FakeIpvs::new();
        let kernel = Connector::Fake(ipvs.clone());
        let dir = std::env::temp_dir().join(format!("lvs-sorry-unit-{}", std::process::id()));
        let instance = Instance::in_dir("sorry", "fallback", dir.clone());
        let key: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
        ipvs.add_service(&lvs_ipvs::Service::new(key, "wlc")).unwrap();
        for (addr, w) in [("192.0.2.9", 1), ("192.0.2.10", 1), ("192.0.2.11", 1), ("10.0.1.1", 0)] {
            ipvs.add_destination(
                &key,
                &Destination::new(addr.parse().unwrap(), 80, ForwardMethod::Route).with_weight(w),
            )
            .unwrap();
        }
        let first = sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", "192.0.2.9:80")]).unwrap();
        let second = sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", "192.0.2.10:80")]).unwrap();
        record(&instance, &first, false);
        record(&instance, &second, true);
        let named = Some((key, "192.0.2.11:80".parse().unwrap()));
        assert_eq!(stop(named, &instance, &kernel).unwrap(), Outcome::NotRunning);
        assert_eq!(weights(&ipvs, &key), [("10.0.1.1:80".into(), 0)]);
        assert!(instance.load_record::<Vec<Recorded>>().is_none(), "record forgotten");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn forwarding_defaults_to_local_for_local_addresses() {
        let s = sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80")]).unwrap();
        assert_eq!(s.destination(true).forward, ForwardMethod::Local);
        assert_eq!(s.destination(false).forward, ForwardMethod::Masq);
        let s = sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", "192.0.2.9:80"), ("forward", "gate")]).unwrap();
        assert_eq!(s.destination(false).forward, ForwardMethod::Route);
        assert!(is_local("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_fallbacks_are_configuration_errors() {
        for f in ["127.0.0.1", "0.0.0.0:80", "host:80", "[::1:80", "255.255.255.255:80", "224.0.0.1:80", "127.0.0.1:0"]
        {
            assert!(
                matches!(sorry(&[("service", "tcp:10.0.0.100:80"), ("fallback", f)]), Err(Error::Configured(_))),
                "{f}"
            );
        }
    }

    #[test]
    fn fallback_command_is_split_without_a_shell() {
        let s = sorry(&[
            ("service", "fwmark:7"),
            ("fallback", "127.0.0.1:80"),
            ("fallback_command", "/usr/bin/logger -t 'sorry server'"),
        ])
        .unwrap();
        assert_eq!(s.command, vec!["/usr/bin/logger", "-t", "sorry server"]);
    }

    #[test]
    fn fallback_command_needs_an_absolute_path() {
        for c in ["sh -c reboot", "logger", "./x", "'/bin/true"] {
            let r = sorry(&[("service", "fwmark:7"), ("fallback", "127.0.0.1:80"), ("fallback_command", c)]);
            assert!(matches!(r, Err(Error::Configured(_))), "{c}: {r:?}");
        }
    }

    /// A command that records its process group and the word it got, then
    /// hangs (with a child of its own) until killed.
    fn hanging(dir: &std::path::Path, timeout: Duration) -> Sorry {
        let script = format!("echo $(ps -o pgid= $$) \"$1\" >> {}/ran; sleep 30 & wait", dir.display());
        let mut s = sorry(&[("service", "fwmark:7"), ("fallback", "127.0.0.1:80")]).unwrap();
        s.command = vec!["/bin/sh".into(), "-c".into(), script, "cmd".into()];
        s.command_timeout = timeout;
        s
    }

    /// The process group of /proc/<pid> (0 when gone or a zombie).
    fn group_of(pid: &str) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        match rest.first() {
            Some(&"Z") | None => 0,
            _ => rest.get(2).and_then(|g| g.parse().ok()).unwrap_or(0),
        }
    }

    #[test]
    fn fallback_command_runs_in_the_background_in_order_and_is_killed_with_its_group_at_its_timeout() {
        let dir = std::env::temp_dir().join(format!("lvs-sorry-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = hanging(&dir, Duration::from_millis(700));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let began = std::time::Instant::now();
            s.run_command("start");
            s.run_command("stop");
            assert!(began.elapsed() < Duration::from_millis(200), "the daemon's thread waited {:?}", began.elapsed());
            // both ran, one after the other, each cut at its timeout
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let lines = std::fs::read_to_string(dir.join("ran")).unwrap_or_default().lines().count();
                if lines == 2 {
                    break;
                }
            }
            // the second one's timeout
            tokio::time::sleep(Duration::from_millis(1500)).await;
        });
        let ran = std::fs::read_to_string(dir.join("ran")).unwrap();
        let lines: Vec<(&str, &str)> = ran.lines().filter_map(|l| l.trim().split_once(' ')).collect();
        assert_eq!(lines.iter().map(|(_, w)| *w).collect::<Vec<_>>(), ["start", "stop"], "{ran}");
        for (pgid, _) in &lines {
            let pgid: i32 = pgid.parse().unwrap();
            assert_ne!(pgid, group_of("self"), "not in its own process group");
            let alive: Vec<i32> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
                .filter(|p| group_of(&p.to_string()) == pgid)
                .collect();
            assert!(alive.is_empty(), "process group {pgid} outlived the timeout: {alive:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
