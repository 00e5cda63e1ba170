//! The same two directors under heartbeat v1 (haresources, `crm off`), as
//! the classic LVS walkthrough runs them. It runs in node-b after the
//! Pacemaker scenarios (the VMs' boots are shared), with node-a booted again
//! in role "a-heartbeat": heartbeat starts at boot there, as on a director.
//!
//! Both directors get the same ha.cf and haresources ([`HA_CF`],
//! [`HARESOURCES`]). The reals are the DR reals of the Pacemaker scenarios;
//! the check asks them for `/`, which they do not publish at first, so the
//! table holds both at weight 0 and the director's own web server
//! (127.0.0.1:80, IPVS local delivery) at weight 1. Scenarios, each checked
//! on both directors (the VIP, `ipvsadm -Ln`, our daemons) and from the
//! client:
//!  1. node-a holds the VIP and the table, node-b nothing; clients get the
//!     director's page;
//!  2. the page appears on the reals: they get weight 1, the fallback leaves;
//!  3. heartbeat stops on node-a: node-b takes over; heartbeat starts on
//!     node-a again: the resources come back (`auto_failback on`);
//!  4. `hb_standby` on node-a, then `hb_takeover` there: a planned move and
//!     back;
//!  5. node-a loses power: node-b takes over after `deadtime`; node-a boots
//!     again and takes its resources back.
//!
//! During every move the client asks who has the VIP (arping) and sends a
//! request every 200 ms, and node-b samples the VIP on both directors
//! (about every 0.4 s): never on both, and once the new director has answered for it the
//! old one never does.

use std::collections::HashMap;

use super::*;

/// The "heartbeat pair: " lines node-b prints.
pub const FIGURES: usize = 9;

/// Identical on both directors. heartbeat ignores a ucast line naming its
/// own address, so each node sends on both wires to its peer. deadtime 10 s:
/// two emulated VMs on 2 cores stall for seconds; initdead at least twice
/// that, as heartbeat asks.
pub const HA_CF: &str = "logfile /var/log/ha-log
keepalive 1
warntime 5
deadtime 10
initdead 30
udpport 694
ucast eth0 10.0.0.1
ucast eth0 10.0.0.2
ucast eth1 10.1.0.1
ucast eth1 10.1.0.2
auto_failback on
node node-a
node node-b
crm off
";

/// The walkthrough's line with the lane's addresses: the VIP on eth0, rr
/// over two DR reals checked with HTTP (`/`), the director's own web server
/// as the sorry server.
pub const HARESOURCES: &str = "node-a lvs-vip::10.0.0.100/24/eth0 lvs-service::tcp:10.0.0.100:80::rr \
    lvs-realservers::tcp:10.0.0.100:80::10.0.0.11:80/gate/1,10.0.0.12:80/gate/1::http \
    lvs-sorry::tcp:10.0.0.100:80::127.0.0.1:80\n";

const HEARTBEAT: &str = "/usr/libexec/heartbeat/heartbeat";
const HA_LOG: &str = "/var/log/ha-log";
/// How long any one move may take: node-a's boot (the move back after its
/// power loss), deadtime 10 s, stopping four resources on one director and
/// starting them on the other, and the first health check round
/// (check_interval 5 s); generous for a loaded host.
const MOVE_BOUND: Duration = Duration::from_secs(300);

/// heartbeat's configuration, identical on both directors.
fn configure() {
    lvs_tests::cluster::configure_heartbeat(HA_CF, HARESOURCES);
}

fn heartbeat_running() -> bool {
    Command::new("pgrep").args(["-f", "heartbeat: master"]).output().map(|o| o.status.success()).unwrap_or(false)
}

fn start_heartbeat() {
    must(HEARTBEAT, &[]);
    wait_for("heartbeat running", Duration::from_secs(30), || heartbeat_running().then_some(()));
}

/// `heartbeat -k`: it gives its resources up (to the peer) and exits.
fn stop_heartbeat() {
    must(HEARTBEAT, &["-k"]);
    wait_for("heartbeat to exit", Duration::from_secs(150), || (!heartbeat_running()).then_some(()));
}

fn holds_vip() -> bool {
    must("ip", &["-4", "addr", "show", "dev", LAN]).contains(&format!("{VIP}/24"))
}

/// This director's VIP, table and daemons, as [`Holding::read`] parses it.
fn holding_here() -> String {
    format!(
        "vip: {}\ndaemons: {:?}\n{}",
        if holds_vip() { "yes" } else { "no" },
        daemons_left(&[]),
        must("ipvsadm", &["-Ln"])
    )
}

/// The director's own web server (the sorry server of haresources): port
/// 80 on every address, so IPVS's local delivery of VIP:80 reaches it.
fn serve_director(name: &'static str) {
    static ALWAYS: AtomicBool = AtomicBool::new(true);
    let l = TcpListener::bind("0.0.0.0:80").expect("the director's web server: bind :80");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = http_connection(c, name, &ALWAYS);
            });
        }
    });
}

