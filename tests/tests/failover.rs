//! Two directors, one LVS-DR service, a real failover: two lab VMs joined by
//! one wire (a qemu socket link on host loopback) run a two-node corosync +
//! Pacemaker with the README group. node-a serves first; the group moves to
//! node-b and back (`crm_resource --move`/`--clear`); then node-a loses power
//! (sysrq), and node-b must take the VIP (gratuitous ARP moves the client),
//! build the service and run the health daemon that finds the reals.
//!
//! One test, three roles picked by LVS_FAILOVER_ROLE: unset on the host (boot
//! both VMs, relay their output, return node-b's verdict), `a` and `b` inside
//! the VMs. node-b's namespace-hosts are the client and two DR real servers
//! on a bridge with the wire, so both directors reach them:
//!
//!   node-a eth0 10.0.0.1 ── wire ── eth0 ─ br0 10.0.0.2 (node-b)
//!                                           ├─ r1 10.0.0.11 (VIP on lo)
//!                                           ├─ r2 10.0.0.12 (VIP on lo)
//!                                           └─ client 10.0.0.50
#![cfg(feature = "lab")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs_tests::agent::bin;
use lvs_tests::cluster::{install_ocf_agent, must, wait_for, Cluster};
use lvs_tests::topo::{daemon_pid, daemons_left, ip, web_root, weights_in, Host};

const NODES: [(&str, &str); 2] = [("node-a", "10.0.0.1"), ("node-b", "10.0.0.2")];
const MAC_A: &str = "52:54:00:4c:56:0a";
const MAC_B: &str = "52:54:00:4c:56:0b";
/// node-a powers off when something connects here (node-b's "pull the plug").
const PLUG: &str = "10.0.0.1:7777";
/// The lane fails when node-a's loss takes longer than this to become the
/// group Started on node-b: measured 16.0-16.4 s with corosync's 5 s token,
/// 41.3 s with the host's load average at 13 (2 cores); generous for that.
const FAILOVER_BOUND: Duration = Duration::from_secs(90);

// No nic: each director finds its own (eth0 on node-a, br0 on node-b).
// fall=3, check_timeout=2: two emulated VMs share 2 cores here, and one check
// missing a 1 s deadline quiesced r1 for a request in a 30-request split (CI,
// 9:21); the lane proves failover, not detection speed (lab_reals does that).
const CONFIG: &str = r#"primitive vip ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=24 arp_count=3 op monitor interval=5s
primitive web ocf:lvs:service params service=tcp:10.0.0.100:80 scheduler=wrr op monitor interval=5s
primitive reals ocf:lvs:realservers params service=tcp:10.0.0.100:80 real="10.0.0.11:80 gate 1, 10.0.0.12:80 gate 2" check=http request=/test.html receive=test check_interval=1 check_timeout=2 fall=3 quiescent=true op monitor interval=2s timeout=20s
primitive sorry ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=127.0.0.1:80 op monitor interval=5s
group lvs vip web reals sorry
location lvs-prefers-a lvs 100: node-a
"#;

#[test]
fn two_directors_fail_over() {
    match std::env::var("LVS_FAILOVER_ROLE").as_deref() {
        Ok("a") => node_a(),
        Ok("b") => node_b(),
        _ => {
            assert!(std::env::var_os("LVS_IN_LAB").is_none(), "run this test on the host: it boots two lab VMs");
            host();
        }
    }
}

// ---- host: two VMs on one wire ----

/// A booted lab VM; its relaying threads end with its output.
struct Vm {
    child: Child,
    /// Every line it printed, as relayed.
    out: Arc<Mutex<Vec<String>>>,
    relays: Vec<JoinHandle<()>>,
}

/// One lab VM running this test in `role`; its output is relayed with a
/// prefix and kept.
fn boot(role: &str, link: &str, mac: &str) -> Vm {
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/lab/lab");
    let me = std::env::current_exe().expect("own path");
    let mut child = Command::new(lab)
        .args(["--mem", "1536", "--timeout", "900", "--link", link, "--mac", mac])
        .args(["--env", &format!("LVS_FAILOVER_ROLE={role}"), "--"])
        .arg(me)
        .args(["--exact", "two_directors_fail_over", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/lab/lab");
    let kept = Arc::new(Mutex::new(Vec::new()));
    let mut relays = Vec::new();
    for out in [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
        child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tag = format!("[{role}] ");
        let kept = kept.clone();
        relays.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{tag}{line}");
                if let Ok(mut k) = kept.lock() {
                    k.push(line);
                }
            }
        }));
    }
    Vm { child, out: kept, relays }
}

