//! The README's configuration under a real single-node corosync + Pacemaker
//! inside the lab VM (real IPVS): `group lvs vip web reals sorry`. The
//! director is the VM's own namespace (where Pacemaker runs agents); the
//! client and the real servers are namespaces.
#![cfg(feature = "lab")]

use std::time::Duration;

use lvs_tests::cluster::{install_ocf_agent, must, wait_for, Cluster};
use lvs_tests::topo::{daemon_pid, ip, web_root, weights_in, Host, Switch};

const CONFIG: &str = r#"primitive vip ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=24 nic=lvsd0 arp_count=1 op monitor interval=5s
primitive web ocf:lvs:service params service=tcp:10.0.0.100:80 scheduler=wrr op monitor interval=5s
primitive reals ocf:lvs:realservers params service=tcp:10.0.0.100:80 real="192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2" check=http request=/test.html receive=test check_interval=1 check_timeout=1 quiescent=true node_attribute=lvs-healthy op monitor interval=2s timeout=20s
primitive sorry ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=127.0.0.1:80 op monitor interval=5s
group lvs vip web reals sorry
"#;

/// The director is this namespace: a wire to the client, a switch to the
/// reals. Everything returned must live as long as the test.
struct Topology {
    client: Host,
    _reals: Vec<Host>,
    _roots: Vec<lvs_tests::topo::tempdir::Dir>,
    _switch: Switch,
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", "lvsd0"]).status();
        let _ = std::process::Command::new("ip").args(["link", "del", "lvsd1"]).status();
    }
}

fn topology() -> Topology {
    for a in ["vip", "service", "realservers", "sorry"] {
        install_ocf_agent(a);
    }
    let switch = Switch::new();
    let client = Host::new("client");
    ip(&["link", "add", "lvsd0", "type", "veth", "peer", "name", "eth0", "netns", &client.ns]);
    ip(&["addr", "add", "10.0.0.1/24", "dev", "lvsd0"]);
    ip(&["link", "set", "lvsd0", "up"]);
    client.must(&["ip", "addr", "add", "10.0.0.2/24", "dev", "eth0"]);
    client.must(&["ip", "link", "set", "eth0", "up"]);
    let (a, b) = ("lvsd1", "lvsdp");
    ip(&["link", "add", a, "type", "veth", "peer", "name", b, "netns", &switch.host.ns]);
    ip(&["addr", "add", "192.168.7.1/24", "dev", a]);
    ip(&["link", "set", a, "up"]);
    switch.host.must(&["ip", "link", "set", b, "master", "br0"]);
    switch.host.must(&["ip", "link", "set", b, "up"]);
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward");
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (i, rip) in ["192.168.7.10", "192.168.7.20"].iter().enumerate() {
        let mut r = Host::new(&format!("r{}", i + 1));
        switch.plug(&r, "eth0", Some(&format!("{rip}/24")));
        r.must(&["ip", "route", "add", "default", "via", "192.168.7.1"]);
        let root = web_root(&format!("r{}", i + 1));
        r.http_server(&root.path);
        roots.push(root);
        reals.push(r);
    }
    Topology { client, _reals: reals, _roots: roots, _switch: switch }
}

/// All four Started, both reals weighted, traffic split 1:2.
fn group_serves(cluster: &Cluster, client: &Host) {
    for r in ["vip", "web", "reals", "sorry"] {
        cluster.wait_role(r, "Started", Duration::from_secs(90));
    }
    println!("{}", cluster.status());
    wait_for("both reals weighted", Duration::from_secs(10), || {
        let w = weights_in(&must("ipvsadm", &["-Ln"]));
        (w.get("192.168.7.10:80") == Some(&1) && w.get("192.168.7.20:80") == Some(&2)).then_some(())
    });
    let c = client.requests("10.0.0.100:80", 30);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "{c:?}");
}

/// Stops the group and checks nothing is left behind.
fn group_stops(cluster: &Cluster) {
    must("crm_resource", &["-r", "lvs", "--set-parameter", "target-role", "--meta", "--parameter-value", "Stopped"]);
    for r in ["sorry", "reals", "web", "vip"] {
        cluster.wait_role(r, "Stopped", Duration::from_secs(60));
    }
    wait_for("an empty table", Duration::from_secs(10), || {
        (!must("ipvsadm", &["-Ln"]).contains("10.0.0.100")).then_some(())
    });
    assert!(!must("ip", &["addr", "show", "lvsd0"]).contains("10.0.0.100"), "VIP gone");
    assert!(daemon_pid("realservers-reals").is_none(), "no daemon left");
}

