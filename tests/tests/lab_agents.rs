//! The IPVS agents against a real IPVS (lab VM): lifecycle, idempotence,
//! drift, reload, and ocf-tester. Each test uses its own director namespace.
#![cfg(feature = "lab")]

use std::process::Command;

use lvs_tests::agent::{bin, ocf, Call};
use lvs_tests::topo::{director, weights_in, Host};

fn service(d: &Host, action: &str, params: &[(&str, &str)]) -> Call {
    ocf("lvs-service", Some(&d.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &format!("svc-{}", d.ns))])
}

#[test]
fn service_lifecycle_is_idempotent_and_reports_drift() {
    let (d, _peer) = director();
    let p = [("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr"), ("persistent", "600")];
    assert_eq!(service(&d, "monitor", &p).code, 7, "probe before start");
    let c = service(&d, "start", &p);
    assert_eq!(c.code, 0, "{c:?}");
    let table = d.ipvsadm(&[]);
    assert!(table.contains("TCP  10.0.0.100:80 wrr persistent 600"), "{table}");
    assert_eq!(service(&d, "start", &p).code, 0, "second start");
    assert_eq!(service(&d, "monitor", &p).code, 0);

    // A real server added by someone else must survive an adopt and a reload.
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "3"]);
    d.must(&["ipvsadm", "-E", "-t", "10.0.0.100:80", "-s", "rr"]);
    let c = service(&d, "monitor", &p);
    assert_eq!(c.code, 1, "drift is an error: {c:?}");
    assert!(c.stderr.contains("scheduler is rr, expected wrr"), "{}", c.stderr);
    assert_eq!(service(&d, "start", &p).code, 0, "start adopts");
    assert_eq!(service(&d, "monitor", &p).code, 0);
    let reload = [("service", "tcp:10.0.0.100:80"), ("scheduler", "sh"), ("flags", "sh-port")];
    assert_eq!(service(&d, "reload", &reload).code, 0);
    let table = d.ipvsadm(&[]);
    assert!(table.contains("10.0.0.100:80 sh (sh-port)"), "{table}");
    assert!(table.contains("192.168.7.10:80") && table.contains("Masq    3"), "reload kept the real: {table}");

    assert_eq!(service(&d, "stop", &reload).code, 0);
    assert!(!d.ipvsadm(&[]).contains("10.0.0.100:80"), "stopped");
    assert_eq!(service(&d, "stop", &reload).code, 0, "second stop");
    assert_eq!(service(&d, "monitor", &reload).code, 7);
}

#[test]
fn service_kinds_match_ipvsadm() {
    let (d, _peer) = director();
    for (params, line) in [
        (vec![("service", "udp:10.0.0.100:53"), ("scheduler", "rr"), ("flags", "ops")], "UDP  10.0.0.100:53 rr ops"),
        (vec![("service", "fwmark:100"), ("scheduler", "wlc")], "FWM  100 wlc"),
        (
            vec![("service", "fwmark:7"), ("family", "inet6"), ("scheduler", "mh"), ("flags", "mh-port")],
            "FWM  7 IPv6 mh (mh-port)",
        ),
        (
            vec![("service", "tcp:[2001:db8::100]:443"), ("scheduler", "lc"), ("persistent", "60"), ("netmask", "64")],
            "TCP  [2001:db8::100]:443 lc persistent 60 mask 64",
        ),
        (vec![("service", "sctp:10.0.0.100:5060"), ("scheduler", "sed")], "SCTP 10.0.0.100:5060 sed"),
        (
            vec![("service", "tcp:10.0.0.100:8443"), ("persistent", "300"), ("netmask", "255.255.255.0")],
            "TCP  10.0.0.100:8443 wlc persistent 300 mask 255.255.255.0",
        ),
    ] {
        let c = service(&d, "start", &params);
        assert_eq!(c.code, 0, "{params:?}: {c:?}");
        let table = d.ipvsadm(&[]);
        assert!(table.contains(line), "{params:?}: expected '{line}' in\n{table}");
        assert_eq!(service(&d, "monitor", &params).code, 0, "{params:?}");
    }
}

