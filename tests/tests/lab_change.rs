//! The IPVS agents when their parameters change under them (lab VM): stop
//! with parameters edited since start, or no longer valid, still removes
//! what start created; reload of an identity parameter replaces the old
//! object instead of leaving it; monitor never calls an object of ours
//! "not running" while it is in the table.
#![cfg(feature = "lab")]

use lvs_tests::agent::{ocf, Call};
use lvs_tests::topo::{director, Host};

fn agent(d: &Host, name: &str, action: &str, params: &[(&str, &str)]) -> Call {
    let instance = format!("{name}-{}", d.ns);
    ocf(&format!("lvs-{name}"), Some(&d.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &instance)])
}

/// Service lines (`TCP  10.0.0.100:80 wrr`, `FWM  7 rr`) of `ipvsadm -Ln`.
fn services(d: &Host) -> Vec<String> {
    d.ipvsadm(&[])
        .lines()
        .filter(|l| ["TCP ", "UDP ", "SCTP ", "FWM "].iter().any(|p| l.starts_with(p)))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn service_stop_with_invalid_parameters_deletes_the_service() {
    let (d, _peer) = director();
    for stale in [
        vec![("service", "tcp:10.0.0.100:80"), ("scheduler", "fastest")],
        vec![("service", "tcp:10.0.0.100:80"), ("netmask", "24")],
        vec![("service", "tcp:10.0.0.100:80"), ("flags", "sh-port")],
        vec![("service", "not a service")],
    ] {
        let c = agent(&d, "service", "start", &[("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")]);
        assert_eq!(c.code, 0, "{c:?}");
        assert_eq!(services(&d), ["TCP 10.0.0.100:80"]);
        let c = agent(&d, "service", "stop", &stale);
        assert_eq!(c.code, 0, "stop with {stale:?}: {c:?}");
        assert_eq!(services(&d), Vec::<String>::new(), "stop with {stale:?} left the service: {c:?}");
    }
}

#[test]
fn service_reload_of_the_family_replaces_the_fwmark_service() {
    let (d, _peer) = director();
    let v4 = [("service", "fwmark:7"), ("scheduler", "rr")];
    let v6 = [("service", "fwmark:7"), ("scheduler", "rr"), ("family", "inet6")];
    assert_eq!(agent(&d, "service", "start", &v4).code, 0);
    let c = agent(&d, "service", "monitor", &v6);
    assert_eq!(c.code, 1, "ours under the old family is up, not stopped: {c:?}");
    let c = agent(&d, "service", "reload", &v6);
    assert_eq!(c.code, 0, "{c:?}");
    let table = d.ipvsadm(&[]);
    assert_eq!(services(&d), ["FWM 7"], "{table}");
    assert!(table.contains("FWM  7 IPv6 rr"), "the IPv6 one: {table}");
    assert_eq!(agent(&d, "service", "monitor", &v6).code, 0);
    // Stop with the old parameters still removes it (and any other).
    assert_eq!(agent(&d, "service", "stop", &v4).code, 0);
    assert_eq!(services(&d), Vec::<String>::new(), "{}", d.ipvsadm(&[]));
}

#[test]
fn service_reload_applies_table_timeouts() {
    let (d, _peer) = director();
    let p = [("service", "tcp:10.0.0.100:80")];
    assert_eq!(agent(&d, "service", "start", &p).code, 0);
    let c = agent(&d, "service", "reload", &[("service", "tcp:10.0.0.100:80"), ("tcp_timeout", "777")]);
    assert_eq!(c.code, 0, "{c:?}");
    let t = d.must(&["ipvsadm", "-L", "--timeout"]);
    assert!(t.contains("(tcp tcpfin udp): 777 "), "{t}");
    assert_eq!(agent(&d, "service", "stop", &p).code, 0);
}

#[test]
fn sorry_reload_moves_the_fallback_and_stop_removes_every_one() {
    let (d, _peer) = director();
    let svc = [("service", "tcp:10.0.0.100:80")];
    assert_eq!(agent(&d, "service", "start", &svc).code, 0);
    let first = [("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80"), ("check_interval", "1")];
    let c = agent(&d, "sorry", "start", &first);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(d.ipvsadm(&[]).contains("127.0.0.1:80"), "no reals: fallback in");

    let second = [("service", "tcp:10.0.0.100:80"), ("fallback", "192.168.7.9:80"), ("check_interval", "1")];
    assert_eq!(agent(&d, "sorry", "reload", &second).code, 0);
    let table = d.ipvsadm_until(std::time::Duration::from_secs(5), |t| {
        t.contains("192.168.7.9:80") && !t.contains("127.0.0.1:80")
    });
    assert!(table.contains("192.168.7.9:80"), "the new fallback: {table}");
    assert!(!table.contains("127.0.0.1:80"), "the old one gone: {table}");

    // Stop with a fallback that no longer parses: the recorded ones go.
    let stale = [("service", "tcp:10.0.0.100:80"), ("fallback", "nowhere")];
    let c = agent(&d, "sorry", "stop", &stale);
    assert_eq!(c.code, 0, "{c:?}");
    let table = d.ipvsadm(&[]);
    assert!(!table.contains("192.168.7.9:80") && !table.contains("127.0.0.1:80"), "{table}");
    assert_eq!(agent(&d, "service", "stop", &svc).code, 0);
}

/// forward and weight are not unique, so Pacemaker reloads on a change:
/// the fallback already in the table must take the new method and weight
/// (it kept the old ones while it stayed in).
#[test]
fn sorry_reload_of_forward_and_weight_edits_the_fallback_in_place() {
    let (d, _peer) = director();
    let svc = [("service", "tcp:10.0.0.100:80")];
    assert_eq!(agent(&d, "service", "start", &svc).code, 0);
    let masq = [("service", "tcp:10.0.0.100:80"), ("fallback", "192.168.7.9:80"), ("forward", "masq")];
    assert_eq!(agent(&d, "sorry", "start", &masq).code, 0);
    let line = |t: &str| t.lines().find(|l| l.contains("192.168.7.9:80")).map(str::to_string);
    let table = d.ipvsadm(&[]);
    assert!(line(&table).is_some_and(|l| l.contains("Masq")), "fallback in by masq: {table}");
    let gate = [("service", "tcp:10.0.0.100:80"), ("fallback", "192.168.7.9:80"), ("forward", "gate"), ("weight", "5")];
    assert_eq!(agent(&d, "sorry", "reload", &gate).code, 0);
    let table = d.ipvsadm_until(std::time::Duration::from_secs(5), |t| {
        line(t).is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()[2..4] == ["Route", "5"])
    });
    let l = line(&table).unwrap_or_else(|| panic!("the fallback stays in: {table}"));
    assert_eq!(l.split_whitespace().collect::<Vec<_>>()[2..4], ["Route", "5"], "new method and weight: {table}");
    assert_eq!(table.matches("192.168.7.9:80").count(), 1, "one fallback: {table}");
    assert_eq!(agent(&d, "sorry", "stop", &gate).code, 0);
    assert!(!d.ipvsadm(&[]).contains("192.168.7.9:80"));
    assert_eq!(agent(&d, "service", "stop", &svc).code, 0);
}

