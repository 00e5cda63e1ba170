//! Daemon supervision with real processes, on the host: this test binary
//! is its own daemon (run as `BINARY __daemon NAME`, which is how
//! Instance::spawn starts an agent's daemon), so no IPVS is needed.
//! harness = false: the default harness owns main() and would not let the
//! binary act as a daemon.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use lvs_daemon::{self as daemon, Instance, Liveness, Signals, Supervisor, Wake};
use lvs_ocf::Result;
use lvs_ocf::{self as ocf, spec::positional_in_order, AgentSpec, Heartbeat, Outcome, ParamSpec, Params};

static SPEC: AgentSpec = AgentSpec {
    name: "stub",
    version: "1.0",
    shortdesc: "test daemon",
    longdesc: "A daemon for supervision tests.",
    params: &[
        ParamSpec::integer("interval", 1, 60, "seconds between states").default("1"),
        ParamSpec::integer("first_round", 0, 60, "seconds the first round takes").default("0"),
        ParamSpec::boolean("child", "run a command that forks and hangs, as a check may"),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "", map: no_positional },
};

fn no_positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    positional_in_order(&[], args)
}

fn stub_daemon(spec: &AgentSpec, instance: &Instance, _name: &str) -> Result<()> {
    daemon::run(instance, async {
        let mut signals = Signals::new()?;
        let p = instance.read_params(spec)?;
        let interval = Duration::from_secs(p.num_or_default("interval")?);
        if p.flag("child") {
            let mut cmd = daemon::child::command("/bin/sh");
            cmd.args(["-c", "sleep 60 & wait"]);
            tokio::spawn(async move { daemon::child::run(&mut cmd, None).await });
        }
        // Like realservers' first round: signals are installed but the
        // body does not look at them until the round is over.
        tokio::time::sleep(Duration::from_secs(p.num("first_round")?.unwrap_or(0))).await;
        loop {
            instance.write_state(&1u32);
            if signals.sleep_until(tokio::time::Instant::now() + interval).await == Wake::Terminate {
                return Ok(());
            }
        }
    })
}

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("lvs-supervision-{}", std::process::id()))
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(&SPEC, pairs).unwrap()
}

struct Res {
    name: String,
    inst: Instance,
}

impl Res {
    fn new(name: &str) -> Res {
        Res { name: name.to_string(), inst: Instance::in_dir("stub", name, dir()) }
    }
    fn sup(&self) -> Supervisor<'_> {
        Supervisor { instance: &self.inst, name: &self.name, updated_every: Duration::from_secs(1) }
    }
    fn start(&self, pairs: &[(&str, &str)]) {
        self.sup().start(&params(pairs), Duration::from_secs(10)).unwrap();
    }
    fn pid(&self) -> u32 {
        match self.inst.liveness() {
            Liveness::Running(pid) => pid,
            other => panic!("{}: {other:?}", self.name),
        }
    }
}

