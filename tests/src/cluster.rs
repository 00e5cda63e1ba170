//! A real single-node corosync + Pacemaker, started and stopped by a test
//! (no systemd here: both run in the background as plain processes).
//! Recipe: shared/notes/lab-facts.md, "Pacemaker ... no systemd".

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    dir: PathBuf,
    corosync: Child,
    pacemakerd: Child,
    pub node: String,
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

/// Runs a shell-free command and panics with its output when it fails.
pub fn must(cmd: &str, args: &[&str]) -> String {
    let (ok, out) = run(cmd, args);
    assert!(ok, "{cmd} {args:?} failed:\n{out}");
    out
}

/// Polls `f` every 200 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn running(name: &str) -> bool {
    run("pgrep", &["-x", name]).0
}

impl Cluster {
    /// Starts corosync and pacemakerd with a fresh CIB (stonith off, quorum
    /// ignored, dc-deadtime 2 s so the node is Online in seconds).
    pub fn start() -> Cluster {
        let node = must("uname", &["-n"]).trim().to_string();
        Cluster::start_member(&[(node.as_str(), "127.0.0.1")])
    }

    /// Starts this machine's part of a cluster of `nodes` (name, ring
    /// address; this machine's `uname -n` must be one of the names) and waits
    /// until every node is Online. Two nodes get corosync's two_node quorum,
    /// so the survivor keeps quorum when its peer dies. Fencing is off.
    pub fn start_member(nodes: &[(&str, &str)]) -> Cluster {
        let nodes: Vec<(&str, Vec<&str>)> = nodes.iter().map(|(n, a)| (*n, vec![*a])).collect();
        Cluster::start_with(
            &nodes,
            &[("stonith-enabled", "false"), ("no-quorum-policy", "ignore"), ("dc-deadtime", "2s")],
        )
    }

