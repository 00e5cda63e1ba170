//! Background health daemons: one per resource instance, started by the
//! agent's `start`, found again by `monitor`/`stop` through a pidfile, and
//! reporting through a state file. Everything lives under
//! `/run/lvs-agents/` (`LVS_RUN_DIR` overrides it for tests), mode 0600.
//!
//! The daemon is the agent binary re-executed with the hidden action
//! [`DAEMON_ACTION`]: a fresh process, not a fork of one that may hold a
//! runtime, with stdio on /dev/null so the cluster manager, which reads the
//! agent's output until EOF, is not kept waiting.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The argv word that makes an agent binary run as its daemon.
pub const DAEMON_ACTION: &str = "__daemon";

/// What the pidfile says about the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// No pidfile: never started, or stopped cleanly.
    Stopped,
    Running(u32),
    /// A pidfile names a process that is gone (or is not our daemon).
    Dead(u32),
}

/// The files of one resource instance's daemon.
#[derive(Debug, Clone)]
pub struct Instance {
    agent: String,
    name: String,
    dir: PathBuf,
}

fn run_dir() -> PathBuf {
    std::env::var_os("LVS_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/lvs-agents"))
}

/// File-name-safe form of a resource instance name (clones carry `:N`,
/// heartbeat instances carry addresses and slashes).
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
}

impl Instance {
    pub fn new(agent: &str, instance: &str) -> Instance {
        Instance::in_dir(agent, instance, run_dir())
    }

