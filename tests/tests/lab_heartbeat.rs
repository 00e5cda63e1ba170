//! heartbeat v1 (haresources, crm off) brings the director up in order and
//! down in reverse, calling our binaries as /etc/ha.d/resource.d/lvs-*
//! with positional arguments. In the lab VM (real IPVS); the director is
//! the VM's own namespace.
#![cfg(feature = "lab")]

use std::process::Command;
use std::time::Duration;

use lvs_tests::cluster::{configure_heartbeat, must, wait_for, LogMark};
use lvs_tests::topo::{ip, web_root, Host, Switch};

const HARESOURCES: &str = "lab lvs-vip::10.0.0.100/24/lvsh0 lvs-service::tcp:10.0.0.100:80::wrr \
    lvs-realservers::tcp:10.0.0.100:80::192.168.8.10:80/masq/1,192.168.8.20:80/masq/2::http \
    lvs-sorry::tcp:10.0.0.100:80::127.0.0.1:80\n";

fn heartbeat_running() -> bool {
    Command::new("pgrep").args(["-f", "heartbeat: master"]).output().map(|o| o.status.success()).unwrap_or(false)
}

const HA_LOG: &str = "/var/log/ha-log";

/// Line numbers in heartbeat's log, from `mark` on (earlier runs wrote the
/// same file), where ResourceManager ran each of `resources` with
/// `action`; panics if one is missing.
fn ran(mark: &LogMark, resources: &[&str], action: &str) -> Vec<usize> {
    let log = mark.since();
    resources
        .iter()
        .map(|r| {
            log.lines()
                .position(|l| {
                    l.contains("Running ")
                        && l.contains(&format!("resource.d/{r} "))
                        && l.ends_with(&format!(" {action}"))
                })
                .unwrap_or_else(|| panic!("no '{r} ... {action}' in the heartbeat log:\n{log}"))
        })
        .collect()
}

#[test]
fn heartbeat_v1_takes_and_releases_the_director() {
    let hb = "/usr/libexec/heartbeat/heartbeat";
    assert!(std::path::Path::new(hb).exists(), "heartbeat is not installed (apt-get install heartbeat)");
    let node = must("uname", &["-n"]).trim().to_string();
    assert_eq!(node, "lab", "the lab VM's node name");

    // Topology: director (this namespace) — client; director — switch — reals.
    let switch = Switch::new();
    let client = Host::new("client");
    ip(&["link", "add", "lvsh0", "type", "veth", "peer", "name", "eth0", "netns", &client.ns]);
    ip(&["addr", "add", "10.0.0.1/24", "dev", "lvsh0"]);
    ip(&["link", "set", "lvsh0", "up"]);
    client.must(&["ip", "addr", "add", "10.0.0.2/24", "dev", "eth0"]);
    client.must(&["ip", "link", "set", "eth0", "up"]);
    ip(&["link", "add", "lvsh1", "type", "veth", "peer", "name", "hbp", "netns", &switch.host.ns]);
    ip(&["addr", "add", "192.168.8.1/24", "dev", "lvsh1"]);
    ip(&["link", "set", "lvsh1", "up"]);
    switch.host.must(&["ip", "link", "set", "hbp", "master", "br0"]);
    switch.host.must(&["ip", "link", "set", "hbp", "up"]);
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (i, rip) in ["192.168.8.10", "192.168.8.20"].iter().enumerate() {
        let mut r = Host::new(&format!("r{}", i + 1));
        switch.plug(&r, "eth0", Some(&format!("{rip}/24")));
        r.must(&["ip", "route", "add", "default", "via", "192.168.8.1"]);
        let root = web_root(&format!("r{}", i + 1));
        r.http_server(&root.path);
        roots.push(root);
        reals.push(r);
    }

    // heartbeat's configuration (lab-facts: one node, crm off, legacy failback).
    let ha_cf = format!(
        "logfile {HA_LOG}\nkeepalive 1\ndeadtime 5\ninitdead 5\nudpport 694\nucast lo 127.0.0.1\n\
         node {node}\ncrm off\nauto_failback legacy\n"
    );
    configure_heartbeat(&ha_cf, HARESOURCES);
    let started = LogMark::now(HA_LOG);
    must(hb, &[]);
    wait_for("heartbeat to take the resources", Duration::from_secs(90), || {
        let sorry = Command::new("/etc/ha.d/resource.d/lvs-sorry")
            .args(["tcp:10.0.0.100:80", "127.0.0.1:80", "status"])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&sorry.stdout).trim() == "running").then_some(())
    });
    let table = must("ipvsadm", &["-Ln"]);
    println!("{table}");
    assert!(table.contains("TCP  10.0.0.100:80 wrr"), "{table}");
    wait_for("both reals in", Duration::from_secs(10), || {
        let t = must("ipvsadm", &["-Ln"]);
        (t.contains("192.168.8.10:80              Masq    1") && t.contains("192.168.8.20:80              Masq    2"))
            .then_some(())
    });
    assert!(must("ip", &["addr", "show", "lvsh0"]).contains("10.0.0.100/24"), "VIP up");
    let vip =
        Command::new("/etc/ha.d/resource.d/lvs-vip").args(["10.0.0.100/24/lvsh0", "status"]).output().expect("status");
    assert_eq!(String::from_utf8_lossy(&vip.stdout).trim(), "running");
    let order = ran(&started, &["lvs-vip", "lvs-service", "lvs-realservers", "lvs-sorry"], "start");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "started in haresources order: {order:?}");

    // heartbeat -k releases everything in reverse.
    let stopping = LogMark::now(HA_LOG);
    must(hb, &["-k"]);
    wait_for("heartbeat to stop", Duration::from_secs(60), || (!heartbeat_running()).then_some(()));
    let table = must("ipvsadm", &["-Ln"]);
    assert!(!table.contains("10.0.0.100"), "service gone: {table}");
    assert!(!must("ip", &["addr", "show", "lvsh0"]).contains("10.0.0.100"), "VIP gone");
    // heartbeat names instances by their arguments (%XX-encoded in file
    // names): none of ours is left.
    let left: Vec<String> = std::fs::read_dir("/run/lvs-agents")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|f| f.starts_with("realservers-tcp%3A10.0.0.100%3A80") || f.starts_with("sorry-tcp%3A10.0.0.100%3A80")),
        "daemon files left: {left:?}"
    );
    let stops = ran(&stopping, &["lvs-sorry", "lvs-realservers", "lvs-service", "lvs-vip"], "stop");
    assert!(stops.windows(2).all(|w| w[0] < w[1]), "stopped in reverse order: {stops:?}");
    let _ = Command::new("ip").args(["link", "del", "lvsh0"]).status();
    let _ = Command::new("ip").args(["link", "del", "lvsh1"]).status();
}
