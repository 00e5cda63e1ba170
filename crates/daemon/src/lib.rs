//! Background health daemons: one per resource instance, started by the
//! agent's `start`, found again by `monitor`/`stop` through a pidfile, and
//! reporting through a state file. Everything lives under
//! `/run/lvs-agents/` (`LVS_RUN_DIR` overrides it for tests), mode 0600.
//!
//! The daemon is the agent binary re-executed with the hidden action
//! [`DAEMON_ACTION`]: a fresh process, not a fork of one that may hold a
//! runtime, with stdio on /dev/null so the cluster manager, which reads the
//! agent's output until EOF, is not kept waiting.
//!
//! Liveness is the daemon's `flock` on its pidfile, held for its life;
//! freshness a CLOCK_BOOTTIME heartbeat in its own file, immune to
//! wall-clock steps; actions on one instance serialise on a lock file.
//! File names encode the instance name injectively ([`encode`]).

pub mod child;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub mod agent;

use lvs_ocf::{AgentSpec, Error, Result};

/// The argv word that makes an agent binary run as its daemon.
pub const DAEMON_ACTION: &str = "__daemon";

/// Runs a future to completion on a single-threaded runtime: agent calls
/// are short and sequential, and a current-thread runtime starts in
/// microseconds where a multi-threaded one spawns workers.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    Ok(rt.block_on(fut))
}

/// The body of an agent's background daemon: runs until told to stop.
pub type DaemonMain = fn(&AgentSpec, &Instance, &str) -> Result<()>;

/// [`lvs_ocf::run`] for agents that keep a daemon: `agent __daemon
/// INSTANCE` (as spawned by [`Instance::spawn`]) runs `daemon` instead,
/// and every other action but validate-all holds the instance's action
/// lock.
pub fn run_agent<F>(spec: &AgentSpec, handler: F, daemon: DaemonMain) -> std::process::ExitCode
where
    F: FnOnce(&lvs_ocf::Context) -> Result<lvs_ocf::Outcome>,
{
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let (Some(true), Some(instance)) = (args.get(1).map(|a| a == DAEMON_ACTION), args.get(2)) {
        // We spawn daemons with UTF-8 names only (see Instance::spawn).
        let Some(instance) = instance.to_str() else {
            return std::process::ExitCode::from(lvs_ocf::ExitCode::ErrArgs as u8);
        };
        lvs_ocf::log::init(spec.name, instance, |k| std::env::var(k).ok());
        let inst = Instance::new(spec.name, instance);
        return match daemon(spec, &inst, instance) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("daemon exits: {e}");
                std::process::ExitCode::from(lvs_ocf::ExitCode::from(&e) as u8)
            }
        };
    }
    lvs_ocf::run_with(spec, handler, Some(&InstanceLock))
}

/// What a resource put into the kernel, kept next to its daemon's files
/// ([`Instance::recordfile`]) so that stop, monitor and reload work from it
/// whatever the parameters say by then.
/// A file that shows its daemon alive as it is written.
struct Alive<'a> {
    file: File,
    instance: &'a Instance,
}

impl Write for Alive<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.instance.sign_of_life();
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Instance {
    /// The record; unreadable counts as absent: stop then goes by the
    /// identity parameter alone, as after a reboot.
    pub fn load_record<T: DeserializeOwned>(&self) -> Option<T> {
        match self.read_json::<T>(&self.recordfile()) {
            Ok(r) => r.map(|(r, _)| r),
            Err(e) => {
                tracing::warn!("ignoring an unreadable record: {e}");
                None
            }
        }
    }

    /// Writes the record; a failure is logged, not fatal (stop falls back
    /// to the identity parameter).
    pub fn save_record<T: Serialize>(&self, record: &T) {
        if let Err(e) = self.write_json(&self.recordfile(), record) {
            tracing::warn!("{e}; stop will go by the parameters alone");
        }
    }

    /// Removes the record once what it names is gone.
    pub fn forget_record(&self) {
        let _ = fs::remove_file(self.recordfile());
    }
}

/// The action lock of [`run_agent`]: a flock on the instance's lockfile.
struct InstanceLock;