    pub fn in_dir(agent: &str, instance: &str, dir: PathBuf) -> Instance {
        let name = if instance.is_empty() { "default".to_string() } else { file_safe(instance) };
        Instance { agent: agent.to_string(), name, dir }
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}-{}.{ext}", self.agent, self.name))
    }
    pub fn pidfile(&self) -> PathBuf {
        self.file("pid")
    }
    pub fn statefile(&self) -> PathBuf {
        self.file("state")
    }
    /// What start put into the kernel, so that stop and monitor work from
    /// it whatever the parameters say by then. Kept by the agent, not the
    /// daemon: `remove_files` leaves it.
    pub fn recordfile(&self) -> PathBuf {
        self.file("record")
    }
    /// The parameters the daemon runs with; rewritten by `reload`.
    pub fn paramsfile(&self) -> PathBuf {
        self.file("params")
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
        Ok(())
    }

    fn read_pid(&self) -> Option<u32> {
        fs::read_to_string(self.pidfile()).ok()?.trim().parse().ok()
    }

    pub fn liveness(&self) -> Liveness {
        match self.read_pid() {
            None => Liveness::Stopped,
            Some(pid) if is_our_daemon(pid, &self.name) => Liveness::Running(pid),
            Some(pid) => Liveness::Dead(pid),
        }
    }

    /// Writes `value` as JSON, atomically (readers never see half a file).
    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        self.ensure_dir()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        // Streamed, not built in memory first: a state of 10,000 reals is
        // megabytes, rewritten every interval. Compact and in 64 KiB writes
        // for the same reason (lvsctl status is the readable view).
        let write = || -> std::io::Result<()> {
            let f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, f);
            serde_json::to_writer(&mut out, value)?;
            out.flush()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// Marks a file as fresh without rewriting it.
    pub fn touch(&self, path: &Path) -> Result<()> {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(|e| Error::io(format!("touching {}", path.display()), e))
    }

    /// Reads a JSON file and its age; None when it does not exist.
    pub fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<(T, Duration)>> {
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let age = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let value =
            serde_json::from_slice(&text).map_err(|e| Error::generic(format!("reading {}: {e}", path.display())))?;
        Ok(Some((value, age)))
    }

    /// Starts the daemon: this binary again with [`DAEMON_ACTION`] and the
    /// instance name, in its own session, inheriting the environment.
    pub fn spawn(&self, instance: &str) -> Result<u32> {
        self.ensure_dir()?;
        let exe = std::env::current_exe().map_err(|e| Error::io("finding our own binary", e))?;
        let mut cmd = Command::new(exe);
        cmd.arg(DAEMON_ACTION)
            .arg(instance)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/");
        // SAFETY: setsid is async-signal-safe; nothing else runs in pre_exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| Error::io("starting the daemon", e))?;
        Ok(child.id())
    }

    /// Called by the daemon itself: records its pid. Fails if another live
    /// daemon of this instance holds the pidfile.
    pub fn claim_pidfile(&self) -> Result<()> {
        self.ensure_dir()?;
        if let Liveness::Running(pid) = self.liveness() {
            if pid != std::process::id() {
                return Err(Error::generic(format!("another daemon (pid {pid}) runs this instance")));
            }
        }
        self.write_json(&self.pidfile(), &std::process::id())
    }

    /// Removes the daemon's files; called by the daemon on a clean exit and
    /// by stop after a kill.
    pub fn remove_files(&self) {
        for p in [self.pidfile(), self.statefile(), self.paramsfile()] {
            let _ = fs::remove_file(p);
        }
    }

    /// Asks the daemon to re-read its parameters.
    pub fn reload(&self) -> Result<()> {
        match self.liveness() {
            Liveness::Running(pid) => kill(Pid::from_raw(pid as i32), Signal::SIGHUP)
                .map_err(|e| Error::generic(format!("signalling daemon {pid}: {e}"))),
            _ => Err(Error::generic("the daemon is not running")),
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Success when nothing runs.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        let pid = match self.liveness() {
            Liveness::Running(pid) => pid,
            Liveness::Dead(_) | Liveness::Stopped => {
                self.remove_files();
                return Ok(());
            }
        };
        let target = Pid::from_raw(pid as i32);
        let _ = kill(target, Signal::SIGTERM);
        let began = Instant::now();
        while began.elapsed() < grace {
            if !is_our_daemon(pid, &self.name) {
                self.remove_files();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("daemon {pid} ignored SIGTERM for {grace:?}; killing it");
        let _ = kill(target, Signal::SIGKILL);
        let began = Instant::now();
        while is_our_daemon(pid, &self.name) && began.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_our_daemon(pid, &self.name) {
            return Err(Error::generic(format!("daemon {pid} survived SIGKILL")));
        }
        self.remove_files();
        Ok(())
    }
}

/// The agent side of a daemon-backed resource: start, monitor, stop and
/// reload as OCF means them. The daemon writes its state file after every
/// round; `updated_every` is how often that should happen.
pub struct Supervisor<'a> {
    pub instance: &'a Instance,
    /// The instance name to pass to the daemon (unsanitised).
    pub name: &'a str,
    pub updated_every: Duration,
}

impl Supervisor<'_> {
    /// Idempotent: a running daemon is success. Otherwise writes the
    /// parameters, spawns the daemon and waits (within `budget`) for its
    /// first state file, so start returns once the first round has run.
    pub fn start(&self, params: &crate::ocf::Params, budget: Duration) -> Result<()> {
        if let Liveness::Running(pid) = self.instance.liveness() {
            tracing::info!("daemon already running (pid {pid})");
            return Ok(());
        }
        self.instance.remove_files();
        self.instance.write_json(&self.instance.paramsfile(), &params.raw())?;
        let pid = self.instance.spawn(self.name)?;
        let began = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let alive = is_our_daemon(pid, &self.instance.name);
            if alive && self.instance.statefile().exists() {
                tracing::info!("daemon started (pid {pid})");
                return Ok(());
            }
            if !alive && began.elapsed() > Duration::from_millis(500) {
                return Err(Error::generic(format!("the daemon (pid {pid}) exited during start; see the log for why")));
            }
            if began.elapsed() >= budget {
                // Slow first round (e.g. many timeouts): running is enough.
                return if alive {
                    tracing::warn!("daemon (pid {pid}) has not finished its first round within {budget:?}");
                    Ok(())
                } else {
                    Err(Error::generic(format!("the daemon (pid {pid}) did not start")))
                };
            }
        }
    }

    /// Running when the daemon lives and its state is fresh (at most three
    /// rounds old); a leftover pidfile or a stale state is a failure.
    pub fn monitor(&self) -> Result<crate::ocf::Outcome> {
        match self.instance.liveness() {
            Liveness::Stopped => Ok(crate::ocf::Outcome::NotRunning),
            Liveness::Dead(pid) => {
                Err(Error::generic(format!("the daemon (pid {pid}) is gone but its pidfile is left: it died")))
            }
            Liveness::Running(pid) => {
                let age = fs::metadata(self.instance.statefile())
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok());
                let limit = self.updated_every * 3 + Duration::from_secs(1);
                match age {
                    Some(a) if a <= limit => Ok(crate::ocf::Outcome::Running),
                    Some(a) => Err(Error::generic(format!(
                        "the daemon (pid {pid}) looks hung: its state is {}s old (limit {}s)",
                        a.as_secs(),
                        limit.as_secs()
                    ))),
                    None => Err(Error::generic(format!("the daemon (pid {pid}) has written no state"))),
                }
            }
        }
    }

    /// New parameters for a running daemon: rewrite them and signal it.
    /// Without a daemon there is nothing to reload (Pacemaker reloads only
    /// running resources), and nothing is started.
    pub fn reload(&self, params: &crate::ocf::Params) -> Result<crate::ocf::Outcome> {
        if !matches!(self.instance.liveness(), Liveness::Running(_)) {
            tracing::info!("not running; nothing to reload");
            return Ok(crate::ocf::Outcome::NotRunning);
        }
        self.instance.write_json(&self.instance.paramsfile(), &params.raw())?;
        self.instance.reload()?;
        Ok(crate::ocf::Outcome::Running)
    }

    /// Stops the daemon within `timeout`, keeping a margin for the cluster
    /// manager: SIGTERM, then SIGKILL.
    pub fn stop(&self, timeout: Duration) -> Result<()> {
        let grace =
            timeout.saturating_sub(Duration::from_secs(3)).clamp(Duration::from_millis(500), Duration::from_secs(10));
        self.instance.stop(grace)
    }
}