// ---- node-a ----

/// node-a under heartbeat: configured like node-b, heartbeat started at
/// boot, and a control port (one thread per request, so node-b can sample
/// the VIP while a long request such as "heartbeat stop" runs).
pub fn node_a() {
    must("hostname", &["node-a"]);
    wires("10.0.0.1/24", "10.1.0.1/24", false);
    serve_director("director node-a");
    let control = TcpListener::bind(CONTROL).expect("listen for control");
    configure();
    start_heartbeat();
    println!("node-a: heartbeat started, waiting on {CONTROL}");
    for s in control.incoming().flatten() {
        std::thread::spawn(move || answer(s));
    }
}

fn answer(mut s: TcpStream) {
    let mut word = String::new();
    let _ = s.read_to_string(&mut word);
    let run = |cmd: &str, args: &[&str]| match Command::new(cmd).args(args).output() {
        Ok(o) => format!("{}{}{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("{cmd}: {e}"),
    };
    let reply = match word.trim() {
        "holds" => (if holds_vip() { "yes" } else { "no" }).to_string(),
        "holding" => holding_here(),
        "heartbeat" => (if heartbeat_running() { "running" } else { "stopped" }).to_string(),
        "heartbeat start" => {
            start_heartbeat();
            "started".into()
        }
        "heartbeat stop" => {
            stop_heartbeat();
            "stopped".into()
        }
        "hb_standby" => run("/usr/share/heartbeat/hb_standby", &[]),
        "hb_takeover" => run("/usr/share/heartbeat/hb_takeover", &[]),
        "log" => run("tail", &["-n", "80", HA_LOG]),
        "power off" => {
            println!("node-a: powering off without a goodbye");
            std::fs::write("/proc/sysrq-trigger", "o").expect("sysrq");
            std::thread::sleep(Duration::from_secs(60));
            panic!("node-a still running after sysrq poweroff");
        }
        other => format!("unknown control word {other:?}"),
    };
    let _ = s.write_all(reply.as_bytes());
}

// ---- node-b ----

/// The tail of node-a's log (heartbeat's or pacemaker's), for a failure's diagnosis.
pub fn node_a_log() -> Option<String> {
    ask_a("log", Duration::from_secs(10))
}

/// `word` to node-a's control port; None if node-a does not answer (it is
/// off or booting) within 2 s, or its answer takes longer than `limit`.
fn ask_a(word: &str, limit: Duration) -> Option<String> {
    let addr: SocketAddr = CONTROL.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    s.shutdown(std::net::Shutdown::Write).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// What one director holds.
#[derive(Debug)]
struct Holding {
    vip: bool,
    /// Our daemons there (pidfiles of live processes, lvs-* processes).
    daemons: String,
    table: String,
}

impl Holding {
    fn read(text: &str) -> Holding {
        let mut lines = text.splitn(3, '\n');
        let vip = lines.next() == Some("vip: yes");
        let daemons = lines.next().unwrap_or_default().trim_start_matches("daemons: ").to_string();
        Holding { vip, daemons, table: lines.next().unwrap_or_default().to_string() }
    }
    fn here() -> Holding {
        Holding::read(&holding_here())
    }
    fn node_a() -> Option<Holding> {
        ask_a("holding", Duration::from_secs(30)).map(|t| Holding::read(&t))
    }
    fn nothing(&self) -> bool {
        !self.vip && !self.table.contains(VIP) && self.daemons == "[]"
    }
    /// The VIP and the service (rr), with the reals in rotation (`page`)
    /// or, without the page, both reals at weight 0 and the fallback at 1.
    fn directs(&self, page: bool) -> bool {
        let expected: HashMap<String, u32> = if page {
            [("10.0.0.11:80", 1), ("10.0.0.12:80", 1)].into_iter().map(|(a, w)| (a.to_string(), w)).collect()
        } else {
            [("10.0.0.11:80", 0), ("10.0.0.12:80", 0), ("127.0.0.1:80", 1)]
                .into_iter()
                .map(|(a, w)| (a.to_string(), w))
                .collect()
        };
        self.vip && self.table.contains(&format!("TCP  {VIP}:80 rr")) && weights_in(&self.table) == expected
    }
}

/// Both directors, as `what` expects them: `owner` directs (with the reals
/// in rotation if `page`) and the other holds nothing. Panics with both
/// tables otherwise.
fn check_both(what: &str, owner: &str, page: bool) {
    let (a, b) = (Holding::node_a().expect("node-a answers"), Holding::here());
    let (directs, idle) = if owner == "node-a" { (&a, &b) } else { (&b, &a) };
    assert!(
        directs.directs(page) && idle.nothing(),
        "{what}: {owner} should direct, the other hold nothing;\nnode-a: {a:?}\nnode-b: {b:?}"
    );
    println!("{what}: ipvsadm -Ln on node-a:\n{}ipvsadm -Ln on node-b:\n{}", a.table, b.table);
}

/// The VIP on both directors, sampled 100 ms apart (a sample takes two
/// control round trips and an `ip` call: 25-35 samples per move were
/// measured, about one each 0.4 s): node-a's, node-b's, node-a's
/// again. Both held it at once if node-b did while node-a did before and
/// after.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, usize, Vec<String>)>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut samples, mut unknown, mut both) = (0, 0, Vec::new());
            let began = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                let a = || ask_a("holds", Duration::from_secs(5)).map(|t| t == "yes");
                let (a1, b, a2) = (a(), holds_vip(), a());
                samples += 1;
                match (a1, a2) {
                    (Some(true), Some(true)) if b => both.push(format!("{:.1} s", began.elapsed().as_secs_f64())),
                    (None, _) | (_, None) => unknown += 1,
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (samples, unknown, both)
        });
        Sampler { stop, thread }
    }

    /// (samples, samples with node-a unreachable); panics if any sample saw
    /// the VIP on both.
    fn stop(self, what: &str) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, unknown, both) = self.thread.join().expect("sampler");
        assert!(both.is_empty(), "{what}: the VIP on both directors at {both:?} (of {samples} samples)");
        (samples, unknown)
    }
}

