//! Two directors as production runs them: a STONITH-backed pair. Two lab VMs
//! share an SBD disk and each has a hardware watchdog (i6300esb); corosync
//! runs two knet links (link 0 on the service LAN, link 1 on a dedicated
//! wire); Pacemaker has fencing on (fence_sbd) and a priority-fencing-delay,
//! so in a fence race the director that holds the group survives. The
//! README group directs one LVS-DR service.
//!
//! Scenarios, in order; node-b drives and prints "pair:" lines with figures:
//!  1. a planned move to node-b and back (`crm_resource --move`/`--clear`),
//!     nobody fenced. While each move happens the client runs a throttled
//!     download and keep-alive sessions through the VIP: the move to node-b,
//!     before the `ocf:lvs:sync` clone exists, must break some (the control:
//!     the lane can tell); the move back, with it, must break none;
//!  2. one heartbeat link lost: nothing moves, nobody is fenced, corosync
//!     reports the link down;
//!  3. the guard without fencing (the only place `stonith-enabled=false`):
//!     both heartbeat links cut, node-b's partition starts the group and its
//!     vip (`on_duplicate=refuse`) refuses the address node-a answers for;
//!     nothing but node-a ever answers, node-b keeps nothing after the merge;
//!  4. node-a (holding the group) loses power: node-b fences it, takes the
//!     VIP (gratuitous ARP moves the client) and serves again; a download
//!     longer than the failover and the sessions running through node-a
//!     survive (connection sync);
//!  5. split brain with the group on node-b (both heartbeat links cut, the
//!     service LAN up): exactly node-a is fenced, no other MAC ever answers
//!     for the VIP, the client keeps being served.
//!  6. the same pair under heartbeat v1 (haresources, `crm off`) instead of
//!     Pacemaker, in the same VMs: node-a booted again runs heartbeat; moves
//!     by heartbeat's stop and start, hb_standby/hb_takeover and a power
//!     loss, the VIP never on both (failover/heartbeat.rs).
//!
//! One test, three roles picked by LVS_FAILOVER_ROLE: unset on the host (boot
//! the VMs, relay their output, return node-b's verdict), `a` and `b` inside
//! the VMs. node-b asks the host for what it cannot do from inside its VM by
//! printing a line: "HOST: set_link wire1 off|on" (qemu's monitor cuts the
//! dedicated wire at node-b's NIC) and "HOST: boot node-a" (after node-a was
//! fenced or powered off). node-b's namespace-hosts are the client and two
//! DR real servers on a bridge with wire0, so both directors reach them:
//!
//!   node-a eth0 10.0.0.1 ── wire0 ── lan0 ─ eth0 10.0.0.2 (node-b, a bridge)
//!          eth1 10.1.0.1 ── wire1 ── eth1 10.1.0.2    ├─ r1 10.0.0.11 (VIP on lo)
//!          /dev/vda ═══ one sbd image ═══ /dev/vda     ├─ r2 10.0.0.12 (VIP on lo)
//!                                                      └─ client 10.0.0.50
#![cfg(feature = "lab")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs_tests::agent::bin;
use lvs_tests::cluster::{install_ocf_agent, must, wait_for, Cluster, LogMark};
use lvs_tests::topo::{daemon_pid, daemons_left, http_get, ip, weights_in, Host};

#[path = "failover/heartbeat.rs"]
mod heartbeat;

const NODES: [(&str, [&str; 2]); 2] = [("node-a", ["10.0.0.1", "10.1.0.1"]), ("node-b", ["10.0.0.2", "10.1.0.2"])];
const MAC_A: &str = "52:54:00:4c:56:0a";
const MAC_B: &str = "52:54:00:4c:56:0b";
const MAC_A1: &str = "52:54:00:4c:57:0a";
const MAC_B1: &str = "52:54:00:4c:57:0b";
/// node-a's control port on the service LAN: "power off" (a pulled plug) and
/// "report" (what node-a has configured, printed when a flow breaks).
const CONTROL: &str = "10.0.0.1:7777";
const VIP: &str = "10.0.0.100";
/// Set (on the host) to run the heartbeat pair only, without the Pacemaker
/// scenarios (for work on it; the lane runs both).
const HEARTBEAT_ONLY: &str = "LVS_PAIR_HEARTBEAT_ONLY";
/// The SBD disk as both guests see it.
const SBD_DISK: &str = "/dev/vda";
/// SBD timeouts written to the disk: the watchdog fires after 10 s without a
/// healthy loop (emulated guests stall for seconds under load), and a
/// poison pill counts as delivered after msgwait 20 s (twice the watchdog).
const SBD_WATCHDOG_S: &str = "10";
const SBD_MSGWAIT_S: &str = "20";
/// The lane fails when node-a's power loss takes longer than this to become
/// a served request through node-b: token 5 s + consensus 6 s +
/// priority-fencing-delay 20 s (node-a held the group; Pacemaker cannot
/// tell a dead node from a split brain) + fence_sbd (msgwait 20 s) +
/// starting the group; generous for a loaded 2-core host.
const FAILOVER_BOUND: Duration = Duration::from_secs(180);

/// The cluster properties of the pair. priority-fencing-delay delays fencing
/// of the node whose resources have the higher priority (the group's
/// priority=10), so in a split brain the director without the group dies
/// first. No no-quorum-policy=ignore: corosync's two_node keeps the
/// survivor quorate.
const PROPERTIES: [(&str, &str); 4] = [
    ("stonith-enabled", "true"),
    ("priority-fencing-delay", "20s"),
    ("stonith-timeout", "120s"),
    ("dc-deadtime", "2s"),
];

// No nic: each director finds its own (eth0 on both; a bridge on node-b).
// vip last in the group: a director announces the VIP only once its table
// is built, and on stop gives the VIP up first. With vip first, the old
// director kept the VIP while it dismantled service and reals, and its own
// TCP stack reset the synced connections the client still sent it (seen:
// resets from the old director's MAC during a planned move).
// fall=3, check_timeout=2: two emulated VMs share 2 cores here, and one check
// missing a 1 s deadline quiesced r1 for a request in a 30-request split (CI,
// 9:21); the lane proves failover, not detection speed (lab_reals does that).
const CONFIG: &str = r#"primitive fence-sbd stonith:fence_sbd params devices=/dev/vda pcmk_host_list="node-a node-b" op start timeout=120s op monitor interval=60s timeout=120s
primitive vip ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=24 arp_count=3 on_duplicate=refuse op monitor interval=5s
primitive web ocf:lvs:service params service=tcp:10.0.0.100:80 scheduler=wrr op monitor interval=5s
primitive reals ocf:lvs:realservers params service=tcp:10.0.0.100:80 real="10.0.0.11:80 gate 1, 10.0.0.12:80 gate 2" check=http request=/test.html receive=test check_interval=1 check_timeout=2 fall=3 quiescent=true op monitor interval=2s timeout=20s
primitive sorry ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=127.0.0.1:80 op monitor interval=5s
group lvs web reals sorry vip meta priority=10
location lvs-prefers-a lvs 100: node-a
"#;

#[test]
fn two_directors_fail_over() {
    match std::env::var("LVS_FAILOVER_ROLE").as_deref() {
        Ok("a") => node_a(),
        Ok("a-heartbeat") => heartbeat::node_a(),
        Ok("b") => node_b(),
        _ => {
            assert!(std::env::var_os("LVS_IN_LAB").is_none(), "run this test on the host: it boots two lab VMs");
            host();
        }
    }
}