#[test]
fn pacemaker_runs_the_readme_group() {
    let t = topology();
    let client = &t.client;
    let cluster = Cluster::start();
    let cfg = std::env::temp_dir().join("lvs-pcmk.crm");
    std::fs::write(&cfg, CONFIG).expect("config");
    must("crm", &["configure", "load", "update", cfg.to_str().expect("path")]);
    group_serves(&cluster, client);

    // node_attribute: the healthy count follows the reals, for location rules.
    let healthy = |n: usize| {
        let want = format!("value=\"{n}\"");
        wait_for(&format!("lvs-healthy={n}"), Duration::from_secs(20), || {
            must("attrd_updater", &["-Q", "-n", "lvs-healthy"]).contains(&want).then_some(())
        })
    };
    healthy(2);
    let probe_page = t._roots[0].path.join("test.html");
    std::fs::remove_file(&probe_page).expect("break r1's check page");
    healthy(1);
    std::fs::write(&probe_page, "test\n").expect("restore r1's check page");
    healthy(2);

    // The health daemon dies: Pacemaker's recurring monitor notices and recovers it.
    let pid = daemon_pid("realservers-reals").expect("daemon pidfile");
    must("kill", &["-9", &pid]);
    wait_for("a recorded monitor failure of reals", Duration::from_secs(30), || {
        must("crm_failcount", &["--query", "-r", "reals"]).contains("value=1").then_some(())
    });
    cluster.wait_role("reals", "Started", Duration::from_secs(30));
    let new_pid = wait_for("a new health daemon", Duration::from_secs(30), || {
        daemon_pid("realservers-reals").filter(|p| *p != pid)
    });
    println!("daemon {pid} killed, Pacemaker started {new_pid}");
    wait_for("reals back in the table", Duration::from_secs(10), || {
        (weights_in(&must("ipvsadm", &["-Ln"])).len() == 2).then_some(())
    });
    must("crm_resource", &["--cleanup", "-r", "reals"]);
    wait_for("fail count cleared", Duration::from_secs(30), || {
        must("crm_failcount", &["--query", "-r", "reals"]).contains("value=0").then_some(())
    });
    cluster.wait_role("reals", "Started", Duration::from_secs(30));

    // A non-unique parameter changes: Pacemaker reloads, the daemon stays,
    // the destinations never leave the table.
    let pid = daemon_pid("realservers-reals").expect("daemon pidfile");
    must("crm_resource", &["-r", "reals", "-p", "check_interval", "-v", "2"]);
    for _ in 0..40 {
        assert_eq!(weights_in(&must("ipvsadm", &["-Ln"])).len(), 2, "destinations stay while the change is applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for("Pacemaker's reload", Duration::from_secs(30), || {
        let log = std::fs::read_to_string("/var/log/pacemaker/pacemaker.log").unwrap_or_default();
        log.contains("reals_reload_0").then_some(())
    });
    cluster.wait_role("reals", "Started", Duration::from_secs(30));
    assert_eq!(daemon_pid("realservers-reals").as_deref(), Some(pid.as_str()), "reload kept the daemon");
    let params: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/run/lvs-agents/realservers-reals.params").expect("params file"),
    )
    .expect("json");
    assert!(params.to_string().contains("\"check_interval\",\"2\""), "daemon has the new value: {params}");

    // Everything stops in reverse order and leaves nothing behind.
    group_stops(&cluster);
}

/// The same group built with pcs on a CIB file (no pcsd needed) and
/// installed with cibadmin; then `crm_resource --restart`.
#[test]
fn pacemaker_runs_the_group_built_with_pcs() {
    let t = topology();
    let cluster = Cluster::start();
    let cib = std::env::temp_dir().join("lvs-pcs-cib.xml");
    std::fs::write(&cib, must("cibadmin", &["--query"])).expect("cib");
    let f = cib.to_str().expect("path");
    for (name, agent, params) in [
        ("vip", "ocf:lvs:vip", vec!["ip=10.0.0.100", "cidr_netmask=24", "nic=lvsd0", "arp_count=1"]),
        ("web", "ocf:lvs:service", vec!["service=tcp:10.0.0.100:80", "scheduler=wrr"]),
        (
            "reals",
            "ocf:lvs:realservers",
            vec![
                "service=tcp:10.0.0.100:80",
                "real=192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2",
                "check=http",
                "request=/test.html",
                "receive=test",
                "check_interval=1",
                "check_timeout=1",
            ],
        ),
        ("sorry", "ocf:lvs:sorry", vec!["service=tcp:10.0.0.100:80", "fallback=127.0.0.1:80"]),
    ] {
        let mut args = vec!["-f", f, "resource", "create", name, agent];
        args.extend(params.iter().copied());
        args.extend(["op", "monitor", "interval=5s", "--group", "lvs"]);
        must("pcs", &args);
    }
    must("cibadmin", &["--replace", "--xml-file", f]);
    group_serves(&cluster, &t.client);

    let pid = daemon_pid("realservers-reals").expect("daemon pidfile");
    must("crm_resource", &["--restart", "-r", "reals", "--timeout", "60s"]);
    cluster.wait_role("reals", "Started", Duration::from_secs(60));
    let new_pid = wait_for("a new daemon after --restart", Duration::from_secs(30), || {
        daemon_pid("realservers-reals").filter(|p| *p != pid)
    });
    println!("crm_resource --restart: daemon {pid} -> {new_pid}");
    wait_for("reals back in the table", Duration::from_secs(10), || {
        (weights_in(&must("ipvsadm", &["-Ln"])).len() == 2).then_some(())
    });
    group_stops(&cluster);
}
