//! Fixtures shared by the integration tests: network namespaces, veth pairs,
//! packet capture, and running our agents the way a cluster manager does.

pub mod agent;
pub mod cluster;
pub mod fake;
pub mod group;
pub mod inproc;
pub mod sniff;
pub mod topo;

/// First line of a test that needs root (network namespaces, raw
/// sockets, a cluster stack): run as another user, plain `cargo test`
/// says so and counts it passed, so unit and fake-IPVS tests run without
/// root. With `LVS_TESTS_NEED_ROOT` set (tests/run-all sets it) a test
/// that cannot run fails instead.
#[macro_export]
macro_rules! needs_root {
    () => {
        if !$crate::may_run_as_root(module_path!(), line!()) {
            return;
        }
    };
}

#[doc(hidden)]
pub fn may_run_as_root(module: &str, line: u32) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("LVS_TESTS_NEED_ROOT").is_none(),
        "{module}:{line} needs root, and LVS_TESTS_NEED_ROOT says every test must run"
    );
    eprintln!("skipped: {module}:{line} needs root (network namespaces, raw sockets); tests/run-all runs it as root");
    false
}
