//! `lvsctl doctor --realserver` in network namespaces on the host: its
//! verdict follows what the kernel does. A real server it passes does not
//! answer ARP for the VIP; one it fails does. Needs root (namespaces).

use lvs_tests::agent::ocf;
use lvs_tests::topo::{wire, Host};

const VIP: &str = "10.0.0.100";

/// `lvsctl doctor --realserver VIP --json` in `h`.
fn doctor(h: &Host) -> (i32, Vec<String>, serde_json::Value) {
    lvs_tests::agent::doctor(&h.ns, &["--realserver", VIP])
}

/// The kernel's ARP defaults in `h`: a new namespace copies IPv4's
/// settings from the host's, which may have been changed.
fn arp_defaults(h: &Host) {
    for conf in ["all", "lo", "eth0"] {
        h.sysctl(&format!("net.ipv4.conf.{conf}.arp_ignore"), "0");
        h.sysctl(&format!("net.ipv4.conf.{conf}.arp_announce"), "0");
    }
}

/// Whether `h` answers an ARP request for the VIP sent from `peer`.
fn answers_arp(peer: &Host) -> bool {
    peer.run(&["arping", "-c", "2", "-w", "2", "-I", "eth0", VIP]).0
}

#[test]
fn doctor_judges_a_real_server_as_the_kernel_behaves() {
    lvs_tests::needs_root!();
    assert!(nix::unistd::geteuid().is_root(), "needs root (network namespaces)");
    let r = Host::new("rs");
    let peer = Host::new("dir");
    wire(&r, "eth0", Some("10.0.0.11/24"), &peer, "eth0", Some("10.0.0.1/24"));
    arp_defaults(&r);

    // Nothing done yet: no VIP, ARP sysctls at the kernel's defaults.
    let (code, checks, v) = doctor(&r);
    assert_eq!((code, checks.clone()), (2, vec!["vip".into(), "arp_ignore".into(), "arp_announce".into()]), "{v:#}");

    // The VIP on eth0: the host answers ARP for it, and doctor says so.
    r.must(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "eth0"]);
    let (code, checks, v) = doctor(&r);
    assert_eq!((code, checks[0].as_str()), (2, "vip"), "{v:#}");
    assert!(v["findings"][0]["message"].as_str().unwrap_or("").contains("is on eth0"), "{v:#}");
    assert!(answers_arp(&peer), "a VIP on eth0 is answered");
    r.must(&["ip", "addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);

    // The VIP on lo, sysctls untouched: the kernel still answers for it.
    r.must(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    let (code, checks, v) = doctor(&r);
    assert_eq!((code, checks), (2, vec!["arp_ignore".into(), "arp_announce".into()]), "{v:#}");
    assert!(answers_arp(&peer), "arp_ignore=0: the VIP on lo is answered on eth0");
    r.must(&["ip", "addr", "del", &format!("{VIP}/32"), "dev", "lo"]);

    // As ocf:lvs:vip mode=realserver sets it up: clean, and silent.
    let c = ocf("lvs-vip", Some(&r.ns), "start", &[("ip", VIP), ("mode", "realserver")], &[]);
    assert_eq!(c.code, 0, "{c:?}");
    let (code, checks, v) = doctor(&r);
    assert_eq!((code, checks), (0, Vec::<String>::new()), "{v:#}");
    assert!(!answers_arp(&peer), "doctor passed it: nobody answers ARP for the VIP");

    // The fix doctor prints is the one that works: undo, follow it, check.
    r.sysctl("net.ipv4.conf.all.arp_ignore", "0");
    r.sysctl("net.ipv4.conf.lo.arp_ignore", "0");
    let (code, checks, v) = doctor(&r);
    assert_eq!((code, checks), (2, vec!["arp_ignore".to_string()]), "{v:#}");
    assert!(answers_arp(&peer), "arp_ignore=0 again: answered");
    let fix = v["findings"][0]["fix"].as_str().expect("a fix").to_string();
    let args: Vec<&str> = fix.split_whitespace().collect();
    assert_eq!(&args[..2], ["sysctl", "-w"], "{fix}");
    r.must(&args);
    let (code, _, v) = doctor(&r);
    assert_eq!(code, 0, "{v:#}");
    assert!(!answers_arp(&peer));
}

/// A real server whose VIP was already on lo (a hand-made setup adopted by
/// the agent) still gets the ARP sysctls when `ocf:lvs:vip mode=realserver`
/// starts: otherwise it keeps answering ARP for the director's VIP.
#[test]
fn realserver_start_sets_the_arp_sysctls_when_the_vip_is_already_on_lo() {
    lvs_tests::needs_root!();
    assert!(nix::unistd::geteuid().is_root(), "needs root (network namespaces)");
    let r = Host::new("rs2");
    let peer = Host::new("dir2");
    wire(&r, "eth0", Some("10.0.0.11/24"), &peer, "eth0", Some("10.0.0.1/24"));
    arp_defaults(&r);
    r.must(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    assert!(answers_arp(&peer), "the kernel's defaults: the VIP on lo is answered on eth0");
    // An operator's stricter arp_ignore on lo stays as it is.
    r.sysctl("net.ipv4.conf.lo.arp_ignore", "2");
    let c = ocf("lvs-vip", Some(&r.ns), "start", &[("ip", VIP), ("mode", "realserver")], &[]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(!answers_arp(&peer), "after start nobody answers ARP for the VIP");
    assert_eq!(r.must(&["sysctl", "-n", "net.ipv4.conf.lo.arp_ignore"]).trim(), "2", "raised, never lowered");
    let (code, checks, v) = doctor(&r);
    assert_eq!((code, checks), (0, Vec::<String>::new()), "{v:#}");
}
