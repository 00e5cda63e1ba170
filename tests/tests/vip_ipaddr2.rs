//! `ocf:lvs:vip` against `ocf:heartbeat:IPaddr2` (resource-agents), side by
//! side: each case builds the same namespace twice, runs the same actions
//! with the same parameters through IPaddr2 in one and lvs-vip in the
//! other, and compares exit codes and the addresses that result. The
//! reference is IPaddr2 as installed, not our reading of it. Where vip
//! deliberately differs (README, "IPaddr2"), the case says so and checks
//! vip's own answer. Needs root (namespaces); fails, never skips, without it.

use std::process::Command;

use lvs_tests::agent::{bin, Call};
use lvs_tests::topo::{wire, Host};

const IPADDR2: &str = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2";

/// director d: eth0 192.168.144.1/24 + 2001:db8:1234::1/64 (to peer p),
/// eth1 192.168.50.1/24 + 2001:db8:50::1/64 (to peer q), and a gateway
/// route 10.0.0.0/8 via 192.168.50.254; then `setup` (argv lists run in d).
fn director(setup: &[&[&str]]) -> (Host, Host, Host) {
    assert!(nix::unistd::geteuid().is_root(), "the IPaddr2 comparison needs root (network namespaces)");
    let d = Host::new("d");
    let p = Host::new("p");
    let q = Host::new("q");
    wire(&d, "eth0", Some("192.168.144.1/24"), &p, "eth0", Some("192.168.144.254/24"));
    wire(&d, "eth1", Some("192.168.50.1/24"), &q, "eth0", Some("192.168.50.254/24"));
    d.must(&["ip", "addr", "add", "2001:db8:1234::1/64", "dev", "eth0", "nodad"]);
    d.must(&["ip", "addr", "add", "2001:db8:50::1/64", "dev", "eth1", "nodad"]);
    d.must(&["ip", "route", "add", "10.0.0.0/8", "via", "192.168.50.254"]);
    for cmd in setup {
        d.must(cmd);
    }
    (d, p, q)
}

/// An address as (interface, prefix, label, broadcast).
type Address = (String, u64, Option<String>, Option<String>);

/// What an agent left: every address equal to `ip`, and which interfaces
/// are up.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    codes: Vec<(String, i32)>,
    addresses: Vec<Address>,
    up: Vec<String>,
}

fn snapshot(d: &Host, ip: &str) -> (Vec<Address>, Vec<String>) {
    let out = d.must(&["ip", "-j", "addr", "show"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j addr");
    let mut addresses = Vec::new();
    let mut up = Vec::new();
    for link in v.as_array().expect("array") {
        let name = link["ifname"].as_str().unwrap_or("").to_string();
        if link["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "UP")) {
            up.push(name.clone());
        }
        for a in link["addr_info"].as_array().cloned().unwrap_or_default() {
            if a["local"] != ip {
                continue;
            }
            // IPv6 addresses carry no label; IPv4 ones default to the name.
            let label = a["label"].as_str().filter(|l| *l != name).map(String::from);
            addresses.push((
                name.clone(),
                a["prefixlen"].as_u64().unwrap_or(0),
                label,
                a["broadcast"].as_str().map(String::from),
            ));
        }
    }
    addresses.sort();
    up.sort();
    (addresses, up)
}

/// One action as Pacemaker calls it: `monitor` is a recurring monitor,
/// `probe` a monitor with interval 0.
fn call(agent: &std::path::Path, d: &Host, action: &str, params: &[(&str, &str)]) -> Call {
    let (word, interval) = match action {
        "probe" => ("monitor", "0"),
        "monitor" => ("monitor", "10000"),
        other => (other, "0"),
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &d.ns])
        .arg(agent)
        .arg(word)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", format!("cmp-{}", d.ns))
        .env("OCF_RESOURCE_TYPE", "IPaddr2")
        .env("OCF_RESKEY_CRM_meta_interval", interval)
        .env("OCF_RESKEY_CRM_meta_timeout", "20000")
        .env("HA_LOGFACILITY", "none")
        .env("LVS_RUN_DIR", format!("/tmp/lvs-cmp-run-{}", d.ns));
    for (k, v) in params {
        cmd.env(format!("OCF_RESKEY_{k}"), v);
    }
    cmd.output().expect("run agent").into()
}

fn run(
    agent: &std::path::Path,
    setup: &[&[&str]],
    after: &[&[&str]],
    actions: &[&str],
    params: &[(&str, &str)],
) -> (Outcome, Vec<Call>) {
    let (d, _p, _q) = director(setup);
    let ip = params.iter().find(|(k, _)| *k == "ip").map(|(_, v)| *v).expect("ip");
    let mut codes = Vec::new();
    let mut calls = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        // `after` runs once, after the first action (a change under a
        // running resource).
        if i == 1 {
            for cmd in after {
                d.must(cmd);
            }
        }
        let c = call(agent, &d, action, params);
        codes.push((action.to_string(), c.code));
        calls.push(c);
    }
    let (addresses, up) = snapshot(&d, ip);
    let _ = std::fs::remove_dir_all(format!("/tmp/lvs-cmp-run-{}", d.ns));
    (Outcome { codes, addresses, up }, calls)
}

