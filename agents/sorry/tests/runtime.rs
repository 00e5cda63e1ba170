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