/// What woke a daemon's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Tick,
    Reload,
    Terminate,
}

/// SIGTERM/SIGINT and SIGHUP as events of a daemon's async loop.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called inside a tokio runtime.
    pub fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let s = |k: SignalKind| signal(k).map_err(|e| Error::io("installing signal handlers", e));
        Ok(Signals {
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
            hup: s(SignalKind::hangup())?,
        })
    }

    /// Sleeps until `deadline` unless a signal comes first.
    pub async fn sleep_until(&mut self, deadline: tokio::time::Instant) -> Wake {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => Wake::Tick,
            w = self.recv() => w,
        }
    }

    /// The next signal: Reload or Terminate (never Tick).
    pub async fn recv(&mut self) -> Wake {
        tokio::select! {
            _ = self.term.recv() => Wake::Terminate,
            _ = self.int.recv() => Wake::Terminate,
            _ = self.hup.recv() => Wake::Reload,
        }
    }
}

/// Runs a daemon's body: claims the pidfile, runs `body` on a
/// single-threaded runtime until it returns, then removes the files — the
/// pidfile last of all, so stop sees the daemon until it is done.
pub fn run<F: std::future::Future<Output = Result<()>>>(instance: &Instance, body: F) -> Result<()> {
    instance.claim_pidfile()?;
    let result = crate::block_on(body)?;
    instance.remove_files();
    result
}

