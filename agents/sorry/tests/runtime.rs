//! The OCF runtime around the sorry agent, on the host (no IPVS needed:
//! stop and validate-all work without it).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

fn sorry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lvs-sorry"));
    let dir = std::env::temp_dir().join(format!("lvs-sorry-runtime-{}", std::process::id()));
    c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("LVS_RUN_DIR", dir).env("HA_LOGFACILITY", "none");
    c
}

fn bad() -> &'static OsStr {
    OsStr::from_bytes(b"caf\xe9")
}

fn run(c: &mut Command) -> (i32, String) {
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_non_utf8_variable_elsewhere_changes_nothing() {
    for action in ["stop", "validate-all"] {
        let (code, err) = run(sorry()
            .env("OCF_RESKEY_service", "tcp:10.0.0.100:80")
            .env("OCF_RESKEY_fallback", "127.0.0.1:80")
            .env("LANGUAGE_OF_SOMEONE_ELSE", bad())
            .arg(action));
        assert_eq!(code, 0, "{action}: {err}");
    }
}

#[test]
fn a_non_utf8_parameter_is_a_configuration_error_except_for_stop() {
    let (code, err) = run(sorry()
        .env("OCF_RESKEY_service", "tcp:10.0.0.100:80")
        .env("OCF_RESKEY_fallback", bad())
        .arg("validate-all"));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("ocf-exit-reason:") && err.contains("'fallback'") && err.contains("UTF-8"), "{err}");
    let (code, err) =
        run(sorry().env("OCF_RESKEY_service", "tcp:10.0.0.100:80").env("OCF_RESKEY_fallback", bad()).arg("stop"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_non_utf8_argument_is_a_configuration_error_except_for_stop() {
    // heartbeat form: lvs-sorry service fallback action
    let (code, err) = run(sorry().arg("tcp:10.0.0.100:80").arg(bad()).arg("validate-all"));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("UTF-8"), "{err}");
    let (code, err) = run(sorry().arg("tcp:10.0.0.100:80").arg(bad()).arg("stop"));
    assert_eq!(code, 0, "{err}");
    // a non-UTF-8 action word is not an action
    let (code, err) = run(sorry().arg(bad()));
    assert_eq!(code, 3, "{err}");
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lvs-sorry-runtime-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_newline_in_a_parameter_cannot_forge_a_log_line_or_exit_reason() {
    let dir = tmpdir("forge");
    let log = dir.join("log");
    let (code, err) = run(sorry()
        .env("HA_LOGFILE", &log)
        .env("OCF_RESKEY_service", "tcp:10.0.0.100:80")
        .env("OCF_RESKEY_fallback", "1.2.3.4\nFORGED: ERROR: forged\r\nocf-exit-reason:forged")
        .arg("validate-all"));
    assert_eq!(code, 6, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains("FORGED"), "the value is logged: {text}");
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "forged log line:\n{text}");
    assert!(!err.lines().any(|l| l.starts_with("FORGED")), "forged stderr line:\n{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("ocf-exit-reason:")).count(), 1, "{err}");
}

#[test]
fn ha_logfile_is_not_followed_through_a_symlink() {
    let dir = tmpdir("symlink");
    let target = dir.join("target");
    std::fs::write(&target, "").unwrap();
    let link = dir.join("log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, err) = run(sorry().env("HA_LOGFILE", &link).env("OCF_RESKEY_service", "nonsense").arg("validate-all"));
    assert_eq!(code, 6, "{err}");
    let written = std::fs::read_to_string(&target).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(written.is_empty(), "logged through the symlink: {written}");
}
