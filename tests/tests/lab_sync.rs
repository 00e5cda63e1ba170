//! `ocf:lvs:sync` against a real IPVS (lab VM): two director namespaces
//! on one bridge (IPVS tables and sync daemons are per namespace), the
//! master in one, the backup in the other; a connection through the first
//! must show up in the second's connection table, bound to the same real
//! server. Plus the agent's ownership rules: monitor 0/7/1, idempotent
//! start, refusal of a foreign daemon, stop by the record only.
#![cfg(feature = "lab")]

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lvs_tests::agent::{bin, ocf, Call};
use lvs_tests::topo::{director, web_root, Host, Switch};

const VIP: &str = "10.0.0.100";
const REAL: &str = "10.0.0.21";

fn sync(h: &Host, instance: &str, action: &str, params: &[(&str, &str)]) -> Call {
    ocf("lvs-sync", Some(&h.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &format!("{instance}-{}", h.ns))])
}

/// `ipvsadm -L --daemon` in `h`.
fn daemons(h: &Host) -> String {
    h.must(&["ipvsadm", "-L", "--daemon"])
}

/// `ipvsadm -Lnc` in `h` once `done` holds, or as it is after `limit`.
fn connections_until(h: &Host, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let began = Instant::now();
    loop {
        let t = h.must(&["ipvsadm", "-Lnc"]);
        if done(&t) || began.elapsed() >= limit {
            return t;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The line of `table` (`ipvsadm -Lnc`) for a TCP connection from
/// `client` to the VIP via `real`.
fn entry<'a>(table: &'a str, client: &str, real: &str) -> Option<&'a str> {
    table.lines().find(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.first() == Some(&"TCP")
            && f.get(3) == Some(&client)
            && f.get(4) == Some(&&*format!("{VIP}:80"))
            && f.get(5) == Some(&real)
    })
}

/// Two directors, a real server and a client on one bridge; LVS-DR
/// through the first director, which holds the VIP.
struct Pair {
    d1: Host,
    d2: Host,
    client: Host,
    _real: Host,
    _root: lvs_tests::topo::tempdir::Dir,
    _switch: Switch,
}