fn host() {
    // A free port for the wire: node-a's qemu listens there, node-b's connects.
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let mut a = boot("a", &format!("listen:{port}"), MAC_A).child;
    wait_for("node-a's end of the wire", Duration::from_secs(60), || {
        must("ss", &["-Hltn", &format!("sport = :{port}")]).contains("LISTEN").then_some(())
    });
    let Vm { child: mut b, out: b_out, relays: b_relays } = boot("b", &format!("connect:{port}"), MAC_B);
    let b_status = b.wait().expect("wait for node-b");
    for r in b_relays {
        let _ = r.join();
    }
    // node-a ends by losing power (no status of its own) or, if node-b failed
    // early, is stopped here; lab's TERM trap takes qemu down with it.
    let start = Instant::now();
    while a.try_wait().ok().flatten().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = Command::new("kill").args(["-TERM", &a.id().to_string()]).status();
            let _ = a.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(b_status.success(), "node-b (the test's driver) failed: {b_status}");
    // An exit status of 0 also comes from a run of 0 tests (a renamed test
    // would not match --exact): node-b's own output must show it passed.
    let out = b_out.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(
        out.iter().any(|l| l.trim().starts_with("test result: ok. 1 passed; 0 failed")),
        "node-b's output does not show its one test passing"
    );
    let figure =
        out.iter().map(|l| l.trim()).find(|l| l.starts_with("failover: node-a lost")).expect("node-b's failover line");
    println!("two-node lane: {figure} (bound {FAILOVER_BOUND:?})");
}

// ---- node-a: the first director; dies on request ----

fn node_a() {
    must("hostname", &["node-a"]);
    ip(&["addr", "add", "10.0.0.1/24", "dev", "eth0"]);
    ip(&["link", "set", "eth0", "up"]);
    for a in ["vip", "service", "realservers", "sorry"] {
        install_ocf_agent(a);
    }
    let plug = TcpListener::bind(PLUG).expect("listen for the plug");
    let _cluster = Cluster::start_member(&NODES);
    println!("node-a: cluster member, waiting for the plug to be pulled");
    let (mut s, peer) = plug.accept().expect("accept");
    let mut word = String::new();
    let _ = s.read_to_string(&mut word);
    println!("node-a: {peer} says {word:?}: powering off without a goodbye");
    // Power loss, not shutdown: corosync must notice the silence.
    std::fs::write("/proc/sysrq-trigger", "o").expect("sysrq");
    std::thread::sleep(Duration::from_secs(60));
    panic!("node-a still running after sysrq poweroff");
}

// ---- node-b: the standby, and the test's driver ----

/// A namespace-host plugged into node-b's bridge.
fn plug_in(name: &str, addr: &str) -> Host {
    let h = Host::new(name);
    let port = format!("lvs{name}");
    ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &h.ns]);
    ip(&["link", "set", &port, "master", "br0"]);
    ip(&["link", "set", &port, "up"]);
    h.must(&["ip", "addr", "add", addr, "dev", "eth0"]);
    h.must(&["ip", "link", "set", "eth0", "up"]);
    h
}

/// The MAC the client's neighbour table holds for the VIP.
fn client_sees(client: &Host) -> Option<String> {
    let out = client.must(&["ip", "neigh", "show", "10.0.0.100", "dev", "eth0"]);
    let mut w = out.split_whitespace();
    w.find(|x| *x == "lladdr")?;
    w.next().map(String::from)
}

fn group_on(cluster: &Cluster, node: &str, limit: Duration) {
    for r in ["vip", "web", "reals", "sorry"] {
        wait_for(&format!("{r} Started on {node}"), limit, || {
            (cluster.placement(r) == Some(("Started".into(), node.into()))).then_some(())
        });
    }
}

/// No service for the VIP (not only no destinations), no pidfile, no
/// lvs-realservers or lvs-sorry process on this node.
fn nothing_left(when: &str) {
    let table = must("ipvsadm", &["-Ln"]);
    assert!(!table.contains("10.0.0.100"), "{when}: the VIP's service is still in the table:\n{table}");
    assert_eq!(daemons_left(&["realservers-reals", "sorry-sorry"]), Vec::<String>::new(), "{when}: daemons left");
}

