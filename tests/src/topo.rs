//! LVS test topologies built from network namespaces: a client, a
//! director, real servers and the wires between them. Used in the lab VM
//! (IPVS is per namespace, so each test gets a director of its own).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`, panicking with its output on failure.
pub fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("network namespace {ns}: {e}"));
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
}

/// One network namespace standing for one machine; deleted on drop
/// (which also ends the processes it started through [`Host::spawn`]).
pub struct Host {
    pub ns: String,
    children: Vec<Child>,
}

impl Host {
    pub fn new(role: &str) -> Host {
        let ns = format!("lvs{}-{}-{role}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        Host { ns, children: Vec::new() }
    }

    /// `cmd` as a command to run in this namespace, to adjust and spawn.
    pub fn command(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(cmd);
        c
    }

    /// What `cmd` printed on stdout in this namespace; empty if it could
    /// not run.
    pub fn stdout(&self, cmd: &[&str]) -> String {
        self.command(cmd).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// Moves the calling thread into this namespace (setns is per thread).
    pub fn enter(&self) {
        enter(&self.ns);
    }

    /// Runs a command in this namespace and returns (status ok, stdout+stderr).
    pub fn run(&self, cmd: &[&str]) -> (bool, String) {
        let o = Command::new("ip").args(["netns", "exec", &self.ns]).args(cmd).output().expect("ip netns exec");
        (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    }

    /// Like [`Host::run`] but panics on failure.
    pub fn must(&self, cmd: &[&str]) -> String {
        let (ok, out) = self.run(cmd);
        assert!(ok, "in {}: {cmd:?} failed: {out}", self.ns);
        out
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.must(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Starts a background process in this namespace, ended on drop.
    pub fn spawn(&mut self, cmd: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Ends a process started with [`Host::spawn`].
    pub fn kill(&mut self, handle: usize) {
        if let Some(c) = self.children.get_mut(handle) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A busybox httpd serving `dir` on port 80 of every address.
    pub fn http_server(&mut self, dir: &std::path::Path) -> usize {
        let h = self.spawn(&["busybox", "httpd", "-f", "-p", "80", "-h", dir.to_str().expect("utf-8 dir")]);
        // Wait until it listens.
        for _ in 0..100 {
            if self.run(&["sh", "-c", "ss -ltn | grep -q ':80 '"]).0 {
                return h;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("httpd in {} did not start", self.ns);
    }

    /// Runs `f` on a thread inside this namespace (setns is per thread).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).expect("open netns");
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread in netns")
        })
    }

    /// `n` HTTP requests for `/` from this host to `to` (`ip:port`); counts
    /// of answers by body, "failed" for requests that got no answer.
    pub fn requests(&self, to: &str, n: usize) -> HashMap<String, usize> {
        let addr: SocketAddr = to.parse().expect("ip:port");
        self.within(|| {
            let mut counts = HashMap::new();
            for i in 0..n {
                let began = std::time::Instant::now();
                let body = http_get_why(addr, "/", Duration::from_secs(3)).map(|b| b.trim().to_string());
                let key = body.unwrap_or_else(|why| {
                    // Which way a request failed tells a request sent to a
                    // dead real (refused) from a stalled one (timed out).
                    println!("request {} of {n} to {to} failed after {:?}: {why}", i + 1, began.elapsed());
                    "failed".into()
                });
                *counts.entry(key).or_insert(0) += 1;
            }
            counts
        })
    }

    /// `ipvsadm -Ln` (plus extra args) in this namespace.
    pub fn ipvsadm(&self, extra: &[&str]) -> String {
        let mut args = vec!["ipvsadm", "-Ln"];
        args.extend_from_slice(extra);
        self.must(&args)
    }

    /// `ipvsadm -Ln` once `done` holds for it, or as it is after `limit`
    /// (the caller's assertion then says what is wrong).
    pub fn ipvsadm_until(&self, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let began = std::time::Instant::now();
        loop {
            let table = self.ipvsadm(&[]);
            if done(&table) || began.elapsed() >= limit {
                return table;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Daemons our agents started in this namespace die with it only if
        // killed: end whatever still runs inside.
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &self.ns]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Destination weights by `address:port` in `ipvsadm -Ln` output.
pub fn weights_in(table: &str) -> HashMap<String, u32> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"->") || f.get(1) == Some(&"RemoteAddress:Port") {
                return None;
            }
            Some((f.get(1)?.to_string(), f.get(3)?.parse().ok()?))
        })
        .collect()
}

/// The pid a health daemon of ours wrote for `instance` ("realservers-reals").
pub fn daemon_pid(instance: &str) -> Option<String> {
    std::fs::read_to_string(format!("/run/lvs-agents/{instance}.pid")).ok().map(|s| s.trim().to_string())
}

/// The state file a health daemon of ours writes for `instance`, and when
/// it was last written. Only the daemon writes it (the agent never does).
pub fn daemon_state(instance: &str) -> Option<(serde_json::Value, std::time::SystemTime)> {
    let path = format!("/run/lvs-agents/{instance}.state");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let v = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    Some((v, modified))
}

/// What our daemons left behind for `instances` ("realservers-reals"):
/// their pidfiles under /run/lvs-agents, any pidfile there whose process
/// still lives, and lvs-realservers / lvs-sorry processes in this network
/// namespace (found by executable: Pacemaker starts them through the OCF
/// symlinks under other names). Dead pidfiles of other tests' instances,
/// whose namespaces are gone, do not count.
pub fn daemons_left(instances: &[&str]) -> Vec<String> {
    let mut left = Vec::new();
    for e in std::fs::read_dir("/run/lvs-agents").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(instance) = name.strip_suffix(".pid") else { continue };
        let pid = std::fs::read_to_string(e.path()).unwrap_or_default().trim().to_string();
        let alive = !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if instances.contains(&instance) || alive {
            left.push(format!("pidfile /run/lvs-agents/{name} (pid {pid}, alive: {alive})"));
        }
    }
    let here = std::fs::read_link("/proc/self/ns/net").ok();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(exe) = std::fs::read_link(e.path().join("exe")) else { continue };
        let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ours = name.starts_with("lvs-realservers") || name.starts_with("lvs-sorry");
        if ours && std::fs::read_link(e.path().join("ns/net")).ok() == here {
            left.push(format!("process {} ({})", e.file_name().to_string_lossy(), exe.display()));
        }
    }
    left
}

/// A veth pair between two hosts, with addresses (CIDR) on each end.
pub fn wire(a: &Host, a_if: &str, a_addr: Option<&str>, b: &Host, b_if: &str, b_addr: Option<&str>) {
    ip(&["link", "add", a_if, "netns", &a.ns, "type", "veth", "peer", "name", b_if, "netns", &b.ns]);
    for (h, i, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        if let Some(addr) = addr {
            ip(&["-n", &h.ns, "addr", "add", addr, "dev", i]);
        }
        ip(&["-n", &h.ns, "link", "set", i, "up"]);
    }
}

/// A director namespace with an address for the VIP subnet (10.0.0.1/24,
/// a peer at .2) and a route to the real servers' 192.168.7.0/24 (IPVS
/// refuses destinations it has no route to).
pub fn director() -> (Host, Host) {
    let d = Host::new("dir");
    let peer = Host::new("peer");
    wire(&d, "eth0", Some("10.0.0.1/24"), &peer, "eth0", Some("10.0.0.2/24"));
    d.must(&["ip", "route", "add", "192.168.7.0/24", "dev", "eth0"]);
    (d, peer)
}

/// A switch: a bridge in its own namespace; `plug` wires a host into it.
pub struct Switch {
    pub host: Host,
    ports: AtomicU32,
}

impl Switch {
    pub fn new() -> Switch {
        let host = Host::new("sw");
        ip(&["-n", &host.ns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &host.ns, "link", "set", "br0", "up"]);
        Switch { host, ports: AtomicU32::new(0) }
    }

    pub fn plug(&self, h: &Host, ifname: &str, addr: Option<&str>) {
        let port = format!("p{}", self.ports.fetch_add(1, Ordering::Relaxed));
        wire(h, ifname, addr, &self.host, &port, None);
        ip(&["-n", &self.host.ns, "link", "set", &port, "master", "br0"]);
    }
}

impl Default for Switch {
    fn default() -> Self {
        Switch::new()
    }
}

/// A plain HTTP/1.0 GET of `path`, returning the body, or None on any
/// failure within `timeout` (refused, reset, timed out).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<String> {
    http_get_why(addr, path, timeout).ok()
}

/// [`http_get`], saying why there was no answer: "refused" (a RST to the
/// SYN: nothing listens where the packet went), "timed out", "reset", ...
pub fn http_get_why(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let why = |stage: &str, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("{stage}: refused"),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => format!("{stage}: timed out"),
        std::io::ErrorKind::ConnectionReset => format!("{stage}: reset"),
        _ => format!("{stage}: {e}"),
    };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| why("connect", e))?;
    let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let why = |stage: &str, e: std::io::Error| format!("{} (from {local})", why(stage, e));
    s.set_read_timeout(Some(timeout)).map_err(|e| why("socket", e))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| why("socket", e))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", addr.ip())
        .map_err(|e| why("request", e))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| why("answer", e))?;
    if !buf.starts_with("HTTP/1.") || !buf.split_whitespace().nth(1).is_some_and(|c| c.starts_with('2')) {
        return Err(format!("answer: not a 2xx: {:?}", buf.lines().next().unwrap_or("")));
    }
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).ok_or_else(|| "answer: no body".into())
}

/// A directory with `index.html` naming `who` and `test.html` saying "test".
pub fn web_root(who: &str) -> tempdir::Dir {
    let d = tempdir::Dir::new(who);
    std::fs::write(d.path.join("index.html"), format!("{who}\n")).expect("index");
    std::fs::write(d.path.join("test.html"), "test\n").expect("test.html");
    d
}

pub mod tempdir {
    /// A directory removed on drop.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "lvs-{tag}-{}-{}",
                std::process::id(),
                super::SEQ.fetch_add(1, super::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("tempdir");
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
