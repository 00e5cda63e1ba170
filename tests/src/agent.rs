//! Running agent binaries as Pacemaker and heartbeat run them.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a workspace binary (`lvs-vip`, ...). Integration tests live in
/// another package, so cargo does not build the agents for them: the test
/// command runs `cargo build --workspace` first, and this says so if not.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("LVS_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test> -> target/<profile>
            exe.parent().and_then(|p| p.parent()).expect("target dir").to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` before the integration tests (or set LVS_BIN_DIR)",
        path.display()
    );
    path
}

/// The result of one agent call.
#[derive(Debug)]
pub struct Call {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Call {
    fn from(o: Output) -> Self {
        Call {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The agent binary, run inside `netns` when given.
fn command(agent: &str, netns: Option<&str>) -> Command {
    let agent = bin(agent);
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&agent);
            c
        }
        None => Command::new(&agent),
    }
}

/// An OCF call: `OCF_RESKEY_<k>=<v> agent <action>`, optionally inside a
/// network namespace, with the variables Pacemaker always sets.
pub fn ocf(
    agent: &str,
    netns: Option<&str>,
    action: &str,
    params: &[(&str, &str)],
    extra_env: &[(&str, &str)],
) -> Call {
    ocf_command(agent, netns, action, params, extra_env).output().expect("run agent").into()
}

/// The command [`ocf`] runs, for a caller that runs it itself (to
/// measure it, say). `ip netns exec` execs the agent in place, so the
/// process is the agent's.
pub fn ocf_command(
    agent: &str,
    netns: Option<&str>,
    action: &str,
    params: &[(&str, &str)],
    extra_env: &[(&str, &str)],
) -> Command {
    let mut cmd = command(agent, netns);
    cmd.arg(action)
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", "test")
        .env("HA_LOGFACILITY", "none");
    for (k, v) in params {
        cmd.env(format!("OCF_RESKEY_{k}"), v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// A heartbeat v1 call: `agent ARG... ACTION`.
pub fn heartbeat(agent: &str, netns: Option<&str>, args: &[&str]) -> Call {
    let mut cmd = command(agent, netns);
    cmd.args(args).env("HA_LOGFACILITY", "none");
    cmd.output().expect("run agent").into()
}

/// Checks an agent's meta-data: identical to the checked-in
/// `metadata/<agent>.xml`, valid against the OCF 1.0 DTD ocf-tester uses and
/// against resource-agents' RelaxNG schema.
pub fn check_metadata(binary: &std::path::Path, agent: &str) {
    let out = Command::new(binary).arg("meta-data").output().expect("run meta-data");
    assert_eq!(out.status.code(), Some(0), "meta-data exit code");
    let xml = String::from_utf8(out.stdout).expect("utf-8 meta-data");
    let checked_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../metadata").join(format!("{agent}.xml"));
    let expected = std::fs::read_to_string(&checked_in).unwrap_or_default();
    // Only compares: rewriting is tests/bless-metadata's job, so no test
    // run (CI included) can bless a change.
    assert!(
        xml == expected,
        "{agent} meta-data differs from {}; if the change is intended, run tests/bless-metadata and review the diff\n--- binary output:\n{xml}",
        checked_in.display()
    );
    let tmp = std::env::temp_dir().join(format!("lvs-md-{agent}-{}.xml", std::process::id()));
    std::fs::write(&tmp, &xml).expect("write temp");
    for args in [
        vec!["--noout", "--dtdvalid", "/usr/share/resource-agents/ra-api-1.dtd"],
        vec!["--noout", "--relaxng", "/usr/share/resource-agents/metadata.rng"],
    ] {
        let v = Command::new("xmllint")
            .args(&args)
            .arg(&tmp)
            .output()
            .expect("xmllint (apt-get install libxml2-utils resource-agents)");
        assert!(
            v.status.success(),
            "xmllint {args:?} rejects {agent} meta-data:\n{}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
    let _ = std::fs::remove_file(&tmp);
}

/// `lvsctl doctor --json` with `args` in namespace `ns`: its exit status,
/// the checks it reported, in order, and the whole JSON.
pub fn doctor(ns: &str, args: &[&str]) -> (i32, Vec<String>, serde_json::Value) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("lvsctl"))
        .args(["doctor", "--json"])
        .args(args)
        .output()
        .expect("run lvsctl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor's JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let checks = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["check"].as_str().unwrap_or("").to_string())
        .collect();
    (out.status.code().unwrap_or(-1), checks, v)
}