fn pair() -> Pair {
    let switch = Switch::new();
    let (d1, d2, client, mut real) = (Host::new("d1"), Host::new("d2"), Host::new("client"), Host::new("real"));
    switch.plug(&d1, "eth0", Some("10.0.0.11/24"));
    switch.plug(&d2, "eth0", Some("10.0.0.12/24"));
    switch.plug(&client, "eth0", Some("10.0.0.2/24"));
    switch.plug(&real, "eth0", Some(&format!("{REAL}/24")));
    // The VIP on the active director; on the real, on lo and silent (DR).
    d1.must(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"]);
    real.must(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    for k in ["all", "eth0"] {
        real.sysctl(&format!("net.ipv4.conf.{k}.arp_ignore"), "1");
        real.sysctl(&format!("net.ipv4.conf.{k}.arp_announce"), "2");
    }
    let root = web_root("sync-real");
    real.http_server(&root.path);
    d1.must(&["ipvsadm", "-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    d1.must(&["ipvsadm", "-a", "-t", &format!("{VIP}:80"), "-r", &format!("{REAL}:80"), "-g"]);
    Pair { d1, d2, client, _real: real, _root: root, _switch: switch }
}

impl Pair {
    /// An established TCP connection from the client through the VIP, with
    /// a few packets sent (the kernel syncs a connection at its third
    /// incoming packet by default: sync_threshold 3). The request is left
    /// unfinished so the server keeps the connection open.
    fn connect(&self) -> (TcpStream, String) {
        let mut s = self
            .client
            .within(|| TcpStream::connect_timeout(&format!("{VIP}:80").parse().unwrap(), Duration::from_secs(5)))
            .expect("client connects to the VIP through d1");
        for part in ["GET / HTTP/1.1\r\n", "Host: vip\r\n", "X-Sync: 1\r\n"] {
            s.write_all(part.as_bytes()).expect("send");
            std::thread::sleep(Duration::from_millis(100));
        }
        let client = s.local_addr().expect("local addr").to_string();
        (s, client)
    }
}

#[test]
fn a_connection_through_the_master_reaches_the_backups_table() {
    let p = pair();
    let master = [("interface", "eth0"), ("syncid", "5"), ("role", "master")];
    let backup = [("interface", "eth0"), ("syncid", "5"), ("role", "backup")];
    let c = sync(&p.d1, "sync", "start", &master);
    assert_eq!(c.code, 0, "{c:?}");
    // LVS_SYNC_LAB_NO_BACKUP=1 leaves the backup out, to watch this test fail.
    let skip_backup = std::env::var("LVS_SYNC_LAB_NO_BACKUP").is_ok_and(|v| v == "1");
    if !skip_backup {
        let c = sync(&p.d2, "sync", "start", &backup);
        assert_eq!(c.code, 0, "{c:?}");
    }
    assert_eq!(sync(&p.d1, "sync", "monitor", &master).code, 0);
    assert!(daemons(&p.d1).contains("master sync daemon (mcast=eth0, syncid=5"), "{}", daemons(&p.d1));
    assert!(!daemons(&p.d1).contains("backup"), "{}", daemons(&p.d1));
    if !skip_backup {
        assert_eq!(sync(&p.d2, "sync", "monitor", &backup).code, 0);
        assert!(daemons(&p.d2).contains("backup sync daemon (mcast=eth0, syncid=5"), "{}", daemons(&p.d2));
    }

    let (_conn, client) = p.connect();
    let real = format!("{REAL}:80");
    let t1 = connections_until(&p.d1, Duration::from_secs(5), |t| entry(t, &client, &real).is_some());
    assert!(entry(&t1, &client, &real).is_some(), "d1 forwards {client} to {real}:\n{t1}");
    // The second director has no service and no VIP: only the sync daemon
    // can have put the connection there.
    assert!(!p.d2.ipvsadm(&[]).contains(VIP), "d2 has no service");
    let began = Instant::now();
    let t2 = connections_until(&p.d2, Duration::from_secs(10), |t| entry(t, &client, &real).is_some());
    let line = entry(&t2, &client, &real);
    assert!(line.is_some(), "d2's table has no {client} -> {VIP}:80 -> {real} after 10 s:\n{t2}\n(d1:\n{t1})");
    eprintln!("synced to d2 within {:?}: {}", began.elapsed(), line.unwrap_or_default());
    assert!(line.unwrap_or_default().contains("ESTABLISHED"), "{t2}");

    // lvsctl status shows each namespace's daemons.
    let (ok, out) = p.d1.run(&[bin("lvsctl").to_str().unwrap(), "status"]);
    assert!(ok, "{out}");
    assert!(out.contains("master sync daemon (mcast=eth0, syncid=5"), "{out}");
    assert!(out.contains(&format!("sync-{}", p.d1.ns)), "names the resource that started it: {out}");

    assert_eq!(sync(&p.d1, "sync", "stop", &master).code, 0);
    assert_eq!(sync(&p.d2, "sync", "stop", &backup).code, 0);
    assert!(!daemons(&p.d1).contains("sync daemon") && !daemons(&p.d2).contains("sync daemon"));
}

#[test]
fn lifecycle_ownership_and_monitor() {
    let (d, _peer) = director();
    let both = [("interface", "eth0"), ("syncid", "5")];
    assert_eq!(sync(&d, "s", "monitor", &both).code, 7, "probe before start");
    let c = sync(&d, "s", "start", &both);
    assert_eq!(c.code, 0, "{c:?}");
    let l = daemons(&d);
    assert!(
        l.contains("master sync daemon (mcast=eth0, syncid=5")
            && l.contains("backup sync daemon (mcast=eth0, syncid=5"),
        "{l}"
    );
    assert_eq!(sync(&d, "s", "start", &both).code, 0, "second start");
    assert_eq!(daemons(&d), l, "the second start changed nothing");
    assert_eq!(sync(&d, "s", "monitor", &both).code, 0);
    // The parameters edited without a reload: an error, not "not running".
    let c = sync(&d, "s", "monitor", &[("interface", "eth0"), ("syncid", "6")]);
    assert_eq!(c.code, 1, "{c:?}");

    // Someone replaces our backup by hand with another one.
    d.must(&["ipvsadm", "--stop-daemon", "backup"]);
    d.must(&["ipvsadm", "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "9"]);
    let c = sync(&d, "s", "monitor", &both);
    assert_eq!(c.code, 1, "a recorded daemon with other parameters: {c:?}");
    assert!(c.stderr.contains("backup sync daemon now runs as"), "{}", c.stderr);
    // Stop removes our master and leaves the stranger's backup.
    assert_eq!(sync(&d, "s", "stop", &both).code, 0);
    let l = daemons(&d);
    assert!(!l.contains("master") && l.contains("backup sync daemon (mcast=eth0, syncid=9"), "{l}");
    assert_eq!(sync(&d, "s", "monitor", &both).code, 7, "after stop");

    // Start next to a foreign backup with other parameters: refused, nothing touched.
    let c = sync(&d, "s", "start", &both);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("ocf-exit-reason:") && c.stderr.contains("--stop-daemon backup"), "{}", c.stderr);
    assert_eq!(daemons(&d), l, "the refused start started nothing");
    assert_eq!(sync(&d, "s", "stop", &both).code, 0, "stop after a refused start");
    assert_eq!(daemons(&d), l, "and stopped nothing");

    // role=master does not conflict with it; our stop leaves it running.
    let master = [("interface", "eth0"), ("syncid", "5"), ("role", "master")];
    assert_eq!(sync(&d, "m", "start", &master).code, 0);
    assert_eq!(sync(&d, "m", "monitor", &master).code, 0);
    assert_eq!(sync(&d, "m", "stop", &master).code, 0);
    assert_eq!(daemons(&d), l, "a foreign backup survives our stop");

    // Stop with parameters changed (even into nonsense) still removes ours.
    assert_eq!(sync(&d, "m", "start", &master).code, 0);
    let stale = [("interface", "nonexistent0"), ("syncid", "300"), ("role", "backup")];
    let c = sync(&d, "m", "stop", &stale);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(daemons(&d), l, "our master is gone, the foreign backup stays");
    d.must(&["ipvsadm", "--stop-daemon", "backup"]);

    // Reload replaces what changed.
    assert_eq!(sync(&d, "r", "start", &both).code, 0);
    let six = [("interface", "eth0"), ("syncid", "6"), ("mcast_ttl", "2")];
    assert_eq!(sync(&d, "r", "reload", &six).code, 0);
    let l = daemons(&d);
    assert!(
        l.contains("master sync daemon (mcast=eth0, syncid=6")
            && l.contains("backup sync daemon (mcast=eth0, syncid=6"),
        "{l}"
    );
    assert!(l.contains("ttl=2"), "{l}");
    assert_eq!(sync(&d, "r", "monitor", &six).code, 0);
    // A role change in a reload stops only the daemon no longer asked for.
    let six_master = [("interface", "eth0"), ("syncid", "6"), ("mcast_ttl", "2"), ("role", "master")];
    assert_eq!(sync(&d, "r", "reload", &six_master).code, 0);
    let l = daemons(&d);
    assert!(l.contains("master sync daemon") && !l.contains("backup"), "{l}");
    assert_eq!(sync(&d, "r", "stop", &[]).code, 0, "stop with no parameters at all");
    assert!(!daemons(&d).contains("sync daemon"), "{}", daemons(&d));
    assert_eq!(sync(&d, "r", "reload", &six).code, 0, "reload of a stopped resource succeeds");
    assert!(!daemons(&d).contains("sync daemon"), "and starts nothing");

    // Bad input: 6, nothing started.
    for bad in [
        vec![("interface", "eth0"), ("syncid", "256")],
        vec![("interface", "nonexistent0")],
        vec![("interface", "eth0"), ("mcast_group", "10.0.0.1")],
        vec![("interface", "eth0"), ("maxlen", "100")],
    ] {
        let c = sync(&d, "bad", "start", &bad);
        assert_eq!(c.code, 6, "{bad:?}: {c:?}");
        assert!(c.stderr.contains("ocf-exit-reason:"), "{c:?}");
    }
    assert!(!daemons(&d).contains("sync daemon"));

    // backup_only=1 would switch the active director off under role=both.
    d.sysctl("net.ipv4.vs.backup_only", "1");
    let c = sync(&d, "bo", "start", &both);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("backup_only"), "{}", c.stderr);
    assert!(!daemons(&d).contains("sync daemon"));
    d.sysctl("net.ipv4.vs.backup_only", "0");

    // An explicit maxlen, group, port and ttl reach the kernel as given.
    let full = [
        ("interface", "eth0"),
        ("syncid", "7"),
        ("mcast_group", "239.1.2.3"),
        ("mcast_port", "9000"),
        ("mcast_ttl", "3"),
        ("maxlen", "1400"),
        ("role", "backup"),
    ];
    assert_eq!(sync(&d, "f", "start", &full).code, 0);
    let l = daemons(&d);
    assert!(
        l.contains("maxlen=1400") && l.contains("group=239.1.2.3") && l.contains("port=9000") && l.contains("ttl=3"),
        "{l}"
    );
    assert_eq!(sync(&d, "f", "monitor", &full).code, 0);
    assert_eq!(sync(&d, "f", "stop", &full).code, 0);
    assert!(!daemons(&d).contains("sync daemon"));
}
