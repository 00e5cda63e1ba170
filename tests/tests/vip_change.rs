//! `ocf:lvs:vip` when its parameters change under it: stop with parameters
//! edited since start (or no longer valid) still removes the address,
//! monitor never calls an address of ours that sits in an unexpected place
//! "not running", and reload moves the address instead of leaving it.
//! Network namespaces on the host; needs root, fails without it.

use std::time::{Duration, Instant};

use lvs_tests::agent::{ocf, Call};
use lvs_tests::topo::{wire, Host};

/// director d: eth0 192.0.2.1/24 and eth1 198.51.100.1/24 to a peer each.
struct Director {
    d: Host,
    _p: Host,
    _q: Host,
    run_dir: lvs_tests::topo::tempdir::Dir,
}

fn director() -> Director {
    assert!(nix::unistd::geteuid().is_root(), "the vip tests need root (network namespaces)");
    let d = Host::new("d");
    let p = Host::new("p");
    let q = Host::new("q");
    wire(&d, "eth0", Some("192.0.2.1/24"), &p, "eth0", Some("192.0.2.2/24"));
    wire(&d, "eth1", Some("198.51.100.1/24"), &q, "eth0", Some("198.51.100.2/24"));
    Director { d, _p: p, _q: q, run_dir: lvs_tests::topo::tempdir::Dir::new("vip-run") }
}

impl Director {
    fn vip(&self, action: &str, params: &[(&str, &str)]) -> Call {
        self.vip_env(action, params, &[])
    }

    fn vip_env(&self, action: &str, params: &[(&str, &str)], env: &[(&str, &str)]) -> Call {
        let run = self.run_dir.path.to_str().expect("utf-8");
        let mut all = vec![("LVS_RUN_DIR", run), ("OCF_RESKEY_CRM_meta_interval", "10000")];
        all.extend_from_slice(env);
        ocf("lvs-vip", Some(&self.d.ns), action, params, &all)
    }

