//! A real single-node corosync + Pacemaker drives `ocf:lvs:vip`: start,
//! recurring monitor (and recovery when the address is removed behind its
//! back), stop. Needs root; the VIP lives on a veth in the host namespace.

use std::time::Duration;

use lvs_tests::cluster::{install_ocf_agent, must, wait_for, Cluster};
use lvs_tests::topo::{ip, Host};

const VIP: &str = "198.51.100.100";

/// A veth whose host end `lvspm0` carries the VIP; removed on drop.
struct Veth {
    _peer: Host,
}

impl Veth {
    fn new() -> Veth {
        let peer = Host::new("pm");
        let _ = std::process::Command::new("ip").args(["link", "del", "lvspm0"]).output();
        ip(&["link", "add", "lvspm0", "type", "veth", "peer", "name", "eth0", "netns", &peer.ns]);
        ip(&["addr", "add", "198.51.100.1/24", "dev", "lvspm0"]);
        ip(&["link", "set", "lvspm0", "up"]);
        peer.must(&["ip", "link", "set", "eth0", "up"]);
        Veth { _peer: peer }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", "lvspm0"]).output();
    }
}

fn has_vip() -> bool {
    must("ip", &["-4", "addr", "show", "dev", "lvspm0"]).contains(&format!("{VIP}/24"))
}

#[test]
fn pacemaker_starts_monitors_recovers_and_stops_the_vip() {
    lvs_tests::needs_root!();
    assert!(nix::unistd::geteuid().is_root(), "the pacemaker lane needs root");
    install_ocf_agent("vip");
    let _veth = Veth::new();
    let cluster = Cluster::start();

    // crm_resource validates through the agent without touching the cluster.
    let v = must(
        "crm_resource",
        &["--validate", "--class", "ocf", "--provider", "lvs", "--agent", "vip", "--option", &format!("ip={VIP}")],
    );
    println!("{v}");

    must(
        "crm",
        &[
            "configure",
            "primitive",
            "vip",
            "ocf:lvs:vip",
            "params",
            &format!("ip={VIP}"),
            "cidr_netmask=24",
            "nic=lvspm0",
            "op",
            "monitor",
            "interval=2s",
            "timeout=20s",
        ],
    );
    cluster.wait_role("vip", "Started", Duration::from_secs(60));
    wait_for("the VIP on lvspm0", Duration::from_secs(10), || has_vip().then_some(()));
    let status = cluster.status();
    println!("{status}");
    assert!(status.contains("ocf:lvs:vip") && status.contains("Started"), "{status}");

    // Remove the address by hand: the recurring monitor notices (7) and
    // Pacemaker recovers the resource, counting one failure.
    must("ip", &["addr", "del", &format!("{VIP}/24"), "dev", "lvspm0"]);
    wait_for("a recorded monitor failure", Duration::from_secs(30), || {
        let fc = must("crm_failcount", &["--query", "-r", "vip"]);
        fc.contains("value=1").then_some(())
    });
    wait_for("the VIP back after recovery", Duration::from_secs(30), || has_vip().then_some(()));
    cluster.wait_role("vip", "Started", Duration::from_secs(30));
    let status = cluster.status();
    assert!(status.contains("vip_monitor_2000") || status.contains("not running"), "failed action shown: {status}");

    // Cleanup forgets the history; the re-probe finds the VIP running.
    must("crm_resource", &["--cleanup", "-r", "vip"]);
    wait_for("fail count cleared", Duration::from_secs(30), || {
        must("crm_failcount", &["--query", "-r", "vip"]).contains("value=0").then_some(())
    });
    cluster.wait_role("vip", "Started", Duration::from_secs(30));
    must("crm", &["resource", "stop", "vip"]);
    wait_for("the VIP removed by Pacemaker's stop", Duration::from_secs(30), || (!has_vip()).then_some(()));
    cluster.wait_role("vip", "Stopped", Duration::from_secs(30));
    must("crm", &["configure", "delete", "vip"]);
}

/// Two services sharing one real list is a legitimate configuration: pcs
/// and crm must load it (a `unique` real list made pcs refuse the second
/// resource, and made Pacemaker restart rather than reload on its change).
#[test]
fn two_services_may_share_one_real_list() {
    lvs_tests::needs_root!();
    assert!(nix::unistd::geteuid().is_root(), "the pacemaker lane needs root");
    install_ocf_agent("realservers");
    let dir = std::env::temp_dir().join(format!("lvs-shared-reals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cib = dir.join("cib.xml");
    let reals = "real=192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2";
    std::fs::write(&cib, must("cibadmin", &["--empty"])).expect("empty cib");
    let f = cib.to_str().expect("path");
    for (name, service) in [("reals-http", "tcp:10.0.0.100:80"), ("reals-alt", "tcp:10.0.0.100:8080")] {
        let svc = format!("service={service}");
        let out = std::process::Command::new("pcs")
            .args(["-f", f, "resource", "create", name, "ocf:lvs:realservers", &svc, reals])
            .output()
            .expect("pcs");
        assert!(out.status.success(), "pcs refused {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = std::fs::read_to_string(&cib).expect("cib");
    assert_eq!(text.matches(r#"type="realservers""#).count(), 2, "both resources in the CIB:\n{text}");
    let meta = must("crm_resource", &["--show-metadata", "ocf:lvs:realservers"]);
    assert!(meta.contains(r#"<parameter name="real" unique="0""#), "real is not unique:\n{meta}");
    let _ = std::fs::remove_dir_all(&dir);
}