// ---- host: two VMs, two wires, one shared disk ----

/// A booted lab VM; its relaying threads end with its output.
struct Vm {
    child: Child,
    /// Every line it printed, as relayed.
    out: Arc<Mutex<Vec<String>>>,
    relays: Vec<JoinHandle<()>>,
}

/// What the host needs to boot node-a (again) and to reach node-b's monitor.
struct Lab {
    dir: PathBuf,
    ports: [u16; 2],
    node_a: Mutex<Vec<Child>>,
}

impl Lab {
    fn disk(&self) -> PathBuf {
        self.dir.join("sbd.img")
    }
    fn monitor(&self) -> PathBuf {
        self.dir.join("node-b.monitor")
    }
}

/// One lab VM running this test in `role` with `args` for tests/lab/lab;
/// its output is relayed with a prefix, kept, and each line handed to
/// `on_line`.
fn boot(role: &str, args: &[String], on_line: impl Fn(&str) + Send + Sync + 'static) -> Vm {
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/lab/lab");
    let me = std::env::current_exe().expect("own path");
    let mut child = Command::new(lab)
        .args(["--mem", "1536", "--timeout", "2700", "--watchdog"])
        .args(args)
        .args(["--env", &format!("LVS_FAILOVER_ROLE={role}"), "--"])
        .arg(me)
        .args(["--exact", "two_directors_fail_over", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/lab/lab");
    let kept = Arc::new(Mutex::new(Vec::new()));
    let on_line = Arc::new(on_line);
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
        let on_line = on_line.clone();
        relays.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{tag}{line}");
                on_line(&line);
                if let Ok(mut k) = kept.lock() {
                    k.push(line);
                }
            }
        }));
    }
    Vm { child, out: kept, relays }
}

impl Lab {
    /// tests/lab/lab's options for one director: both wires (`side` is
    /// "listen" or "connect") with its MACs, and the shared disk.
    fn wires(&self, side: &str, macs: [&str; 2]) -> Vec<String> {
        let mut args = Vec::new();
        for (port, mac) in self.ports.iter().zip(macs) {
            args.extend(["--link".to_string(), format!("{side}:{port}"), "--mac".into(), mac.into()]);
        }
        args.extend(["--disk".to_string(), self.disk().display().to_string()]);
        args
    }
}

/// Boots node-a in `role`: "a" (the Pacemaker pair) or "a-heartbeat".
fn boot_node_a(lab: &Lab, role: &str) {
    let vm = boot(role, &lab.wires("connect", [MAC_A, MAC_A1]), |_| {});
    // node-a's output ends with its power; nobody waits for its relays.
    drop(vm.relays);
    lab.node_a.lock().expect("node-a list").push(vm.child);
}

/// One command on qemu's human monitor; returns what it answered.
fn hmp(socket: &Path, command: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let prompt = |s: &mut UnixStream| -> std::io::Result<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&got).contains("(qemu) ") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    };
    prompt(&mut s)?;
    s.write_all(format!("{command}\n").as_bytes())?;
    prompt(&mut s)
}

/// What node-b asks of the host ("HOST: ..." lines).
fn serve_node_b(lab: &Lab, line: &str) {
    // Anywhere in the line: the first one may follow the test harness's
    // "test ... " without a newline.
    let Some((_, ask)) = line.trim().split_once("HOST: ") else { return };
    match ask {
        "set_link wire1 off" | "set_link wire1 on" => match hmp(&lab.monitor(), ask) {
            Ok(_) => println!("host: {ask} done on node-b's qemu"),
            Err(e) => println!("host: {ask} failed: {e}"),
        },
        "boot node-a" | "boot node-a for heartbeat" => {
            // The fenced node-a's qemu exits on the reset; make sure.
            for mut c in lab.node_a.lock().expect("node-a list").drain(..) {
                let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
                let _ = c.wait();
            }
            boot_node_a(lab, if ask.ends_with("heartbeat") { "a-heartbeat" } else { "a" });
            println!("host: node-a booted again");
        }
        other => println!("host: node-b asked for something unknown: {other}"),
    }
}

