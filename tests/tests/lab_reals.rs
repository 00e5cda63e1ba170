//! realservers against a real IPVS (lab VM) when the kernel refuses its
//! writes or its parameters no longer parse: monitor says so, and stop
//! still removes every real the daemon put in.
#![cfg(feature = "lab")]

use std::time::Duration;

use lvs_tests::agent::{ocf, Call};
use lvs_tests::fake::test_cert;
use lvs_tests::topo::{wire, Host};

fn realservers(d: &Host, action: &str, params: &[(&str, &str)]) -> Call {
    let instance = format!("reals-{}", d.ns);
    ocf("lvs-realservers", Some(&d.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &instance)])
}

fn director() -> (Host, Host) {
    let d = Host::new("dir");
    let peer = Host::new("peer");
    wire(&d, "eth0", Some("10.0.0.1/24"), &peer, "eth0", Some("10.0.0.2/24"));
    d.must(&["ip", "route", "add", "192.168.7.0/24", "dev", "eth0"]);
    d.must(&["ipvsadm", "-A", "-t", "10.0.0.100:80", "-s", "wrr"]);
    (d, peer)
}

/// Real-server lines of `ipvsadm -Ln` for 192.168.7.x.
fn reals(d: &Host) -> usize {
    d.ipvsadm(&[]).lines().filter(|l| l.contains("-> 192.168.7.")).count()
}

#[test]
fn monitor_fails_while_the_kernel_refuses_every_write() {
    let d = Host::new("dir");
    d.must(&["ipvsadm", "-A", "-t", "[2001:db8::1]:80", "-s", "wlc"]);
    // A link-local real that is not local: the kernel answers EINVAL to every add.
    let p = [
        ("service", "tcp:[2001:db8::1]:80"),
        ("real", "[fe80::10]:80 masq 1"),
        ("check", "on"),
        ("check_interval", "1"),
        ("initial_state", "up"),
    ];
    assert_eq!(realservers(&d, "validate-all", &p).code, 0);
    let c = realservers(&d, "start", &p);
    assert_eq!(c.code, 0, "{c:?}");
    let mut c = realservers(&d, "monitor", &p);
    for _ in 0..100 {
        if c.code != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        c = realservers(&d, "monitor", &p);
    }
    assert_eq!(c.code, 1, "monitor while every write fails: {c:?}");
    assert!(c.stderr.contains("failed 3 passes in a row") && c.stderr.contains("EINVAL"), "{}", c.stderr);
    assert_eq!(realservers(&d, "stop", &p).code, 0);
    assert_eq!(realservers(&d, "monitor", &p).code, 7);
}

#[test]
fn stop_with_a_vanished_ca_file_or_a_broken_real_list_removes_the_reals() {
    let (d, _peer) = director();
    let ca = std::env::temp_dir().join(format!("lvs-lab-reals-ca-{}.pem", d.ns));
    std::fs::copy(&test_cert().pem_path, &ca).expect("copy CA");
    let ca_opt = format!("verify=yes ca={}", ca.display());
    let start = [
        ("service", "tcp:10.0.0.100:80"),
        ("real", "192.168.7.10 masq 1, 192.168.7.20 masq 1"),
        ("check", "https"),
        ("check_options", &ca_opt),
        ("initial_state", "up"),
        ("check_interval", "1"),
    ];
    let c = realservers(&d, "start", &start);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(reals(&d), 2, "{}", d.ipvsadm(&[]));
    // The CA file goes away: the check no longer parses, the reals must still go.
    std::fs::remove_file(&ca).expect("remove CA");
    let c = realservers(&d, "stop", &start);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(reals(&d), 0, "stop after the CA file vanished left reals: {}\n{c:?}", d.ipvsadm(&[]));

    // The real list edited into something that does not parse.
    let good = [("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10 masq, 192.168.7.20 masq"), ("check", "on")];
    assert_eq!(realservers(&d, "start", &good).code, 0);
    assert_eq!(reals(&d), 2, "{}", d.ipvsadm(&[]));
    let broken = [("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10 masq, nonsense"), ("check", "on")];
    let c = realservers(&d, "stop", &broken);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(reals(&d), 0, "stop with a broken real list left reals: {}\n{c:?}", d.ipvsadm(&[]));
}

#[test]
fn a_full_list_validates_and_stops_quickly() {
    let (d, _peer) = director();
    let p = [("service", "tcp:10.0.0.100:80"), ("real", "10.1.0.0->10.1.255.255:80 gate 1"), ("check", "on")];
    // Generous guards (a guest without KVM is tens of times slower than
    // the host, where each takes 0.2 s in a debug build): the old duplicate
    // scan alone took over 100 s here.
    for action in ["validate-all", "stop"] {
        let t = std::time::Instant::now();
        let c = realservers(&d, action, &p);
        assert_eq!(c.code, 0, "{action}: {c:?}");
        assert!(t.elapsed() < Duration::from_secs(60), "{action} of 65,536 reals took {:?}", t.elapsed());
    }
    let one_more = [("service", "tcp:10.0.0.100:80"), ("real", "10.1.0.0->10.1.255.255:80, 10.2.0.1:80")];
    let c = realservers(&d, "validate-all", &one_more);
    assert_eq!(c.code, 6, "{c:?}");
    assert!(c.stderr.contains("more than 65536 reals"), "{}", c.stderr);
}
