//! Benchmarks that need IPVS, so they run inside the lab VM
//! (`tests/lab/lab -- target/release/lvs-bench <name>`). Absolute times
//! there are slowed by emulation; compare tools within one run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lvs_ipvs::{Destination, ForwardMethod, Ipvs, IpvsClient, Service, ServiceKey};

use crate::{ms, our_bin, sh, Row};
use lvs_tests::topo::Host as Ns;

type R<T> = Result<T, String>;

/// Runs `c`, failing with its stderr unless it succeeds.
fn ok(c: &mut Command) -> R<()> {
    let o = c.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{c:?}: {}", String::from_utf8_lossy(&o.stderr)))
    }
}

fn quiet(mut c: Command) -> Command {
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// keepalived in the foreground with only its checker (-C), in `d`, its
/// pidfiles in `dir`.
fn keepalived(d: &Ns, conf: &Path, dir: &Path) -> R<std::process::Child> {
    let (conf, pid, checker_pid) = (conf.to_string_lossy(), dir.join("k.pid"), dir.join("kc.pid"));
    quiet(d.command(&[
        "keepalived",
        "-n",
        "-l",
        "-C",
        "-f",
        &conf,
        "-p",
        &pid.to_string_lossy(),
        "-c",
        &checker_pid.to_string_lossy(),
    ]))
    .spawn()
    .map_err(|e| e.to_string())
}

/// The IPVS table as a process inside the namespace sees it.
fn ip_vs_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/net/ip_vs")).unwrap_or_default()
}