fn host() {
    let port = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let dir = std::env::temp_dir().join(format!("lvs-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("lab dir");
    let lab = Arc::new(Lab { dir, ports: [port(), port()], node_a: Mutex::new(Vec::new()) });
    // The SBD disk: node-b writes the header (sbd needs O_DIRECT, which the
    // host's file systems here refuse), node-a waits for it.
    std::fs::File::create(lab.disk()).and_then(|f| f.set_len(8 << 20)).expect("sbd image");

    // node-b listens on both wires, so node-a can be booted again and
    // reconnect after it was fenced.
    let mut b_args = lab.wires("listen", [MAC_B, MAC_B1]);
    if std::env::var_os(HEARTBEAT_ONLY).is_some() {
        b_args.extend(["--env".to_string(), format!("{HEARTBEAT_ONLY}=1")]);
    }
    b_args.extend(["--monitor".to_string(), lab.monitor().display().to_string()]);
    let served = lab.clone();
    let Vm { child: mut b, out: b_out, relays: b_relays } = boot("b", &b_args, move |l| serve_node_b(&served, l));
    wait_for("node-b's ends of the wires", Duration::from_secs(60), || {
        lab.ports.iter().all(|p| must("ss", &["-Hltn", &format!("sport = :{p}")]).contains("LISTEN")).then_some(())
    });
    // node-b asks for node-a's boot when it runs the heartbeat pair only.
    if std::env::var_os(HEARTBEAT_ONLY).is_none() {
        boot_node_a(&lab, "a");
    }
    let b_status = b.wait().expect("wait for node-b");
    for r in b_relays {
        let _ = r.join();
    }
    for mut c in lab.node_a.lock().expect("node-a list").drain(..) {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&lab.dir);
    assert!(b_status.success(), "node-b (the test's driver) failed: {b_status}");
    // An exit status of 0 also comes from a run of 0 tests (a renamed test
    // would not match --exact): node-b's own output must show it passed.
    let out = b_out.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(
        out.iter().any(|l| l.trim().starts_with("test result: ok. 1 passed; 0 failed")),
        "node-b's output does not show its one test passing"
    );
    let figures: Vec<&str> = out.iter().map(|l| l.trim()).filter(|l| l.starts_with("pair: ")).collect();
    let expected = if std::env::var_os(HEARTBEAT_ONLY).is_some() { 0 } else { 8 };
    assert_eq!(figures.len(), expected, "node-b printed every figure: {figures:?}");
    for f in figures {
        println!("two-node lane: {f}");
    }
    let figures: Vec<&str> = out.iter().map(|l| l.trim()).filter(|l| l.starts_with("heartbeat pair: ")).collect();
    assert_eq!(figures.len(), heartbeat::FIGURES, "node-b printed every heartbeat figure: {figures:?}");
    for f in figures {
        println!("two-node lane: {f}");
    }
}

// ---- both directors ----

/// The service LAN's interface on both directors. node-b's is a bridge
/// (its NIC, renamed lan0, is a port of it, and so are its namespace-hosts)
/// named eth0 like node-a's NIC, so both run one configuration: heartbeat's
/// haresources must be identical on both nodes and names the interface.
const LAN: &str = "eth0";

/// Both wires up with this node's addresses; on node-b (`bridge`) the LAN
/// is a bridge over the NIC.
fn wires(eth0: &str, eth1: &str, bridge: bool) {
    if bridge {
        ip(&["link", "set", "eth0", "down"]);
        ip(&["link", "set", "eth0", "name", "lan0"]);
        // Fixed, so it does not follow the lowest MAC of the ports added later.
        ip(&["link", "add", LAN, "address", MAC_B, "type", "bridge"]);
        ip(&["link", "set", "lan0", "master", LAN]);
        ip(&["link", "set", "lan0", "up"]);
    }
    ip(&["addr", "add", eth0, "dev", LAN]);
    ip(&["addr", "add", eth1, "dev", "eth1"]);
    for l in [LAN, "eth1"] {
        ip(&["link", "set", l, "up"]);
    }
    for a in ["vip", "service", "realservers", "sorry", "sync"] {
        install_ocf_agent(a);
    }
}

/// sbd watching this node's slot on the shared disk, with the watchdog and
/// Pacemaker integration (started before corosync, as its unit would be).
fn start_sbd(node: &str) {
    assert!(Path::new("/dev/watchdog").exists(), "no /dev/watchdog: the lab's i6300esb is missing");
    wait_for("the SBD header on the shared disk", Duration::from_secs(300), || {
        Command::new("sbd").args(["-d", SBD_DISK, "dump"]).output().ok()?.status.success().then_some(())
    });
    // -S 0: a node fenced before may rejoin (Debian's SBD_STARTMODE=always).
    must(
        "sbd",
        &["-d", SBD_DISK, "-W", "-w", "/dev/watchdog", "-P", "-S", "0", "-n", node, "-p", "/run/sbd.pid", "watch"],
    );
    wait_for("sbd's watchers", Duration::from_secs(30), || {
        let ps = must("ps", &["ax", "-o", "args"]);
        (ps.contains("sbd: watcher: /dev/vda") && ps.contains("sbd: watcher: Pacemaker")).then_some(())
    });
}

/// Stops sbd cleanly (it disarms the watchdog) before the cluster stops, so
/// the end of the test is not taken for a failure.
fn stop_sbd() {
    let pid = std::fs::read_to_string("/run/sbd.pid").unwrap_or_default().trim().to_string();
    if pid.is_empty() {
        return;
    }
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    wait_for("sbd to stop", Duration::from_secs(30), || (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()));
}

fn members() -> Vec<(&'static str, Vec<&'static str>)> {
    NODES.iter().map(|(n, a)| (*n, a.to_vec())).collect()
}

// ---- node-a: the first director; dies on request or by fencing ----

fn node_a() {
    must("hostname", &["node-a"]);
    wires("10.0.0.1/24", "10.1.0.1/24", false);
    let control = TcpListener::bind(CONTROL).expect("listen for control");
    start_sbd("node-a");
    let _cluster = Cluster::start_with(&members(), &PROPERTIES);
    println!("node-a: cluster member, sbd armed, waiting on {CONTROL}");
    loop {
        let (mut s, peer) = control.accept().expect("accept");
        let mut word = String::new();
        let _ = s.read_to_string(&mut word);
        match word.trim() {
            "power off" => {
                println!("node-a: {peer} says {word:?}: powering off without a goodbye");
                // Power loss, not shutdown: corosync must notice the silence.
                std::fs::write("/proc/sysrq-trigger", "o").expect("sysrq");
                std::thread::sleep(Duration::from_secs(60));
                panic!("node-a still running after sysrq poweroff");
            }
            "report" => {
                let report = format!(
                    "== addresses\n{}== ipvs\n{}== daemons\n{:?}\n== state\n{}\n== connections\n{}{}== crm_mon\n{}",
                    must("ip", &["-4", "addr", "show"]),
                    must("ipvsadm", &["-Ln"]),
                    daemons_left(&["realservers-reals", "sorry-sorry"]),
                    std::fs::read_to_string(STATE).unwrap_or_default().replace('\n', " "),
                    must("ipvsadm", &["-Lnc"]),
                    must("ipvsadm", &["-L", "--daemon"]),
                    Command::new("crm_mon")
                        .args(["-1", "-r", "--show-detail"])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default(),
                );
                let _ = s.write_all(report.as_bytes());
            }
            // A failure's dump asks for this; heartbeat's node-a answers with its own log.
            "log" => {
                let log = Command::new("tail").args(["-n", "80", "/var/log/pacemaker/pacemaker.log"]).output();
                let text = log.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
                let _ = s.write_all(format!("(pacemaker's log)\n{text}").as_bytes());
            }
            other => println!("node-a: unknown control word {other:?}"),
        }
    }
}

// ---- node-b: the standby, and the test's driver ----

/// A namespace-host plugged into node-b's bridge.
fn plug_in(name: &str, addr: &str) -> Host {
    let h = Host::new(name);
    let port = format!("lvs{name}");
    ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &h.ns]);
    ip(&["link", "set", &port, "master", LAN]);
    ip(&["link", "set", &port, "up"]);
    h.must(&["ip", "addr", "add", addr, "dev", "eth0"]);
    h.must(&["ip", "link", "set", "eth0", "up"]);
    h
}