#[test]
fn sorry_leaves_as_soon_as_a_real_has_weight() {
    let (d, _peer) = director();
    let svc = [("service", "tcp:10.0.0.100:80")];
    assert_eq!(agent(&d, "service", "start", &svc).code, 0);
    // check_interval 60 s: the fallback must still leave at once (under
    // emulation a process start alone costs up to a second here).
    let p = [("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80"), ("check_interval", "60")];
    assert_eq!(agent(&d, "sorry", "start", &p).code, 0);
    assert!(d.ipvsadm(&[]).contains("127.0.0.1:80"), "no reals: fallback in");
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "1"]);
    let began = std::time::Instant::now();
    while d.ipvsadm(&[]).contains("127.0.0.1:80") {
        assert!(began.elapsed() < std::time::Duration::from_secs(10), "fallback still in: {}", d.ipvsadm(&[]));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    println!("fallback out {:?} after a real got weight (check_interval 60 s)", began.elapsed());
    assert_eq!(agent(&d, "sorry", "stop", &p).code, 0);
    assert_eq!(agent(&d, "service", "stop", &svc).code, 0);
}

#[test]
fn realservers_reload_to_another_service_takes_its_reals_along() {
    let (d, _peer) = director();
    for svc in ["tcp:10.0.0.100:80", "tcp:10.0.0.100:8080"] {
        assert_eq!(agent(&d, "service", "start", &[("service", svc)]).code, 0);
    }
    let reals = "192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2";
    let first = [("service", "tcp:10.0.0.100:80"), ("real", reals), ("check", "on"), ("check_interval", "1")];
    assert_eq!(agent(&d, "realservers", "start", &first).code, 0);
    let second = [("service", "tcp:10.0.0.100:8080"), ("real", reals), ("check", "on"), ("check_interval", "1")];
    assert_eq!(agent(&d, "realservers", "reload", &second).code, 0);
    let on = |svc: &str| -> usize {
        let table = d.must(&["ipvsadm", "-Ln", "-t", svc]);
        table.lines().filter(|l| l.trim_start().starts_with("-> 192.168.7.")).count()
    };
    let mut moved = false;
    for _ in 0..50 {
        if on("10.0.0.100:80") == 0 && on("10.0.0.100:8080") == 2 {
            moved = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(moved, "reals must leave the old service and join the new one:\n{}", d.ipvsadm(&[]));
    assert_eq!(agent(&d, "realservers", "stop", &second).code, 0);
    assert_eq!(on("10.0.0.100:8080"), 0, "{}", d.ipvsadm(&[]));
}