/// Weight of destination `hex` (e.g. `C0A8090A:0050`) in /proc/net/ip_vs
/// as seen from this thread's namespace (/proc/net follows the process,
/// not the thread); None when it is not listed.
fn weight(pid: u32, hex: &str) -> Option<u32> {
    let t = ip_vs_of(pid);
    let line = t.lines().find(|l| l.contains(hex))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn wait_weight(pid: u32, hex: &str, want: impl Fn(Option<u32>) -> bool, limit: Duration) -> R<Duration> {
    let start = Instant::now();
    loop {
        if want(weight(pid, hex)) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(format!("weight of {hex} stayed {:?} for {limit:?}:\n{}", weight(pid, hex), ip_vs_of(pid)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const REAL_HEX: &str = "C0A8090A:0050"; // 192.168.9.10:80

fn ldirectord_cf(dir: &Path) -> R<PathBuf> {
    let p = dir.join("ldirectord.cf");
    std::fs::write(
        &p,
        format!(
            "checktimeout=1\ncheckinterval=1\nfailurecount=1\nquiescent=yes\nautoreload=no\nlogfile=\"{}\"\n\
         virtual=10.0.0.100:80\n\treal=192.168.9.10:80 masq 1\n\tchecktype=connect\n\tscheduler=rr\n\tprotocol=tcp\n",
            dir.join("ldirectord.log").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(p)
}

fn keepalived_conf(dir: &Path) -> R<PathBuf> {
    let p = dir.join("keepalived.conf");
    std::fs::write(
        &p,
        "global_defs {\n router_id bench\n}\nvirtual_server 10.0.0.100 80 {\n delay_loop 1\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
         real_server 192.168.9.10 80 {\n  weight 1\n  inhibit_on_failure\n  TCP_CHECK {\n   connect_timeout 1\n   retry 0\n   delay_before_retry 1\n  }\n }\n}\n",
    )
    .map_err(|e| e.to_string())?;
    Ok(p)
}

/// How a real fails in [`failure_detection`]: its server dies (checks are
/// refused at once) or its packets are dropped (checks time out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Failure {
    Refused,
    Blackhole,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Refused => "server killed (refused)",
            Failure::Blackhole => "packets dropped (black hole)",
        }
    }
}

/// The real of [`failure_detection`]: a web server in its namespace, made
/// to fail and recover from the measuring thread.
struct FailingReal {
    ns: Ns,
    web: PathBuf,
    server: Option<Child>,
}

impl FailingReal {
    fn new(ns: Ns, web: PathBuf) -> R<FailingReal> {
        // The black hole: a chain that drops port 80 while it has its rule.
        ok(&mut ns.command(&["nft", "add", "table", "inet", "bench"]))?;
        ok(&mut ns.command(&[
            "nft",
            "add",
            "chain",
            "inet",
            "bench",
            "in",
            "{ type filter hook input priority 0 ; }",
        ]))?;
        let mut real = FailingReal { ns, web, server: None };
        real.serve()?;
        Ok(real)
    }

    fn serve(&mut self) -> R<()> {
        let web = self.web.to_string_lossy().into_owned();
        let child = quiet(self.ns.command(&["busybox", "httpd", "-f", "-p", "80", "-h", &web])).spawn();
        self.server = Some(child.map_err(|e| e.to_string())?);
        Ok(())
    }

    /// Makes the failure; returns once it is in place (the server's socket
    /// closed, or the drop rule loaded).
    fn fail(&mut self, how: Failure) -> R<()> {
        match how {
            Failure::Refused => {
                if let Some(mut s) = self.server.take() {
                    let _ = s.kill();
                    let _ = s.wait();
                }
                Ok(())
            }
            Failure::Blackhole => {
                ok(&mut self.ns.command(&["nft", "add", "rule", "inet", "bench", "in", "tcp", "dport", "80", "drop"]))
            }
        }
    }

    fn recover(&mut self, how: Failure) -> R<()> {
        match how {
            Failure::Refused => self.serve(),
            Failure::Blackhole => ok(&mut self.ns.command(&["nft", "flush", "chain", "inet", "bench", "in"])),
        }
    }
}

impl Drop for FailingReal {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// xorshift64*: the phase of each failure, reproducible from the seed.
struct Phase(u64);

impl Phase {
    /// Uniform in [0, below).
    fn below(&mut self, below: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_nanos(r % u64::try_from(below.as_nanos().max(1)).unwrap_or(u64::MAX))
    }
}

/// Times `v` holds as n, median, p90, min and max, in milliseconds.
fn spread(v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    format!("{:>4} {:>9} {:>9} {:>9} {:>9}", v.len(), ms(at(50)), ms(at(90)), ms(v[0]), ms(v[v.len() - 1]))
}

const INTERVAL: Duration = Duration::from_secs(1);

/// A failed real -> weight 0 in the kernel, for us, ldirectord and
/// keepalived, with the same settings for all: a TCP connect check every
/// 1 s with a 1 s timeout, one failed check enough (ours `fall=1`,
/// ldirectord `failurecount=1`, keepalived `retry 0`), quiescent. Each
/// failure comes a random time (uniform over one interval, seeded) after
/// the real is back at weight 1, and its clock starts in the thread that
/// made it, once it is in place; the kernel table is read every 5 ms.
pub fn failure_detection(reps: usize, seed: u64, kinds: &[Failure], json: Option<&Path>) -> R<Vec<Row>> {
    let dir = std::env::temp_dir().join(format!("lvs-bench-fd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let web = dir.join("www");
    std::fs::create_dir_all(&web).map_err(|e| e.to_string())?;
    std::fs::write(web.join("index.html"), "ok\n").map_err(|e| e.to_string())?;
    let service = our_bin("lvs-service")?;
    let reals = our_bin("lvs-realservers")?;
    let mut phase = Phase(seed.max(1));
    // The commit measured: read before the run, which takes minutes.
    let commit = crate::commit();
    let mut results: Vec<(Failure, &str, Vec<Duration>)> = Vec::new();
    for &kind in kinds {
        for tool in ["lvs-agents", "ldirectord", "keepalived"] {
            let d = Ns::new("bench-dir");
            let r = Ns::new("bench-real");
            sh(&["ip", "link", "add", "d0", "netns", &d.ns, "type", "veth", "peer", "name", "r0", "netns", &r.ns])?;
            sh(&["ip", "-n", &d.ns, "addr", "add", "192.168.9.1/24", "dev", "d0"])?;
            sh(&["ip", "-n", &d.ns, "addr", "add", "10.0.0.100/32", "dev", "lo"])?;
            sh(&["ip", "-n", &r.ns, "addr", "add", "192.168.9.10/24", "dev", "r0"])?;
            sh(&["ip", "-n", &d.ns, "link", "set", "d0", "up"])?;
            sh(&["ip", "-n", &r.ns, "link", "set", "r0", "up"])?;
            let mut real = FailingReal::new(r, web.clone())?;
            let env = |c: &mut Command| {
                c.env("OCF_RESOURCE_INSTANCE", "bench")
                    .env("HA_LOGFACILITY", "none")
                    .env("LVS_RUN_DIR", dir.join("run"))
                    .env("OCF_RESKEY_service", "tcp:10.0.0.100:80");
            };
            let mut daemon: Option<Child> = None;
            match tool {
                "lvs-agents" => {
                    let mut c = d.command(&[&service.to_string_lossy(), "start"]);
                    env(&mut c);
                    ok(c.env("OCF_RESKEY_scheduler", "rr"))?;
                    let mut c = d.command(&[&reals.to_string_lossy(), "start"]);
                    env(&mut c);
                    ok(c.env("OCF_RESKEY_real", "192.168.9.10:80 masq 1")
                        .env("OCF_RESKEY_check", "connect")
                        .env("OCF_RESKEY_check_interval", "1")
                        .env("OCF_RESKEY_check_timeout", "1")
                        .env("OCF_RESKEY_fall", "1")
                        .env("OCF_RESKEY_quiescent", "true"))?;
                }
                "ldirectord" => {
                    let cf = ldirectord_cf(&dir)?;
                    quiet(d.command(&["ldirectord", &cf.to_string_lossy(), "start"]))
                        .status()
                        .map_err(|e| e.to_string())?;
                }
                _ => {
                    let conf = keepalived_conf(&dir)?;
                    daemon = Some(keepalived(&d, &conf, &dir)?);
                }
            }
            // A process in the director's namespace shows its table in
            // /proc/<pid>/net/ip_vs: cheap to read every 5 ms.
            let mut anchor = quiet(d.command(&["sleep", "3600"])).spawn().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(200));
            let pid = anchor.id();
            let mut times = Vec::with_capacity(reps);
            let run = (|| -> R<()> {
                wait_weight(pid, REAL_HEX, |w| w == Some(1), Duration::from_secs(30))?;
                for _ in 0..reps {
                    std::thread::sleep(phase.below(INTERVAL));
                    real.fail(kind)?;
                    let failed = Instant::now();
                    wait_weight(pid, REAL_HEX, |w| w == Some(0), Duration::from_secs(30))?;
                    times.push(failed.elapsed());
                    real.recover(kind)?;
                    wait_weight(pid, REAL_HEX, |w| w == Some(1), Duration::from_secs(30))?;
                }
                Ok(())
            })();
            let _ = anchor.kill();
            let _ = anchor.wait();
            if tool == "ldirectord" {
                let cf = dir.join("ldirectord.cf");
                let _ = quiet(d.command(&["ldirectord", &cf.to_string_lossy(), "stop"])).status();
            }
            if tool == "lvs-agents" {
                let mut c = d.command(&[&reals.to_string_lossy(), "stop"]);
                env(&mut c);
                let _ = quiet(c).status();
            }
            if let Some(mut k) = daemon {
                let _ = k.kill();
                let _ = k.wait();
            }
            run.map_err(|e| {
                format!("{tool}, {}: {e}\nipvsadm in {}:\n{}", kind.label(), d.ns, d.stdout(&["ipvsadm", "-Ln"]))
            })?;
            results.push((kind, tool, times));
            drop(real);
            drop(d);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "failure detection: real failed -> weight 0 in the kernel; TCP connect check every 1 s, timeout 1 s, one \
         failure enough for every tool; failures at a random phase (seed {seed}); table read every 5 ms; lab VM"
    );
    println!("{:<30} {:<12} {:>4} {:>9} {:>9} {:>9} {:>9}", "failure", "tool", "n", "median", "p90", "min", "max");
    if let Some(path) = json {
        let samples: Vec<serde_json::Value> = results
            .iter()
            .map(|(kind, tool, v)| {
                let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
                serde_json::json!({ "failure": kind.label(), "tool": tool, "ms": ms })
            })
            .collect();
        let doc = serde_json::json!({
            "bench": "failure-detection",
            "title": "Failure detection: a real fails -> weight 0 in the kernel",
            "settings": format!(
                "TCP connect check every 1 s, timeout 1 s, one failed check enough for every tool (ours fall=1, \
                 ldirectord failurecount=1, keepalived retry 0), quiescent; each failure at a random time over one \
                 interval after the real is back at weight 1 (seed {seed}); the clock starts in the thread that made \
                 the failure, once it is in place; the kernel table is read every 5 ms"
            ),
            "machine": crate::machine(),
            "commit": commit,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "samples": samples,
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut summary = Vec::new();
    for &kind in kinds {
        let of = |tool: &str| results.iter().find(|(k, t, _)| *k == kind && *t == tool).map(|r| r.2.clone());
        for (k, tool, v) in results.iter().filter(|r| r.0 == kind) {
            println!("{:<30} {tool:<12} {}", k.label(), spread(v));
        }
        let median = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            v[v.len() / 2]
        };
        let Some(ours) = of("lvs-agents").map(|v| median(&v)) else { continue };
        for peer in ["ldirectord", "keepalived"] {
            if let Some(p) = of(peer).map(|v| median(&v)) {
                summary.push(Row::lower(
                    format!("failure detection, {}, median", kind.label()),
                    (ours.as_secs_f64(), ms(ours)),
                    (p.as_secs_f64(), format!("{peer} {}", ms(p))),
                ));
            }
        }
    }
    Ok(summary)
}

/// `services` × `dests` applied from nothing: our client (one process),
/// `ipvsadm -R`, ldirectord (checktype=on) and keepalived (no checkers),
/// each timed until the whole table is in the kernel.
pub fn ipvs_programming(services: usize, dests: usize, limit: Duration) -> R<Vec<Row>> {
    let vip = |i: usize| format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
    let rip = |j: usize| format!("192.168.{}.{}", j / 250, 1 + j % 250);
    let total = services * (1 + dests);
    let count_entries = |pid: u32| -> usize {
        // Header lines: the version, "Prot ...", "  -> RemoteAddress...".
        ip_vs_of(pid)
            .lines()
            .filter(|l| l.starts_with("TCP") || l.trim_start().starts_with("->"))
            .count()
            .saturating_sub(1)
    };
    let dir = std::env::temp_dir().join(format!("lvs-bench-prog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut rows: Vec<(&str, R<Duration>)> = Vec::new();
    for tool in ["lvs-agents client", "ipvsadm -R", "ldirectord", "keepalived"] {
        let ns = Ns::new("bench-prog");
        sh(&["ip", "-n", &ns.ns, "addr", "add", "192.168.0.254/16", "dev", "lo"])?;
        let mut anchor = quiet(ns.command(&["sleep", "3600"])).spawn().map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(200));
        let anchor_pid = anchor.id();
        let name = ns.ns.clone();
        let dir = dir.clone();
        let took = std::thread::scope(|s| {
            s.spawn(move || -> R<Duration> {
                lvs_tests::topo::enter(&name);
                // Daemons are timed until the table is complete, by polling.
                let until_complete = |start: Instant| -> R<Duration> {
                    loop {
                        let n = count_entries(anchor_pid);
                        if n >= total {
                            return Ok(start.elapsed());
                        }
                        if start.elapsed() > limit {
                            return Err(format!("{n} of {total} entries after {} s", limit.as_secs()));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                };
                let start = Instant::now();
                match tool {
                    "ipvsadm -R" => {
                        let mut rules = String::new();
                        for i in 0..services {
                            rules.push_str(&format!("-A -t {}:80 -s wlc\n", vip(i)));
                            for j in 0..dests {
                                rules.push_str(&format!("-a -t {}:80 -r {}:80 -m -w 1\n", vip(i), rip(j)));
                            }
                        }
                        let start = Instant::now();
                        let mut child = Command::new("ipvsadm")
                            .arg("-R")
                            .stdin(Stdio::piped())
                            .spawn()
                            .map_err(|e| e.to_string())?;
                        child.stdin.take().ok_or("stdin")?.write_all(rules.as_bytes()).map_err(|e| e.to_string())?;
                        let st = child.wait().map_err(|e| e.to_string())?;
                        if !st.success() {
                            return Err("ipvsadm -R failed".into());
                        }
                        let n = count_entries(anchor_pid);
                        return if n < total {
                            Err(format!("table has {n} of {total} entries"))
                        } else {
                            Ok(start.elapsed())
                        };
                    }
                    "ldirectord" => {
                        let mut cf = format!(
                            "checktimeout=5\ncheckinterval=60\nquiescent=no\nautoreload=no\nlogfile=\"{}\"\n",
                            dir.join("ldirectord.log").display()
                        );
                        for i in 0..services {
                            cf.push_str(&format!("virtual={}:80\n", vip(i)));
                            for j in 0..dests {
                                cf.push_str(&format!("\treal={}:80 masq 1\n", rip(j)));
                            }
                            cf.push_str("\tchecktype=on\n\tscheduler=wlc\n\tprotocol=tcp\n");
                        }
                        let path = dir.join("ldirectord.cf");
                        std::fs::write(&path, cf).map_err(|e| e.to_string())?;
                        let start = Instant::now();
                        ok(Command::new("ldirectord").arg(&path).arg("start"))?;
                        return until_complete(start);
                    }
                    "keepalived" => {
                        let mut conf = String::from("global_defs {\n router_id bench\n}\n");
                        for i in 0..services {
                            conf.push_str(&format!(
                                "virtual_server {} 80 {{\n lb_algo wlc\n lb_kind NAT\n protocol TCP\n",
                                vip(i)
                            ));
                            for j in 0..dests {
                                conf.push_str(&format!(" real_server {} 80 {{\n  weight 1\n }}\n", rip(j)));
                            }
                            conf.push_str("}\n");
                        }
                        let path = dir.join("keepalived.conf");
                        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
                        let start = Instant::now();
                        quiet(Command::new("keepalived"))
                            .args(["-n", "-l", "-C", "-f"])
                            .arg(&path)
                            .arg("-p")
                            .arg(dir.join("k.pid"))
                            .arg("-c")
                            .arg(dir.join("kc.pid"))
                            .spawn()
                            .map_err(|e| e.to_string())?;
                        return until_complete(start);
                    }
                    _ => {}
                }
                let ipvs = IpvsClient::connect().map_err(|e| e.to_string())?;
                for i in 0..services {
                    let key: ServiceKey =
                        format!("tcp:{}:80", vip(i)).parse().map_err(|e: lvs_ipvs::Error| e.to_string())?;
                    ipvs.add_service(&Service::new(key, "wlc")).map_err(|e| e.to_string())?;
                    for j in 0..dests {
                        let addr = rip(j).parse().map_err(|_| "addr")?;
                        ipvs.add_destination(&key, &Destination::new(addr, 80, ForwardMethod::Masq).with_weight(1))
                            .map_err(|e| e.to_string())?;
                    }
                }
                let n = count_entries(anchor_pid);
                if n < total {
                    return Err(format!("table has {n} of {total} entries"));
                }
                Ok(start.elapsed())
            })
            .join()
            .map_err(|_| "thread panicked".to_string())
        })?;
        let _ = anchor.kill();
        let _ = anchor.wait();
        // Dropping the namespace kills the daemons in it and frees its table.
        drop(ns);
        rows.push((tool, took));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "IPVS programming: {services} services x {dests} destinations ({total} entries) from an empty table, lab VM"
    );
    println!("{:<20} {:>12} {:>14}", "tool", "time", "vs ours");
    let ours = rows[0].1.as_ref().ok().map(|d| d.as_secs_f64());
    let mut summary = Vec::new();
    let metric = format!("IPVS programming, {services}x{dests}");
    for (i, (tool, t)) in rows.iter().enumerate() {
        match (t, ours) {
            (Ok(t), Some(o)) => println!("{tool:<20} {:>12} {:>13.2}x", ms(*t), t.as_secs_f64() / o),
            (Ok(t), None) => println!("{tool:<20} {:>12}", ms(*t)),
            (Err(e), _) => println!("{tool:<20} failed: {e}"),
        }
        if i == 0 {
            continue;
        }
        let ours = ours.map(|o| (o, ms(Duration::from_secs_f64(o)))).unwrap_or((0.0, "failed".into()));
        summary.push(match t {
            Ok(t) => Row::lower(metric.clone(), ours, (t.as_secs_f64(), format!("{tool} {}", ms(*t)))),
            // A peer that did not finish has no time to compare.
            Err(_) => Row::lower(metric.clone(), ours, (0.0, format!("{tool} did not finish"))),
        });
    }
    Ok(summary)
}

/// CPU seconds of a process, its threads and its reaped children
/// (utime + stime + cutime + cstime): ldirectord's forked checks count too.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12, 13, 14].iter().filter_map(|&i| f.get(i).and_then(|x| x.parse::<f64>().ok())).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// Peak resident memory (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The health check the scale benchmark runs, in each tool's terms.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaleCheck {
    /// TCP connect (ours: check=connect; keepalived: TCP_CHECK; ldirectord: checktype=connect).
    Connect,
    /// HTTP GET / expecting 200 (ours: check=http; keepalived: HTTP_GET; ldirectord: negotiate http).
    Http,
}

/// What one health-scale run compares.
pub struct Scale {
    pub reals: usize,
    pub seconds: u64,
    pub check: ScaleCheck,
    /// Percentage of reals whose packets are dropped: their checks time out.
    pub silent_pct: usize,
    /// Also run ldirectord (fork=yes); heavy at thousands of reals.
    pub ldirectord: bool,
    /// Skip the peers.
    pub ours_only: bool,
}

/// Answers every connection on 0.0.0.0:80 in namespace `ns`, on every
/// address: accept-and-close for connect checks, a 200 for HTTP.
/// Event-driven, like the web servers it stands for: a client that sends
/// its request late delays only its own answer.
fn responder(ns: &str, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> R<Vec<std::thread::JoinHandle<()>>> {
    use std::sync::atomic::Ordering;
    let (tx, rx) = std::sync::mpsc::channel();
    let name = ns.to_string();
    let first = std::thread::spawn(move || {
        let bound = (|| -> R<std::net::TcpListener> {
            lvs_tests::topo::enter(&name);
            // A deep accept queue: thousands of checks arrive in one burst.
            std::fs::write("/proc/sys/net/core/somaxconn", "65535").map_err(|e| e.to_string())?;
            std::fs::write("/proc/sys/net/ipv4/tcp_max_syn_backlog", "65535").map_err(|e| e.to_string())?;
            let sock = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet,
                nix::sys::socket::SockType::Stream,
                nix::sys::socket::SockFlag::empty(),
                None,
            )
            .map_err(|e| e.to_string())?;
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReuseAddr, &true)
                .map_err(|e| e.to_string())?;
            let addr = nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, 80);
            nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&sock), &addr).map_err(|e| e.to_string())?;
            nix::sys::socket::listen(&sock, nix::sys::socket::Backlog::MAXCONN).map_err(|e| e.to_string())?;
            let l = std::net::TcpListener::from(sock);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        })();
        let _ = tx.send(bound);
    });
    let _ = first.join();
    let listener = rx.recv().map_err(|e| e.to_string())??;
    let mut threads = Vec::new();
    for _ in 0..2 {
        let l = listener.try_clone().map_err(|e| e.to_string())?;
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(l) = tokio::net::TcpListener::from_std(l) else { return };
                while !stop.load(Ordering::Relaxed) {
                    tokio::select! {
                        accepted = l.accept() => match accepted {
                            Ok((s, _)) => {
                                tokio::spawn(answer(s));
                            }
                            // Out of files: let connections finish first.
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        },
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            });
        }));
    }
    Ok(threads)
}

/// One connection: a 200 once an HTTP request has come; a bare connect
/// check closes first and the read just ends.
async fn answer(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 1024];
    let mut seen = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n").await;
            break;
        }
    }
}