/// One move of the resources to `owner` (MAC `mac`), caused by `cause`
/// (run in a thread; it may take as long as the move). Waits until the
/// client is served by a real through `owner` and both directors are as
/// expected; returns a figure line: when the first request was served
/// through the new director, and what the samples and ARP showed.
fn moves(client: &Host, what: &str, owner: &str, mac: &str, cause: impl FnOnce() + Send + 'static) -> String {
    let old = if owner == "node-a" { MAC_B } else { MAC_A };
    let watch = Watch::start(client);
    let sampler = Sampler::start();
    let began = Instant::now();
    let caused = std::thread::spawn(cause);
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let mut first = None;
    wait_for(&format!("{what}: a real served through {owner}"), MOVE_BOUND, || {
        let body = client.within(|| http_get(vip, "/", Duration::from_secs(1)))?;
        if client_sees(client).as_deref() != Some(mac) {
            return None;
        }
        first.get_or_insert_with(|| began.elapsed());
        matches!(body.trim(), "r1" | "r2").then_some(())
    });
    caused.join().expect("the cause of the move");
    let first = first.expect("served");
    // The other director's stop may still be finishing (heartbeat -k
    // returns once its resources are released; after a power loss there is
    // nothing to wait for).
    wait_for(&format!("{what}: {owner} directs, the other holds nothing"), Duration::from_secs(60), || {
        let here = Holding::here();
        let there = Holding::node_a();
        let ok = match (owner, there) {
            ("node-a", Some(a)) => a.directs(true) && here.nothing(),
            ("node-b", Some(a)) => here.directs(true) && a.nothing(),
            // node-a is off: nothing of it answers.
            ("node-b", None) => here.directs(true),
            _ => false,
        };
        ok.then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let (samples, unknown) = sampler.stop(what);
    let seen = watch.stop();
    let switched = seen.claims.iter().position(|(_, m)| m == mac);
    let stale: Vec<&(Instant, String)> =
        seen.claims.iter().skip(switched.unwrap_or(seen.claims.len())).filter(|(_, m)| m == old).collect();
    assert!(stale.is_empty(), "{what}: the old director answered for the VIP after {owner} did: {stale:?}");
    let announced = seen.gratuitous.iter().filter(|(_, m)| m == mac).count();
    assert!(announced > 0, "{what}: {owner} announced the VIP by gratuitous ARP; claims seen: {:?}", seen.claims);
    format!(
        "{what}: first request served through {owner} after {:.1} s; {samples} samples of the VIP on both directors \
         ({unknown} with node-a unreachable), never on both; {announced} gratuitous ARP from {owner}, none from the \
         other director after it",
        first.as_secs_f64()
    )
}

/// The heartbeat pair's scenarios, run by node-b: the client and the reals
/// are those of the Pacemaker scenarios, whose cluster is stopped.
pub fn run(client: &Host, lan_mac: &str) {
    let began = Instant::now();
    assert_eq!(lan_mac, MAC_B, "node-b's LAN MAC");
    assert!(Holding::here().nothing(), "nothing of the Pacemaker pair is left on node-b: {:?}", Holding::here());
    INDEX_PAGE.store(false, Ordering::Relaxed);
    serve_director("director node-b");
    configure();
    println!("HOST: boot node-a for heartbeat");
    wait_for("node-a's heartbeat", Duration::from_secs(300), || {
        (ask_a("heartbeat", Duration::from_secs(5))?.trim() == "running").then_some(())
    });
    let started = Instant::now();
    start_heartbeat();

    // 1. node-a, haresources' owner, takes the resources; node-b holds
    // nothing. No real publishes the page: the director's own answers.
    wait_for("node-a to direct, with the fallback only", Duration::from_secs(120), || {
        Holding::node_a()?.directs(false).then_some(())
    });
    let took = started.elapsed();
    check_both("heartbeat up on both", "node-a", false);
    let c = client.requests(&format!("{VIP}:80"), 6);
    assert_eq!(c.get("director node-a"), Some(&6), "the director's page from node-a: {c:?}");
    assert_eq!(client_sees(client).as_deref(), Some(MAC_A), "the client reaches the VIP at node-a");
    println!(
        "heartbeat pair: node-a directs {:.1} s after node-b's heartbeat started; reals at weight 0, the fallback \
         127.0.0.1:80 at 1, 6 of 6 requests answered by node-a's own page; node-b holds nothing",
        took.as_secs_f64()
    );

    // 2. The page appears on the reals.
    let published = Instant::now();
    INDEX_PAGE.store(true, Ordering::Relaxed);
    wait_for("the reals in rotation on node-a, the fallback gone", Duration::from_secs(60), || {
        Holding::node_a()?.directs(true).then_some(())
    });
    let page = published.elapsed();
    check_both("the page published", "node-a", true);
    let c = client.requests(&format!("{VIP}:80"), 10);
    assert_eq!(
        (c.get("r1").copied().unwrap_or(0) + c.get("r2").copied().unwrap_or(0), c.len()),
        (10, 2),
        "rr over both reals, nothing else: {c:?}"
    );
    println!(
        "heartbeat pair: the page on the reals -> both at weight 1, the fallback gone, after {:.1} s \
         (check_interval 5 s); 10 requests: {c:?}",
        page.as_secs_f64()
    );

    // 3. heartbeat stops on node-a, then starts again.
    let line = moves(client, "heartbeat stopped on node-a", "node-b", lan_mac, || {
        let r = ask_a("heartbeat stop", MOVE_BOUND);
        assert_eq!(r.as_deref(), Some("stopped"), "node-a's heartbeat -k");
    });
    check_both("heartbeat stopped on node-a", "node-b", true);
    println!("heartbeat pair: {line}");
    let line = moves(client, "heartbeat started on node-a (auto_failback on)", "node-a", MAC_A, || {
        let r = ask_a("heartbeat start", MOVE_BOUND);
        assert_eq!(r.as_deref(), Some("started"), "node-a's heartbeat start");
    });
    check_both("heartbeat back on node-a", "node-a", true);
    println!("heartbeat pair: {line}");

    // 4. A planned move with heartbeat's own tools, and back.
    let line = moves(client, "hb_standby on node-a", "node-b", lan_mac, || {
        let r = ask_a("hb_standby", MOVE_BOUND).unwrap_or_default();
        assert!(r.starts_with("exit status: 0"), "hb_standby: {r}");
    });
    check_both("after hb_standby", "node-b", true);
    println!("heartbeat pair: {line}");
    let line = moves(client, "hb_takeover on node-a", "node-a", MAC_A, || {
        let r = ask_a("hb_takeover", MOVE_BOUND).unwrap_or_default();
        assert!(r.starts_with("exit status: 0"), "hb_takeover: {r}");
    });
    check_both("after hb_takeover", "node-a", true);
    println!("heartbeat pair: {line}");

    // 5. node-a loses power; then it boots again and heartbeat, started at
    // boot, takes its resources back.
    let line = moves(client, "power loss of node-a", "node-b", lan_mac, || {
        control("power off");
    });
    println!("after node-a's power loss: ipvsadm -Ln on node-b:\n{}", Holding::here().table);
    println!("heartbeat pair: {line}");
    let line = moves(client, "node-a booted again (auto_failback on)", "node-a", MAC_A, || {
        println!("HOST: boot node-a for heartbeat");
    });
    check_both("node-a back after its power loss", "node-a", true);
    println!("heartbeat pair: {line}");

    // heartbeat stops on both: nothing is left on either.
    stop_heartbeat();
    let r = ask_a("heartbeat stop", MOVE_BOUND);
    assert_eq!(r.as_deref(), Some("stopped"), "node-a's heartbeat -k");
    let (a, b) = (Holding::node_a().expect("node-a answers"), Holding::here());
    assert!(a.nothing() && b.nothing(), "heartbeat stopped on both: nothing left\nnode-a: {a:?}\nnode-b: {b:?}");
    println!("heartbeat pair: all scenarios in {:.1} s", began.elapsed().as_secs_f64());
}
