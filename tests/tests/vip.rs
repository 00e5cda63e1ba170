//! `ocf:lvs:vip` in network namespaces on the host: addresses checked with
//! `ip -j addr`, announcements captured on the peer and checked field by
//! field, the duplicate guard, heartbeat's form, and ocf-tester.
//! Needs root (namespaces); fails, never skips, without it.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use lvs_net::ArpOp;
use lvs_tests::agent::{bin, heartbeat, ocf, Call};
use lvs_tests::sniff::capture;
use lvs_tests::topo::{wire, Host};

fn root() {
    assert!(nix::unistd::geteuid().is_root(), "the vip tests need root (network namespaces)");
}

/// director (eth0 192.0.2.1/24, 2001:db8::1/64) — peer (eth0 .2).
fn pair() -> (Host, Host) {
    root();
    let d = Host::new("d");
    let p = Host::new("p");
    wire(&d, "eth0", Some("192.0.2.1/24"), &p, "eth0", Some("192.0.2.2/24"));
    d.must(&["ip", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
    p.must(&["ip", "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad"]);
    (d, p)
}

fn vip(h: &Host, action: &str, params: &[(&str, &str)]) -> Call {
    ocf("lvs-vip", Some(&h.ns), action, params, &[])
}

/// An action with `HA_LOGFILE` set: the call and what it logged.
fn vip_logged(h: &Host, action: &str, params: &[(&str, &str)]) -> (Call, String) {
    let log = std::env::temp_dir().join(format!("lvs-vip-{}-{action}.log", h.ns));
    let _ = std::fs::remove_file(&log);
    let c = ocf("lvs-vip", Some(&h.ns), action, params, &[("HA_LOGFILE", log.to_str().expect("path"))]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (c, text)
}

/// (prefix, label) of `ip` on `dev`, from `ip -j addr`.
fn addr_on(h: &Host, dev: &str, ip: &str) -> Option<(u64, Option<String>)> {
    let out = h.must(&["ip", "-j", "addr", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v.as_array()?.iter().flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default()).find_map(|a| {
        (a["local"] == ip).then(|| (a["prefixlen"].as_u64().unwrap_or(0), a["label"].as_str().map(String::from)))
    })
}

fn mac_of(h: &Host, dev: &str) -> [u8; 6] {
    let out = h.must(&["cat", &format!("/sys/class/net/{dev}/address")]);
    let b: Vec<u8> = out.trim().split(':').map(|x| u8::from_str_radix(x, 16).expect("hex")).collect();
    <[u8; 6]>::try_from(b.as_slice()).expect("mac")
}

#[test]
fn start_announces_monitor_sees_stop_removes() {
    lvs_tests::needs_root!();
    let (d, p) = pair();
    let params = [
        ("ip", "192.0.2.100"),
        ("cidr_netmask", "24"),
        ("nic", "eth0"),
        ("arp_count", "3"),
        ("arp_interval", "50"),
        ("iflabel", "vip"),
    ];
    assert_eq!(vip(&d, "validate-all", &params).code, 0);
    assert_eq!(vip(&d, "monitor", &params).code, 7);
    let cap = capture(&p.ns, "eth0", Duration::from_millis(1500));
    let c = vip(&d, "start", &params);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(addr_on(&d, "eth0", "192.0.2.100"), Some((24, Some("eth0:vip".into()))));
    let got = cap.recv().expect("capture");
    let mac = mac_of(&d, "eth0");
    let garp: Vec<_> = got.arp.iter().filter(|a| a.sender_ip == Ipv4Addr::new(192, 0, 2, 100)).collect();
    assert_eq!(garp.len(), 3, "three gratuitous ARPs: {:?}", got.arp);
    for a in &garp {
        assert_eq!(a.op, ArpOp::Request);
        assert_eq!((a.eth_src, a.sender_mac), (mac, mac));
        assert_eq!(a.eth_dst, [0xff; 6]);
        assert_eq!(a.target_ip, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(a.target_mac, [0xff; 6], "target MAC broadcast, as arping -U sends it");
    }
    // The RFC 5227 probes (three) went out before the first GARP: "who has
    // the VIP?" from 0.0.0.0, target MAC unknown.
    let vip_ip = Ipv4Addr::new(192, 0, 2, 100);
    let probes: Vec<usize> = (0..got.arp.len()).filter(|&i| got.arp[i].sender_ip.is_unspecified()).collect();
    assert_eq!(probes.len(), 3, "{:?}", got.arp);
    for &i in &probes {
        let a = &got.arp[i];
        assert_eq!((a.op, a.target_ip, a.target_mac), (ArpOp::Request, vip_ip, [0; 6]), "{a:?}");
        assert_eq!((a.eth_src, a.sender_mac, a.eth_dst), (mac, mac, [0xff; 6]), "{a:?}");
    }
    let first_garp = got.arp.iter().position(|a| a.sender_ip == vip_ip);
    assert!(probes.iter().all(|&i| Some(i) < first_garp), "probes precede the first GARP: {:?}", got.arp);

    assert_eq!(vip(&d, "start", &params).code, 0, "second start");
    assert_eq!(vip(&d, "monitor", &params).code, 0);
    let deep = ocf("lvs-vip", Some(&d.ns), "monitor", &params, &[("OCF_CHECK_LEVEL", "10")]);
    assert_eq!(deep.code, 0, "{deep:?}");
    // Someone changes the prefix behind our back: only the deep monitor says so.
    d.must(&["ip", "addr", "del", "192.0.2.100/24", "dev", "eth0"]);
    d.must(&["ip", "addr", "add", "192.0.2.100/25", "dev", "eth0", "label", "eth0:vip"]);
    assert_eq!(vip(&d, "monitor", &params).code, 0);
    let deep = ocf("lvs-vip", Some(&d.ns), "monitor", &params, &[("OCF_CHECK_LEVEL", "10")]);
    assert_eq!(deep.code, 1, "{deep:?}");
    assert!(deep.stderr.contains("/25"), "{deep:?}");

    assert_eq!(vip(&d, "stop", &params).code, 0);
    assert_eq!(addr_on(&d, "eth0", "192.0.2.100"), None);
    assert_eq!(vip(&d, "stop", &params).code, 0, "second stop");
    assert_eq!(vip(&d, "monitor", &params).code, 7);
}

#[test]
fn arp_reply_and_both_modes() {
    lvs_tests::needs_root!();
    let (d, p) = pair();
    for (mode, ops) in [
        ("reply", vec![ArpOp::Reply, ArpOp::Reply]),
        ("both", vec![ArpOp::Request, ArpOp::Reply, ArpOp::Request, ArpOp::Reply]),
    ] {
        let params = [
            ("ip", "192.0.2.101"),
            ("nic", "eth0"),
            ("arp_count", "2"),
            ("arp_interval", "20"),
            ("arp_mode", mode),
            ("on_duplicate", "ignore"),
        ];
        let cap = capture(&p.ns, "eth0", Duration::from_millis(800));
        assert_eq!(vip(&d, "start", &params).code, 0);
        let got: Vec<ArpOp> = cap
            .recv()
            .expect("capture")
            .arp
            .iter()
            .filter(|a| a.sender_ip == Ipv4Addr::new(192, 0, 2, 101))
            .map(|a| a.op)
            .collect();
        assert_eq!(got, ops, "{mode}");
        assert_eq!(vip(&d, "stop", &params).code, 0);
    }
}

#[test]
fn findif_chooses_interface_and_prefix_from_routes() {
    lvs_tests::needs_root!();
    let (d, _p) = pair();
    let params = [("ip", "192.0.2.102"), ("arp_count", "0")];
    assert_eq!(vip(&d, "start", &params).code, 0);
    assert_eq!(addr_on(&d, "eth0", "192.0.2.102").map(|a| a.0), Some(24), "prefix of the matching route");
    assert_eq!(vip(&d, "stop", &params).code, 0);
    // No route here may be a route on another node: generic, not fatal.
    let c = vip(&d, "start", &[("ip", "203.0.113.9")]);
    assert_eq!(c.code, 1, "no route, no nic: {c:?}");
    assert!(c.stderr.contains("no connected route contains 203.0.113.9"), "{c:?}");
    let c = vip(&d, "validate-all", &[("ip", "192.0.2.103"), ("nic", "eth9")]);
    assert_eq!(c.code, 6, "{c:?}");
    assert!(c.stderr.contains("nic eth9 does not exist"), "{c:?}");
    let c = vip(&d, "start", &[("ip", "192.0.2.300")]);
    assert_eq!(c.code, 6, "{c:?}");
}

#[test]
fn ipv6_waits_for_dad_and_sends_neighbor_advertisements() {
    lvs_tests::needs_root!();
    let (d, p) = pair();
    let params =
        [("ip", "2001:db8::100"), ("cidr_netmask", "64"), ("nic", "eth0"), ("arp_count", "2"), ("arp_interval", "50")];
    let cap = capture(&p.ns, "eth0", Duration::from_millis(4000));
    let c = vip(&d, "start", &params);
    assert_eq!(c.code, 0, "{c:?}");
    let flags = d.must(&["ip", "-6", "addr", "show", "dev", "eth0"]);
    let line = flags.lines().find(|l| l.contains("2001:db8::100/64")).unwrap_or_else(|| panic!("VIP missing: {flags}"));
    assert!(!line.contains("tentative"), "DAD finished before start returned: {flags}");
    let got = cap.recv().expect("capture");
    let target: std::net::Ipv6Addr = "2001:db8::100".parse().expect("v6");
    let na: Vec<_> = got.na.iter().filter(|n| n.target == target).collect();
    assert_eq!(na.len(), 2, "{:?}", got.na);
    let mac = mac_of(&d, "eth0");
    for n in na {
        assert_eq!(n.dst, "ff02::1".parse::<std::net::Ipv6Addr>().expect("v6"));
        assert_eq!(n.hop_limit, 255);
        assert_eq!(n.flags, 0x20, "override, not solicited, not router");
        assert_eq!(n.option_mac, Some(mac));
        assert_eq!(n.src, target, "sent from the VIP itself");
        assert_eq!(n.eth_src, mac, "from the director's interface");
    }
    assert_eq!(vip(&d, "monitor", &params).code, 0);
    assert_eq!(vip(&d, "stop", &params).code, 0);
    // An address the peer already holds fails DAD: start fails, nothing left.
    let c = vip(&d, "start", &[("ip", "2001:db8::2"), ("cidr_netmask", "64"), ("nic", "eth0")]);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("duplicate address detection failed"), "{c:?}");
    assert_eq!(addr_on(&d, "eth0", "2001:db8::2"), None);
}

#[test]
fn duplicate_guard_refuses_or_warns() {
    lvs_tests::needs_root!();
    let (d, p) = pair();
    p.must(&["ip", "addr", "add", "192.0.2.110/24", "dev", "eth0"]);
    let refuse = [("ip", "192.0.2.110"), ("nic", "eth0"), ("on_duplicate", "refuse"), ("arp_count", "0")];
    let c = vip(&d, "start", &refuse);
    assert_eq!(c.code, 1, "{c:?}");
    let peer_mac = lvs_net::format_mac(&mac_of(&p, "eth0"));
    assert!(c.stderr.contains(&peer_mac), "names the other host's MAC: {c:?}");
    assert_eq!(addr_on(&d, "eth0", "192.0.2.110"), None, "nothing configured");
    // ignore: no probe on the wire, no warning, the address taken.
    let ignore = [("ip", "192.0.2.110"), ("nic", "eth0"), ("on_duplicate", "ignore"), ("arp_count", "0")];
    let cap = capture(&p.ns, "eth0", Duration::from_millis(800));
    let (c, log) = vip_logged(&d, "start", &ignore);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(!log.contains(&peer_mac), "ignore says nothing about the peer: {log}");
    let got = cap.recv().expect("capture");
    assert!(got.arp.iter().all(|a| !a.sender_ip.is_unspecified()), "ignore sends no probe: {:?}", got.arp);
    assert_eq!(vip(&d, "stop", &ignore).code, 0);
    assert_eq!(addr_on(&d, "eth0", "192.0.2.110"), None);
    // warn (the default): the same address taken, with a warning that names the peer.
    let warn = [("ip", "192.0.2.110"), ("nic", "eth0"), ("arp_count", "0")];
    let (c, log) = vip_logged(&d, "start", &warn);
    assert_eq!(c.code, 0, "default warn takes it anyway: {c:?}");
    assert!(
        log.lines().any(|l| l.contains("WARN") && l.contains(&peer_mac) && l.contains("on_duplicate=warn")),
        "warns with the other host's MAC: {log}"
    );
    assert!(addr_on(&d, "eth0", "192.0.2.110").is_some());
    // Nobody holds .111: refuse starts normally.
    assert_eq!(vip(&d, "start", &[("ip", "192.0.2.111"), ("nic", "eth0"), ("on_duplicate", "refuse")]).code, 0);
}

#[test]
fn link_down_is_not_running_and_a_vanished_nic_still_stops() {
    lvs_tests::needs_root!();
    let (d, p) = pair();
    let params = [("ip", "192.0.2.120"), ("nic", "eth0"), ("arp_count", "0")];
    assert_eq!(vip(&d, "start", &params).code, 0);
    p.must(&["ip", "link", "set", "eth0", "down"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(vip(&d, "monitor", &params).code, 7, "no carrier");
    let off = [("ip", "192.0.2.120"), ("nic", "eth0"), ("check_link_status", "false")];
    assert_eq!(vip(&d, "monitor", &off).code, 0);
    d.must(&["ip", "link", "del", "eth0"]);
    assert_eq!(vip(&d, "stop", &params).code, 0, "stop succeeds when the nic is gone");
    assert_eq!(vip(&d, "monitor", &params).code, 7);
}

#[test]
fn realserver_mode_holds_the_vip_on_lo_without_arp() {
    lvs_tests::needs_root!();
    let (d, p) = pair();
    let params = [("ip", "192.0.2.130"), ("mode", "realserver")];
    let cap = capture(&p.ns, "eth0", Duration::from_millis(800));
    assert_eq!(vip(&d, "start", &params).code, 0);
    assert_eq!(addr_on(&d, "lo", "192.0.2.130").map(|a| a.0), Some(32));
    for key in ["net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.lo.arp_ignore"] {
        assert_eq!(d.must(&["sysctl", "-n", key]).trim(), "1", "{key}");
    }
    for key in ["net.ipv4.conf.all.arp_announce", "net.ipv4.conf.lo.arp_announce"] {
        assert_eq!(d.must(&["sysctl", "-n", key]).trim(), "2", "{key}");
    }
    assert!(
        cap.recv().expect("capture").arp.iter().all(|a| a.sender_ip != Ipv4Addr::new(192, 0, 2, 130)),
        "never announced"
    );
    // The peer asks who has the VIP: the real server keeps quiet, while it
    // answers for its own eth0 address. Judged from the frames and the
    // peer's neighbour table, not from a tool's exit status.
    assert!(arp_asked_and_answered(&d, &p, Ipv4Addr::new(192, 0, 2, 1)), "control: eth0's own address");
    assert!(!arp_asked_and_answered(&d, &p, Ipv4Addr::new(192, 0, 2, 130)), "no ARP answer for a DR VIP");
    assert_eq!(vip(&d, "monitor", &params).code, 0);
    assert_eq!(vip(&d, "stop", &params).code, 0);
    assert_eq!(addr_on(&d, "lo", "192.0.2.130"), None);
    assert_eq!(d.must(&["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"]).trim(), "1", "sysctls are left set");
}

/// Makes `from` resolve `ip` (a datagram to it: the kernel asks by ARP
/// first), checks that `to` received the question, and returns whether
/// an answer came back, as the frames on `from`'s wire and its neighbour
/// table both say.
fn arp_asked_and_answered(to: &Host, from: &Host, ip: Ipv4Addr) -> bool {
    let asked = capture(&to.ns, "eth0", Duration::from_millis(1500));
    let heard = capture(&from.ns, "eth0", Duration::from_millis(1500));
    from.within(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        s.send_to(b"?", (ip, 9)).expect("send");
    });
    let (asked, heard) = (asked.recv().expect("capture"), heard.recv().expect("capture"));
    assert!(
        asked
            .arp
            .iter()
            .any(|a| a.op == ArpOp::Request && a.target_ip == ip && a.sender_ip == Ipv4Addr::new(192, 0, 2, 2)),
        "the question for {ip} reached {}: {:?}",
        to.ns,
        asked.arp
    );
    let replies = heard.arp.iter().filter(|a| a.op == ArpOp::Reply && a.sender_ip == ip).count();
    let neigh = from.must(&["ip", "-j", "neigh", "show", "to", &ip.to_string(), "dev", "eth0"]);
    let v: serde_json::Value = serde_json::from_str(&neigh).expect("ip -j neigh");
    let lladdr = v.as_array().and_then(|a| a.first()).and_then(|e| e["lladdr"].as_str()).map(String::from);
    assert_eq!(replies > 0, lladdr.is_some(), "frames and neighbour table disagree: {replies} replies, {neigh}");
    if let Some(mac) = lladdr {
        assert_eq!(mac, lvs_net::format_mac(&mac_of(to, "eth0")), "{neigh}");
    }
    replies > 0
}

#[test]
fn heartbeat_positional_form() {
    lvs_tests::needs_root!();
    let (d, _p) = pair();
    let c = heartbeat("lvs-vip", Some(&d.ns), &["192.0.2.140/24/eth0", "status"]);
    assert_eq!(c.stdout, "stopped\n", "{c:?}");
    let c = heartbeat("lvs-vip", Some(&d.ns), &["192.0.2.140/24/eth0", "start"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(addr_on(&d, "eth0", "192.0.2.140").map(|a| a.0), Some(24));
    let c = heartbeat("lvs-vip", Some(&d.ns), &["192.0.2.140/24/eth0", "status"]);
    assert_eq!((c.code, c.stdout.as_str()), (0, "running\n"), "{c:?}");
    assert_eq!(heartbeat("lvs-vip", Some(&d.ns), &["192.0.2.140/24/eth0", "stop"]).code, 0);
    assert_eq!(addr_on(&d, "eth0", "192.0.2.140"), None);
    let c = heartbeat("lvs-vip", Some(&d.ns), &["192.0.2.140/24/eth0", "status"]);
    assert_eq!(c.stdout, "stopped\n");
}

#[test]
fn ocf_tester_passes() {
    lvs_tests::needs_root!();
    let (d, _p) = pair();
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &d.ns,
            "ocf-tester",
            "-n",
            "vip",
            "-o",
            "ip=192.0.2.150",
            "-o",
            "cidr_netmask=24",
            "-o",
            "nic=eth0",
            "-o",
            "arp_count=1",
        ])
        .arg(bin("lvs-vip"))
        .env("HA_LOGFACILITY", "none")
        .output()
        .expect("ocf-tester (apt-get install resource-agents)");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && out.contains("passed all tests"), "{out}");
    assert!(!d.must(&["ip", "addr"]).contains("192.0.2.150"), "ocf-tester's last stop left nothing");
}

#[test]
fn logs_to_ha_logfile_with_the_agent_identity() {
    lvs_tests::needs_root!();
    let (d, _p) = pair();
    let log = std::env::temp_dir().join(format!("lvs-vip-log-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let params = [("ip", "192.0.2.160"), ("nic", "eth0"), ("arp_count", "0")];
    let logpath = log.to_str().expect("path");
    // Syslog is asked for (daemon facility) but there is no /dev/log here:
    // the action must succeed anyway.
    let c = ocf(
        "lvs-vip",
        Some(&d.ns),
        "start",
        &params,
        &[("HA_LOGFILE", logpath), ("HA_LOGFACILITY", "daemon"), ("OCF_RESOURCE_INSTANCE", "web-vip")],
    );
    assert_eq!(c.code, 0, "{c:?}");
    let c = ocf("lvs-vip", Some(&d.ns), "stop", &params, &[("HA_LOGFILE", logpath), ("HA_debug", "1")]);
    assert_eq!(c.code, 0, "{c:?}");
    let text = std::fs::read_to_string(&log).expect("HA_LOGFILE written");
    let _ = std::fs::remove_file(&log);
    let added = text.lines().find(|l| l.contains("added 192.0.2.160/24 to eth0")).unwrap_or_else(|| panic!("{text}"));
    assert!(added.contains(" vip(web-vip)[") && added.contains("]: INFO: "), "{added}");
    assert!(text.lines().any(|l| l.contains("DEBUG: stop with")), "HA_debug=1 adds debug lines: {text}");
}
