//! The realservers daemon against hostile real servers, in the lab VM (a
//! real IPVS table, the real daemon, real sockets): 1,000 reals answer
//! every HTTP check with a chunked body that never ends. A check reads at
//! most 128 KiB of a body and all bodies being read share 4 MiB, so the
//! daemon stays under 64 MiB (issue 13's target) with `receive` and with
//! `digest`. tests/tests/probe.rs measures the checker library alone; this
//! measures the daemon as Pacemaker runs it.
#![cfg(feature = "lab")]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use lvs_tests::agent::{ocf, Call};
use lvs_tests::fake;
use lvs_tests::topo::{daemon_pid, daemon_state, wire, Host};

/// Reals per daemon, all hostile.
const REALS: usize = 1000;

/// Issue 13's target for a daemon whose 1,000 reals send endless bodies.
const BOUND_KIB: u64 = 64 * 1024;

/// check_interval and check_timeout, in seconds.
const INTERVAL_S: u64 = 2;

/// Check intervals a daemon runs after its start before its peak is read.
const INTERVALS: u64 = 5;

fn agent(d: &Host, agent: &str, instance: &str, action: &str, params: &[(&str, &str)]) -> Call {
    ocf(agent, Some(&d.ns), action, params, &[("OCF_RESOURCE_INSTANCE", instance)])
}