/// The MAC the client's neighbour table holds for the VIP.
fn client_sees(client: &Host) -> Option<String> {
    let out = client.must(&["ip", "neigh", "show", VIP, "dev", "eth0"]);
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

/// Waits for the first request served through node-b after node-a lost
/// power at `lost`; returns how long that took. node-a may still answer for
/// a moment after the word, so only an answer while the client's neighbour
/// entry for the VIP is node-b's (`lan_mac`) counts.
fn served_through(client: &Host, lan_mac: &str, lost: Instant) -> Duration {
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let first = wait_for("a request served through node-b after node-a's power loss", FAILOVER_BOUND, || {
        let served = client.within(|| http_get(vip, "/", Duration::from_secs(1))).map(|_| Instant::now());
        served.filter(|_| client_sees(client).as_deref() == Some(lan_mac))
    });
    first - lost
}

/// node-b fenced node-a since `log` was marked. From the log, not from
/// stonith_admin --history, which folds repeated fences of one node into
/// one line.
fn fenced_by_node_b(log: &LogMark) {
    wait_for("node-b to have fenced node-a", Duration::from_secs(60), || {
        log.since().contains("Operation 'reboot' targeting node-a by node-b for pacemaker-controld").then_some(())
    });
}

/// No service for the VIP (not only no destinations), no pidfile, no
/// lvs-realservers or lvs-sorry process on this node.
fn nothing_left(when: &str) {
    let table = must("ipvsadm", &["-Ln"]);
    assert!(!table.contains(VIP), "{when}: the VIP's service is still in the table:\n{table}");
    assert_eq!(daemons_left(&["realservers-reals", "sorry-sorry"]), Vec::<String>::new(), "{when}: daemons left");
}

/// The fencer's record of the last successful fencing of `node` ("reboot
/// of node-a successful: ..., last-successful='...'"), if any. Pacemaker
/// folds repeated fencing of one node into one line with the latest time,
/// so a new fence shows as a changed line, not as a second one.
fn fenced(node: &str) -> Option<String> {
    let out = Command::new("stonith_admin").args(["--history", node]).output().expect("stonith_admin");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find(|l| l.contains(&format!("of {node} successful"))).map(|l| l.trim().to_string())
}

/// Sends `word` to node-a's control port and returns its answer. A node-a
/// that loses power answers nothing and never closes: "power off" does not
/// wait for an answer, and no answer waits longer than 30 s.
fn control(word: &str) -> String {
    let mut s = TcpStream::connect(CONTROL).expect("node-a's control port");
    s.write_all(word.as_bytes()).expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    if word == "power off" {
        return String::new();
    }
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Asks the host to cut (false) or restore wire1 at node-b's NIC and waits
/// until corosync sees link 1 to node-a in that state.
fn wire1(up: bool) {
    println!("HOST: set_link wire1 {}", if up { "on" } else { "off" });
    wait_for(
        &format!("corosync's link 1 to node-a {}", if up { "up" } else { "down" }),
        Duration::from_secs(60),
        || (link_up(1) == Some(up)).then_some(()),
    );
}

/// Whether corosync (`corosync-cfgtool -s`) sees its link `link` to node 1
/// (node-a) connected; None if it does not list it.
fn link_up(link: u32) -> Option<bool> {
    let out = Command::new("corosync-cfgtool").arg("-s").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let section = text.split("LINK ID ").find(|s| s.starts_with(&format!("{link} ")))?.to_string();
    let line =
        section.lines().find(|l| l.trim().starts_with("nodeid") && l.split(':').nth(1).map(str::trim) == Some("1"))?;
    Some(line.trim().ends_with("connected") && !line.contains("disconnected"))
}

/// Cuts (or restores) corosync's link 0 on the service LAN at node-b: its
/// knet UDP port on its LAN bridge, in both directions; service traffic keeps flowing.
fn link0(up: bool) {
    if up {
        must("nft", &["delete", "table", "inet", "lvs_cut"]);
    } else {
        must("nft", &["add", "table", "inet", "lvs_cut"]);
        for (chain, hook, dir) in [("in", "input", "iifname"), ("out", "output", "oifname")] {
            must(
                "nft",
                &["add", "chain", "inet", "lvs_cut", chain, &format!("{{ type filter hook {hook} priority 0 ; }}")],
            );
            must("nft", &["add", "rule", "inet", "lvs_cut", chain, dir, LAN, "udp", "dport", "5405", "drop"]);
            must("nft", &["add", "rule", "inet", "lvs_cut", chain, dir, LAN, "udp", "sport", "5405", "drop"]);
        }
    }
}

/// What the client saw while a [`Watch`] ran.
struct Seen {
    /// (time, MAC) of every ARP packet whose sender address is the VIP.
    claims: Vec<(Instant, String)>,
    /// (time, MAC) of the gratuitous ones among them (the VIP asking for
    /// itself: an announcement, not an answer).
    gratuitous: Vec<(Instant, String)>,
    /// Times of requests through the VIP that were answered.
    served: Vec<Instant>,
    asked: usize,
}

impl Seen {
    /// The longest time between two answered requests (or from `from` to
    /// the first) up to `to`.
    fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut gap = Duration::ZERO;
        for t in self.served.iter().filter(|t| **t >= from && **t <= to) {
            gap = gap.max(*t - last);
            last = *t;
        }
        gap.max(to.saturating_duration_since(last))
    }
}

/// The client's view while a scenario runs: tcpdump of every ARP packet on
/// its wire, and every 200 ms an ARP request for the VIP (arping) and an
/// HTTP request through it.
struct Watch {
    tcpdump: Child,
    claims: Arc<Mutex<Vec<(Instant, String, bool)>>>,
    reader: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    asker: JoinHandle<(Vec<Instant>, usize)>,
}

impl Watch {
    fn start(client: &Host) -> Watch {
        let mut tcpdump = Command::new("ip")
            .args(["netns", "exec", &client.ns, "tcpdump", "-l", "-n", "-e", "-t", "-i", "eth0", "arp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump");
        let claims = Arc::new(Mutex::new(Vec::new()));
        let out = tcpdump.stdout.take().expect("tcpdump stdout");
        let kept = claims.clone();
        let reader = std::thread::spawn(move || {
            // "52:54:..:0b > ..., ethertype ARP (0x0806), length 42: Reply 10.0.0.100 is-at 52:54:..:0b, length 28"
            // or a gratuitous "Request who-has 10.0.0.100 tell 10.0.0.100, ..."
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let announced = line.contains(&format!("tell {VIP},"));
                let from_vip = line.contains(&format!("Reply {VIP} is-at")) || announced;
                if let (true, Some(mac)) = (from_vip, line.split_whitespace().next()) {
                    kept.lock().expect("claims").push((Instant::now(), mac.to_string(), announced));
                }
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{}", client.ns);
        let stopped = stop.clone();
        let asker = std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
            let (mut served, mut asked) = (Vec::new(), 0);
            while !stopped.load(Ordering::Relaxed) {
                let _ = Command::new("arping").args(["-q", "-c", "1", "-w", "1", "-I", "eth0", VIP]).status();
                asked += 1;
                if http_get(vip, "/", Duration::from_secs(1)).is_some() {
                    served.push(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (served, asked)
        });
        Watch { tcpdump, claims, reader, stop, asker }
    }

    fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let (served, asked) = self.asker.join().expect("asker");
        let _ = self.tcpdump.kill();
        let _ = self.tcpdump.wait();
        let _ = self.reader.join();
        let all = self.claims.lock().expect("claims").clone();
        let claims = all.iter().map(|(t, m, _)| (*t, m.clone())).collect();
        let gratuitous = all.into_iter().filter(|(_, _, g)| *g).map(|(t, m, _)| (t, m)).collect();
        Seen { claims, gratuitous, served, asked }
    }
}

/// 30 requests through the serving director (whose table and health
/// state `read` returns, see [`director_b`], [`director_a`]) split 10:20
/// over r1 (weight 1) and r2 (weight 2).
///
/// First waits until that table holds exactly the two reals at those
/// weights and no sorry fallback: any edit or removal of a destination
/// (sorry removing its fallback once a real has weight) puts the kernel's
/// wrr round back at the list head, which shifts one request of a split.
/// Each split comes from a client address of its own: a request whose
/// address and port match a connection entry the director already has (its
/// own, or one synced from the other director) follows that entry, not the
/// scheduler (seen: 11:19 with only 28 new entries in the table).
/// Even so a split is now and then one request off (CI: 11:19 with 30 new
/// entries and both reals healthy throughout, after the move back with
/// sync; a health transition, a check timing out on the emulated VMs, does
/// the same). A lab run of 48 splits through one director with the same
/// agents, their monitors and a sync daemon, but no peer, saw none off. So
/// a split that is off is repeated from a new address, at most twice:
/// weights that are not 1:2 (1:1 gives 15:15, one real alone 30:0) fail
/// all three.
fn wrr_split(client: &Host, via: &str, read: impl Fn() -> Director) {
    static NEXT_SOURCE: AtomicU32 = AtomicU32::new(60);
    let settled = |t: &str| {
        let w = weights_in(t);
        w.len() == 2 && w.get("10.0.0.11:80") == Some(&1) && w.get("10.0.0.12:80") == Some(&2)
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        wait_for(&format!("only r1 (1) and r2 (2) in the table of {via}"), Duration::from_secs(30), || {
            settled(&read().table).then_some(())
        });
        let host = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed);
        assert!(host < 100, "wrr_split ran out of client addresses (10.0.0.100 is the VIP)");
        let source = format!("10.0.0.{host}");
        client.must(&["ip", "addr", "add", &format!("{source}/24"), "dev", "eth0"]);
        let before = read().transitions();
        let c = client.within(|| requests_from(&source, 30));
        if (c.get("r1"), c.get("r2")) == (Some(&10), Some(&20)) {
            return;
        }
        let now = read();
        let after = now.transitions();
        let health = if after == before { "no health transition meanwhile" } else { "a health transition meanwhile" };
        println!("wrr split through {via} from {source}: {c:?}, {health} ({before:?} -> {after:?}): again");
        let entries = if via.starts_with("node-b") { must("ipvsadm", &["-Lnc"]) } else { String::new() };
        seen.push(format!("from {source}: {c:?}, {health}; the table then:\n{}\n{entries}", now.table));
    }
    panic!("wrr 1:2 through {via}: three splits, none 10:20:\n{}", seen.join("\n"));
}

/// `n` HTTP/1.0 requests for `/` to the VIP from `source` (an address of
/// the calling thread's namespace); counts of answers by body, "failed"
/// for requests that got none.
fn requests_from(source: &str, n: usize) -> std::collections::HashMap<String, usize> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let get = || -> Result<String, String> {
        let fd =
            socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| e.to_string())?;
        let from: std::net::SocketAddrV4 = format!("{source}:0").parse().map_err(|e| format!("{e}"))?;
        let to: std::net::SocketAddrV4 = format!("{VIP}:80").parse().map_err(|e| format!("{e}"))?;
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(from)).map_err(|e| format!("bind: {e}"))?;
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).map_err(|e| format!("connect: {e}"))?;
        let mut s = TcpStream::from(fd);
        s.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
        write!(s, "GET / HTTP/1.0\r\nHost: {VIP}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        answer.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string()).ok_or_else(|| format!("no body: {answer:?}"))
    };
    let mut counts = std::collections::HashMap::new();
    for i in 0..n {
        let key = get().unwrap_or_else(|why| {
            println!("request {} of {n} from {source} failed: {why}", i + 1);
            "failed".into()
        });
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// What [`wrr_split`] reads of the serving director.
struct Director {
    /// `ipvsadm -Ln` (node-a's whole report).
    table: String,
    /// The realservers daemon's state file.
    state: String,
}

impl Director {
    /// Each real's health and the time of its last transition.
    fn transitions(&self) -> Vec<(String, bool, u64)> {
        let v: serde_json::Value = serde_json::from_str(&self.state).unwrap_or_default();
        let reals = v["reals"].as_array().cloned().unwrap_or_default();
        reals
            .iter()
            .map(|r| {
                let real = r["real"].as_str().unwrap_or_default().to_string();
                (real, r["up"].as_bool().unwrap_or_default(), r["since"].as_u64().unwrap_or_default())
            })
            .collect()
    }
}

const STATE: &str = "/run/lvs-agents/realservers-reals.state";

fn director_b() -> Director {
    Director { table: must("ipvsadm", &["-Ln"]), state: std::fs::read_to_string(STATE).unwrap_or_default() }
}

fn director_a() -> Director {
    let report = control("report");
    let state = report.split_once("== state\n").map(|(_, s)| s.lines().next().unwrap_or_default().to_string());
    Director { table: report, state: state.unwrap_or_default() }
}

/// Processes in uninterruptible sleep, with where in the kernel they wait.
const D_STATE: &str = "ps -eo pid,stat,etime,wchan:32,args | awk 'NR == 1 || $2 ~ /D/'; \
    for p in $(ps -eo pid=,stat= | awk '$2 ~ /D/ {print $1}'); do echo \"== $p\"; cat /proc/$p/stack; done";

/// On a failed assertion, what node-b's cluster looked like (the VM and its
/// logs are gone once the test ends).
fn diagnose_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        for (cmd, args) in [
            ("crm_mon", &["-1", "-r", "-f", "--show-detail"][..]),
            ("stonith_admin", &["--history", "*"][..]),
            ("corosync-cfgtool", &["-s"][..]),
            ("sh", &["-c", "grep -E 'fence|stonith|sbd|error' /var/log/pacemaker/pacemaker.log | tail -n 40"][..]),
            ("sh", &["-c", "tail -n 60 /var/log/ha-log"][..]),
            // A process stuck on the shared disk (sbd's I/O) is in D state.
            ("sh", &["-c", D_STATE][..]),
            ("sh", &["-c", "echo w > /proc/sysrq-trigger; dmesg | tail -n 60"][..]),
        ] {
            if let Ok(o) = Command::new(cmd).args(args).output() {
                println!(
                    "== {cmd} {}\n{}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        if let Some(log) = heartbeat::node_a_log() {
            println!("== node-a's log\n{log}");
        }
        default(info);
    }));
}