/// Daemons of instance `name` alive now (by their command line).
fn daemons_named(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
        if !zombie && args.get(1) == Some(&&b"__daemon"[..]) && args.get(2) == Some(&name.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let began = Instant::now();
    while began.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn names_that_differ_only_in_accents_do_not_share_a_daemon() {
    let a = Res::new("r\u{e9}al");
    let b = Res::new("r\u{e8}al");
    assert_ne!(a.inst.pidfile(), b.inst.pidfile());
    a.start(&[]);
    b.start(&[]);
    let pb = b.pid();
    let text = std::fs::read_to_string(b.inst.pidfile()).unwrap();
    assert_eq!(text, format!("{pb}\n"), "a pidfile holds the pid alone");
    a.sup().stop(Duration::from_secs(5)).unwrap();
    assert_eq!(b.sup().monitor().unwrap(), Outcome::Running, "stopping réal stopped rèal");
    assert_eq!(daemons_named("r\u{e8}al"), vec![pb]);
    b.sup().stop(Duration::from_secs(5)).unwrap();
    assert!(daemons_named("r\u{e8}al").is_empty());
}

fn file_names_are_injective_and_bounded() {
    let names = ["a:b", "a_b", "a%3Ab", "a/b", "", "default", "%", "r\u{e9}al", "r\u{e8}al"];
    let files: std::collections::BTreeSet<PathBuf> =
        names.iter().map(|n| Instance::in_dir("stub", n, dir()).pidfile()).collect();
    assert_eq!(files.len(), names.len(), "{files:?}");
    let long = "192.168.7.10:80/gate/1,".repeat(40);
    let f = Instance::in_dir("realservers", &long, dir()).pidfile();
    let n = f.file_name().unwrap().len();
    assert!(n <= 255, "{n} bytes");
    let other = Instance::in_dir("realservers", &format!("{long}x"), dir()).pidfile();
    assert_ne!(f, other);
}

/// The stub as an agent: what Pacemaker runs.
fn agent(ctx: &ocf::Context) -> Result<Outcome> {
    let instance = Instance::new(SPEC.name, &ctx.instance);
    let sup = Supervisor { instance: &instance, name: &ctx.instance, updated_every: Duration::from_secs(1) };
    match ctx.action {
        ocf::Action::Start => sup.start(&ctx.params, Duration::from_secs(5)).map(|()| Outcome::Running),
        ocf::Action::Stop => sup.stop(ctx.timeout).map(|()| Outcome::NotRunning),
        ocf::Action::Monitor => sup.monitor(),
        ocf::Action::Reload => sup.reload(&ctx.params),
        ocf::Action::ValidateAll => Ok(Outcome::Running),
    }
}

fn agent_call(name: &str, action: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .arg(action)
        .env("LVS_STUB_AGENT", "1")
        .env("OCF_RESOURCE_INSTANCE", name)
        .env("HA_LOGFACILITY", "none")
        .spawn()
        .unwrap()
}

fn two_concurrent_starts_run_one_daemon() {
    let starts: Vec<_> = (0..2).map(|_| agent_call("twice", "start")).collect();
    for mut s in starts {
        assert!(s.wait().unwrap().success());
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemons_named("twice").len(), 1, "{:?}", daemons_named("twice"));
    assert!(agent_call("twice", "stop").wait().unwrap().success());
    assert!(daemons_named("twice").is_empty());
    let left: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("stub-twice."))
        .collect();
    assert!(left.is_empty(), "a stop leaves nothing of the instance: {left:?}");
}

fn a_daemon_without_its_pidfile_exits() {
    let r = Res::new("orphan");
    r.start(&[]);
    let pid = r.pid();
    std::fs::remove_file(r.inst.pidfile()).unwrap();
    let gone = wait_until(Duration::from_secs(5), || !daemons_named("orphan").contains(&pid));
    assert!(gone, "daemon {pid} still runs without its pidfile");
}

fn monitor_ignores_wall_clock_steps() {
    let r = Res::new("clock");
    r.start(&[("interval", "60")]);
    std::thread::sleep(Duration::from_millis(200));
    let hour = Duration::from_secs(3600);
    // What a clock step looks like from here: the state's mtime is an hour
    // in the future (clock stepped back) or in the past (stepped forward).
    for (what, t) in [("back", SystemTime::now() + hour), ("forward", SystemTime::now() - hour)] {
        let f = std::fs::OpenOptions::new().write(true).open(r.inst.statefile()).unwrap();
        f.set_modified(t).unwrap();
        let m = r.sup().monitor();
        assert!(matches!(m, Ok(Outcome::Running)), "clock stepped {what}: {m:?}");
    }
    r.sup().stop(Duration::from_secs(5)).unwrap();
}

fn sigterm_during_the_first_round_is_acted_on() {
    let r = Res::new("slowfirst");
    let sup = r.sup();
    // start returns after its budget while the first round still runs
    sup.start(&params(&[("first_round", "30")]), Duration::from_millis(800)).unwrap();
    let began = Instant::now();
    // a 13 s timeout gives the daemon 10 s of grace before SIGKILL
    sup.stop(Duration::from_secs(13)).unwrap();
    let took = began.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}: SIGTERM waited for the first round");
    assert!(daemons_named("slowfirst").is_empty());
}