/// TCP connections opened from namespace `d` so far (ActiveOpens in
/// /proc/net/snmp): every check's connect, answered or not.
fn active_opens(d: &Ns) -> u64 {
    let out = d.stdout(&["cat", "/proc/net/snmp"]);
    let mut tcp = out.lines().filter(|l| l.starts_with("Tcp:"));
    match (tcp.next(), tcp.next()) {
        (Some(names), Some(values)) => names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "ActiveOpens")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Destinations with weight > 0 in the namespace's table (from `ipvsadm -Ln`).
fn up_in_table(d: &Ns) -> usize {
    let out = d.stdout(&["ipvsadm", "-Ln"]);
    out.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"->") && f.get(3).and_then(|w| w.parse::<u32>().ok()).is_some_and(|w| w > 0)
        })
        .count()
}

/// N real servers on 127.1.x.y (one responder answers them all; a share of
/// them silenced by a drop rule), checked every second for `seconds`: CPU
/// seconds and peak RSS of our health daemon vs keepalived's checker process
/// (and, on request, ldirectord with its forked checks).
pub fn health_scale(o: &Scale) -> R<Vec<Row>> {
    let n = o.reals.max(1);
    // The responder may hold thousands of connections at once; without
    // room for them the bench could not even read /proc to measure.
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 65536, 65536)
        .map_err(|e| format!("raising the open-files limit: {e}"))?;
    let dir = std::env::temp_dir().join(format!("lvs-bench-hs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let first = u32::from(std::net::Ipv4Addr::new(127, 1, 0, 1));
    let addr = |i: usize| std::net::Ipv4Addr::from(first + u32::try_from(i).expect("address"));
    let end = addr(n - 1);
    let silent = n * o.silent_pct.min(100) / 100;
    let (check_name, ours_check, ka_check) = match o.check {
        ScaleCheck::Connect => ("TCP connect", "connect", "TCP_CHECK {\n   connect_timeout 1\n  }"),
        ScaleCheck::Http => (
            "HTTP GET /",
            "http",
            "HTTP_GET {\n   url {\n    path /\n    status_code 200\n   }\n   connect_timeout 1\n  }",
        ),
    };
    let mut tools = vec!["lvs-agents"];
    if !o.ours_only {
        tools.push("keepalived");
    }
    if o.ldirectord {
        tools.push("ldirectord");
    }
    // Per tool: CPU seconds, peak RSS in MiB, reals up at the end.
    struct Measured {
        cpu: f64,
        /// Checks made in the window (TCP connections opened).
        checks: f64,
        rss: f64,
        up: usize,
    }
    type ToolRow<'a> = (&'a str, R<Measured>);
    let mut rows: Vec<ToolRow> = Vec::new();
    for tool in tools {
        let d = Ns::new("bench-hs");
        sh(&["ip", "-n", &d.ns, "addr", "add", "10.0.0.100/32", "dev", "lo"])?;
        if silent > 0 {
            let rule = format!(
                "add table ip bench; add chain ip bench in {{ type filter hook input priority 0; }}; add rule ip bench in ip daddr {}-{} tcp dport 80 drop",
                addr(0),
                addr(silent - 1)
            );
            ok(&mut d.command(&["nft", &rule]))?;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = responder(&d.ns, stop.clone())?;
        let measured = (|| -> R<Measured> {
            let pid = match tool {
                "lvs-agents" => {
                    let run = dir.join("run");
                    let mut c = d.command(&[&our_bin("lvs-service")?.to_string_lossy(), "start"]);
                    ok(c.env("OCF_RESOURCE_INSTANCE", "hs")
                        .env("HA_LOGFACILITY", "none")
                        .env("OCF_RESKEY_service", "tcp:10.0.0.100:80"))?;
                    let mut c = d.command(&[&our_bin("lvs-realservers")?.to_string_lossy(), "start"]);
                    if o.check == ScaleCheck::Http {
                        c.env("OCF_RESKEY_request", "/");
                    }
                    ok(c.env("OCF_RESOURCE_INSTANCE", "hs")
                        .env("HA_LOGFACILITY", "none")
                        .env("LVS_RUN_DIR", &run)
                        .env("OCF_RESKEY_CRM_meta_timeout", "120000")
                        .env("OCF_RESKEY_service", "tcp:10.0.0.100:80")
                        .env("OCF_RESKEY_real", format!("127.1.0.1->{end}:80 masq 1"))
                        .env("OCF_RESKEY_check", ours_check)
                        .env("OCF_RESKEY_check_interval", "1")
                        .env("OCF_RESKEY_check_timeout", "1"))?;
                    let text = std::fs::read_to_string(run.join("realservers-hs.pid")).map_err(|e| e.to_string())?;
                    text.trim().parse::<u32>().map_err(|e| e.to_string())?
                }
                "keepalived" => {
                    let mut conf = String::from(
                        "global_defs {\n router_id bench\n}\nvirtual_server 10.0.0.100 80 {\n delay_loop 1\n lb_algo rr\n lb_kind NAT\n protocol TCP\n",
                    );
                    for i in 0..n {
                        conf.push_str(&format!(" real_server {} 80 {{\n  weight 1\n  {ka_check}\n }}\n", addr(i)));
                    }
                    conf.push_str("}\n");
                    let path = dir.join("keepalived.conf");
                    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
                    let parent = keepalived(&d, &path, &dir)?;
                    std::thread::sleep(Duration::from_secs(3));
                    // The checker is keepalived's child process.
                    children(parent.id()).first().copied().ok_or("keepalived started no checker process")?
                }
                _ => {
                    let check = match o.check {
                        ScaleCheck::Connect => "\tchecktype=connect\n".to_string(),
                        ScaleCheck::Http => {
                            "\tchecktype=negotiate\n\tservice=http\n\trequest=\"/\"\n\treceive=\"ok\"\n".into()
                        }
                    };
                    let mut cf = format!(
                        "checktimeout=1\ncheckinterval=1\nnegotiatetimeout=1\nfork=yes\nquiescent=yes\nautoreload=no\nlogfile=\"{}\"\nvirtual=10.0.0.100:80\n{check}\tscheduler=rr\n\tprotocol=tcp\n",
                        dir.join("ldirectord.log").display()
                    );
                    for i in 0..n {
                        cf.push_str(&format!("\treal={}:80 masq 1\n", addr(i)));
                    }
                    let path = dir.join("ldirectord.cf");
                    std::fs::write(&path, cf).map_err(|e| e.to_string())?;
                    ok(&mut d.command(&["ldirectord", &path.to_string_lossy(), "start"]))?;
                    // /var/run/ldirectord.<config file name>.pid, written once it has forked.
                    let pidfile = "/var/run/ldirectord.ldirectord.cf.pid";
                    let start = Instant::now();
                    loop {
                        if let Some(pid) =
                            std::fs::read_to_string(pidfile).ok().and_then(|p| p.trim().parse::<u32>().ok())
                        {
                            break pid;
                        }
                        if start.elapsed() > Duration::from_secs(60) {
                            return Err(format!("no {pidfile} after 60 s"));
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            };
            // Let the first rounds settle, then measure a steady window.
            std::thread::sleep(Duration::from_secs(5));
            let (c0, a0, t0) = (cpu_seconds(pid), active_opens(&d), Instant::now());
            std::thread::sleep(Duration::from_secs(o.seconds));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err("the checker process died".into());
            }
            let scale = o.seconds as f64 / t0.elapsed().as_secs_f64();
            let cpu = (cpu_seconds(pid) - c0) * scale;
            let checks = active_opens(&d).saturating_sub(a0) as f64 * scale;
            Ok(Measured { cpu, checks, rss: peak_rss_mib(pid), up: up_in_table(&d) })
        })();
        if tool == "ldirectord" {
            let _ = quiet(d.command(&["ldirectord", &dir.join("ldirectord.cf").to_string_lossy(), "stop"])).status();
        }
        rows.push((tool, measured));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        drop(d);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "health checks at scale: {n} reals (127.1.x.y, one responder), {silent} of them silent (dropped), {check_name} every 1 s, timeout 1 s, {} s measured, lab VM",
        o.seconds
    );
    // Under emulation a tool may not manage one check per real per second;
    // CPU per check compares tools that did different amounts of work.
    println!(
        "{:<12} {:>12} {:>8} {:>10} {:>14} {:>10} {:>11}",
        "tool", "CPU seconds", "CPU/s", "checks/s", "CPU ms/check", "peak RSS", "up at end"
    );
    // None when the tool made no check at all in the window.
    let per_check = |m: &Measured| (m.checks >= 1.0).then(|| m.cpu * 1000.0 / m.checks);
    let show = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "no checks".into());
    for (tool, r) in &rows {
        match r {
            Ok(m) => println!(
                "{tool:<12} {:>12.2} {:>7.1}% {:>10.0} {:>14} {:>6.1} MiB {:>11}",
                m.cpu,
                m.cpu / o.seconds as f64 * 100.0,
                m.checks / o.seconds as f64,
                show(per_check(m)),
                m.rss,
                format!("{}/{}", m.up, n - silent)
            ),
            Err(e) => println!("{tool:<12} failed: {e}"),
        }
    }
    let mut summary = Vec::new();
    if let Some(Ok(ours)) = rows.first().map(|(_, r)| r) {
        for (tool, r) in &rows[1..] {
            if let Ok(m) = r {
                let what = format!("{n} reals, {check_name}");
                let cpc =
                    |m: &Measured| per_check(m).map(|v| (v, format!("{v:.3} ms"))).unwrap_or((0.0, "no checks".into()));
                let (pc, pt) = cpc(m);
                summary.push(Row::lower(format!("{what}: CPU per check"), cpc(ours), (pc, format!("{tool} {pt}"))));
                let cps = |m: &Measured| m.checks / o.seconds as f64;
                summary.push(Row::higher(
                    format!("{what}: checks/s"),
                    (cps(ours), format!("{:.0}", cps(ours))),
                    (cps(m), format!("{tool} {:.0}", cps(m))),
                ));
                summary.push(Row::lower(
                    format!("{what}: peak RSS"),
                    (ours.rss, format!("{:.1} MiB", ours.rss)),
                    (m.rss, format!("{tool} {:.1} MiB", m.rss)),
                ));
                summary.push(Row::higher(
                    format!("{what}: healthy reals up at end"),
                    (ours.up as f64, format!("{}/{}", ours.up, n - silent)),
                    (m.up as f64, format!("{tool} {}/{}", m.up, n - silent)),
                ));
                let ratio = match (per_check(m), per_check(ours)) {
                    (Some(a), Some(b)) => format!("{:.2}x", a / b),
                    _ => "-".into(),
                };
                println!(
                    "{tool} / lvs-agents: CPU {:.2}x, CPU per check {ratio}, peak RSS {:.2}x",
                    m.cpu / ours.cpu.max(1e-9),
                    m.rss / ours.rss.max(1e-9)
                );
            }
        }
    }
    Ok(summary)
}