/// On SIGHUP: the new parameters made into the daemon's configuration by
/// `make`, or None (logged) when they do not check out and the daemon
/// keeps running with what it has.
pub fn reloaded<T>(
    instance: &Instance,
    spec: &crate::ocf::AgentSpec,
    make: impl FnOnce(&crate::ocf::Params) -> Result<T>,
) -> Option<T> {
    match instance.read_params(spec).and_then(|p| make(&p)) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("reload ignored: {e}");
            None
        }
    }
}

impl Instance {
    /// The daemon's side of the parameters file written by start/reload.
    pub fn read_params(&self, spec: &crate::ocf::AgentSpec) -> Result<crate::ocf::Params> {
        let raw: Vec<(String, String)> = self
            .read_json(&self.paramsfile())?
            .map(|(v, _)| v)
            .ok_or_else(|| Error::generic(format!("{} is missing", self.paramsfile().display())))?;
        crate::ocf::Params::parse(spec, &raw).map(|(p, _)| p)
    }
}

/// True when `pid` is alive and is a daemon of this instance, so a reused
/// pid is never mistaken for (or killed as) ours.
fn is_our_daemon(pid: u32, name: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // A zombie has an empty cmdline: it is gone for our purposes.
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let pos = args.iter().position(|a| *a == DAEMON_ACTION.as_bytes());
    match pos.and_then(|i| args.get(i + 1)) {
        Some(arg) => file_safe(&String::from_utf8_lossy(arg)) == name,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_instance(tag: &str) -> Instance {
        let dir = std::env::temp_dir().join(format!("lvs-daemon-test-{tag}-{}", std::process::id()));
        Instance::in_dir("t", "res:1", dir)
    }

    #[test]
    fn names_are_file_safe() {
        assert_eq!(file_safe("vip/10.0.0.1::x"), "vip_10.0.0.1::x");
        let i = Instance::in_dir("realservers", "web:0", PathBuf::from("/run/x"));
        assert_eq!(i.pidfile(), PathBuf::from("/run/x/realservers-web:0.pid"));
    }

    #[test]
    fn state_round_trips_atomically_with_mode_0600() {
        let i = tmp_instance("state");
        let v = vec![("a".to_string(), 1u32)];
        i.write_json(&i.statefile(), &v).unwrap();
        let (back, age): (Vec<(String, u32)>, _) = i.read_json(&i.statefile()).unwrap().unwrap();
        assert_eq!(back, v);
        assert!(age < Duration::from_secs(5));
        let mode = fs::metadata(i.statefile()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        i.remove_files();
        assert!(i.read_json::<u32>(&i.statefile()).unwrap().is_none());
    }

    #[test]
    fn touch_refreshes_the_age_and_keeps_the_content() {
        let i = tmp_instance("touch");
        i.write_json(&i.statefile(), &7u32).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        OpenOptions::new().write(true).open(i.statefile()).unwrap().set_modified(old).unwrap();
        let (_, age): (u32, _) = i.read_json(&i.statefile()).unwrap().unwrap();
        assert!(age >= Duration::from_secs(59), "{age:?}");
        i.touch(&i.statefile()).unwrap();
        let (v, age): (u32, _) = i.read_json(&i.statefile()).unwrap().unwrap();
        assert_eq!(v, 7);
        assert!(age < Duration::from_secs(5), "{age:?}");
        i.remove_files();
        assert!(i.touch(&i.statefile()).is_err(), "touch does not create");
    }

    #[test]
    fn stale_pidfile_reads_as_dead_and_stop_cleans_it() {
        let i = tmp_instance("stale");
        assert_eq!(i.liveness(), Liveness::Stopped);
        // Our own test process is alive but is not a daemon of this instance.
        i.write_json(&i.pidfile(), &std::process::id()).unwrap();
        assert_eq!(i.liveness(), Liveness::Dead(std::process::id()));
        i.stop(Duration::from_millis(10)).unwrap();
        assert_eq!(i.liveness(), Liveness::Stopped);
        assert!(!i.pidfile().exists());
    }
}