fn node_b() {
    diagnose_on_panic();
    must("hostname", &["node-b"]);
    wires("10.0.0.2/24", "10.1.0.2/24", true);
    let lan_mac = std::fs::read_to_string(format!("/sys/class/net/{LAN}/address")).expect("LAN mac").trim().to_string();

    // DR real servers: the VIP on lo by our own agent (mode=realserver sets
    // arp_ignore/arp_announce in their namespaces), and an HTTP server with
    // keep-alive and a throttled download on every address.
    let mut reals = Vec::new();
    for (name, addr) in [("r1", "10.0.0.11/24"), ("r2", "10.0.0.12/24")] {
        let r = plug_in(name, addr);
        let vip = bin("lvs-vip");
        r.must(&[
            "env",
            "OCF_RESKEY_ip=10.0.0.100",
            "OCF_RESKEY_mode=realserver",
            vip.to_str().expect("path"),
            "start",
        ]);
        serve_real(&r, name);
        reals.push(r);
    }
    let client = plug_in("client", "10.0.0.50/24");
    if std::env::var_os(HEARTBEAT_ONLY).is_some() {
        heartbeat::run(&client, &lan_mac);
        return;
    }

    // The shared disk gets its header here, once; node-a waits for it.
    must("sbd", &["-d", SBD_DISK, "-1", SBD_WATCHDOG_S, "-4", SBD_MSGWAIT_S, "create"]);
    start_sbd("node-b");
    let cluster = Cluster::start_with(&members(), &PROPERTIES);
    println!("node-b: both nodes online, fencing on");
    let cfg = std::env::temp_dir().join("lvs-failover.crm");
    std::fs::write(&cfg, CONFIG).expect("config");
    must("crm", &["configure", "load", "update", cfg.to_str().expect("path")]);
    wait_for("fence-sbd Started", Duration::from_secs(300), || {
        (cluster.role("fence-sbd").as_deref() == Some("Started")).then_some(())
    });
    let watchdog = must("crm_attribute", &["-t", "crm_config", "-n", "have-watchdog", "-G", "-q"]);
    assert_eq!(watchdog.trim(), "true", "Pacemaker sees sbd's watchdog");

    // node-a directs: its VIP, its table; node-b holds nothing.
    group_on(&cluster, "node-a", Duration::from_secs(120));
    println!("{}", cluster.status());
    wrr_split(&client, "node-a", director_a);
    assert_eq!(client_sees(&client).as_deref(), Some(MAC_A), "the client reaches the VIP at node-a");
    assert!(!must("ip", &["addr", "show", LAN]).contains(VIP), "node-b holds no VIP");
    assert!(weights_in(&must("ipvsadm", &["-Ln"])).is_empty(), "node-b has no table: {}", must("ipvsadm", &["-Ln"]));
    assert!(daemon_pid("realservers-reals").is_none(), "node-b runs no health daemon");

    // 1. A planned switchover and back, fencing on: crm_resource --move, then
    // --clear lets the location preference bring the group home. node-b's
    // stop must leave nothing behind, and each start moves the client by ARP.
    // Without connection sync the move breaks the client's connections (the
    // control); with the ocf:lvs:sync clone the move back breaks none.
    let began = Instant::now();
    let flows = Flows::start(&client, DOWNLOAD_BYTES);
    must("crm_resource", &["--move", "-r", "lvs", "-N", "node-b"]);
    group_on(&cluster, "node-b", Duration::from_secs(120));
    wait_for("the client to follow the move to node-b", Duration::from_secs(10), || {
        (client_sees(&client).as_deref() == Some(lan_mac.as_str())).then_some(())
    });
    let (dl, sessions) = flows.finish(Duration::from_secs(3));
    let without_sync = flows_line(&dl, &sessions);
    assert!(
        dl.broken.is_some() || sessions.iter().any(|s| s.broken.is_some()),
        "without connection sync a move must break connections, or this lane cannot tell: {without_sync}"
    );
    assert!(daemon_pid("realservers-reals").is_some(), "node-b runs the health daemon after --move");
    wrr_split(&client, "node-b after --move", director_b);

    must(
        "crm",
        &[
            "configure",
            "primitive",
            "sync",
            "ocf:lvs:sync",
            "params",
            "interface=eth1",
            "syncid=5",
            "op",
            "monitor",
            "interval=10s",
        ],
    );
    must("crm", &["configure", "clone", "sync-clone", "sync"]);
    wait_for("the sync clone on both directors", Duration::from_secs(120), || {
        cluster.status().contains("Started: [ node-a node-b ]").then_some(())
    });
    let flows = Flows::start(&client, DOWNLOAD_BYTES);
    must("crm_resource", &["--clear", "-r", "lvs"]);
    group_on(&cluster, "node-a", Duration::from_secs(120));
    wait_for("the client to follow the group home", Duration::from_secs(10), || {
        (client_sees(&client).as_deref() == Some(MAC_A)).then_some(())
    });
    let (dl, sessions) = flows.finish(Duration::from_secs(3));
    assert_survived("the move back with ocf:lvs:sync", &dl, &sessions);
    let with_sync = flows_line(&dl, &sessions);
    assert!(!must("ip", &["addr", "show", LAN]).contains(VIP), "node-b released the VIP");
    nothing_left("node-b's stop after --clear");
    wrr_split(&client, "node-a again", director_a);
    assert_eq!((fenced("node-a"), fenced("node-b")), (None, None), "a planned move fences nobody");
    println!("pair: planned move to node-b and back in {:.1} s, nobody fenced", began.elapsed().as_secs_f64());
    println!("pair: planned move without connection sync (control): {without_sync}");
    println!("pair: planned move with ocf:lvs:sync: {with_sync}");

    // 2. One heartbeat link lost (the dedicated wire): corosync carries on
    // over link 0; nothing moves and nobody is fenced.
    let began = Instant::now();
    wire1(false);
    println!("{}", must("corosync-cfgtool", &["-s"]));
    // Four token timeouts: were the loss fatal, Pacemaker would have acted.
    std::thread::sleep(Duration::from_secs(20));
    let status = cluster.status();
    assert!(status.contains("Online: [ node-a node-b ]"), "both nodes stay online on one link:\n{status}");
    group_on(&cluster, "node-a", Duration::from_secs(1));
    assert_eq!((fenced("node-a"), fenced("node-b")), (None, None), "one lost link fences nobody");
    assert_eq!(link_up(0), Some(true), "link 0 still carries the cluster");
    wrr_split(&client, "node-a with one heartbeat link", director_a);
    wire1(true);
    println!(
        "pair: one heartbeat link down for {:.1} s: link 1 reported down, nothing moved, nobody fenced",
        began.elapsed().as_secs_f64()
    );

    // 3. The guard without fencing, the one place fencing is off: a forced
    // split brain in which nothing can make one side die. node-b's
    // partition starts the group; its vip (on_duplicate=refuse) hears
    // node-a answer for the VIP and fails its start with nothing
    // configured, so the VIP stays single by the agent alone.
    must("crm", &["configure", "property", "stonith-enabled=false"]);
    let watch = Watch::start(&client);
    std::thread::sleep(Duration::from_secs(2));
    let cut = Instant::now();
    link0(false);
    wire1(false);
    // --show-detail: without it crm_mon words failed actions differently.
    let status = wait_for("node-b's vip start refused", Duration::from_secs(240), || {
        let s = must("crm_mon", &["-1", "-r", "--show-detail"]);
        s.contains("vip_start_0 on node-b 'error'").then_some(s)
    });
    let refused = Instant::now();
    println!("node-b's partition:\n{status}");
    assert!(status.contains("refusing to take it"), "the exit reason says why:\n{status}");
    assert!(!must("ip", &["addr", "show", LAN]).contains(VIP), "node-b's refused vip configured nothing");
    std::thread::sleep(Duration::from_secs(5));
    let seen = watch.stop();
    let end = Instant::now();
    link0(true);
    wire1(true);
    let foreign: Vec<&(Instant, String)> = seen.claims.iter().filter(|(_, m)| m != MAC_A).collect();
    assert!(foreign.is_empty(), "only node-a answers for the VIP without fencing too; also seen: {foreign:?}");
    assert!(seen.claims.iter().any(|(t, _)| *t >= refused), "the client asked after the refusal and got answers");
    let gap = seen.longest_gap(cut, end);
    assert!(gap < Duration::from_secs(10), "the client kept being served; longest gap {gap:?}");
    // The partitions merge: Pacemaker finds the group's first members
    // active on both directors and keeps node-a's; node-b's failed start is
    // cleaned up and node-b keeps nothing. Then fencing is back on.
    wait_for("the partitions merged", Duration::from_secs(120), || {
        cluster.status().contains("Online: [ node-a node-b ]").then_some(())
    });
    must("crm_resource", &["--cleanup", "-r", "vip"]);
    group_on(&cluster, "node-a", Duration::from_secs(120));
    wait_for("node-b keeps nothing after the merge", Duration::from_secs(60), || {
        (!must("ipvsadm", &["-Ln"]).contains(VIP) && daemons_left(&["realservers-reals", "sorry-sorry"]).is_empty())
            .then_some(())
    });
    nothing_left("node-b after the merge");
    assert!(!must("ip", &["addr", "show", LAN]).contains(VIP), "node-b holds no VIP after the merge");
    must("crm", &["configure", "property", "stonith-enabled=true"]);
    assert_eq!((fenced("node-a"), fenced("node-b")), (None, None), "nobody was fenced");
    // node-a's group was restarted by the merge: its new health daemon
    // weights the reals after its checks.
    wait_for("both reals weighted on node-a after the merge", Duration::from_secs(30), || {
        let w = weights_in(&control("report"));
        (w.get("10.0.0.11:80") == Some(&1) && w.get("10.0.0.12:80") == Some(&2)).then_some(())
    });
    wrr_split(&client, "node-a after the merge", director_a);
    println!(
        "pair: guard without fencing: node-b's vip refused to start {:.1} s after both links were cut (on_duplicate=refuse); {} ARP answers for the VIP, all from node-a; longest gap between served requests {:.1} s",
        (refused - cut).as_secs_f64(),
        seen.claims.len(),
        gap.as_secs_f64()
    );

    // 4. Power loss of the active director, with ocf:lvs:sync. From here
    // the client sends nothing until it is served again, so only node-b's
    // gratuitous ARP can change its neighbour entry. The download is
    // DOWNLOAD_LONG here: longer than the failover takes.
    let flows = Flows::start(&client, DOWNLOAD_LONG);
    let log = LogMark::now("/var/log/pacemaker/pacemaker.log");
    let lost = Instant::now();
    control("power off");
    let took = served_through(&client, &lan_mac, lost);
    group_on(&cluster, "node-b", Duration::from_secs(120));
    println!("{}", cluster.status());
    fenced_by_node_b(&log);
    assert!(must("ip", &["addr", "show", LAN]).contains("10.0.0.100/24"), "the VIP is on node-b's LAN bridge");
    assert_eq!(client_sees(&client).as_deref(), Some(lan_mac.as_str()), "gratuitous ARP moved the client to node-b");
    let pid = daemon_pid("realservers-reals").expect("node-b's health daemon");
    wait_for("both reals weighted on node-b", Duration::from_secs(15), || {
        let w = weights_in(&must("ipvsadm", &["-Ln"]));
        (w.get("10.0.0.11:80") == Some(&1) && w.get("10.0.0.12:80") == Some(&2)).then_some(())
    });
    wrr_split(&client, "node-b after the failover", director_b);
    let (dl, sessions) = flows.finish(Duration::from_secs(3));
    assert_survived("node-a's power loss with ocf:lvs:sync", &dl, &sessions);
    println!("pair: power loss with ocf:lvs:sync: {}", flows_line(&dl, &sessions));
    println!(
        "pair: power loss of node-a -> fenced by node-b, first request served through node-b after {:.1} s (health daemon {pid}; bound {FAILOVER_BOUND:?})",
        took.as_secs_f64()
    );

    // node-a comes back; the group stays on node-b (a stronger preference
    // than node-a's), so in the split brain below node-b holds it.
    must("crm", &["configure", "location", "lvs-prefers-b", "lvs", "200:", "node-b"]);
    println!("HOST: boot node-a");
    wait_for("node-a back online", Duration::from_secs(300), || {
        cluster.status().contains("Online: [ node-a node-b ]").then_some(())
    });
    group_on(&cluster, "node-b", Duration::from_secs(30));

    // 5. Split brain: both heartbeat links cut, both directors up, the
    // service LAN working. node-a's fence of node-b waits for
    // priority-fencing-delay; node-b's of node-a does not.
    let watch = Watch::start(&client);
    std::thread::sleep(Duration::from_secs(2));
    let log = LogMark::now("/var/log/pacemaker/pacemaker.log");
    let cut = Instant::now();
    link0(false);
    wire1(false);
    let fence_done = wait_for("node-b to fence node-a", Duration::from_secs(180), || {
        // Not from stonith_admin --history: it folds a second fencing of
        // one node into the first one's line (seen: the split brain's fence
        // completed, the history still showed the power loss's time).
        log.since()
            .contains("Operation 'reboot' targeting node-a by node-b for pacemaker-controld")
            .then_some(Instant::now())
    });
    std::thread::sleep(Duration::from_secs(10));
    let seen = watch.stop();
    let end = Instant::now();
    // node-a is fenced: the wires come back with no peer to see them by.
    link0(true);
    println!("HOST: set_link wire1 on");
    let foreign: Vec<&(Instant, String)> = seen.claims.iter().filter(|(_, m)| *m != lan_mac).collect();
    assert!(foreign.is_empty(), "only node-b may answer for the VIP in a split brain; also seen: {foreign:?}");
    let after_fence = seen.claims.iter().filter(|(t, _)| *t >= fence_done).count();
    assert!(after_fence > 0, "the client asked for the VIP after the fence and got answers ({} asked)", seen.asked);
    assert_eq!(fenced("node-b"), None, "node-b was never fenced");
    assert!(!log.since().contains("targeting node-b by"), "nobody fenced node-b:\n{}", log.since());
    group_on(&cluster, "node-b", Duration::from_secs(5));
    let gap = seen.longest_gap(cut, end);
    assert!(gap < Duration::from_secs(10), "the client kept being served; longest gap {gap:?}");
    println!(
        "pair: split brain: node-a fenced {:.1} s after both links were cut, node-b never; {} ARP answers for the VIP, all from node-b ({} after the fence); longest gap between served requests {:.1} s",
        (fence_done - cut).as_secs_f64(),
        seen.claims.len(),
        after_fence,
        gap.as_secs_f64()
    );

    // An orderly stop on node-b leaves nothing behind.
    must("crm_resource", &["-r", "lvs", "--set-parameter", "target-role", "--meta", "--parameter-value", "Stopped"]);
    for r in ["vip", "sorry", "reals", "web"] {
        cluster.wait_role(r, "Stopped", Duration::from_secs(60));
    }
    nothing_left("node-b's orderly stop");
    stop_sbd();
    drop(cluster);

    // 6. The same pair under heartbeat v1 instead (its own module).
    heartbeat::run(&client, &lan_mac);
    drop(client);
    drop(reals);
}

