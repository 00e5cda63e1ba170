//! Commands a daemon runs (external checks, sorry's fallback_command):
//! no shell, a clean environment, their own process group — killed as a
//! whole when the command is abandoned — and SIGKILL when the daemon
//! itself dies (PR_SET_PDEATHSIG), so nothing outlives the daemon.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The only inherited variable's value: commands get no OCF_RESKEY_*,
/// HA_* or other variables of the cluster manager.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `program` set up to run as described above; add arguments and the
/// documented variables.
pub fn command(program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is a plain system call, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd
}

/// Kills the process group on drop unless disarmed: a command's future is
/// dropped by a timeout or a cancelled check while the child still runs,
/// and no code after the await would run then.
pub struct GroupKill(pub Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // The leader is not reaped yet (tokio reaps after this), so the
            // group id cannot have been reused.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Runs `cmd` (made by [`command`]) to its end or until `limit`, when
/// its whole process group is killed. An exit on its own leaves whatever
/// it deliberately left running.
pub async fn run(cmd: &mut tokio::process::Command, limit: Option<Duration>) -> Result<ExitStatus, String> {
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut guard = GroupKill(child.id().and_then(|p| i32::try_from(p).ok()));
    let status = match limit {
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                drop(guard);
                let _ = child.wait().await;
                return Err(format!("killed after {}s", limit.as_secs_f32()));
            }
        },
        None => child.wait().await,
    };
    guard.0 = None;
    status.map_err(|e| format!("wait: {e}"))
}