impl lvs_ocf::ActionLock for InstanceLock {
    fn lock(&self, agent: &str, instance: &str, wait: Duration) -> Result<Option<Box<dyn std::any::Any>>> {
        Ok(Instance::new(agent, instance).lock_actions(wait)?.map(|f| Box::new(f) as Box<dyn std::any::Any>))
    }

    fn remove(&self, agent: &str, instance: &str) {
        Instance::new(agent, instance).remove_lockfile();
    }
}

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
    /// The instance name exactly as given; the daemon's argv carries it.
    name: String,
    /// Its file-name form (see [`encode`]).
    stem: String,
    dir: PathBuf,
    /// Set in the daemon: the pidfile, locked for the daemon's life.
    held: Arc<OnceLock<PidLock>>,
}

#[derive(Debug)]
struct PidLock {
    /// Held for the lock, never read.
    #[allow(dead_code)]
    file: Flock<File>,
    beat: File,
    dev: u64,
    ino: u64,
    /// The last state-write errno, so each new problem is logged once.
    errno: AtomicI32,
    /// CLOCK_BOOTTIME (ms) of the last [`Instance::sign_of_life`] beat.
    alive_at: AtomicU64,
}

fn run_dir() -> PathBuf {
    std::env::var_os("LVS_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/lvs-agents"))
}

/// Longest file-name stem; with the agent name and extension the name stays
/// well below the 255 bytes a file name may have.
const MAX_STEM: usize = 200;