// ---- connections across a takeover (ocf:lvs:sync) ----

/// The throttled download: long enough to be in flight through a planned
/// move (which takes seconds).
const DOWNLOAD_BYTES: usize = 3 << 20;
/// Across a power loss: longer than the failover takes (about 60 s).
const DOWNLOAD_LONG: usize = 8 << 20;
const DOWNLOAD_CHUNK: usize = 8 << 10;
/// 8 KiB every 100 ms: 80 KiB/s, so 3 MiB take ~38 s and 8 MiB ~102 s
/// unimpeded.
const DOWNLOAD_PACE: Duration = Duration::from_millis(100);
const SESSIONS: usize = 4;
/// How long a flow may stall before it counts as broken.
const STALL_LIMIT: Duration = Duration::from_secs(240);

/// The download's byte at `i`: a position-dependent pattern, so a lost,
/// repeated or reordered byte shows.
fn pattern(i: usize) -> u8 {
    u8::try_from(i % 251).expect("below 251")
}

/// Whether the reals publish `/` (their name). The heartbeat pair's check
/// asks for `/`: without the page a real is unhealthy ("404 Not Found").
static INDEX_PAGE: AtomicBool = AtomicBool::new(true);

/// A real server's HTTP/1.1 on port 80 of every address in `h`'s namespace:
/// `/test.html` answers "test" (the health check), `/big/BYTES` the
/// throttled download, anything else the real's name (404 while
/// [`INDEX_PAGE`] is off); connections stay open unless the client asks to
/// close (the health check does).
fn serve_real(h: &Host, name: &'static str) {
    let path = format!("/run/netns/{}", h.ns);
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = TcpListener::bind("0.0.0.0:80").expect("bind :80");
        let _ = ready.send(());
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = http_connection(c, name, &INDEX_PAGE);
            });
        }
    });
    listening.recv_timeout(Duration::from_secs(10)).expect("real's server listening");
}