fn a_state_that_cannot_be_written_does_not_end_the_daemon() {
    let r = Res::new("full");
    r.start(&[]);
    let pid = r.pid();
    // The next state write fails as on a full /run: its path is a directory.
    let _ = std::fs::remove_file(r.inst.statefile());
    std::fs::create_dir(r.inst.statefile()).unwrap();
    let recorded = wait_until(Duration::from_secs(10), || r.inst.read_heartbeat().is_some_and(|b| b.errno != 0));
    assert!(recorded, "the problem is recorded for monitor");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(daemons_named("full"), vec![pid], "the daemon exited");
    assert_eq!(r.sup().monitor().unwrap(), Outcome::Running);
    std::fs::remove_dir(r.inst.statefile()).unwrap();
    let cleared = wait_until(Duration::from_secs(10), || r.inst.read_heartbeat().is_some_and(|b| b.errno == 0));
    assert!(cleared, "and cleared when writes work again");
    r.sup().stop(Duration::from_secs(5)).unwrap();
}

/// What a daemon of an older version left: its pid alone in a file under
/// the old name (other characters as '_'), no lock, no heartbeat, and a
/// state file rewritten every 200 ms. SIGTERM ends it (default action).
fn legacy_daemon(name: &str) -> std::process::ExitCode {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect();
    let dir = PathBuf::from(std::env::var_os("LVS_RUN_DIR").unwrap());
    std::fs::write(dir.join(format!("stub-{stem}.pid")), std::process::id().to_string()).unwrap();
    loop {
        std::fs::write(dir.join(format!("stub-{stem}.state")), "1").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn a_daemon_of_an_older_version_is_found_under_its_old_name() {
    std::fs::create_dir_all(dir()).unwrap();
    let mut old = std::process::Command::new(std::env::current_exe().unwrap())
        .args([daemon::DAEMON_ACTION, "web:0\u{e9}"])
        .env("LVS_STUB_LEGACY", "1")
        .spawn()
        .unwrap();
    let legacy = dir().join("stub-web:0_.pid");
    assert!(wait_until(Duration::from_secs(3), || legacy.exists()));
    // another name with the same old file name is not taken for it
    let other = Instance::in_dir("stub", "web:0\u{e8}", dir());
    assert_ne!(other.pidfile(), legacy);
    assert_eq!(other.liveness(), Liveness::Stopped);
    let r = Res::new("web:0\u{e9}");
    assert_eq!(r.inst.pidfile(), legacy);
    assert_eq!(r.pid(), old.id());
    assert_eq!(r.sup().monitor().unwrap(), Outcome::Running);
    r.sup().stop(Duration::from_secs(5)).unwrap();
    assert!(
        old.try_wait().unwrap().is_some() || wait_until(Duration::from_secs(2), || old.try_wait().unwrap().is_some())
    );
    assert!(!legacy.exists() && !dir().join("stub-web:0_.state").exists(), "its files are cleaned");
}

fn a_daemon_killed_in_its_first_round_is_reported_stopped_and_started_again() {
    let r = Res::new("firstkill");
    let sup = r.sup();
    sup.start(&params(&[("first_round", "30"), ("child", "true")]), Duration::from_millis(800)).unwrap();
    let pid = r.pid();
    assert!(wait_until(Duration::from_secs(10), || session_members(pid).len() >= 3));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || daemons_named("firstkill").is_empty()));
    let m = sup.monitor();
    assert!(matches!(&m, Err(e) if e.to_string().contains("died")), "{m:?}");
    sup.stop(Duration::from_secs(5)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || session_members(pid).is_empty()), "{:?}", session_members(pid));
    assert_eq!(sup.monitor().unwrap(), Outcome::NotRunning);
    sup.start(&params(&[]), Duration::from_secs(10)).unwrap();
    assert_eq!(sup.monitor().unwrap(), Outcome::Running);
    sup.stop(Duration::from_secs(5)).unwrap();
    assert!(daemons_named("firstkill").is_empty());
}

fn stop_waits_for_a_lock_holder_it_cannot_identify() {
    let r = Res::new("stranger");
    r.start(&[]);
    let pid = r.pid();
    // The pidfile names someone else (pid 1), the lock is still held.
    std::fs::write(r.inst.pidfile(), "1\n").unwrap();
    assert!(matches!(r.inst.liveness(), Liveness::Dead(1)));
    r.sup().stop(Duration::from_secs(5)).unwrap();
    // It must be gone when stop returns: a realservers daemon still
    // running then could re-add reals the stop's cleanstop removed.
    assert!(!daemons_named("stranger").contains(&pid), "stop returned with the lock holder {pid} still running");
}