#[test]
fn bad_parameters_fail_cleanly_and_touch_nothing() {
    let (d, _peer) = director();
    d.must(&["ipvsadm", "-A", "-t", "10.0.0.5:80", "-s", "rr"]);
    let before = d.ipvsadm(&[]);
    for (params, code) in [
        (vec![("service", "tcp:10.0.0.100")], 6),
        (vec![("service", "tcp:10.0.0.100:80"), ("scheduler", "nosuch")], 6),
        (vec![("scheduler", "rr")], 6),
    ] {
        let c = service(&d, "start", &params);
        assert_eq!(c.code, code, "{params:?}: {c:?}");
        assert!(c.stderr.contains("ocf-exit-reason:"), "{c:?}");
    }
    assert_eq!(d.ipvsadm(&[]), before, "nothing changed");
}

fn ocf_tester(d: &Host, agent: &str, params: &[(&str, &str)]) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &d.ns, "ocf-tester", "-n", &format!("t-{agent}-{}", d.ns)]);
    for (k, v) in params {
        cmd.args(["-o", &format!("{k}={v}")]);
    }
    let o = cmd.arg(bin(&format!("lvs-{agent}"))).env("HA_LOGFACILITY", "none").output().expect("ocf-tester");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "ocf-tester {agent}:\n{out}");
    assert!(out.contains("passed all tests"), "ocf-tester {agent}:\n{out}");
}

#[test]
fn ocf_tester_passes_for_the_ipvs_agents() {
    let (d, _peer) = director();
    ocf_tester(&d, "service", &[("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")]);
    // realservers and sorry need their service to exist.
    d.must(&["ipvsadm", "-A", "-t", "10.0.0.100:80", "-s", "wrr"]);
    ocf_tester(
        &d,
        "realservers",
        &[
            ("service", "tcp:10.0.0.100:80"),
            ("real", "192.168.7.10:80 masq 1"),
            ("check", "on"),
            ("check_interval", "1"),
        ],
    );
    ocf_tester(&d, "sorry", &[("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80")]);
    ocf_tester(&d, "sync", &[("interface", "eth0"), ("syncid", "3")]);
    assert!(
        !d.must(&["ipvsadm", "-L", "--daemon"]).contains("sync daemon"),
        "ocf-tester's last stop left no sync daemon"
    );
    // ocf-tester's final stop leaves nothing of ours behind.
    let table = d.ipvsadm(&[]);
    assert!(!table.contains("192.168.7.10") && !table.contains("127.0.0.1"), "{table}");
}

fn agent(d: &Host, name: &str, action: &str, params: &[(&str, &str)]) -> Call {
    ocf(&format!("lvs-{name}"), Some(&d.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &format!("{name}-{}", d.ns))])
}

fn pid_of(d: &Host, name: &str) -> String {
    std::fs::read_to_string(format!("/run/lvs-agents/{name}-{name}-{}.pid", d.ns)).expect("pidfile").trim().to_string()
}