/// Runs the case through both agents and requires the same outcome.
fn same(setup: &[&[&str]], after: &[&[&str]], actions: &[&str], params: &[(&str, &str)]) -> Outcome {
    let (theirs, their_calls) = run(std::path::Path::new(IPADDR2), setup, after, actions, params);
    let (ours, our_calls) = run(&bin("lvs-vip"), setup, after, actions, params);
    assert_eq!(
        ours, theirs,
        "lvs-vip differs from IPaddr2 for {params:?} {actions:?}\n--- lvs-vip:\n{our_calls:#?}\n--- IPaddr2:\n{their_calls:#?}"
    );
    ours
}

fn codes(o: &Outcome) -> Vec<i32> {
    o.codes.iter().map(|(_, c)| *c).collect()
}

const NO_BASE4: &[&str] = &["ip", "addr", "del", "192.168.144.1/24", "dev", "eth0"];
const NO_BASE6: &[&str] = &["ip", "addr", "del", "2001:db8:1234::1/64", "dev", "eth0"];

// 1. No route for the VIP is a local, temporary problem: OCF_ERR_GENERIC
// (the cluster fails over), never OCF_ERR_CONFIGURED (fatal everywhere).

#[test]
fn no_matching_subnet_is_a_generic_error() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start", "validate-all"], &[("ip", "192.168.120.1")]);
    assert_eq!(codes(&o), [1, 1]);
}

#[test]
fn base_address_gone_with_netmask_is_a_generic_error() {
    lvs_tests::needs_root!();
    let o = same(&[NO_BASE4], &[], &["start"], &[("ip", "192.168.144.2"), ("cidr_netmask", "24")]);
    assert_eq!(codes(&o), [1]);
    let o = same(
        &[NO_BASE4],
        &[],
        &["start"],
        &[("ip", "192.168.144.2"), ("cidr_netmask", "24"), ("broadcast", "192.168.144.255")],
    );
    assert_eq!(codes(&o), [1]);
}

#[test]
fn ipv6_without_route_is_a_generic_error() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start"], &[("ip", "2001:db8:5678::2")]);
    assert_eq!(codes(&o), [1]);
    let o = same(&[NO_BASE6], &[], &["start"], &[("ip", "2001:db8:1234::2"), ("cidr_netmask", "64")]);
    assert_eq!(codes(&o), [1]);
}

// 2. No silent success on the wrong network.

#[test]
fn nic_without_the_subnet_fails() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start"], &[("ip", "192.168.144.2"), ("nic", "eth1")]);
    assert_eq!(codes(&o), [1]);
    assert!(o.addresses.is_empty());
    let o = same(&[NO_BASE4], &[], &["start"], &[("ip", "192.168.144.2"), ("nic", "eth0")]);
    assert_eq!(codes(&o), [1]);
    let o = same(&[], &[], &["start"], &[("ip", "2001:db8:1234::2"), ("nic", "eth1")]);
    assert_eq!(codes(&o), [1]);
    let o = same(&[NO_BASE6], &[], &["start"], &[("ip", "2001:db8:1234::2"), ("nic", "eth0")]);
    assert_eq!(codes(&o), [1]);
}

#[test]
fn a_gateway_route_is_not_a_connected_subnet() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start"], &[("ip", "10.1.2.3")]);
    assert_eq!(codes(&o), [1]);
    assert!(o.addresses.is_empty());
}

#[test]
fn explicit_host_prefix_nic_and_netmask_still_work_without_a_route() {
    lvs_tests::needs_root!();
    // Both nic and cidr_netmask given: no route is needed.
    let o = same(
        &[NO_BASE4],
        &[],
        &["start", "monitor", "stop", "monitor"],
        &[("ip", "192.168.144.2"), ("nic", "eth0"), ("cidr_netmask", "24")],
    );
    assert_eq!(codes(&o), [0, 0, 0, 7]);
    let o = same(&[], &[], &["start"], &[("ip", "203.0.113.7"), ("nic", "eth1"), ("cidr_netmask", "32")]);
    assert_eq!(codes(&o), [0]);
    assert_eq!(o.addresses.len(), 1);
}

