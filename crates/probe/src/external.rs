//! External checks: a program run without a shell, exit 0 = up.
//!
//! Like ldirectord's checkcommand it gets four arguments after its own:
//! virtual ip (or fwmark), virtual port, real ip, real port; the same go
//! in LVS_VIP, LVS_VPORT, LVS_RIP, LVS_RPORT, plus LVS_CHECKPORT.
//! It runs in its own process group, and when the check is abandoned
//! (timeout, cancellation) the whole group is killed, so helpers the
//! command started do not outlive it. Its environment is PATH and the
//! LVS_* variables only (see [`crate::daemon::child`]).

use super::checks::ExternalCheck;
use super::{Target, Virtual};
use lvs_daemon::child;

type R<T = ()> = std::result::Result<T, String>;

/// The command line and environment (only PATH and the LVS_* variables:
/// nothing of the cluster manager's); None for an empty argv.
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
    let mut cmd = child::command(program);
    cmd.args(args)
        .args([&vip, &vport, &rip, &rport])
        .env("LVS_VIP", &vip)
        .env("LVS_VPORT", &vport)
        .env("LVS_RIP", &rip)
        .env("LVS_RPORT", &rport)
        .env("LVS_CHECKPORT", &checkport);
    Some(cmd)
}

pub async fn run(target: &Target, e: &ExternalCheck) -> R {
    let program = e.argv.first().cloned().unwrap_or_default();
    let Some(mut cmd) = command(target, e) else {
        return Err("external: empty command".into());
    };
    // No limit here: the scheduler drops this future at check_timeout,
    // and the group goes with it.
    let status = child::run(&mut cmd, None).await.map_err(|err| format!("{program}: {err}"))?;
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

    #[tokio::test]
    async fn the_command_sees_only_path_and_the_lvs_variables() {
        let out = std::env::temp_dir().join(format!("lvs-external-env-{}", std::process::id()));
        // exec: the shell itself adds nothing to what env prints
        let e = ExternalCheck {
            argv: vec!["/bin/sh".into(), "-c".into(), "exec /usr/bin/env > \"$0\"".into(), out.display().to_string()],
        };
        let t = Target {
            virtual_service: Some(Virtual::Addr("192.0.2.10:80".parse().unwrap())),
            ..Target::new("127.0.0.1".parse().unwrap(), 8080)
        };
        run(&t, &e).await.unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        let mut names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
        names.sort();
        // PWD: some shells export it even through exec
        names.retain(|n| *n != "PWD");
        assert_eq!(names, ["LVS_CHECKPORT", "LVS_RIP", "LVS_RPORT", "LVS_VIP", "LVS_VPORT", "PATH"], "{env}");
    }
}