    /// Every copy of `ip` as (interface, prefix, label).
    fn copies(&self, ip: &str) -> Vec<(String, u64, Option<String>)> {
        let out = self.d.must(&["ip", "-j", "addr", "show"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
        let mut found = Vec::new();
        for link in v.as_array().expect("array") {
            for a in link["addr_info"].as_array().cloned().unwrap_or_default() {
                if a["local"] == ip {
                    found.push((
                        link["ifname"].as_str().unwrap_or("").to_string(),
                        a["prefixlen"].as_u64().unwrap_or(0),
                        a["label"].as_str().map(String::from),
                    ));
                }
            }
        }
        found
    }
}

const STARTED: [(&str, &str); 4] = [("ip", "192.0.2.100"), ("cidr_netmask", "24"), ("nic", "eth0"), ("arp_count", "0")];

fn with(changed: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
    let mut p: Vec<_> = STARTED.iter().copied().filter(|(k, _)| *k != changed.0).collect();
    p.push(changed);
    p
}

#[test]
fn stop_with_edited_or_invalid_parameters_removes_the_address() {
    lvs_tests::needs_root!();
    for changed in [
        ("cidr_netmask", "33"),
        ("cidr_netmask", "25"),
        ("nic", "eth1"),
        ("nic", "eth9"),
        ("iflabel", "averyveryverylonglabel"),
        ("preferred_lft", "soon"),
        ("mode", "realserver"),
        ("broadcast", "not-an-address"),
    ] {
        let t = director();
        let c = t.vip("start", &STARTED);
        assert_eq!(c.code, 0, "{c:?}");
        assert_eq!(t.copies("192.0.2.100").len(), 1);
        let c = t.vip("stop", &with(changed));
        assert_eq!(c.code, 0, "stop with {changed:?}: {c:?}");
        assert_eq!(t.copies("192.0.2.100"), [], "stop with {changed:?} left the VIP up: {c:?}");
    }
}

#[test]
fn stop_goes_by_the_record_when_ip_no_longer_parses_and_by_ip_without_a_record() {
    lvs_tests::needs_root!();
    let t = director();
    assert_eq!(t.vip("start", &STARTED).code, 0);
    let c = t.vip("stop", &with(("ip", "not-an-ip")));
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(t.copies("192.0.2.100"), [], "the record names the address: {c:?}");

    // After a reboot /run is empty: ip alone finds it, wherever it is.
    assert_eq!(t.vip("start", &STARTED).code, 0);
    std::fs::remove_dir_all(&t.run_dir.path).expect("forget the record");
    let c = t.vip("stop", &with(("nic", "eth1")));
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(t.copies("192.0.2.100"), [], "{c:?}");
}

#[test]
fn monitor_says_error_not_stopped_for_an_address_in_the_wrong_place() {
    lvs_tests::needs_root!();
    let t = director();
    assert_eq!(t.vip("start", &STARTED).code, 0);
    for changed in [("nic", "eth1"), ("mode", "realserver")] {
        let c = t.vip("monitor", &with(changed));
        assert_eq!(c.code, 1, "monitor with {changed:?} while the VIP is on eth0: {c:?}");
        assert!(c.stderr.contains("192.0.2.100 is on eth0"), "{c:?}");
    }
    // Someone moved it behind our back: the record knows where it belongs.
    t.d.must(&["ip", "addr", "del", "192.0.2.100/24", "dev", "eth0"]);
    t.d.must(&["ip", "addr", "add", "192.0.2.100/24", "dev", "eth1"]);
    let c = t.vip("monitor", &[("ip", "192.0.2.100"), ("arp_count", "0")]);
    assert_eq!(c.code, 1, "recorded on eth0, found on eth1: {c:?}");
    assert_eq!(t.vip("stop", &STARTED).code, 0);
    assert_eq!(t.copies("192.0.2.100"), []);
}

#[test]
fn reload_moves_the_address_and_never_leaves_a_copy() {
    lvs_tests::needs_root!();
    let t = director();
    assert_eq!(t.vip("start", &STARTED).code, 0);
    let moved = [("ip", "192.0.2.100"), ("cidr_netmask", "24"), ("nic", "eth1"), ("arp_count", "0")];
    let c = t.vip("reload", &moved);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(t.copies("192.0.2.100"), [("eth1".to_string(), 24, Some("eth1".to_string()))], "{c:?}");
    assert_eq!(t.vip("monitor", &moved).code, 0);

    let relabelled = [("ip", "192.0.2.100"), ("cidr_netmask", "25"), ("nic", "eth1:web"), ("arp_count", "0")];
    let c = t.vip("reload", &relabelled);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(t.copies("192.0.2.100"), [("eth1".to_string(), 25, Some("eth1:web".to_string()))]);

    let realserver = [("ip", "192.0.2.100"), ("mode", "realserver")];
    let c = t.vip("reload", &realserver);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(t.copies("192.0.2.100"), [("lo".to_string(), 32, Some("lo".to_string()))]);

    // Parameters that change nothing: the address stays as it is.
    let c = t.vip("reload", &realserver);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(t.copies("192.0.2.100").len(), 1);
    // The stop Pacemaker sends carries the last reload's parameters; any
    // others would do too.
    assert_eq!(t.vip("stop", &STARTED).code, 0);
    assert_eq!(t.copies("192.0.2.100"), []);
}

#[test]
fn reload_of_a_stopped_resource_starts_nothing() {
    lvs_tests::needs_root!();
    let t = director();
    assert_eq!(t.vip("reload", &STARTED).code, 0);
    assert_eq!(t.copies("192.0.2.100"), []);
}

#[test]
fn announcements_end_within_the_action_timeout() {
    lvs_tests::needs_root!();
    let t = director();
    let params = [("ip", "192.0.2.101"), ("nic", "eth0"), ("arp_count", "1000"), ("arp_interval", "60000")];
    let log = t.run_dir.path.join("ha.log");
    let env = [("OCF_RESKEY_CRM_meta_timeout", "3000"), ("HA_LOGFILE", log.to_str().expect("utf-8"))];
    let began = Instant::now();
    let c = t.vip_env("start", &params, &env);
    let took = began.elapsed();
    assert_eq!(c.code, 0, "{c:?}");
    assert!(took < Duration::from_secs(3), "start took {took:?} with a 3 s timeout");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("sending 1 of 1000 announcements"), "says it sent fewer: {text}");
    assert_eq!(t.copies("192.0.2.101").len(), 1);
}
