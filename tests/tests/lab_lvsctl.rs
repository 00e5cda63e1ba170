//! lvsctl's operator views on a director in the lab VM (real IPVS):
//! `doctor` (each problem it reports is made by the test, reported with
//! its fix, and gone once the fix is applied; a clean director exits 0) and
//! `status --watch` in a real terminal (tmux).
#![cfg(feature = "lab")]

use std::process::Command;

use lvs_tests::agent::{bin, ocf};
use lvs_tests::topo::director;

/// `lvsctl doctor --json --run-dir RUN_DIR` in `ns`.
fn doctor(ns: &str, run_dir: &str) -> (i32, Vec<String>, serde_json::Value) {
    lvs_tests::agent::doctor(ns, &["--run-dir", run_dir])
}

fn fix_of(v: &serde_json::Value, check: &str) -> String {
    let f = v["findings"].as_array().expect("findings").iter().find(|f| f["check"] == check);
    f.and_then(|f| f["fix"].as_str()).unwrap_or_else(|| panic!("a fix for {check}: {v:#}")).to_string()
}

#[test]
fn doctor_finds_what_a_director_lacks_and_its_fixes_work() {
    let (d, peer) = director();
    let run_dir = std::env::temp_dir().join(format!("lvs-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let run = run_dir.to_str().expect("path");
    d.must(&["ip", "addr", "add", "10.0.0.100/24", "dev", "eth0"]);

    // A new namespace copies IPv4's settings from the VM's own, which
    // earlier tests in the lane may have changed: each problem is made here.
    d.sysctl("net.ipv4.ip_forward", "0");
    for conf in ["all", "eth0"] {
        d.sysctl(&format!("net.ipv4.conf.{conf}.send_redirects"), "1");
    }
    // NAT with forwarding off.
    d.must(&["ipvsadm", "-A", "-t", "10.0.0.100:80", "-s", "rr"]);
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m"]);
    let (code, checks, v) = doctor(&d.ns, run);
    assert_eq!((code, checks), (2, vec!["ip_forward".to_string()]), "{v:#}");
    let text = d.run(&[bin("lvsctl").to_str().expect("path"), "doctor", "--run-dir", run]).1;
    println!("$ lvsctl doctor\n{text}");
    assert!(text.contains("error: ") && text.contains("  fix: sysctl -w net.ipv4.ip_forward=1"), "{text}");
    let fix = fix_of(&v, "ip_forward");
    d.must(&fix.split_whitespace().take(3).collect::<Vec<_>>());
    let (code, checks, v) = doctor(&d.ns, run);
    assert_eq!((code, checks), (0, Vec::<String>::new()), "{v:#}");

    // DR with redirects on.
    d.must(&["ipvsadm", "-A", "-t", "10.0.0.100:81", "-s", "rr"]);
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:81", "-r", "10.0.0.2:81", "-g"]);
    let (code, checks, v) = doctor(&d.ns, run);
    assert_eq!((code, checks), (1, vec!["send_redirects".to_string()]), "{v:#}");
    let fix = fix_of(&v, "send_redirects");
    assert_eq!(fix, "sysctl -w net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0");
    d.must(&fix.split_whitespace().collect::<Vec<_>>());
    assert_eq!(doctor(&d.ns, run).0, 0);

    // Another host answers ARP for the VIP: a DR real server with the VIP
    // on lo and the kernel's ARP defaults.
    peer.must(&["ip", "addr", "add", "10.0.0.100/32", "dev", "lo"]);
    let (code, checks, v) = doctor(&d.ns, run);
    assert_eq!((code, checks), (2, vec!["vip".to_string()]), "{v:#}");
    let peer_mac = peer.must(&["cat", "/sys/class/net/eth0/address"]).trim().to_string();
    assert!(v["findings"][0]["message"].as_str().unwrap_or("").contains(&peer_mac), "{v:#}");
    // What doctor says to run there makes the peer silent.
    let c = ocf("lvs-vip", Some(&peer.ns), "start", &[("ip", "10.0.0.100"), ("mode", "realserver")], &[]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(doctor(&d.ns, run).0, 0);

    // A sync resource whose kernel daemon is gone.
    let sync = |action: &str| {
        ocf(
            "lvs-sync",
            Some(&d.ns),
            action,
            &[("interface", "eth0"), ("syncid", "5"), ("role", "master")],
            &[("OCF_RESOURCE_INSTANCE", "doctor-sync"), ("LVS_RUN_DIR", run)],
        )
    };
    assert_eq!(sync("start").code, 0);
    assert_eq!(doctor(&d.ns, run).0, 0, "{:#}", doctor(&d.ns, run).2);
    d.must(&["ipvsadm", "--stop-daemon", "master"]);
    let (code, checks, v) = doctor(&d.ns, run);
    assert_eq!((code, checks), (2, vec!["sync".to_string()]), "{v:#}");
    assert!(fix_of(&v, "sync").contains("crm_resource --cleanup -r doctor-sync"), "{v:#}");
    let _ = sync("stop");

    // The VIP gone from this director: a warning, not an error (a standby).
    d.must(&["ip", "addr", "del", "10.0.0.100/24", "dev", "eth0"]);
    let (code, checks, v) = doctor(&d.ns, run);
    assert_eq!((code, checks), (1, vec!["vip".to_string()]), "{v:#}");
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// What tmux's pane shows now, with its SGR escapes (`capture-pane -e`).
fn pane(session: &str) -> String {
    let o = Command::new("tmux").args(["capture-pane", "-p", "-e", "-t", session]).output().expect("tmux");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn line_of<'a>(screen: &'a str, what: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(what))
}

#[test]
fn status_watch_redraws_in_place_and_marks_what_changed() {
    let (d, _peer) = director();
    d.must(&["ipvsadm", "-A", "-t", "10.0.0.100:80", "-s", "wrr"]);
    d.must(&["ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "1"]);
    let session = format!("lvswatch{}", std::process::id());
    let cmd = format!("ip netns exec {} {} status --watch --interval 1", d.ns, bin("lvsctl").display());
    let st = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "150", "-y", "30", &cmd])
        .status()
        .expect("tmux");
    assert!(st.success(), "tmux new-session");
    let kill = || {
        let _ = Command::new("tmux").args(["kill-session", "-t", &session]).status();
    };
    let wait = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let began = std::time::Instant::now();
        loop {
            let s = pane(&session);
            if ok(&s) {
                return s;
            }
            if began.elapsed() > std::time::Duration::from_secs(10) {
                kill();
                panic!("{what}; the pane:\n{s}");
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    // The first screens: the table, nothing marked.
    let first = wait("the table on screen", &|s| s.contains("TCP  10.0.0.100:80 wrr") && s.contains("Every 1s"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let calm = pane(&session);
    let real = line_of(&calm, "192.168.7.10:80").unwrap_or_else(|| panic!("the real's line:\n{calm}"));
    assert!(!real.contains("[7m"), "an unchanged line is not marked: {real:?}\n{first}");
    // In place: one title, not a scrolling log.
    assert_eq!(calm.matches("Every 1s").count(), 1, "{calm}");

    // A weight changes: its line is marked on the next screen, and plain
    // again on the one after.
    d.must(&["ipvsadm", "-e", "-t", "10.0.0.100:80", "-r", "192.168.7.10:80", "-m", "-w", "3"]);
    let marked = wait("the changed line marked", &|s| {
        line_of(s, "192.168.7.10:80").is_some_and(|l| l.contains("[7m") && l.contains("Masq    3"))
    });
    assert!(
        !line_of(&marked, "TCP  10.0.0.100:80").is_some_and(|l| l.contains("[7m")),
        "the unchanged service line is not marked:\n{marked}"
    );
    wait("the mark gone once nothing changes", &|s| {
        line_of(s, "192.168.7.10:80").is_some_and(|l| !l.contains("[7m") && l.contains("Masq    3"))
    });
    kill();
}
