//! `ocf:lvs:sync` on an in-memory IPVS table that answers as the kernel
//! does (lvs_ipvs::FakeIpvs, pinned to the kernel by lab_ipvs): the
//! ownership and reload rules of lab_sync's lifecycle test, on "lo".

use lvs_ipvs::{Ipvs, SyncDaemon, SyncState};
use lvs_tests::agent::Call;
use lvs_tests::inproc::Director;

fn sync(d: &Director, instance: &str, action: &str, params: &[(&str, &str)]) -> Call {
    d.call(&lvs_sync::SPEC, lvs_sync::act, instance, action, params)
}

/// The daemons as `ipvsadm --list --daemon` says them, one per line.
fn daemons(d: &Director) -> String {
    d.ipvs.daemons().unwrap().iter().map(|x| lvs_sync::config::describe(x) + "\n").collect()
}

#[test]
fn lifecycle_ownership_and_monitor() {
    let d = Director::new();
    let both = [("interface", "lo"), ("syncid", "5")];
    assert_eq!(sync(&d, "s", "monitor", &both).code, 7, "probe before start");
    let c = sync(&d, "s", "start", &both);
    assert_eq!(c.code, 0, "{c:?}");
    let l = daemons(&d);
    assert!(
        l.contains("master sync daemon (mcast=lo, syncid=5") && l.contains("backup sync daemon (mcast=lo, syncid=5"),
        "{l}"
    );
    assert_eq!(sync(&d, "s", "start", &both).code, 0, "second start");
    assert_eq!(daemons(&d), l, "the second start changed nothing");
    assert_eq!(sync(&d, "s", "monitor", &both).code, 0);
    let c = sync(&d, "s", "monitor", &[("interface", "lo"), ("syncid", "6")]);
    assert_eq!(c.code, 1, "edited without a reload: an error, not stopped: {c:?}");

    // Someone replaces our backup by hand with another one.
    d.ipvs.stop_daemon(SyncState::Backup).unwrap();
    d.ipvs.start_daemon(&SyncDaemon::new(SyncState::Backup, "lo", 9)).unwrap();
    let c = sync(&d, "s", "monitor", &both);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("backup sync daemon now runs as"), "{c:?}");
    assert_eq!(sync(&d, "s", "stop", &both).code, 0);
    let l = daemons(&d);
    assert!(!l.contains("master") && l.contains("backup sync daemon (mcast=lo, syncid=9"), "{l}");
    assert_eq!(sync(&d, "s", "monitor", &both).code, 7, "after stop");

    // Start next to a foreign backup with other parameters: refused, nothing touched.
    let c = sync(&d, "s", "start", &both);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("--stop-daemon backup"), "{c:?}");
    assert_eq!(daemons(&d), l, "the refused start started nothing");
    assert_eq!(sync(&d, "s", "stop", &both).code, 0);
    assert_eq!(daemons(&d), l, "and its stop stopped nothing");

    // Stop with parameters edited into nonsense still removes ours only.
    let master = [("interface", "lo"), ("syncid", "5"), ("role", "master")];
    assert_eq!(sync(&d, "m", "start", &master).code, 0);
    let c = sync(&d, "m", "stop", &[("interface", "nonexistent0"), ("syncid", "300"), ("role", "backup")]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(daemons(&d), l, "our master is gone, the foreign backup stays");
    d.ipvs.stop_daemon(SyncState::Backup).unwrap();

    // Reload replaces what changed; a role change stops only the daemon
    // no longer asked for.
    assert_eq!(sync(&d, "r", "start", &both).code, 0);
    let six = [("interface", "lo"), ("syncid", "6"), ("mcast_ttl", "2")];
    assert_eq!(sync(&d, "r", "reload", &six).code, 0);
    let l = daemons(&d);
    assert!(
        l.contains("master sync daemon (mcast=lo, syncid=6") && l.contains("backup sync daemon (mcast=lo, syncid=6"),
        "{l}"
    );
    assert!(l.contains("ttl=2"), "{l}");
    let six_master = [("interface", "lo"), ("syncid", "6"), ("mcast_ttl", "2"), ("role", "master")];
    assert_eq!(sync(&d, "r", "reload", &six_master).code, 0);
    let l = daemons(&d);
    assert!(l.contains("master sync daemon") && !l.contains("backup"), "{l}");
    assert_eq!(sync(&d, "r", "stop", &[]).code, 0, "stop with no parameters at all");
    assert_eq!(daemons(&d), "");
    assert_eq!(sync(&d, "r", "reload", &six).code, 0, "reload of a stopped resource succeeds");
    assert_eq!(daemons(&d), "", "and starts nothing");
}

#[test]
fn a_kernel_refusal_fails_start_and_leaves_nothing_recorded_running() {
    let d = Director::new();
    let both = [("interface", "lo"), ("syncid", "5")];
    d.ipvs.fail_with(Some(libc::ENOMEM));
    let c = sync(&d, "s", "start", &both);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("ocf-exit-reason:"), "{c:?}");
    d.ipvs.fail_with(None);
    assert_eq!(daemons(&d), "");
    assert_eq!(sync(&d, "s", "stop", &both).code, 0);
    assert_eq!(sync(&d, "s", "monitor", &both).code, 7);
}