/// The file-name form of an instance name, injective: `[A-Za-z0-9-_.]`
/// stay, every other byte (`%` included) becomes `%XX`, and the empty
/// name is `%`. A longer result keeps its first part and appends `~` and
/// the MD5 of the whole name (`~` appears in no other form).
pub fn encode(name: &str) -> String {
    use std::fmt::Write as _;
    if name.is_empty() {
        return "%".into();
    }
    let mut s = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    if s.len() > MAX_STEM {
        use md5::{Digest, Md5};
        s.truncate(MAX_STEM - 33);
        s.push('~');
        for b in Md5::digest(name.as_bytes()) {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

/// The instance name back from [`encode`] (lvsctl shows it); a shortened
/// form is shown as it is.
pub fn decode(stem: &str) -> String {
    if stem == "%" {
        return String::new();
    }
    if stem.contains('~') {
        return stem.to_string();
    }
    let b = stem.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file-name form before it was made injective (`réal` and `rèal`
/// were both `r_al`): daemons started by an older version are found under it.
fn legacy_stem(name: &str) -> String {
    if name.is_empty() {
        return "default".into();
    }
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
}

/// How often [`Instance::sign_of_life`] writes at most: well inside the shortest
/// freshness limit (3 x 1 s + 1 s).
pub const ALIVE_EVERY: Duration = Duration::from_millis(500);

/// The current time on CLOCK_BOOTTIME: steady (no wall-clock steps) and
/// counting suspend, the same in every process of this boot.
pub fn boottime() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| {
            Duration::new(
                u64::try_from(t.tv_sec()).unwrap_or(0),
                u32::try_from(t.tv_nsec()).unwrap_or(0).min(999_999_999),
            )
        })
        .unwrap_or_default()
}

/// What a daemon's heartbeat file holds: `BOOTTIME_MS ERRNO READY`, fixed
/// width, rewritten in place through a descriptor the daemon holds (so a
/// full /run cannot stop it). The pidfile holds the pid alone, as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// CLOCK_BOOTTIME of the daemon's last sign of life.
    pub at: Duration,
    /// The errno of the last failed state write, 0 when it worked.
    pub errno: i32,
    /// The first round is over.
    pub ready: bool,
}

impl Heartbeat {
    fn parse(text: &str) -> Option<Heartbeat> {
        let mut w = text.split_whitespace();
        let at = Duration::from_millis(w.next()?.parse().ok()?);
        let errno = w.next()?.parse().ok()?;
        let ready = w.next()? == "1";
        Some(Heartbeat { at, errno, ready })
    }

    fn line(&self) -> String {
        format!("{:>20} {:>6} {}\n", self.at.as_millis(), self.errno, u8::from(self.ready))
    }
}

/// How fresh a heartbeat is, judged on one steady clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale(Duration),
}

/// `heartbeat` and `now` are CLOCK_BOOTTIME readings of two processes;
/// the wall clock plays no part, so stepping it changes nothing.
pub fn judge(heartbeat: Duration, now: Duration, limit: Duration) -> Freshness {
    let age = now.saturating_sub(heartbeat);
    if age <= limit {
        Freshness::Fresh
    } else {
        Freshness::Stale(age)
    }
}

/// Opens (creating, mode 0600, never through a symlink) a file to flock.
fn open_lockable(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

impl Instance {
    pub fn new(agent: &str, instance: &str) -> Instance {
        Instance::in_dir(agent, instance, run_dir())
    }

    pub fn in_dir(agent: &str, instance: &str, dir: PathBuf) -> Instance {
        let mut inst = Instance {
            agent: agent.to_string(),
            name: instance.to_string(),
            stem: encode(instance),
            dir,
            held: Arc::default(),
        };
        // A daemon an older version started keeps its files: found under
        // the old name, and only when it runs this very instance.
        let legacy = legacy_stem(instance);
        if legacy != inst.stem && !inst.pidfile().exists() {
            let old = Instance { stem: legacy, ..inst.clone() };
            if old.read_pid().is_some_and(|pid| is_our_daemon(pid, instance)) {
                inst = old;
            }
        }
        inst
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}-{}.{ext}", self.agent, self.stem))
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
    /// The daemon's heartbeat (see [`Heartbeat`]).
    pub fn heartbeatfile(&self) -> PathBuf {
        self.file("heartbeat")
    }
    /// The parameters the daemon runs with; rewritten by `reload`.
    pub fn paramsfile(&self) -> PathBuf {
        self.file("params")
    }
    /// Serialises the actions on this instance; a successful stop removes
    /// it (see [`Instance::lock_actions`] for why that is safe).
    pub fn lockfile(&self) -> PathBuf {
        self.file("lock")
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
        Ok(())
    }

    pub fn read_pid(&self) -> Option<u32> {
        fs::read_to_string(self.pidfile()).ok()?.split_whitespace().next()?.parse().ok()
    }

    pub fn read_heartbeat(&self) -> Option<Heartbeat> {
        Heartbeat::parse(&fs::read_to_string(self.heartbeatfile()).ok()?)
    }

    /// True while some process holds the pidfile's lock (a daemon's life).
    fn pidfile_locked(&self) -> bool {
        self.locked_pidfile().is_some()
    }

    /// The pidfile, opened, while some process holds its lock.
    fn locked_pidfile(&self) -> Option<File> {
        let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(self.pidfile()).ok()?;
        match Flock::lock(f, FlockArg::LockSharedNonblock) {
            Err((f, Errno::EWOULDBLOCK)) => Some(f),
            _ => None,
        }
    }

    /// Running: the pidfile is locked (or the daemon is of an older
    /// version, which neither locked nor wrote a heartbeat) and names a
    /// live daemon of exactly this instance.
    pub fn liveness(&self) -> Liveness {
        match self.read_pid() {
            None if self.pidfile().exists() => Liveness::Dead(0),
            None => Liveness::Stopped,
            Some(pid) => {
                let legacy = !self.heartbeatfile().exists();
                if (legacy || self.pidfile_locked()) && is_our_daemon(pid, &self.name) {
                    Liveness::Running(pid)
                } else {
                    Liveness::Dead(pid)
                }
            }
        }
    }

    /// Takes the lock that serialises actions on this instance, waiting up
    /// to `wait`. None when the lock file cannot even be made (a read-only
    /// /run): the action goes on unserialised rather than not at all. A
    /// lock won on a file that is no longer at the path (a stop removed
    /// it) does not count: the next waiter must not hold it next to whoever
    /// made the new file.
    pub fn lock_actions(&self, wait: Duration) -> Result<Option<Flock<File>>> {
        let path = self.lockfile();
        let open = || {
            self.ensure_dir()?;
            open_lockable(&path)
        };
        let began = Instant::now();
        loop {
            let f = match open() {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("{e}; going on without the instance lock");
                    return Ok(None);
                }
            };
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => {
                    let same = |m: fs::Metadata| (m.dev(), m.ino());
                    if l.metadata().ok().map(same) == fs::symlink_metadata(&path).ok().map(same) {
                        return Ok(Some(l));
                    }
                }
                Err((_, Errno::EWOULDBLOCK)) => {}
                Err((_, e)) => {
                    tracing::warn!("locking {}: {e}; going on without the instance lock", path.display());
                    return Ok(None);
                }
            }
            if began.elapsed() >= wait {
                return Err(Error::generic(format!(
                    "another action on this instance is still running after {}s",
                    wait.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After a successful stop, with the lock held: nothing of the
    /// instance is left in the run directory.
    pub fn remove_lockfile(&self) {
        let _ = fs::remove_file(self.lockfile());
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
            // Each 64 KiB out is a sign of life: the state of 16,384 reals
            // took seconds to write in the emulated lab while monitor waited.
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, Alive { file: f, instance: self });
            serde_json::to_writer(&mut out, value)?;
            out.flush()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("writing {}", path.display()), e)
        })
    }

    /// Marks a file as fresh without rewriting it.
    pub fn touch(&self, path: &Path) -> Result<()> {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(|e| Error::io(format!("touching {}", path.display()), e))
    }

    /// The daemon's state: written, and the heartbeat with it. A failed
    /// write (full or read-only /run) is logged and shown in the pidfile
    /// for monitor; the daemon keeps running, since exiting would leave
    /// the kernel table to the next recovery's stop.
    pub fn write_state<T: Serialize>(&self, value: &T) {
        let r = self.write_json(&self.statefile(), value);
        self.beat(r, true);
    }

    /// The state is unchanged: only the heartbeat (and the file's time).
    pub fn touch_state(&self) {
        let r = self.touch(&self.statefile());
        self.beat(r, false);
    }

    /// A sign of life in the middle of long work (the first fill of a
    /// large table takes minutes of kernel writes, the first round of
    /// thousands of slow checks tens of seconds): the heartbeat only, at
    /// most every [`ALIVE_EVERY`]; errno and readiness stay as they were.
    /// Called from the work itself, so a daemon stuck in it still goes stale.
    pub fn sign_of_life(&self) {
        let Some(held) = self.held.get() else { return };
        let now = boottime();
        let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let every = u64::try_from(ALIVE_EVERY.as_millis()).unwrap_or(u64::MAX);
        if ms.saturating_sub(held.alive_at.load(Ordering::Relaxed)) < every {
            return;
        }
        held.alive_at.store(ms, Ordering::Relaxed);
        let beat = Heartbeat { at: now, errno: held.errno.load(Ordering::Relaxed), ready: read_ready(&held.beat) };
        if let Err(e) = held.beat.write_all_at(beat.line().as_bytes(), 0) {
            tracing::warn!("writing {}: {e}", self.heartbeatfile().display());
        }
    }

    fn beat(&self, r: Result<()>, ready: bool) {
        let Some(held) = self.held.get() else { return };
        let errno = match &r {
            Ok(()) => 0,
            Err(e) => e.errno().unwrap_or(libc::EIO),
        };
        if held.errno.swap(errno, Ordering::Relaxed) != errno {
            match r {
                Ok(()) => tracing::info!("the state is written again"),
                Err(e) => tracing::error!("{e}; running on, monitor reports it"),
            }
        }
        let ready = ready || read_ready(&held.beat);
        let beat = Heartbeat { at: boottime(), errno, ready };
        if let Err(e) = held.beat.write_all_at(beat.line().as_bytes(), 0) {
            tracing::warn!("writing {}: {e}", self.heartbeatfile().display());
        }
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

    /// Called by the daemon itself: locks the pidfile for the rest of its
    /// life and records its pid. Fails if another daemon holds it.
    pub fn claim_pidfile(&self) -> Result<()> {
        self.ensure_dir()?;
        let path = self.pidfile();
        let mut f = open_lockable(&path)?;
        let io = |e: std::io::Error| Error::io(format!("writing {}", path.display()), e);
        // Readers take the lock shared for an instant: retry briefly.
        let began = Instant::now();
        let file = loop {
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => break l,
                Err((back, Errno::EWOULDBLOCK)) if began.elapsed() < Duration::from_secs(1) => {
                    f = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    let other = self.read_pid().unwrap_or(0);
                    return Err(Error::generic(format!("another daemon (pid {other}) runs this instance")));
                }
                Err((_, e)) => return Err(Error::io(format!("locking {}", path.display()), e.into())),
            }
        };
        let meta = file.metadata().map_err(io)?;
        // The heartbeat first: a reader that sees our pid also sees it.
        let beat_path = self.heartbeatfile();
        let beat = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&beat_path)
            .and_then(|b| {
                b.write_all_at(Heartbeat { at: boottime(), errno: 0, ready: false }.line().as_bytes(), 0)?;
                Ok(b)
            })
            .map_err(|e| Error::io(format!("writing {}", beat_path.display()), e))?;
        file.set_len(0).map_err(io)?;
        file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0).map_err(io)?;
        let lock = PidLock {
            file,
            beat,
            dev: meta.dev(),
            ino: meta.ino(),
            errno: AtomicI32::new(0),
            alive_at: AtomicU64::new(0),
        };
        self.held.set(lock).map_err(|_| Error::generic("the pidfile is claimed twice"))
    }

    /// The daemon still owns its pidfile: the path leads to the file it
    /// locked (not removed, not replaced by another daemon's).
    pub fn owns_pidfile(&self) -> bool {
        let Some(held) = self.held.get() else { return false };
        fs::symlink_metadata(self.pidfile()).is_ok_and(|m| m.dev() == held.dev && m.ino() == held.ino)
    }

    /// Removes the daemon's files; called by the daemon on a clean exit and
    /// by stop after a kill.
    pub fn remove_files(&self) {
        for p in [self.statefile(), self.paramsfile(), self.heartbeatfile(), self.pidfile()] {
            let _ = fs::remove_file(p);
        }
    }

    /// Asks the daemon to re-read its parameters.
    pub fn reload(&self) -> Result<()> {
        match self.liveness() {
            Liveness::Running(pid) => signal(pid, &self.name, Signal::SIGHUP),
            _ => Err(Error::generic("the daemon is not running")),
        }
    }

    /// Whether the daemon `pid` still runs: it is ours, or the pidfile is
    /// still locked (by it, on its way out).
    fn alive(&self, pid: u32) -> bool {
        is_our_daemon(pid, &self.name) || self.pidfile_locked()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Success when nothing runs.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        let pid = match self.liveness() {
            Liveness::Running(pid) => pid,
            Liveness::Dead(pid) => {
                // Killed (OOM killer, kill -9): what its commands left. Only
                // for a daemon alive a moment ago, so its pid cannot have
                // gone to another session since.
                let recent =
                    self.read_heartbeat().is_some_and(|b| judge(b.at, boottime(), SWEEP_WITHIN) == Freshness::Fresh);
                if pid != 0 && recent && is_gone(pid) {
                    kill_session(pid);
                }
                // A holder of the lock we cannot identify is not signalled;
                // losing its pidfile ends it within a second. Wait for
                // that, or it could re-add what the rest of stop removes.
                let held = self.locked_pidfile();
                self.remove_files();
                if let Some(f) = held {
                    return wait_unlocked(f, grace.max(Duration::from_secs(2)));
                }
                return Ok(());
            }
            Liveness::Stopped => {
                self.remove_files();
                return Ok(());
            }
        };
        let _ = signal(pid, &self.name, Signal::SIGTERM);
        let began = Instant::now();
        while began.elapsed() < grace {
            if !self.alive(pid) {
                self.remove_files();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("daemon {pid} ignored SIGTERM for {grace:?}; killing it");
        let _ = signal(pid, &self.name, Signal::SIGKILL);
        let began = Instant::now();
        while self.alive(pid) && began.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.alive(pid) {
            return Err(Error::generic(format!("daemon {pid} survived SIGKILL")));
        }
        // Its check processes had no chance to be cleaned up.
        kill_session(pid);
        self.remove_files();
        Ok(())
    }
}

/// Waits until nobody holds the lock on `f` (a pidfile already removed).
fn wait_unlocked(mut f: File, limit: Duration) -> Result<()> {
    let began = Instant::now();
    loop {
        match Flock::lock(f, FlockArg::LockSharedNonblock) {
            Ok(_) => return Ok(()),
            Err((back, Errno::EWOULDBLOCK)) if began.elapsed() < limit => {
                f = back;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => {
                return Err(Error::generic(format!("a process we cannot identify still holds the pidfile: {e}")))
            }
        }
    }
}

/// How recently a dead daemon must have shown life for stop to sweep its
/// session.
const SWEEP_WITHIN: Duration = Duration::from_secs(120);

/// Sends `sig` to `pid` only after checking it is our daemon of `name`.
fn signal(pid: u32, name: &str, sig: Signal) -> Result<()> {
    if !is_our_daemon(pid, name) {
        return Err(Error::generic(format!("process {pid} is not the daemon of '{name}'; not signalled")));
    }
    let target = i32::try_from(pid).map_err(|_| Error::generic(format!("pid {pid} out of range")))?;
    kill(Pid::from_raw(target), sig).map_err(|e| Error::generic(format!("signalling daemon {pid}: {e}")))
}

/// SIGKILL to every process left in the session of a dead daemon
/// (daemons lead their own session; their commands run in it, in groups of
/// their own). A session id stays reserved while any member lives, so
/// with the leader gone the members can only be the daemon's leftovers.
fn kill_session(sid: u32) {
    let Ok(entries) = fs::read_dir("/proc") else { return };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid pgrp session ...
        let session = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(3));
        if session.and_then(|s| s.parse::<u32>().ok()) == Some(sid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// No process `pid`, or only its zombie.
fn is_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

fn read_ready(f: &File) -> bool {
    let mut buf = [0u8; 64];
    let n = f.read_at(&mut buf, 0).unwrap_or(0);
    std::str::from_utf8(&buf[..n]).ok().and_then(Heartbeat::parse).is_some_and(|b| b.ready)
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
    /// parameters, spawns the daemon and waits (within `budget`) until it
    /// has locked its pidfile and finished its first round.
    pub fn start(&self, params: &lvs_ocf::Params, budget: Duration) -> Result<()> {
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
            let ours = self.instance.read_pid() == Some(pid);
            if alive && ours && self.instance.read_heartbeat().is_some_and(|b| b.ready) {
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

    /// Running when the daemon lives and its heartbeat is fresh (at most
    /// three rounds old, on CLOCK_BOOTTIME); a leftover pidfile or a stale
    /// heartbeat is a failure. A daemon that cannot write its state is
    /// running (it still keeps the table right); monitor logs why.
    pub fn monitor(&self) -> Result<lvs_ocf::Outcome> {
        let limit = self.updated_every * 3 + Duration::from_secs(1);
        match self.instance.liveness() {
            Liveness::Stopped => Ok(lvs_ocf::Outcome::NotRunning),
            Liveness::Dead(pid) => {
                Err(Error::generic(format!("the daemon (pid {pid}) is gone but its pidfile is left: it died")))
            }
            Liveness::Running(pid) => {
                let Some(beat) = self.instance.read_heartbeat() else {
                    return self.monitor_legacy(pid, limit);
                };
                if let Freshness::Stale(age) = judge(beat.at, boottime(), limit) {
                    return Err(Error::generic(format!(
                        "the daemon (pid {pid}) looks hung: no sign of life for {}s (limit {}s)",
                        age.as_secs(),
                        limit.as_secs()
                    )));
                }
                if beat.errno != 0 {
                    tracing::warn!(
                        "the daemon (pid {pid}) cannot write its state in {}: {}; it keeps running",
                        self.instance.dir.display(),
                        std::io::Error::from_raw_os_error(beat.errno)
                    );
                }
                Ok(lvs_ocf::Outcome::Running)
            }
        }
    }

    /// A daemon of an older version has no heartbeat: the state file's
    /// wall-clock age is all there is until it is restarted.
    fn monitor_legacy(&self, pid: u32, limit: Duration) -> Result<lvs_ocf::Outcome> {
        let age = fs::metadata(self.instance.statefile())
            .and_then(|m| m.modified())
            .ok()
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
        match age {
            Some(a) if a <= limit => Ok(lvs_ocf::Outcome::Running),
            Some(a) => Err(Error::generic(format!(
                "the daemon (pid {pid}) looks hung: its state is {}s old (limit {}s)",
                a.as_secs(),
                limit.as_secs()
            ))),
            None => Err(Error::generic(format!("the daemon (pid {pid}) has written no state"))),
        }
    }

    /// New parameters for a running daemon: rewrite them and signal it.
    /// Without a daemon there is nothing to reload (Pacemaker reloads only
    /// running resources), and nothing is started.
    pub fn reload(&self, params: &lvs_ocf::Params) -> Result<lvs_ocf::Outcome> {
        if !matches!(self.instance.liveness(), Liveness::Running(_)) {
            tracing::info!("not running; nothing to reload");
            return Ok(lvs_ocf::Outcome::NotRunning);
        }
        self.instance.write_json(&self.instance.paramsfile(), &params.raw())?;
        self.instance.reload()?;
        Ok(lvs_ocf::Outcome::Running)
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
/// single-threaded runtime until it returns, SIGTERM/SIGINT arrive (even
/// while the body is busy, e.g. in its first round: the body is dropped,
/// and with it its checks) or the pidfile is no longer ours; then removes
/// the files if they are still ours — the pidfile last of all, so stop
/// sees the daemon until it is done.
pub fn run<F: std::future::Future<Output = Result<()>>>(instance: &Instance, body: F) -> Result<()> {
    instance.claim_pidfile()?;
    let result = block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let s = |k: SignalKind| signal(k).map_err(|e| Error::io("installing signal handlers", e));
        let (mut term, mut int) = (s(SignalKind::terminate())?, s(SignalKind::interrupt())?);
        tokio::select! {
            r = body => r,
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
            e = watch_pidfile(instance) => Err(e),
        }
    })?;
    if instance.owns_pidfile() {
        instance.remove_files();
    }
    result
}

/// Resolves when the pidfile stops being ours (removed, or replaced by
/// another daemon's): this daemon must then go, or it would keep
/// re-adding reals a stop removed.
async fn watch_pidfile(instance: &Instance) -> Error {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !instance.owns_pidfile() {
            return Error::generic(format!("{} is gone or not ours: exiting", instance.pidfile().display()));
        }
    }
}

/// On SIGHUP: the new parameters made into the daemon's configuration by
/// `make`, or None (logged) when they do not check out and the daemon
/// keeps running with what it has.
pub fn reloaded<T>(
    instance: &Instance,
    spec: &AgentSpec,
    make: impl FnOnce(&lvs_ocf::Params) -> Result<T>,
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
    pub fn read_params(&self, spec: &AgentSpec) -> Result<lvs_ocf::Params> {
        let raw: Vec<(String, String)> = self
            .read_json(&self.paramsfile())?
            .map(|(v, _)| v)
            .ok_or_else(|| Error::generic(format!("{} is missing", self.paramsfile().display())))?;
        lvs_ocf::Params::parse(spec, &raw).map(|(p, _)| p)
    }
}

/// True when `pid` is alive and is a daemon of exactly this instance:
/// our own binary (`/proc/PID/exe`, also after an upgrade replaced it)
/// run as `BINARY __daemon NAME`. A reused pid is never mistaken for (or
/// signalled as) ours.
fn is_our_daemon(pid: u32, name: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // A zombie has an empty cmdline: it is gone for our purposes.
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if args.get(1) != Some(&DAEMON_ACTION.as_bytes()) || args.get(2) != Some(&name.as_bytes()) {
        return false;
    }
    let exe = |p: &Path| {
        fs::read_link(p).ok().map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_suffix(" (deleted)").map(String::from).unwrap_or(l)
        })
    };
    match (exe(Path::new(&format!("/proc/{pid}/exe"))), exe(Path::new("/proc/self/exe"))) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => false,
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
    fn sign_of_life_freshens_the_heartbeat_and_keeps_readiness_at_most_every_alive_every() {
        let i = tmp_instance("alive");
        let _ = fs::remove_dir_all(&i.dir);
        i.claim_pidfile().unwrap();
        let first = i.read_heartbeat().unwrap();
        assert!(!first.ready);
        i.write_state(&1);
        let ready = i.read_heartbeat().unwrap();
        assert!(ready.ready);
        i.sign_of_life();
        let beat = i.read_heartbeat().unwrap();
        assert!(beat.ready && beat.errno == 0 && beat.at >= ready.at, "{beat:?} after {ready:?}");
        // Within ALIVE_EVERY of that beat: no write.
        i.sign_of_life();
        assert_eq!(i.read_heartbeat().unwrap().at, beat.at);
        std::thread::sleep(ALIVE_EVERY + Duration::from_millis(50));
        i.sign_of_life();
        let later = i.read_heartbeat().unwrap();
        assert!(later.at >= beat.at + ALIVE_EVERY, "{later:?} after {beat:?}");
        assert!(later.ready);
        let _ = fs::remove_dir_all(&i.dir);
    }

    #[test]
    fn names_encode_injectively_and_decode() {
        assert_eq!(encode("web:0"), "web%3A0");
        assert_eq!(encode("r\u{e9}al"), "r%C3%A9al");
        assert_eq!(encode("50%"), "50%25");
        assert_eq!(encode(""), "%");
        for n in ["web:0", "r\u{e9}al", "50%", "", "vip/10.0.0.1::x", "a%3Ab"] {
            assert_eq!(decode(&encode(n)), n);
        }
        let i = Instance::in_dir("realservers", "web:0", PathBuf::from("/run/x"));
        assert_eq!(i.pidfile(), PathBuf::from("/run/x/realservers-web%3A0.pid"));
        let long = "x/".repeat(200);
        assert!(encode(&long).len() <= MAX_STEM && encode(&long).contains('~'));
        assert_ne!(encode(&long), encode(&format!("{long}y")));
    }

    #[test]
    fn freshness_is_judged_on_the_boot_clock_only() {
        let s = Duration::from_secs;
        let limit = s(16);
        assert_eq!(judge(s(1000), s(1010), limit), Freshness::Fresh);
        assert_eq!(judge(s(1000), s(1016), limit), Freshness::Fresh);
        assert_eq!(judge(s(1000), s(1017), limit), Freshness::Stale(s(17)));
        // a heartbeat "ahead" of the reader (readings a moment apart) is fresh
        assert_eq!(judge(s(1001), s(1000), limit), Freshness::Fresh);
    }

    #[test]
    fn heartbeat_lines_round_trip_at_a_fixed_width() {
        let b = Heartbeat { at: Duration::from_millis(123_456), errno: 28, ready: true };
        assert_eq!(Heartbeat::parse(&b.line()), Some(b));
        let first = Heartbeat { at: Duration::ZERO, errno: 0, ready: false };
        assert_eq!(b.line().len(), first.line().len(), "rewritten in place: fixed width");
        assert_eq!(Heartbeat::parse(""), None);
        let i = tmp_instance("pid");
        for text in ["1234", "1234\n"] {
            i.write_json(&i.pidfile(), &text).unwrap();
            fs::write(i.pidfile(), text).unwrap();
            assert_eq!(i.read_pid(), Some(1234), "{text:?}");
        }
        i.remove_files();
    }

    #[test]
    fn a_lock_file_removed_by_its_holder_never_lets_two_in() {
        let i = tmp_instance("unlink");
        let a = i.lock_actions(Duration::ZERO).unwrap().unwrap();
        std::thread::scope(|s| {
            // b waits on the file a holds
            let b = s.spawn(|| i.lock_actions(Duration::from_millis(1500)).map(|l| l.is_some()));
            std::thread::sleep(Duration::from_millis(100));
            // a's stop removes the file, then releases it; c makes a new one
            fs::remove_file(i.lockfile()).unwrap();
            drop(a);
            let c = i.lock_actions(Duration::ZERO).unwrap();
            assert!(c.is_some());
            let b = b.join().unwrap();
            assert!(b.is_err(), "b and c both hold the lock: {b:?}");
            drop(c);
        });
        assert!(i.lock_actions(Duration::ZERO).unwrap().is_some());
    }

    #[test]
    fn action_lock_excludes_a_second_holder_until_released() {
        let i = tmp_instance("lock");
        let first = i.lock_actions(Duration::ZERO).unwrap();
        assert!(first.is_some());
        let began = Instant::now();
        let second = i.lock_actions(Duration::from_millis(200));
        assert!(second.is_err(), "two holders");
        assert!(began.elapsed() >= Duration::from_millis(200));
        drop(first);
        assert!(i.lock_actions(Duration::ZERO).unwrap().is_some());
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