// 3. nic=eth0:label.

#[test]
fn nic_with_label_is_split() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start", "monitor"], &[("ip", "192.168.144.2"), ("nic", "eth0:web")]);
    assert_eq!(codes(&o), [0, 0]);
    // The base address has no broadcast, so neither has the VIP.
    assert_eq!(o.addresses, [("eth0".into(), 24, Some("eth0:web".into()), None)]);
}

// 4. With nic, only routes on that nic count.

#[test]
fn nic_picks_its_own_route_over_a_tie_elsewhere() {
    lvs_tests::needs_root!();
    let both = ["ip", "addr", "add", "192.168.144.77/24", "dev", "eth1"];
    let o = same(&[&both], &[], &["start"], &[("ip", "192.168.144.5"), ("nic", "eth1")]);
    assert_eq!(codes(&o), [0]);
    assert_eq!(o.addresses[0].0, "eth1");
    let o = same(&[], &[], &["start"], &[("ip", "fe80::1234"), ("nic", "eth1")]);
    assert_eq!(codes(&o), [0]);
    assert_eq!((o.addresses[0].0.as_str(), o.addresses[0].1), ("eth1", 64));
}

// 5. A link-local IPv6 VIP needs nic.

#[test]
fn link_local_ipv6_needs_nic() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["validate-all", "start"], &[("ip", "fe80::1234")]);
    assert_eq!(codes(&o), [6, 6]);
}

// 6. A netmask wider than the connected subnet.

#[test]
fn netmask_wider_than_the_subnet_fails() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start"], &[("ip", "192.168.144.2"), ("cidr_netmask", "16")]);
    assert_eq!(codes(&o), [1]);
    let o = same(&[], &[], &["start"], &[("ip", "2001:db8:1234::2"), ("cidr_netmask", "48")]);
    assert_eq!(codes(&o), [1]);
    // Narrower is fine, and keeps the subnet's broadcast as IPaddr2 does.
    let o = same(&[], &[], &["start"], &[("ip", "192.168.144.2"), ("cidr_netmask", "28")]);
    assert_eq!(codes(&o), [0]);
}

// 7. Loopback addresses come from the local table.

#[test]
fn loopback_address_without_nic() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start", "monitor", "stop"], &[("ip", "127.0.0.3")]);
    assert_eq!(codes(&o), [0, 0, 0]);
}

// 8. Monitor when the nic has vanished.

#[test]
fn monitor_with_a_vanished_nic_is_an_error_probe_says_stopped() {
    lvs_tests::needs_root!();
    let params = [("ip", "192.168.50.9"), ("nic", "eth1")];
    let gone: &[&str] = &["ip", "link", "del", "eth1"];
    let o = same(&[], &[gone], &["start", "monitor", "probe"], &params);
    assert_eq!(codes(&o), [0, 1, 7]);
}

// Further divergences found reading findif.sh and IPaddr2.

#[test]
fn broadcast_plus_minus_and_given() {
    lvs_tests::needs_root!();
    for b in ["+", "-", "192.168.144.127"] {
        same(&[], &[], &["start"], &[("ip", "192.168.144.2"), ("cidr_netmask", "24"), ("broadcast", b)]);
    }
}

#[test]
fn base_address_without_broadcast() {
    lvs_tests::needs_root!();
    let setup: &[&[&str]] = &[NO_BASE4, &["ip", "addr", "add", "192.168.144.1/24", "dev", "eth0"]];
    same(setup, &[], &["start"], &[("ip", "192.168.144.2")]);
}

#[test]
fn start_brings_the_nic_up() {
    lvs_tests::needs_root!();
    let down: &[&str] = &["ip", "link", "set", "eth1", "down"];
    let o = same(&[down], &[], &["start"], &[("ip", "192.168.50.9"), ("nic", "eth1"), ("cidr_netmask", "24")]);
    assert!(o.up.contains(&"eth1".to_string()), "{o:?}");
}

#[test]
fn nonexistent_nic_is_a_configuration_error() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["validate-all", "start"], &[("ip", "192.168.144.2"), ("nic", "eth9")]);
    assert_eq!(codes(&o), [6, 6]);
}