/// A field of /proc/PID/status in KiB (`VmHWM:`, `VmRSS:`).
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Starts a service and a realservers daemon checking `real` with `check`,
/// lets it run INTERVALS check intervals, and returns the daemon's peak
/// resident memory (VmHWM, the kernel's own high-water mark, which covers
/// its start too) in KiB, after checking that its checks did read bodies.
/// While it runs its resident memory is sampled: past twice the bound it
/// is killed and the test fails, rather than let it take the VM.
fn peak_under_endless_bodies(d: &Host, what: &str, port: u16, real: &str, check: (&str, &str)) -> u64 {
    let service = format!("tcp:10.0.0.100:{port}");
    let instance = format!("hostile-{what}-{}", d.ns);
    let svc = [("service", service.as_str())];
    let interval = INTERVAL_S.to_string();
    let params = [
        ("service", service.as_str()),
        ("real", real),
        ("check", "http"),
        ("check_interval", &interval),
        ("check_timeout", &interval),
        check,
    ];
    let c = agent(d, "lvs-service", &format!("svc-{instance}"), "start", &svc);
    assert_eq!(c.code, 0, "service start: {c:?}");
    let sent = fake::endless_bytes_sent();
    let began = Instant::now();
    let c = agent(d, "lvs-realservers", &instance, "start", &params);
    assert_eq!(c.code, 0, "realservers start ({what}): {c:?}");
    let started = began.elapsed();
    let name = format!("realservers-{instance}");
    let pid = daemon_pid(&name).expect("the daemon's pidfile");

    // INTERVALS intervals, and longer while the daemon has written no state
    // yet (a first round slower than start's wait), up to a limit.
    let mut worst = 0;
    let watch = Instant::now();
    // Whether any state the daemon wrote meanwhile shows a check that read
    // a body to its cap: on a loaded host the last round alone may have
    // timed out everywhere (seen: 1,000 digest checks at 2 s).
    let cap = format!("{} KiB", lvs_probe::MAX_BODY >> 10);
    let mut capped_seen = 0;
    let mut looked = Instant::now();
    let state = loop {
        if looked.elapsed() >= Duration::from_millis(500) {
            looked = Instant::now();
            if let Some((st, _)) = daemon_state(&name) {
                let n = st["reals"]
                    .as_array()
                    .map(|r| r.iter().filter(|x| x["last_result"].as_str().unwrap_or_default().contains(&cap)).count())
                    .unwrap_or(0);
                capped_seen = capped_seen.max(n);
            }
        }
        let rss = status_kib(&pid, "VmRSS:").unwrap_or_else(|| panic!("the {what} daemon is gone"));
        worst = worst.max(rss);
        if rss > 2 * BOUND_KIB {
            let pid = nix::unistd::Pid::from_raw(pid.parse().expect("pid"));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("the {what} daemon grew to {rss} KiB after {:?}: killed", began.elapsed());
        }
        if watch.elapsed() >= Duration::from_secs(INTERVALS * INTERVAL_S) {
            match daemon_state(&name) {
                Some((state, _)) => break state,
                None if watch.elapsed() > Duration::from_secs(180) => panic!(
                    "the {what} daemon has written no state {:?} after its start (peak RSS {:?} KiB)",
                    watch.elapsed(),
                    status_kib(&pid, "VmHWM:")
                ),
                None => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let ran = watch.elapsed();
    let peak = status_kib(&pid, "VmHWM:").expect("VmHWM");
    let sent = fake::endless_bytes_sent() - sent;

    // The checks did read bodies: the reals are down for their bodies,
    // not (only) for want of a connection or of time.
    let results: Vec<&str> = state["reals"]
        .as_array()
        .expect("reals in the state")
        .iter()
        .map(|x| x["last_result"].as_str().unwrap_or_default())
        .collect();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for res in &results {
        *reasons.entry(res.split(" /").next().unwrap_or(res)).or_default() += 1;
    }
    let capped = results.iter().filter(|res| res.contains(&cap)).count().max(capped_seen);
    println!(
        "{what}: {REALS} endless bodies, start {started:?}, then {ran:?} ({INTERVALS} intervals of {INTERVAL_S}s \
         or more): peak RSS (VmHWM) {peak} KiB, sampled RSS at most {worst} KiB; the reals sent {} MiB; \
         last results {reasons:?}",
        sent >> 20
    );
    assert_eq!(results.len(), REALS, "{what}");
    assert_eq!(state["healthy"], 0, "a hostile real is up ({what})");
    assert!(capped > 0, "no {what} check read a body to its cap in any round: last results {reasons:?}");
    let table = d.ipvsadm(&["-t", &format!("10.0.0.100:{port}")]);
    assert_eq!(table.lines().filter(|l| l.contains("-> 10.0.0.2:")).count(), REALS, "{what}: {table}");

    let c = agent(d, "lvs-realservers", &instance, "stop", &params);
    assert_eq!(c.code, 0, "realservers stop ({what}): {c:?}");
    let c = agent(d, "lvs-service", &format!("svc-{instance}"), "stop", &svc);
    assert_eq!(c.code, 0, "service stop: {c:?}");
    peak
}

/// 1,000 reals, each on its own port of a real-server namespace, send an
/// endless chunked body to every connection. A daemon checks them over
/// the wire with a `receive` that never matches, then another with a
/// `digest` (which never sees the whole body); after five check intervals
/// each one's peak resident memory must be under 64 MiB.
#[test]
fn endless_bodies_from_1000_reals_keep_the_daemon_under_64_mib() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // 1,000 listeners and their connections.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    let d = Host::new("dir");
    let reals_host = Host::new("reals");
    wire(&d, "eth0", Some("10.0.0.1/24"), &reals_host, "eth0", Some("10.0.0.2/24"));
    let listeners: Vec<TcpListener> = reals_host
        .within(|| (0..REALS).map(|_| TcpListener::bind("10.0.0.2:0").expect("bind a hostile real")).collect());
    let real = listeners
        .iter()
        .map(|l| format!("10.0.0.2:{} masq 1", l.local_addr().expect("port").port()))
        .collect::<Vec<_>>()
        .join(", ");
    fake::serve_endless_bodies(listeners);

    let receive = peak_under_endless_bodies(&d, "receive", 80, &real, ("receive", "never-there"));
    let digest = peak_under_endless_bodies(
        &d,
        "digest",
        81,
        &real,
        ("check_options", "digest=00000000000000000000000000000000"),
    );
    for (what, peak) in [("receive", receive), ("digest", digest)] {
        assert!(peak < BOUND_KIB, "the {what} daemon peaked at {peak} KiB, over {BOUND_KIB} KiB");
    }
    assert!(!d.ipvsadm(&[]).contains("10.0.0.100"), "{}", d.ipvsadm(&[]));
}