/// Processes in session `sid` (daemons lead their own).
fn session_members(sid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let rest: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        if rest.first() != Some(&"Z") && rest.get(3).and_then(|s| s.parse().ok()) == Some(sid) {
            out.push(pid);
        }
    }
    out
}

fn a_killed_daemon_leaves_no_command_behind_after_stop() {
    let r = Res::new("killed");
    r.start(&[("child", "true")]);
    let pid = r.pid();
    assert!(wait_until(Duration::from_secs(10), || session_members(pid).len() >= 3), "{:?}", session_members(pid));
    // the OOM killer's way: no chance to clean up
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || daemons_named("killed").is_empty()));
    // PR_SET_PDEATHSIG took the command itself (the sh), not its child
    let pdeathsig = wait_until(Duration::from_secs(10), || session_members(pid).len() == 1);
    assert!(pdeathsig, "the command outlived its daemon: {:?}", session_members(pid));
    assert!(r.sup().monitor().is_err(), "a dead daemon fails monitor");
    r.sup().stop(Duration::from_secs(5)).unwrap();
    // SIGKILL is sent by then; dying takes a moment under load
    let gone = wait_until(Duration::from_secs(5), || session_members(pid).is_empty());
    assert!(gone, "left running in the daemon's session: {:?}", session_members(pid));
}

const NAMES: [&str; 11] = [
    "r\u{e9}al",
    "r\u{e8}al",
    "twice",
    "orphan",
    "clock",
    "slowfirst",
    "full",
    "killed",
    "web:0\u{e9}",
    "stranger",
    "firstkill",
];

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if std::env::var_os("LVS_STUB_LEGACY").is_some() {
        return legacy_daemon(&args[2]);
    }
    if args.get(1).map(String::as_str) == Some(daemon::DAEMON_ACTION) || std::env::var_os("LVS_STUB_AGENT").is_some() {
        return daemon::run_agent(&SPEC, agent, stub_daemon);
    }
    // The daemons find their files there too (they inherit it).
    std::env::set_var("LVS_RUN_DIR", dir());
    let tests: &[(&str, fn())] = &[
        ("file_names_are_injective_and_bounded", file_names_are_injective_and_bounded),
        (
            "names_that_differ_only_in_accents_do_not_share_a_daemon",
            names_that_differ_only_in_accents_do_not_share_a_daemon,
        ),
        ("two_concurrent_starts_run_one_daemon", two_concurrent_starts_run_one_daemon),
        ("a_daemon_without_its_pidfile_exits", a_daemon_without_its_pidfile_exits),
        ("monitor_ignores_wall_clock_steps", monitor_ignores_wall_clock_steps),
        ("sigterm_during_the_first_round_is_acted_on", sigterm_during_the_first_round_is_acted_on),
        (
            "a_state_that_cannot_be_written_does_not_end_the_daemon",
            a_state_that_cannot_be_written_does_not_end_the_daemon,
        ),
        ("a_killed_daemon_leaves_no_command_behind_after_stop", a_killed_daemon_leaves_no_command_behind_after_stop),
        (
            "a_daemon_of_an_older_version_is_found_under_its_old_name",
            a_daemon_of_an_older_version_is_found_under_its_old_name,
        ),
        ("stop_waits_for_a_lock_holder_it_cannot_identify", stop_waits_for_a_lock_holder_it_cannot_identify),
        (
            "a_daemon_killed_in_its_first_round_is_reported_stopped_and_started_again",
            a_daemon_killed_in_its_first_round_is_reported_stopped_and_started_again,
        ),
    ];
    let filter: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed.push(*name);
        }
    }
    // Whatever a failed test left running.
    for pid in NAMES.iter().flat_map(|n| daemons_named(n)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_dir_all(dir());
    // libtest's closing line, so run-all's total (and CI) counts these.
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("failed: {failed:?}");
    }
    println!("test result: {verdict}. {passed} passed; {} failed", failed.len());
    if failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