    /// Like [`Cluster::start_member`], but each node has one address per
    /// corosync (knet) link, and the CIB is seeded with `properties` (e.g.
    /// stonith-enabled=true) instead of the fencing-off defaults. A node
    /// that joins a running cluster takes the cluster's CIB, not its seed.
    pub fn start_with(nodes: &[(&str, Vec<&str>)], properties: &[(&str, &str)]) -> Cluster {
        for d in ["corosync", "pacemakerd", "pacemaker-based"] {
            assert!(!running(d), "{d} is already running: these tests need the machine's cluster stack to themselves");
        }
        let node = must("uname", &["-n"]).trim().to_string();
        assert!(nodes.iter().any(|(n, _)| *n == node), "this node ({node}) is not in {nodes:?}");
        let dir = std::env::temp_dir().join(format!("lvs-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let conf = dir.join("corosync.conf");
        let members: String = nodes
            .iter()
            .enumerate()
            .map(|(i, (name, addrs))| {
                let rings: String = addrs.iter().enumerate().map(|(l, a)| format!("  ring{l}_addr: {a}\n")).collect();
                format!(" node {{\n  name: {name}\n  nodeid: {}\n{rings} }}\n", i + 1)
            })
            .collect();
        let two_node = if nodes.len() == 2 { " two_node: 1\n" } else { "" };
        // token 5 s between emulated (TCG) guests, which stall now and then:
        // a shorter token would see a live peer as lost.
        let token = if nodes.len() > 1 { " token: 5000\n" } else { "" };
        std::fs::write(
            &conf,
            format!(
                "totem {{\n version: 2\n cluster_name: lvs-test\n transport: knet\n{token} crypto_cipher: none\n crypto_hash: none\n}}\n\
                 nodelist {{\n{members}}}\n\
                 quorum {{\n provider: corosync_votequorum\n{two_node}}}\n\
                 logging {{\n to_logfile: yes\n logfile: {}\n to_syslog: no\n to_stderr: no\n}}\n",
                dir.join("corosync.log").display()
            ),
        )
        .expect("corosync.conf");
        // Seed the CIB before the first start, as lab-facts describes.
        let cib_dir = Path::new("/var/lib/pacemaker/cib");
        for entry in std::fs::read_dir(cib_dir).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let seed = dir.join("seed.xml");
        let empty = must("cibadmin", &["--empty"]);
        std::fs::write(&seed, empty).expect("seed");
        for (k, v) in properties {
            let st = Command::new("crm_attribute")
                .args(["-t", "crm_config", "-n", k, "-v", v])
                .env("CIB_file", &seed)
                .output()
                .expect("crm_attribute");
            assert!(st.status.success(), "seeding {k}: {}", String::from_utf8_lossy(&st.stderr));
        }
        let cib = cib_dir.join("cib.xml");
        std::fs::copy(&seed, &cib).expect("install cib.xml");
        must("chown", &["hacluster:haclient", cib.to_str().unwrap_or_default()]);
        must("chmod", &["600", cib.to_str().unwrap_or_default()]);

        let corosync = Command::new("setsid")
            .args(["corosync", "-f", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start corosync");
        // Quorum needs every node once (wait_for_all): peers boot in parallel.
        let limit = Duration::from_secs(if nodes.len() > 1 { 300 } else { 30 });
        wait_for("corosync quorum", limit, || run("corosync-quorumtool", &["-s"]).1.contains("Quorate").then_some(()));
        let pacemakerd = Command::new("setsid")
            .arg("/usr/sbin/pacemakerd")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pacemakerd");
        wait_for("every node to be Online", limit.max(Duration::from_secs(60)), || {
            let out = run("crm_mon", &["-1"]).1;
            let online = out.lines().map(str::trim).find(|l| l.starts_with("* Online: ["))?.to_string();
            nodes.iter().all(|(n, _)| online.split_whitespace().any(|w| w == *n)).then_some(())
        });
        Cluster { dir, corosync, pacemakerd, node }
    }

    /// `crm_mon -1` text.
    pub fn status(&self) -> String {
        run("crm_mon", &["-1", "-r"]).1
    }

    /// The role `crm_mon` shows for `rsc` ("Started", "Stopped", ...).
    pub fn role(&self, rsc: &str) -> Option<String> {
        let (_, out) = run("crm_mon", &["-1", "-r"]);
        let prefix = format!("* {rsc}\t");
        let line = out.lines().map(str::trim).find(|l| l.starts_with(&prefix))?;
        line.rsplit(":\t").next().and_then(|r| r.split_whitespace().next()).map(String::from)
    }

    /// The role and node `crm_mon` shows for `rsc` ("Started", "node-a").
    pub fn placement(&self, rsc: &str) -> Option<(String, String)> {
        let (_, out) = run("crm_mon", &["-1", "-r"]);
        let prefix = format!("* {rsc}\t");
        let line = out.lines().map(str::trim).find(|l| l.starts_with(&prefix))?;
        let mut w = line.rsplit(":\t").next()?.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    }

    /// Waits until `crm_mon` shows `rsc` in `role` (e.g. "Started").
    pub fn wait_role(&self, rsc: &str, role: &str, limit: Duration) {
        wait_for(&format!("{rsc} {role}"), limit, || (self.role(rsc).as_deref() == Some(role)).then_some(()));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pacemakerd.id().to_string()]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) && running("pacemakerd") {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.pacemakerd.wait();
        let _ = Command::new("kill").args(["-TERM", &self.corosync.id().to_string()]).status();
        let _ = self.corosync.wait();
        for d in [
            "pacemaker-based",
            "pacemaker-execd",
            "pacemaker-fenced",
            "pacemaker-attrd",
            "pacemaker-schedulerd",
            "pacemaker-controld",
        ] {
            // -f: these names are longer than the 15 characters -x matches.
            let _ = Command::new("pkill").args(["-KILL", "-f", &format!("/usr/lib/pacemaker/{d}")]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Installs `target/.../lvs-<agent>` as `/usr/lib/ocf/resource.d/lvs/<agent>`
/// (a symlink, as the RPM's layout would have a file there).
pub fn install_ocf_agent(agent: &str) {
    let dir = Path::new("/usr/lib/ocf/resource.d/lvs");
    std::fs::create_dir_all(dir).expect("provider dir");
    let link = dir.join(agent);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(crate::agent::bin(&format!("lvs-{agent}")), &link).expect("symlink agent");
}

/// A point in a log file that earlier runs (or steps) also wrote: only
/// what comes after it counts.
pub struct LogMark {
    path: PathBuf,
    offset: u64,
}

impl LogMark {
    pub fn now(path: &str) -> LogMark {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LogMark { path: PathBuf::from(path), offset }
    }

    /// The text written since the mark (all of it if the file was
    /// truncated or replaced meanwhile).
    pub fn since(&self) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let from = usize::try_from(self.offset).ok().filter(|o| *o <= bytes.len()).unwrap_or(0);
        String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned()
    }
}

/// The fail count of `rsc` (`crm_failcount` says value=N; none is 0).
pub fn failcount(rsc: &str) -> u32 {
    let out = must("crm_failcount", &["--query", "-r", rsc]);
    out.split("value=").nth(1).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Steps the wall clock by `secs` (in the lab VM, whose clock is its own).
pub fn step_clock(secs: i64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let now = i64::try_from(now).expect("clock");
    must("date", &["-s", &format!("@{}", now + secs)]);
}

/// heartbeat v1's files (lab-facts: heartbeat 3.0.6): `ha_cf`, authkeys
/// (mode 600), `haresources`, our agents linked as
/// /etc/ha.d/resource.d/lvs-*, and the run directories a lab VM's fresh
/// /run lacks (the package made them on the host's).
pub fn configure_heartbeat(ha_cf: &str, haresources: &str) {
    std::fs::create_dir_all("/etc/ha.d/resource.d").expect("ha.d");
    std::fs::write("/etc/ha.d/ha.cf", ha_cf).expect("ha.cf");
    std::fs::write("/etc/ha.d/authkeys", "auth 1\n1 sha1 6c766d2d6167656e74732d6c6162\n").expect("authkeys");
    must("chmod", &["600", "/etc/ha.d/authkeys"]);
    std::fs::write("/etc/ha.d/haresources", haresources).expect("haresources");
    for a in ["vip", "service", "realservers", "sorry"] {
        let link = format!("/etc/ha.d/resource.d/lvs-{a}");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(crate::agent::bin(&format!("lvs-{a}")), &link).expect("resource.d link");
    }
    for d in ["/run/heartbeat", "/run/heartbeat/rsctmp", "/run/heartbeat/ccm", "/var/lib/heartbeat"] {
        std::fs::create_dir_all(d).expect("heartbeat run dir");
    }
    let _ = Command::new("chown").args(["hacluster:haclient", "/run/heartbeat/ccm"]).status();
}