fn http_connection(s: TcpStream, name: &str, index: &AtomicBool) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    loop {
        let mut request = String::new();
        if r.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut close = request.trim_end().ends_with("HTTP/1.0");
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h.trim().is_empty() {
                break;
            }
            close |= h.to_ascii_lowercase().starts_with("connection: close");
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let conn = if close { "close" } else { "keep-alive" };
        if let Some(total) = path.strip_prefix("/big/").and_then(|n| n.parse::<usize>().ok()) {
            write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: {conn}\r\n\r\n")?;
            let mut sent = 0;
            while sent < total {
                let n = DOWNLOAD_CHUNK.min(total - sent);
                let chunk: Vec<u8> = (sent..sent + n).map(pattern).collect();
                w.write_all(&chunk)?;
                sent += n;
                std::thread::sleep(DOWNLOAD_PACE);
            }
        } else if path == "/test.html" || index.load(Ordering::Relaxed) {
            let body = if path == "/test.html" { "test\n".to_string() } else { format!("{name}\n") };
            write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}", body.len())?;
        } else {
            write!(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: {conn}\r\n\r\n")?;
        }
        if close {
            return Ok(());
        }
    }
}

/// How one client flow through the VIP ended.
#[derive(Debug)]
struct Flow {
    /// The real that answered (sessions), or the download's byte count.
    what: String,
    requests: usize,
    /// Why it broke, if it did.
    broken: Option<String>,
    /// The longest time without progress.
    longest_stall: Duration,
}

