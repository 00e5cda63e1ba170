//! The README's configuration under a real single-node corosync + Pacemaker
//! inside the lab VM (real IPVS): `group lvs vip web reals sorry`. The
//! director is the VM's own namespace (where Pacemaker runs agents); the
//! client and the real servers are namespaces.
#![cfg(feature = "lab")]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use lvs_tests::cluster::{failcount, must, wait_for, Cluster, LogMark};
use lvs_tests::group::{group_serves, topology, CONFIG};
use lvs_tests::topo::{daemon_pid, daemon_state, daemons_left, weights_in, Host};

const PACEMAKER_LOG: &str = "/var/log/pacemaker/pacemaker.log";

/// The weights the group's reals have when both are healthy.
fn both_weighted() -> HashMap<String, u32> {
    [("192.168.7.10:80".to_string(), 1), ("192.168.7.20:80".to_string(), 2)].into()
}

/// After a new health daemon took over (started after `since`): its own
/// checks weighted both reals (it re-adds them at weight 0 before any
/// check), its state file says 2 healthy, and traffic splits 1:2 again.
fn serves_again(client: &Host, since: SystemTime) {
    wait_for("both reals weighted by the new daemon, 2 healthy", Duration::from_secs(20), || {
        let (state, written) = daemon_state("realservers-reals")?;
        (weights_in(&must("ipvsadm", &["-Ln"])) == both_weighted() && state["healthy"] == 2 && written > since)
            .then_some(())
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
    // No service line for the VIP either, not only no destinations.
    wait_for("an empty table", Duration::from_secs(10), || {
        (!must("ipvsadm", &["-Ln"]).contains("10.0.0.100")).then_some(())
    });
    assert!(!must("ip", &["addr", "show", "lvsd0"]).contains("10.0.0.100"), "VIP gone");
    assert_eq!(
        daemons_left(&["realservers-reals", "sorry-sorry"]),
        Vec::<String>::new(),
        "no pidfile, no lvs-realservers or lvs-sorry process"
    );
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
    let probe_page = t.roots[0].path.join("test.html");
    std::fs::remove_file(&probe_page).expect("break r1's check page");
    healthy(1);
    std::fs::write(&probe_page, "test\n").expect("restore r1's check page");
    healthy(2);

    // The health daemon dies: Pacemaker's recurring monitor notices and recovers it.
    // (Counted from what it was: on a loaded emulated host a monitor may
    // already have failed once.)
    let pid = daemon_pid("realservers-reals").expect("daemon pidfile");
    let failures = failcount("reals");
    let killed = SystemTime::now();
    must("kill", &["-9", &pid]);
    wait_for("a recorded monitor failure of reals", Duration::from_secs(30), || {
        (failcount("reals") > failures).then_some(())
    });
    cluster.wait_role("reals", "Started", Duration::from_secs(30));
    let new_pid = wait_for("a new health daemon", Duration::from_secs(30), || {
        daemon_pid("realservers-reals").filter(|p| *p != pid)
    });
    println!("daemon {pid} killed, Pacemaker started {new_pid}");
    serves_again(client, killed);
    must("crm_resource", &["--cleanup", "-r", "reals"]);
    wait_for("fail count cleared", Duration::from_secs(30), || {
        must("crm_failcount", &["--query", "-r", "reals"]).contains("value=0").then_some(())
    });
    cluster.wait_role("reals", "Started", Duration::from_secs(30));

    // A non-unique parameter changes: Pacemaker reloads, the daemon stays,
    // the destinations never leave the table.
    // The weights are sampled from the change until 2 s after Pacemaker's
    // reload is confirmed in its log (only lines written from here count).
    let pid = daemon_pid("realservers-reals").expect("daemon pidfile");
    let log = LogMark::now(PACEMAKER_LOG);
    must("crm_resource", &["-r", "reals", "-p", "check_interval", "-v", "2"]);
    let changed = Instant::now();
    let mut confirmed: Option<Instant> = None;
    let mut samples = 0;
    while confirmed.is_none_or(|at| at.elapsed() < Duration::from_secs(2)) {
        let table = must("ipvsadm", &["-Ln"]);
        if weights_in(&table) != both_weighted() {
            // The daemon's view says whether a check failed meanwhile.
            let state = daemon_state("realservers-reals").map(|s| s.0);
            panic!("weights while the change is applied:\n{table}\ndaemon state: {state:#?}");
        }
        samples += 1;
        if confirmed.is_none() && log.since().contains("reals_reload_0") {
            confirmed = Some(Instant::now());
        }
        assert!(changed.elapsed() < Duration::from_secs(30), "no reload of reals in {PACEMAKER_LOG} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("reload: weights held in {samples} samples over {:?}", changed.elapsed());
    cluster.wait_role("reals", "Started", Duration::from_secs(30));
    assert_eq!(daemon_pid("realservers-reals").as_deref(), Some(pid.as_str()), "reload kept the daemon");
    // The agent writes the .params file itself before signalling; the
    // state file's interval is what the daemon runs with.
    wait_for("the daemon to run every 2 s", Duration::from_secs(10), || {
        (daemon_state("realservers-reals")?.0["interval_s"] == 2).then_some(())
    });

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
    let restarted = SystemTime::now();
    must("crm_resource", &["--restart", "-r", "reals", "--timeout", "60s"]);
    cluster.wait_role("reals", "Started", Duration::from_secs(60));
    let new_pid = wait_for("a new daemon after --restart", Duration::from_secs(30), || {
        daemon_pid("realservers-reals").filter(|p| *p != pid)
    });
    println!("crm_resource --restart: daemon {pid} -> {new_pid}");
    serves_again(&t.client, restarted);
    group_stops(&cluster);
}