fn node_b() {
    must("hostname", &["node-b"]);
    ip(&["link", "add", "br0", "type", "bridge"]);
    ip(&["link", "set", "eth0", "master", "br0"]);
    ip(&["link", "set", "eth0", "up"]);
    ip(&["link", "set", "br0", "up"]);
    ip(&["addr", "add", "10.0.0.2/24", "dev", "br0"]);
    for a in ["vip", "service", "realservers", "sorry"] {
        install_ocf_agent(a);
    }

    // DR real servers: the VIP on lo by our own agent (mode=realserver sets
    // arp_ignore/arp_announce in their namespaces), httpd on every address.
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (name, addr) in [("r1", "10.0.0.11/24"), ("r2", "10.0.0.12/24")] {
        let mut r = plug_in(name, addr);
        let vip = bin("lvs-vip");
        r.must(&[
            "env",
            "OCF_RESKEY_ip=10.0.0.100",
            "OCF_RESKEY_mode=realserver",
            vip.to_str().expect("path"),
            "start",
        ]);
        let root = web_root(name);
        r.http_server(&root.path);
        roots.push(root);
        reals.push(r);
    }
    let client = plug_in("client", "10.0.0.50/24");

    let cluster = Cluster::start_member(&NODES);
    println!("node-b: both nodes online");
    let cfg = std::env::temp_dir().join("lvs-failover.crm");
    std::fs::write(&cfg, CONFIG).expect("config");
    must("crm", &["configure", "load", "update", cfg.to_str().expect("path")]);

    // node-a directs: its VIP, its table; node-b holds nothing.
    group_on(&cluster, "node-a", Duration::from_secs(120));
    println!("{}", cluster.status());
    let c = client.requests("10.0.0.100:80", 30);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "wrr 1:2 through node-a: {c:?}");
    assert_eq!(client_sees(&client).as_deref(), Some(MAC_A), "the client reaches the VIP at node-a");
    assert!(!must("ip", &["addr", "show", "br0"]).contains("10.0.0.100"), "node-b holds no VIP");
    assert!(weights_in(&must("ipvsadm", &["-Ln"])).is_empty(), "node-b has no table: {}", must("ipvsadm", &["-Ln"]));
    assert!(daemon_pid("realservers-reals").is_none(), "node-b runs no health daemon");

    // A planned switchover and back: crm_resource --move, then --clear lets
    // the location preference bring the group home. node-b's stop must
    // leave nothing behind, and each start moves the client by ARP.
    must("crm_resource", &["--move", "-r", "lvs", "-N", "node-b"]);
    group_on(&cluster, "node-b", Duration::from_secs(120));
    let br0_mac = std::fs::read_to_string("/sys/class/net/br0/address").expect("br0 mac").trim().to_string();
    wait_for("the client to follow the move to node-b", Duration::from_secs(10), || {
        (client_sees(&client).as_deref() == Some(br0_mac.as_str())).then_some(())
    });
    assert!(daemon_pid("realservers-reals").is_some(), "node-b runs the health daemon after --move");
    let c = client.requests("10.0.0.100:80", 30);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "wrr 1:2 through node-b after --move: {c:?}");
    must("crm_resource", &["--clear", "-r", "lvs"]);
    group_on(&cluster, "node-a", Duration::from_secs(120));
    wait_for("the client to follow the group home", Duration::from_secs(10), || {
        (client_sees(&client).as_deref() == Some(MAC_A)).then_some(())
    });
    assert!(!must("ip", &["addr", "show", "br0"]).contains("10.0.0.100"), "node-b released the VIP");
    nothing_left("node-b's stop after --clear");
    let c = client.requests("10.0.0.100:80", 30);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "wrr 1:2 through node-a again: {c:?}");
    println!("node-b: --move to node-b and --clear back to node-a done");

    // Pull node-a's plug. From here the client sends nothing until the VIP
    // has moved, so only node-b's gratuitous ARP can change its neighbour entry.
    let lost = Instant::now();
    let mut plug = TcpStream::connect(PLUG).expect("connect to node-a's plug");
    plug.write_all(b"power off").expect("pull the plug");
    drop(plug);

    group_on(&cluster, "node-b", Duration::from_secs(180));
    let took = lost.elapsed();
    println!("{}", cluster.status());
    assert!(cluster.status().contains("OFFLINE") || cluster.status().contains("offline"), "node-a is seen as lost");
    assert!(must("ip", &["addr", "show", "br0"]).contains("10.0.0.100/24"), "the VIP is on node-b's br0");
    let moved = wait_for("the client's neighbour entry to move to node-b", Duration::from_secs(10), || {
        client_sees(&client).filter(|m| *m == br0_mac)
    });
    println!("gratuitous ARP moved the client to {moved}");
    let pid = daemon_pid("realservers-reals").expect("node-b's health daemon");
    wait_for("both reals weighted on node-b", Duration::from_secs(15), || {
        let w = weights_in(&must("ipvsadm", &["-Ln"]));
        (w.get("10.0.0.11:80") == Some(&1) && w.get("10.0.0.12:80") == Some(&2)).then_some(())
    });
    let c = client.requests("10.0.0.100:80", 30);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "wrr 1:2 through node-b: {c:?}");
    println!("failover: node-a lost -> group Started on node-b in {:.1} s (health daemon {pid})", took.as_secs_f64());
    assert!(took < FAILOVER_BOUND, "failover took {took:?}, bound {FAILOVER_BOUND:?}");

    // An orderly stop on the survivor leaves nothing behind.
    must("crm_resource", &["-r", "lvs", "--set-parameter", "target-role", "--meta", "--parameter-value", "Stopped"]);
    for r in ["sorry", "reals", "web", "vip"] {
        cluster.wait_role(r, "Stopped", Duration::from_secs(60));
    }
    nothing_left("the survivor's orderly stop");
    drop(cluster);
    drop(client);
    drop(reals);
}