#[test]
fn ipv4_ignores_preferred_lft() {
    lvs_tests::needs_root!();
    same(&[], &[], &["start"], &[("ip", "192.168.144.2"), ("preferred_lft", "0")]);
}

#[test]
fn defaults_follow_the_route() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start", "probe", "monitor", "stop", "probe"], &[("ip", "192.168.144.2")]);
    assert_eq!(codes(&o), [0, 0, 0, 0, 7]);
    let o = same(&[], &[], &["start", "monitor", "stop"], &[("ip", "2001:db8:1234::2")]);
    assert_eq!(codes(&o), [0, 0, 0]);
}

#[test]
fn ipv6_behind_a_gateway_fails_to_start_and_monitors_stopped() {
    lvs_tests::needs_root!();
    // findif reads every IPv6 route, gateway ones too, then IPaddr2 fails
    // to add the VIP "on" the gateway; a recurring monitor says 7.
    let via: &[&str] = &["ip", "-6", "route", "add", "2001:db8:99::/48", "via", "2001:db8:50::254"];
    let o = same(&[via], &[], &["start", "monitor", "stop"], &[("ip", "2001:db8:99::5")]);
    assert_eq!(codes(&o), [1, 7, 0]);
}

#[test]
fn explicit_netmask_and_nic_with_a_matching_route() {
    lvs_tests::needs_root!();
    let o = same(&[], &[], &["start"], &[("ip", "192.168.144.2"), ("cidr_netmask", "28"), ("nic", "eth0")]);
    assert_eq!(o.addresses, [("eth0".into(), 28, None, None)]);
    let o = same(&[], &[], &["start"], &[("ip", "2001:db8:1234::2"), ("cidr_netmask", "96"), ("nic", "eth0")]);
    assert_eq!(o.addresses, [("eth0".into(), 96, None, None)]);
}

#[test]
fn base_address_with_broadcast_is_inherited() {
    lvs_tests::needs_root!();
    let setup: &[&[&str]] =
        &[NO_BASE4, &["ip", "addr", "add", "192.168.144.1/24", "brd", "192.168.144.255", "dev", "eth0"]];
    let o = same(setup, &[], &["start"], &[("ip", "192.168.144.2"), ("cidr_netmask", "26")]);
    assert_eq!(o.addresses, [("eth0".into(), 26, None, Some("192.168.144.255".into()))]);
}

/// Deliberately different: IPaddr2 adds a second copy of an address that
/// is up on another interface; vip refuses (README, "Deliberately different").
#[test]
fn an_address_up_on_another_interface_is_refused_not_doubled() {
    lvs_tests::needs_root!();
    let setup: &[&[&str]] = &[&["ip", "addr", "add", "192.168.144.2/24", "dev", "eth1"]];
    let params = [("ip", "192.168.144.2"), ("nic", "eth0")];
    let (theirs, _) = run(std::path::Path::new(IPADDR2), setup, &[], &["start"], &params);
    assert_eq!(theirs.addresses.len(), 2, "IPaddr2 doubles it: {theirs:?}");
    let (ours, calls) = run(&bin("lvs-vip"), setup, &[], &["start"], &params);
    assert_eq!(codes(&ours), [1], "{calls:?}");
    assert_eq!(ours.addresses, [("eth1".into(), 24, None, None)], "{calls:?}");
}

/// Deliberately different: `nic=lo` without `cidr_netmask` asks for a host
/// address (/32) on lo; IPaddr2's findif has no rule for lo, finds no
/// route there and fails.
#[test]
fn nic_lo_without_netmask_holds_a_host_address() {
    lvs_tests::needs_root!();
    let params = [("ip", "203.0.113.9"), ("nic", "lo")];
    let (theirs, their_calls) = run(std::path::Path::new(IPADDR2), &[], &[], &["start"], &params);
    assert_eq!(codes(&theirs), [1], "IPaddr2 finds no route on lo: {their_calls:?}");
    let (ours, calls) = run(&bin("lvs-vip"), &[], &[], &["start"], &params);
    assert_eq!(codes(&ours), [0], "{calls:?}");
    assert_eq!(ours.addresses.iter().map(|a| (a.0.as_str(), a.1)).collect::<Vec<_>>(), [("lo", 32)], "{calls:?}");
    let (ours, calls) = run(&bin("lvs-vip"), &[], &[], &["start", "monitor", "stop", "monitor"], &params);
    assert_eq!(codes(&ours), [0, 0, 0, 7], "{calls:?}");
    assert!(ours.addresses.is_empty(), "{calls:?}");
}
