//! External checks: a program run without a shell, exit 0 = up.
//!
//! Like ldirectord's checkcommand it gets four arguments after its own:
//! virtual ip (or fwmark), virtual port, real ip, real port; the same go
//! in LVS_VIP, LVS_VPORT, LVS_RIP, LVS_RPORT, plus LVS_CHECKPORT.
//! It runs in its own process group, and when the check is abandoned
//! (timeout, cancellation) the whole group is killed, so helpers the
//! command started do not outlive it.

use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::spec::ExternalCheck;
use super::{Target, Virtual};

type R<T = ()> = std::result::Result<T, String>;

/// Kills the process group on drop unless disarmed: the check future is
/// dropped by the timeout while the child still runs, and no code after
/// the await would run then.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // The leader is not reaped yet (tokio reaps after this), so the
            // group id cannot have been reused.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// The command line and environment; None for an empty argv.
fn command(target: &Target, e: &ExternalCheck) -> Option<tokio::process::Command> {
    let (program, args) = e.argv.split_first()?;
    let (vip, vport) = match target.virtual_service {
        Some(Virtual::Addr(a)) => (a.ip().to_string(), a.port().to_string()),
        Some(Virtual::Fwmark(m)) => (m.to_string(), "0".to_string()),
        None => (String::new(), "0".to_string()),
    };
    let rip = target.addr.to_string();
    let rport = target.port.to_string();
    let checkport = target.check_addr().port().to_string();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .args([&vip, &vport, &rip, &rport])
        .env("LVS_VIP", &vip)
        .env("LVS_VPORT", &vport)
        .env("LVS_RIP", &rip)
        .env("LVS_RPORT", &rport)
        .env("LVS_CHECKPORT", &checkport)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    Some(cmd)
}

pub async fn run(target: &Target, e: &ExternalCheck) -> R {
    let program = e.argv.first().cloned().unwrap_or_default();
    let Some(mut cmd) = command(target, e) else {
        return Err("external: empty command".into());
    };
    let mut child = cmd.spawn().map_err(|err| format!("{program}: {err}"))?;
    let mut guard = GroupKill(child.id().and_then(|p| i32::try_from(p).ok()));
    let status = child.wait().await.map_err(|err| format!("{program}: wait: {err}"));
    // Exited on its own: leave whatever it deliberately left running.
    guard.0 = None;
    let status = status?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Err(format!("command exited {code}")),
        (None, Some(sig)) => Err(format!("command killed by signal {sig}")),
        (None, None) => Err(format!("command failed: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn arguments_and_environment() {
        let e = ExternalCheck { argv: vec!["/usr/local/bin/check".into(), "--deep".into()] };
        let t = Target {
            checkport: Some(8081),
            virtual_service: Some(Virtual::Addr("192.0.2.10:80".parse().unwrap())),
            ..Target::new("10.1.2.3".parse().unwrap(), 8080)
        };
        let cmd = command(&t, &e).unwrap();
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "/usr/local/bin/check");
        let args: Vec<_> = std.get_args().collect();
        assert_eq!(args, ["--deep", "192.0.2.10", "80", "10.1.2.3", "8080"]);
        let env: Vec<_> = std.get_envs().collect();
        for (k, v) in [
            ("LVS_VIP", "192.0.2.10"),
            ("LVS_VPORT", "80"),
            ("LVS_RIP", "10.1.2.3"),
            ("LVS_RPORT", "8080"),
            ("LVS_CHECKPORT", "8081"),
        ] {
            assert!(env.contains(&(OsStr::new(k), Some(OsStr::new(v)))), "{k}={v} missing from {env:?}");
        }
        let fwm = Target { virtual_service: Some(Virtual::Fwmark(7)), ..t };
        let args: Vec<_> = command(&fwm, &e).unwrap().as_std().get_args().map(|a| a.to_owned()).collect();
        assert_eq!(args[1..3], ["7", "0"]);
        assert!(command(&fwm, &ExternalCheck { argv: vec![] }).is_none());
    }
}
