//! The daemon runtime against a real IPVS (lab VM, whose clock is its own):
//! a wall-clock step restarts nothing and removes no real.
#![cfg(feature = "lab")]

use std::time::Duration;

use lvs_tests::agent::{ocf, Call};
use lvs_tests::cluster::step_clock;
use lvs_tests::topo::{weights_in, wire, Host};

fn agent(d: &Host, name: &str, action: &str, params: &[(&str, &str)]) -> Call {
    ocf(&format!("lvs-{name}"), Some(&d.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &format!("clock-{}", d.ns))])
}

#[test]
fn a_clock_step_restarts_nothing_and_removes_no_real() {
    let d = Host::new("dir");
    let peer = Host::new("peer");
    wire(&d, "eth0", Some("10.0.0.1/24"), &peer, "eth0", Some("10.0.0.2/24"));
    d.must(&["ip", "route", "add", "192.168.7.0/24", "dev", "eth0"]);
    let svc = [("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")];
    assert_eq!(agent(&d, "service", "start", &svc).code, 0);
    let p = [
        ("service", "tcp:10.0.0.100:80"),
        ("real", "192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2"),
        ("check", "on"),
        ("check_interval", "1"),
    ];
    let c = agent(&d, "realservers", "start", &p);
    assert_eq!(c.code, 0, "{c:?}");
    let pidfile = format!("/run/lvs-agents/realservers-clock-{}.pid", d.ns);
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let want = [("192.168.7.10:80".to_string(), 1), ("192.168.7.20:80".to_string(), 2)].into_iter().collect();
    assert_eq!(weights_in(&d.ipvsadm(&[])), want);

    let mut failures = Vec::new();
    for (what, secs) in [("forward an hour", 3600), ("back two hours", -7200), ("forward a day", 86400)] {
        step_clock(secs);
        for round in 0..2 {
            let m = agent(&d, "realservers", "monitor", &p);
            if m.code != 0 {
                failures.push(format!("clock stepped {what}, monitor {round}: {} {}", m.code, m.stderr.trim()));
            }
            // past three intervals of the daemon's own pace
            std::thread::sleep(Duration::from_millis(2500));
        }
    }
    step_clock(3600 - 86400);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid, "the daemon was replaced");
    assert_eq!(weights_in(&d.ipvsadm(&[])), want, "reals changed");

    assert_eq!(agent(&d, "realservers", "stop", &p).code, 0);
    assert!(weights_in(&d.ipvsadm(&[])).is_empty(), "cleanstop");
    assert_eq!(agent(&d, "service", "stop", &svc).code, 0);
}

#[test]
fn sorry_runs_its_fallback_command_in_the_background_on_each_switch() {
    let d = Host::new("dir");
    let peer = Host::new("peer");
    wire(&d, "eth0", Some("10.0.0.1/24"), &peer, "eth0", Some("10.0.0.2/24"));
    d.must(&["ip", "route", "add", "192.168.7.0/24", "dev", "eth0"]);
    let dir = std::env::temp_dir().join(format!("lvs-lab-sorry-{}", d.ns));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("switches");
    // Hangs far beyond check_interval: the daemon must not wait for it.
    let script = format!("echo \"$1\" >> {}; sleep 60", log.display());
    let cmd = format!("/bin/sh -c '{script}' fallback");
    let svc = [("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")];
    assert_eq!(agent(&d, "service", "start", &svc).code, 0);
    let p = [("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80"), ("fallback_command", &cmd)];
    let c = agent(&d, "sorry", "start", &p);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(d.ipvsadm(&[]).contains("127.0.0.1:80"), "fallback in");
    // A real with weight: the fallback goes out within a check_interval
    // (1 s) even though the start command still hangs.
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "1"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!d.ipvsadm(&[]).contains("127.0.0.1:80"), "fallback still in: {}", d.ipvsadm(&[]));
    assert_eq!(agent(&d, "sorry", "monitor", &p).code, 0, "the daemon is not hung");
    assert_eq!(agent(&d, "sorry", "stop", &p).code, 0);
    let switches = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    // the stop command waits its turn behind the hanging start, which is
    // killed at its 10 s limit (the emulated lab may get that far)
    let lines: Vec<&str> = switches.lines().collect();
    assert!(lines == ["start"] || lines == ["start", "stop"], "{switches}");
    assert_eq!(agent(&d, "service", "stop", &svc).code, 0);
}