#[test]
fn realservers_reload_changes_the_list_in_place_and_touches_only_its_own() {
    let (d, _peer) = director();
    let svc = [("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")];
    assert_eq!(service(&d, "start", &svc).code, 0);
    // Somebody else's destination in the same service.
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.99:80", "-m", "-w", "7"]);
    let before = [
        ("service", "tcp:10.0.0.100:80"),
        ("real", "192.168.7.10 masq 1, 192.168.7.20 masq 2"),
        ("check", "on"),
        ("check_interval", "1"),
    ];
    assert_eq!(agent(&d, "realservers", "start", &before).code, 0);
    let t = d.ipvsadm(&[]);
    assert!(t.contains("192.168.7.10:80") && t.contains("192.168.7.20:80"), "{t}");
    let pid = pid_of(&d, "realservers");

    let after = [
        ("service", "tcp:10.0.0.100:80"),
        ("real", "192.168.7.20 masq 5, 192.168.7.30 masq 1"),
        ("check", "on"),
        ("check_interval", "1"),
    ];
    assert_eq!(agent(&d, "realservers", "reload", &after).code, 0);
    let mut t = String::new();
    for _ in 0..50 {
        t = d.ipvsadm(&[]);
        if t.contains("192.168.7.30:80") && !t.contains("192.168.7.10:80") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(t.contains("192.168.7.30:80") && !t.contains("192.168.7.10:80"), "reload applied: {t}");
    assert!(t.lines().any(|l| l.contains("192.168.7.20:80") && l.contains(" 5 ")), "weight changed in place: {t}");
    assert_eq!(pid_of(&d, "realservers"), pid, "same daemon after reload");
    assert_eq!(weights_in(&t).get("192.168.7.99:80"), Some(&7), "foreign destination untouched: {t}");

    // The sorry agent never touches others either, and cleans up after itself.
    let sorry = [("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80")];
    assert_eq!(agent(&d, "sorry", "start", &sorry).code, 0);
    assert!(!d.ipvsadm(&[]).contains("127.0.0.1:80"), "reals serve: no fallback");
    assert_eq!(agent(&d, "sorry", "stop", &sorry).code, 0);

    assert_eq!(agent(&d, "realservers", "stop", &after).code, 0);
    let t = d.ipvsadm(&[]);
    assert!(!t.contains("192.168.7.20:80") && !t.contains("192.168.7.30:80"), "cleanstop: {t}");
    assert_eq!(weights_in(&t).get("192.168.7.99:80"), Some(&7), "foreign destination survives stop: {t}");
    assert_eq!(agent(&d, "realservers", "monitor", &after).code, 7);
}

#[test]
fn sorry_switches_with_the_weights_and_runs_fallback_command() {
    let (d, _peer) = director();
    let svc = [("service", "tcp:10.0.0.100:80"), ("scheduler", "rr")];
    assert_eq!(service(&d, "start", &svc).code, 0);
    let dir = std::env::temp_dir().join(format!("lvs-fbcmd-{}", d.ns));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("cmd");
    let log = dir.join("log");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$1\" >> {}\n", log.display())).expect("script");
    Command::new("chmod").args(["755", script.to_str().expect("path")]).status().expect("chmod");
    let sorry = [
        ("service", "tcp:10.0.0.100:80"),
        ("fallback", "127.0.0.1:80"),
        ("fallback_command", script.to_str().expect("path")),
    ];
    assert_eq!(agent(&d, "sorry", "start", &sorry).code, 0);
    let wait = |want: bool| {
        for _ in 0..50 {
            if d.ipvsadm(&[]).contains("127.0.0.1:80") == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("fallback present={want} expected:\n{}", d.ipvsadm(&[]));
    };
    wait(true);
    assert!(d.ipvsadm(&[]).contains("Local   1"), "local fallback: {}", d.ipvsadm(&[]));
    // A real server with weight appears: the fallback goes.
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "1"]);
    wait(false);
    // Quiesced to 0: the fallback comes back.
    d.must(&["ipvsadm", "-e", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "0"]);
    wait(true);
    assert_eq!(agent(&d, "sorry", "monitor", &sorry).code, 0);
    assert_eq!(agent(&d, "sorry", "stop", &sorry).code, 0);
    assert!(!d.ipvsadm(&[]).contains("127.0.0.1:80"), "stop removes the fallback");
    assert!(d.ipvsadm(&[]).contains("192.168.7.10:80"), "and nothing else");
    let ran = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ran, "start\nstop\nstart\n", "fallback_command on each switch");
}

#[test]
fn stop_with_parameters_that_no_longer_check_out_still_stops_the_daemon() {
    let (d, _peer) = director();
    assert_eq!(service(&d, "start", &[("service", "tcp:10.0.0.100:80")]).code, 0);
    let good =
        [("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10 masq"), ("check", "on"), ("check_interval", "1")];
    assert_eq!(agent(&d, "realservers", "start", &good).code, 0);
    let pid = pid_of(&d, "realservers");
    // As after an upgrade that tightened a check, or a mangled CIB.
    let bad = [("service", "tcp:10.0.0.100:80"), ("real", "not a real"), ("check_interval", "0")];
    let c = agent(&d, "realservers", "stop", &bad);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "daemon {pid} stopped");
    assert_eq!(agent(&d, "realservers", "monitor", &good).code, 7);
}