/// Reads one HTTP/1.1 response (status line, headers, Content-Length body).
fn read_response(r: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut status = String::new();
    match r.read_line(&mut status) {
        Ok(0) => return Err("closed".into()),
        Err(e) => return Err(e.to_string()),
        Ok(_) if !status.starts_with("HTTP/1.1 200") => return Err(format!("status {status:?}")),
        Ok(_) => {}
    }
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| e.to_string())?;
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().map_err(|_| format!("bad length {h:?}"))?;
        }
        if h.is_empty() {
            return Err("closed in the headers".into());
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body).trim().to_string())
}

/// A keep-alive session: one request every 200 ms on one connection until
/// `stop`; broken if the connection fails or another real answers.
fn session(stop: &AtomicBool) -> Flow {
    let mut flow = Flow { what: String::new(), requests: 0, broken: None, longest_stall: Duration::ZERO };
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let s = match TcpStream::connect_timeout(&vip, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            flow.broken = Some(format!("connect: {e}"));
            return flow;
        }
    };
    let _ = s.set_read_timeout(Some(STALL_LIMIT));
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let answer = w
            .write_all(format!("GET /ping HTTP/1.1\r\nHost: {VIP}\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|_| read_response(&mut r));
        match answer {
            Ok(real) if flow.what.is_empty() || flow.what == real => flow.what = real,
            Ok(real) => {
                flow.broken = Some(format!("{real} answered a session of {}", flow.what));
                return flow;
            }
            Err(e) => {
                flow.broken = Some(e);
                return flow;
            }
        }
        flow.requests += 1;
        flow.longest_stall = flow.longest_stall.max(last.elapsed());
        last = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
    }
    flow
}

/// The throttled download of `bytes`: complete, the right length, every
/// byte right.
fn download(bytes: usize) -> Flow {
    let mut flow = Flow { what: String::new(), requests: 1, broken: None, longest_stall: Duration::ZERO };
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let result = (|| -> Result<usize, String> {
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(STALL_LIMIT)).map_err(|e| e.to_string())?;
        write!(s, "GET /big/{bytes} HTTP/1.1\r\nHost: {VIP}\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).map_err(|e| e.to_string())?;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).map_err(|e| e.to_string())?;
            if h.trim().is_empty() {
                break;
            }
        }
        let (mut got, mut buf, mut last) = (0usize, vec![0u8; 64 << 10], Instant::now());
        loop {
            let n = r.read(&mut buf).map_err(|e| format!("after {got} bytes: {e}"))?;
            if n == 0 {
                break;
            }
            if let Some(i) = (0..n).find(|i| buf[*i] != pattern(got + i)) {
                return Err(format!("byte {} is wrong", got + i));
            }
            got += n;
            flow.longest_stall = flow.longest_stall.max(last.elapsed());
            last = Instant::now();
        }
        Ok(got)
    })();
    match result {
        Ok(n) if n == bytes => flow.what = format!("{n} bytes"),
        Ok(n) => flow.broken = Some(format!("ended after {n} of {bytes} bytes")),
        Err(e) => flow.broken = Some(e),
    }
    flow
}

/// A download and [`SESSIONS`] keep-alive sessions from the client through
/// the VIP, running while a takeover happens.
struct Flows {
    stop: Arc<AtomicBool>,
    download: JoinHandle<Flow>,
    sessions: Vec<JoinHandle<Flow>>,
    /// Every TCP reset the client sees, with the MAC that sent it.
    resets: Child,
}

impl Flows {
    fn start(client: &Host, bytes: usize) -> Flows {
        let resets = Command::new("ip")
            .args([
                "netns",
                "exec",
                &client.ns,
                "tcpdump",
                "-l",
                "-n",
                "-e",
                "-i",
                "eth0",
                "tcp[tcpflags] & tcp-rst != 0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump");
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{}", client.ns);
        let in_client = move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        };
        let enter = in_client.clone();
        let download = std::thread::spawn(move || {
            enter();
            download(bytes)
        });
        let sessions = (0..SESSIONS)
            .map(|_| {
                let (enter, stop) = (in_client.clone(), stop.clone());
                std::thread::spawn(move || {
                    enter();
                    session(&stop)
                })
            })
            .collect();
        // The connections are synced from their third packet on; give the
        // sync daemons a few seconds to send them.
        std::thread::sleep(Duration::from_secs(5));
        Flows { stop, download, sessions, resets }
    }

    /// Lets the sessions run `more` after the takeover, then ends them and
    /// waits for the download.
    fn finish(mut self, more: Duration) -> (Flow, Vec<Flow>) {
        std::thread::sleep(more);
        self.stop.store(true, Ordering::Relaxed);
        let sessions: Vec<Flow> = self.sessions.into_iter().map(|s| s.join().expect("session")).collect();
        let download = self.download.join().expect("download");
        let _ = self.resets.kill();
        let mut resets = String::new();
        if let Some(mut out) = self.resets.stdout.take() {
            let _ = out.read_to_string(&mut resets);
        }
        let _ = self.resets.wait();
        if !resets.is_empty() {
            println!("TCP resets the client saw:\n{resets}");
        }
        (download, sessions)
    }
}

/// One line about the flows of a takeover, for the lane's figures.
fn flows_line(download: &Flow, sessions: &[Flow]) -> String {
    let broken = sessions.iter().filter(|s| s.broken.is_some()).count();
    let stall = sessions.iter().map(|s| s.longest_stall).chain([download.longest_stall]).max().unwrap_or_default();
    format!(
        "download {}, {broken} of {} keep-alive sessions broken, longest stall {:.1} s",
        download.broken.as_deref().map_or_else(|| format!("complete ({})", download.what), |b| format!("broken ({b})")),
        sessions.len(),
        stall.as_secs_f64()
    )
}

/// Both flows survived: the download is complete and right, every session
/// kept its connection and its real. If not, what both directors' tables
/// and sync daemons held.
fn assert_survived(when: &str, download: &Flow, sessions: &[Flow]) {
    if download.broken.is_some() || sessions.iter().any(|s| s.broken.is_some()) {
        println!("{when}: {}\n{download:?}\n{sessions:?}", flows_line(download, sessions));
        println!("node-b's connections:\n{}", must("ipvsadm", &["-Lnc"]));
        println!("node-b's sync daemons:\n{}", must("ipvsadm", &["-L", "--daemon"]));
        let a = TcpStream::connect_timeout(&CONTROL.parse().expect("addr"), Duration::from_secs(2)).is_ok();
        if a {
            println!("node-a's report:\n{}", control("report"));
        }
    }
    assert!(download.broken.is_none(), "{when}: the download broke: {download:?}");
    let broken: Vec<&Flow> = sessions.iter().filter(|s| s.broken.is_some()).collect();
    assert!(broken.is_empty(), "{when}: keep-alive sessions broke: {broken:?}");
    assert!(sessions.iter().all(|s| s.requests > 10), "{when}: every session kept asking: {sessions:?}");
}
