//! Faults under Pacemaker (lab VM, real IPVS): the README group running,
//! then an operator edits parameters with `crm_resource --set-parameter`.
//! Whatever Pacemaker does with the edit (reload, restart, or a failed
//! action and recovery), exactly one copy of each kernel object exists
//! afterwards and the old one is gone, sampled all along the way: vip's ip,
//! nic, cidr_netmask, iflabel and mode, the service's scheduler and
//! service, the reals' service, sorry's fallback and forward (family only
//! matters for fwmark services: lab_change covers it). A health daemon is
//! killed in its first round. Then the wall clock steps forward and back:
//! nothing restarts, no real leaves.
#![cfg(feature = "lab")]

use std::time::{Duration, Instant};

use lvs_tests::cluster::{failcount, must, step_clock, wait_for, Cluster};
use lvs_tests::group::{topology, CONFIG};
use lvs_tests::topo::Host;
use lvs_tests::topo::{daemon_pid, daemon_state, weights_in};

/// Every copy of the VIP as (interface, prefix, label).
fn vip_copies() -> Vec<(String, u64, String)> {
    copies_of("10.0.0.100")
}

/// Every copy of `addr` on this node as (interface, prefix, label).
fn copies_of(addr: &str) -> Vec<(String, u64, String)> {
    let v: serde_json::Value = serde_json::from_str(&must("ip", &["-j", "addr", "show"])).expect("ip -j");
    let mut found = Vec::new();
    for link in v.as_array().expect("array") {
        for a in link["addr_info"].as_array().cloned().unwrap_or_default() {
            if a["local"] == addr {
                found.push((
                    link["ifname"].as_str().unwrap_or("").to_string(),
                    a["prefixlen"].as_u64().unwrap_or(0),
                    a["label"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    found
}

/// IPVS service lines for the VIP.
fn vip_services() -> usize {
    must("ipvsadm", &["-Ln"]).lines().filter(|l| l.starts_with("TCP  10.0.0.100:")).count()
}

/// Edits `param` of `rsc` and waits (up to `limit`) for `done`, checking
/// at every sample that the VIP is never up twice nor the service doubled.
fn edit(rsc: &str, param: &str, value: Option<&str>, limit: Duration, done: impl Fn() -> bool) {
    match value {
        Some(v) => must("crm_resource", &["-r", rsc, "-p", param, "-v", v]),
        None => must("crm_resource", &["-r", rsc, "-d", param]),
    };
    let began = Instant::now();
    loop {
        let copies = vip_copies();
        assert!(copies.len() <= 1, "{rsc} {param}={value:?}: the VIP is up twice: {copies:?}");
        assert!(vip_services() <= 1, "{rsc} {param}={value:?}: two services:\n{}", must("ipvsadm", &["-Ln"]));
        if done() {
            return;
        }
        assert!(
            began.elapsed() < limit,
            "{rsc} {param}={value:?}: not done in {limit:?}; VIP {copies:?}\n{}",
            must("crm_mon", &["-1", "-r"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The group is up and clients get answers (the exact split is
/// lab_pacemaker's business; under load a check may flap a real).
fn serving(cluster: &Cluster, client: &Host) {
    for r in ["vip", "web", "reals", "sorry"] {
        cluster.wait_role(r, "Started", Duration::from_secs(120));
    }
    wait_for("both reals weighted", Duration::from_secs(30), || {
        let w = weights_in(&must("ipvsadm", &["-Ln"]));
        (w.get("192.168.7.10:80") == Some(&1) && w.get("192.168.7.20:80") == Some(&2)).then_some(())
    });
    let c = client.requests("10.0.0.100:80", 10);
    assert_eq!(c.get("failed"), None, "{c:?}");
}

fn vip_is(cluster: &Cluster, want: (&str, u64, &str)) -> bool {
    cluster.role("vip").as_deref() == Some("Started")
        && vip_copies() == [(want.0.to_string(), want.1, want.2.to_string())]
}

#[test]
fn parameter_edits_under_pacemaker_leave_exactly_one_copy() {
    let t = topology();
    let cluster = Cluster::start();
    let cfg = std::env::temp_dir().join("lvs-faults.crm");
    std::fs::write(&cfg, CONFIG).expect("config");
    must("crm", &["configure", "load", "update", cfg.to_str().expect("path")]);
    serving(&cluster, &t.client);
    assert_eq!(vip_copies(), [("lvsd0".to_string(), 24, "lvsd0".to_string())]);
    let limit = Duration::from_secs(60);

    // Each identity parameter of the VIP: the address follows the edit.
    // (mode=realserver would set arp_ignore for the whole VM; the host
    // test vip_change covers it.)
    edit("vip", "nic", Some("lvsd1"), limit, || vip_is(&cluster, ("lvsd1", 24, "lvsd1")));
    edit("vip", "cidr_netmask", Some("25"), limit, || vip_is(&cluster, ("lvsd1", 25, "lvsd1")));
    edit("vip", "iflabel", Some("web"), limit, || vip_is(&cluster, ("lvsd1", 25, "lvsd1:web")));

    // ip (unique: Pacemaker restarts vip): the new address alone, once.
    edit("vip", "ip", Some("10.0.0.101"), limit, || {
        cluster.role("vip").as_deref() == Some("Started") && copies_of("10.0.0.101").len() == 1
    });
    assert_eq!(vip_copies(), [], "the old address went with the edit");
    edit("vip", "ip", Some("10.0.0.100"), limit, || {
        vip_is(&cluster, ("lvsd1", 25, "lvsd1:web")) && copies_of("10.0.0.101").is_empty()
    });

    // mode: the address moves to lo as a real server's host address and
    // back. The agent sets arp_ignore/arp_announce for realserver mode and
    // leaves them on stop, so the test puts this VM's values back.
    let sysctls = ["all", "lo"].map(|c| {
        [format!("net.ipv4.conf.{c}.arp_ignore"), format!("net.ipv4.conf.{c}.arp_announce")]
            .map(|k| (k.clone(), must("sysctl", &["-n", &k]).trim().to_string()))
    });
    edit("vip", "mode", Some("realserver"), limit, || {
        cluster.role("vip").as_deref() == Some("Started") && vip_copies() == [("lo".to_string(), 32, "lo".to_string())]
    });
    edit("vip", "mode", None, limit, || vip_is(&cluster, ("lvsd1", 25, "lvsd1:web")));
    for (k, v) in sysctls.iter().flatten() {
        must("sysctl", &["-q", "-w", &format!("{k}={v}")]);
    }

    // The service's scheduler changes in place; the reals stay.
    edit("web", "scheduler", Some("rr"), limit, || must("ipvsadm", &["-Ln"]).contains("TCP  10.0.0.100:80 rr"));
    // Both reals still there (a check may flap a weight under load).
    let w = weights_in(&must("ipvsadm", &["-Ln"]));
    assert!(w.contains_key("192.168.7.10:80") && w.contains_key("192.168.7.20:80"), "{w:?}");

    // The reals' service: they leave the VIP's service for another (not
    // there yet, so they wait), the sorry server takes over, and back.
    let on_80 = || {
        let t = must("ipvsadm", &["-Ln", "-t", "10.0.0.100:80"]);
        let reals = t.lines().filter(|l| l.contains("-> 192.168.7.")).count();
        (reals, t.contains("-> 127.0.0.1:80"))
    };
    edit("reals", "service", Some("tcp:10.0.0.100:8080"), limit, || on_80() == (0, true));

    // While the fallback is in: sorry's fallback and forward. One fallback
    // line at every sample, the new one, the old one gone.
    let fallbacks = || -> Vec<String> {
        must("ipvsadm", &["-Ln", "-t", "10.0.0.100:80"])
            .lines()
            .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress") && !l.contains("192.168.7.1"))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let sorry_edit = |param: &str, value: Option<&str>, want: &str| {
        edit("sorry", param, value, limit, || {
            let f = fallbacks();
            assert!(f.len() <= 1, "sorry {param}={value:?}: two fallbacks: {f:?}");
            f == [want]
        })
    };
    sorry_edit("fallback", Some("192.168.7.99:80"), "-> 192.168.7.99:80 Masq");
    sorry_edit("forward", Some("gate"), "-> 192.168.7.99:80 Route");
    sorry_edit("forward", None, "-> 192.168.7.99:80 Masq");
    sorry_edit("fallback", Some("127.0.0.1:80"), "-> 127.0.0.1:80 Local");

    edit("reals", "service", Some("tcp:10.0.0.100:80"), limit, || on_80() == (2, false));

    // The service itself (unique: Pacemaker restarts web, and reals and
    // sorry after it): one service line, on the new port, the old gone.
    let service_lines = || -> Vec<String> {
        must("ipvsadm", &["-Ln"]).lines().filter(|l| l.starts_with("TCP  10.0.0.100:")).map(str::to_string).collect()
    };
    edit("web", "service", Some("tcp:10.0.0.100:8080"), limit, || {
        // One read of the table per sample: it changes while web restarts.
        let lines = service_lines();
        cluster.role("web").as_deref() == Some("Started")
            && lines.len() == 1
            && lines[0].starts_with("TCP  10.0.0.100:8080 ")
    });
    edit("web", "service", Some("tcp:10.0.0.100:80"), limit, || {
        let lines = service_lines();
        lines.len() == 1 && lines[0].starts_with("TCP  10.0.0.100:80 ") && on_80() == (2, false)
    });

    // An edit no node can carry out: the failed action and Pacemaker's
    // recovery stop must take the VIP down, not leave it up unmanaged.
    edit("vip", "cidr_netmask", Some("33"), limit, || {
        vip_copies().is_empty() && cluster.role("vip").as_deref() != Some("Started")
    });
    println!("after cidr_netmask=33:\n{}", cluster.status());
    // Back to the README's values while it is down, then one cleanup.
    edit("vip", "iflabel", None, limit, || true);
    edit("vip", "nic", Some("lvsd0"), limit, || true);
    edit("vip", "cidr_netmask", Some("24"), limit, || true);
    must("crm_resource", &["--cleanup", "-r", "vip"]);
    serving(&cluster, &t.client);
    assert_eq!(vip_copies(), [("lvsd0".to_string(), 24, "lvsd0".to_string())]);

    // A health daemon killed -9 in its first round (a real that does not
    // answer holds the round up to check_timeout): the failed start leaves
    // no second daemon and no stray reals; after a cleanup one daemon
    // serves again.
    must("crm_resource", &["-r", "reals", "-p", "check_timeout", "-v", "8"]);
    must(
        "crm_resource",
        &["-r", "reals", "-p", "real", "-v", "192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2, 192.168.7.30:80 masq 1"],
    );
    let old = daemon_pid("realservers-reals");
    let restart = std::thread::spawn(|| {
        std::process::Command::new("crm_resource").args(["--restart", "-r", "reals", "--timeout", "90s"]).output()
    });
    let (pid, in_first_round) = wait_for("the new daemon's pidfile", Duration::from_secs(60), || {
        let p = daemon_pid("realservers-reals").filter(|p| Some(p) != old.as_ref())?;
        // Its state file comes with the end of the first round.
        let first = daemon_state("realservers-reals").is_none();
        Some((p, first))
    });
    must("kill", &["-9", &pid]);
    assert!(in_first_round, "daemon {pid} was killed before its first round ended");
    let _ = restart.join();
    must("crm_resource", &["-r", "reals", "-p", "real", "-v", "192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2"]);
    must("crm_resource", &["-r", "reals", "-p", "check_timeout", "-v", "1"]);
    must("crm_resource", &["--cleanup", "-r", "reals"]);
    serving(&cluster, &t.client);
    let ours: Vec<String> = lvs_tests::topo::daemons_left(&[])
        .into_iter()
        .filter(|l| l.starts_with("process") && l.contains("lvs-realservers"))
        .collect();
    assert_eq!(ours.len(), 1, "one health daemon after the recovery: {ours:?}");
    assert!(!must("ipvsadm", &["-Ln"]).contains("192.168.7.30"), "the killed daemon's extra real is gone");
    println!("daemon {pid} killed -9 in its first round; after cleanup: {ours:?}");

    // The wall clock steps (an NTP correction, a bad RTC) under Pacemaker:
    // no monitor fails, no daemon restarts, no real leaves the table.
    let pid = daemon_pid("realservers-reals").expect("daemon pidfile");
    let fails = failcount("reals");
    for secs in [3600, -7200, 3600] {
        step_clock(secs);
        // reals is monitored every 2 s: several monitors see each step.
        for _ in 0..40 {
            let w = weights_in(&must("ipvsadm", &["-Ln"]));
            assert!(
                w.contains_key("192.168.7.10:80") && w.contains_key("192.168.7.20:80"),
                "a real left the table after a {secs} s clock step: {w:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(daemon_pid("realservers-reals"), Some(pid), "a clock step restarted the daemon");
    assert_eq!(failcount("reals"), fails, "a monitor failed after a clock step:\n{}", cluster.status());

    // Everything stops and leaves nothing: no VIP, no service, no daemon.
    must("crm_resource", &["-r", "lvs", "--set-parameter", "target-role", "--meta", "--parameter-value", "Stopped"]);
    for r in ["sorry", "reals", "web", "vip"] {
        cluster.wait_role(r, "Stopped", Duration::from_secs(60));
    }
    wait_for("nothing left", Duration::from_secs(10), || {
        (vip_copies().is_empty() && vip_services() == 0).then_some(())
    });
    assert!(daemon_pid("realservers-reals").is_none() && daemon_pid("sorry-sorry").is_none(), "no daemon left");
}
