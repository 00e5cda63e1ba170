#![cfg(feature = "lab")]
//! The IPVS client against a real kernel, checked both ways with ipvsadm:
//! what the client writes, `ipvsadm -S -n` must print; what `ipvsadm -R`
//! writes, the client must read back field for field.
//!
//! Runs inside the lab VM (tests/lab/lab), one test at a time
//! (--test-threads=1). Each test has its own addresses (10.1NN.x,
//! 192.168.1NN.x, 2001:db8:1NN::x, marks 1NNx) and removes its services.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use lvs_ipvs::Error;
use lvs_ipvs::{
    DestOp, Destination, Family, ForwardMethod, Ipvs, IpvsClient, Netmask, Service, ServiceFlags, ServiceKey,
    SyncDaemon, SyncState, Timeouts, TunnelFlags, TunnelType,
};
use lvs_tests::topo::enter;
use nix::errno::Errno;

/// IPVS tables, timeouts and sync daemons are per network namespace: the
/// tests work in their own, so nothing here touches (or is touched by)
/// other lab tests booted in the same VM. Each test thread enters it.
const NETNS: &str = "lvs-lab-ipvs";

/// The namespace's interface: routes for every test's destinations, an
/// address for locally generated test traffic, multicast for the sync
/// daemon.
const LAB_IF: &str = "ipvslab0";

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        assert_eq!(
            std::env::var("LVS_IN_LAB").as_deref(),
            Ok("1"),
            "lab tests run inside the lab VM: tests/lab/lab -- <test binary> --test-threads=1"
        );
        let ip = |args: &str| {
            let mut all = vec!["-n", NETNS];
            all.extend(args.split_whitespace());
            run("ip", &all);
        };
        run("ip", &["netns", "add", NETNS]);
        ip("link set lo up");
        ip(&format!("link add {LAB_IF} type dummy"));
        ip(&format!("link set {LAB_IF} up multicast on"));
        ip(&format!("addr add 192.0.2.1/24 dev {LAB_IF}"));
        ip(&format!("route add 192.168.0.0/16 dev {LAB_IF}"));
        ip(&format!("route add 10.0.0.0/8 dev {LAB_IF}"));
        ip(&format!("-6 route add 2001:db8::/32 dev {LAB_IF}"));
    });
    enter(NETNS);
}

fn client() -> IpvsClient {
    setup();
    IpvsClient::connect().expect("connecting to IPVS in the lab")
}

fn run(cmd: &str, args: &[&str]) -> String {
    run_with_input(cmd, args, None)
}

fn run_with_input(cmd: &str, args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    if let Some(text) = input {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Deletes the listed services when the test ends, even by panic (on the
/// test's thread, so in the test's namespace).
struct Cleanup(Vec<ServiceKey>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(c) = IpvsClient::connect() {
            for k in &self.0 {
                let _ = c.delete_service(k);
            }
        }
    }
}

fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

fn key6(s: &str) -> ServiceKey {
    ServiceKey::parse_with_family(s, Family::Inet6).unwrap()
}

fn dest(s: &str, fwd: ForwardMethod, weight: u32) -> Destination {
    let (addr, port) = lvs_ipvs::parse_addr_port(s).unwrap();
    Destination::new(addr, port, fwd).with_weight(weight)
}

fn sched(svc: Service, flags: &str) -> Service {
    let f = ServiceFlags::parse_sched_flags(flags, &svc.scheduler).unwrap();
    Service { flags: svc.flags | f, ..svc }
}

fn lines_matching(text: &str, markers: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        text.lines().map(str::trim).filter(|l| markers.iter().any(|m| l.contains(m))).map(String::from).collect();
    v.sort();
    v
}

fn sorted(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Service blocks (service line and its destination lines) of an
/// `ipvsadm -Ln` style listing whose service line contains a marker.
fn blocks(listing: &str, markers: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in listing.lines().skip(3) {
        if line.starts_with("  ->") {
            if let Some(b) = cur.as_mut() {
                b.push_str(line);
                b.push('\n');
            }
            continue;
        }
        out.extend(cur.take());
        if markers.iter().any(|m| line.contains(m)) {
            cur = Some(format!("{line}\n"));
        }
    }
    out.extend(cur);
    out
}

/// What a listed entry is, without the kernel's counters.
fn settings(svc: &Service, dests: &[Destination]) -> (Service, Vec<Destination>) {
    let svc = Service { stats: None, ..svc.clone() };
    let mut dests: Vec<Destination> = dests
        .iter()
        .map(|d| Destination { active_conns: 0, inactive_conns: 0, persist_conns: 0, stats: None, ..d.clone() })
        .collect();
    dests.sort_by_key(|d| (d.family(), d.addr, d.port));
    (svc, dests)
}

/// The kernel's errno, for errors that carry the kernel's answer.
fn netlink_errno(e: &Error) -> i32 {
    match e {
        Error::Exists { .. } | Error::NotFound { .. } | Error::Kernel { .. } => e.errno().unwrap_or(0),
        other => panic!("expected the kernel's answer, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------

fn written_by_client() -> Vec<(Service, Vec<Destination>)> {
    use ForwardMethod::*;
    vec![
        (
            Service::new(key("tcp:10.101.0.1:80"), "wlc"),
            vec![dest("192.168.101.1:80", Masq, 1), dest("192.168.101.2:8080", Masq, 5).with_thresholds(100, 10)],
        ),
        (
            {
                let mut s = Service::new(key("udp:10.101.0.2:53"), "rr")
                    .with_persistence(600, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)));
                s.flags |= ServiceFlags::ONE_PACKET;
                s
            },
            vec![dest("192.168.101.3:53", Route, 0)],
        ),
        (
            sched(Service::new(key("sctp:10.101.0.3:5060"), "sh"), "sh-fallback,sh-port"),
            vec![dest("192.168.101.4:5060", Masq, 2)],
        ),
        (
            sched(
                Service::new(key("tcp:[2001:db8:101::1]:443"), "mh").with_persistence(300, Netmask::V6(64)),
                "mh-fallback,mh-port",
            ),
            vec![
                dest("[2001:db8:101::10]:443", Tunnel, 1),
                dest("[2001:db8:101::11]:443", Route, 3).with_thresholds(40, 0),
            ],
        ),
        (Service::new(key("fwmark:1101"), "lc"), vec![dest("192.168.101.5:0", Route, 1)]),
        (
            Service::new(key6("fwmark:1102"), "sed").with_persistence(100, Netmask::V6(128)),
            vec![dest("[2001:db8:101::12]:0", Route, 4)],
        ),
        (
            Service {
                pe_name: Some("sip".into()),
                ..Service::new(key("udp:10.101.0.4:5060"), "rr").with_persistence(60, Netmask::host(Family::Inet))
            },
            vec![dest("192.168.101.6:5060", Masq, 1)],
        ),
        (
            Service::new(key("tcp:10.101.0.5:80"), "ovf"),
            vec![
                dest("192.168.101.7:80", Tunnel, 2).with_tunnel(TunnelType::Gue, 6080, TunnelFlags::CSUM),
                dest("192.168.101.8:80", Tunnel, 1).with_tunnel(TunnelType::Gre, 0, TunnelFlags::CSUM),
                // Mixed family: only tunnels may do this.
                dest("[2001:db8:101::13]:80", Tunnel, 1),
            ],
        ),
        (Service::new(key("tcp:10.101.0.6:80"), "nq"), vec![]),
        (Service::new(key("tcp:10.101.0.7:80"), "fo"), vec![]),
        (Service::new(key("tcp:10.101.0.8:80"), "dh"), vec![]),
        (Service::new(key("tcp:10.101.0.9:80"), "lblc"), vec![]),
        (Service::new(key("udp:10.101.0.10:80"), "lblcr"), vec![]),
        (
            Service::new(key("udp:[2001:db8:101::2]:53"), "wrr"),
            vec![dest("[2001:db8:101::14]:5353", Masq, 7).with_thresholds(9, 3)],
        ),
    ]
}

const MARKERS_101: &[&str] = &["10.101.0.", "2001:db8:101:", "-f 1101", "-f 1102", "FWM  1101", "FWM  1102"];

#[test]
fn what_the_client_writes_ipvsadm_shows() {
    let c = client();
    let table = written_by_client();
    let _cleanup = Cleanup(table.iter().map(|(s, _)| s.key).collect());
    for (svc, dests) in &table {
        c.add_service(svc).unwrap_or_else(|e| panic!("{e}"));
        for d in dests {
            c.add_destination(&svc.key, d).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    let saved = run("ipvsadm", &["-S", "-n"]);
    let expected = sorted(&[
        "-A -t 10.101.0.1:80 -s wlc",
        "-a -t 10.101.0.1:80 -r 192.168.101.1:80 -m -w 1",
        "-a -t 10.101.0.1:80 -r 192.168.101.2:8080 -m -w 5",
        "-A -u 10.101.0.2:53 -s rr -p 600 -M 255.255.255.0 -o",
        "-a -u 10.101.0.2:53 -r 192.168.101.3:53 -g -w 0",
        "-A --sctp-service 10.101.0.3:5060 -s sh -b sh-fallback,sh-port",
        "-a --sctp-service 10.101.0.3:5060 -r 192.168.101.4:5060 -m -w 2",
        "-A -t [2001:db8:101::1]:443 -s mh -p 300 -M 64 -b mh-fallback,mh-port",
        "-a -t [2001:db8:101::1]:443 -r [2001:db8:101::10]:443 -i -w 1 --tun-type ipip",
        "-a -t [2001:db8:101::1]:443 -r [2001:db8:101::11]:443 -g -w 3",
        "-A -f 1101 -s lc",
        "-a -f 1101 -r 192.168.101.5:0 -g -w 1",
        "-A -f 1102 -6 -s sed -p 100",
        "-a -f 1102 -6 -r [2001:db8:101::12]:0 -g -w 4",
        "-A -u 10.101.0.4:5060 -s rr -p 60 --pe sip",
        "-a -u 10.101.0.4:5060 -r 192.168.101.6:5060 -m -w 1",
        "-A -t 10.101.0.5:80 -s ovf",
        "-a -t 10.101.0.5:80 -r 192.168.101.7:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum",
        "-a -t 10.101.0.5:80 -r 192.168.101.8:80 -i -w 1 --tun-type gre --tun-csum",
        "-a -t 10.101.0.5:80 -r [2001:db8:101::13]:80 -i -w 1 --tun-type ipip",
        "-A -t 10.101.0.6:80 -s nq",
        "-A -t 10.101.0.7:80 -s fo",
        "-A -t 10.101.0.8:80 -s dh",
        "-A -t 10.101.0.9:80 -s lblc",
        "-A -u 10.101.0.10:80 -s lblcr",
        "-A -u [2001:db8:101::2]:53 -s wrr",
        "-a -u [2001:db8:101::2]:53 -r [2001:db8:101::14]:5353 -m -w 7",
    ]);
    assert_eq!(lines_matching(&saved, MARKERS_101), expected, "ipvsadm -S -n said:\n{saved}");

    // -S leaves thresholds out; --thresholds shows them.
    let thresholds = run("ipvsadm", &["-L", "-n", "--thresholds"]);
    let rows: BTreeSet<Vec<String>> = thresholds
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && (l.contains("192.168.101.") || l.contains("2001:db8:101:")))
        .map(|l| l.split_whitespace().skip(1).take(3).map(String::from).collect())
        .collect();
    for (ep, upper, lower) in [
        ("192.168.101.2:8080", "100", "10"),
        ("192.168.101.1:80", "0", "0"),
        ("[2001:db8:101::11]:443", "40", "0"),
        ("[2001:db8:101::14]:5353", "9", "3"),
    ] {
        let row = vec![ep.to_string(), upper.to_string(), lower.to_string()];
        assert!(rows.contains(&row), "{row:?} not in ipvsadm --thresholds:\n{thresholds}");
    }

    // And the client reads back exactly what it wrote.
    for (svc, dests) in &table {
        let got = c.service(&svc.key).unwrap();
        let got_dests = c.destinations(&svc.key).unwrap();
        assert_eq!(settings(&got, &got_dests), settings(svc, dests));
    }
    assert_listing_matches_ipvsadm(&c, MARKERS_101);
}

/// Our `ipvsadm -Ln` rendering equals ipvsadm's, header and blocks.
fn assert_listing_matches_ipvsadm(c: &IpvsClient, markers: &[&str]) {
    let ours = c.table().unwrap().to_string();
    let theirs = run("ipvsadm", &["-L", "-n"]);
    assert_eq!(ours.lines().take(3).collect::<Vec<_>>(), theirs.lines().take(3).collect::<Vec<_>>());
    let (a, b) = (blocks(&ours, markers), blocks(&theirs, markers));
    assert!(!b.is_empty());
    assert_eq!(a, b, "ours:\n{ours}\nipvsadm -Ln:\n{theirs}");
}

// ---------------------------------------------------------------------------

const RESTORE_102: &str = "\
-A -t 10.102.0.1:80 -s rr
-a -t 10.102.0.1:80 -r 192.168.102.1:80 -m -w 1
-a -t 10.102.0.1:80 -r 192.168.102.2:8080 -m -w 7 -x 200 -y 20
-A -t 10.102.0.2:80 -s wrr -p 120 -M 255.255.0.0
-a -t 10.102.0.2:80 -r 192.168.102.3:80 -g -w 2
-A -u 10.102.0.3:53 -s lc -o
-a -u 10.102.0.3:53 -r 192.168.102.4:5353 -m -w 0
-A -t 10.102.0.4:443 -s wlc
-a -t 10.102.0.4:443 -r 192.168.102.5:443 -i -w 3
-A -t 10.102.0.5:80 -s lblc
-A -t 10.102.0.6:80 -s lblcr
-A -t 10.102.0.7:80 -s dh
-A -t 10.102.0.8:80 -s sh -b sh-fallback,sh-port
-a -t 10.102.0.8:80 -r 192.168.102.6:80 -g -w 1 -x 10 -y 2
-A -t 10.102.0.9:80 -s sed
-A -t 10.102.0.10:80 -s nq
-A -t 10.102.0.11:80 -s fo
-A -t 10.102.0.12:80 -s ovf
-A -t 10.102.0.13:80 -s mh -b mh-fallback,mh-port
-A --sctp-service 10.102.0.14:5060 -s rr
-a --sctp-service 10.102.0.14:5060 -r 192.168.102.7:5060 -m -w 1
-A -f 1201 -s wlc -p 300
-a -f 1201 -r 192.168.102.8 -g -w 4
-A -f 1202 -6 -s rr -p 45 -M 48
-a -f 1202 -6 -r 2001:db8:102::20 -g -w 1
-A -t [2001:db8:102::1]:80 -s wrr -p 60 -M 64
-a -t [2001:db8:102::1]:80 -r [2001:db8:102::10]:80 -m -w 2 -x 50 -y 5
-a -t [2001:db8:102::1]:80 -r [2001:db8:102::11]:80 -g -w 3
-A -u [2001:db8:102::2]:53 -s sh -b sh-port
-a -u [2001:db8:102::2]:53 -r [2001:db8:102::12]:53 -i -w 1
-A -u 10.102.0.15:5060 -s rr -p 30 --pe sip
-a -u 10.102.0.15:5060 -r 192.168.102.9:5060 -m -w 65535
-A -t 10.102.0.16:80 -s rr
-a -t 10.102.0.16:80 -r 192.168.102.10:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.102.0.16:80 -r 192.168.102.11:80 -i -w 1 --tun-type gre --tun-csum
-a -t 10.102.0.16:80 -r 192.168.102.12:80 -i -w 1 --tun-type gue --tun-port 5555 --tun-nocsum
";

fn written_by_ipvsadm() -> Vec<(Service, Vec<Destination>)> {
    use ForwardMethod::*;
    let host4 = Netmask::host(Family::Inet);
    let plain = |k: &str, s: &str| (Service::new(key(k), s), vec![]);
    vec![
        (
            Service::new(key("tcp:10.102.0.1:80"), "rr"),
            vec![dest("192.168.102.1:80", Masq, 1), dest("192.168.102.2:8080", Masq, 7).with_thresholds(200, 20)],
        ),
        (
            Service::new(key("tcp:10.102.0.2:80"), "wrr")
                .with_persistence(120, Netmask::V4(Ipv4Addr::new(255, 255, 0, 0))),
            vec![dest("192.168.102.3:80", Route, 2)],
        ),
        (
            Service { flags: ServiceFlags::ONE_PACKET, ..Service::new(key("udp:10.102.0.3:53"), "lc") },
            vec![dest("192.168.102.4:5353", Masq, 0)],
        ),
        (Service::new(key("tcp:10.102.0.4:443"), "wlc"), vec![dest("192.168.102.5:443", Tunnel, 3)]),
        plain("tcp:10.102.0.5:80", "lblc"),
        plain("tcp:10.102.0.6:80", "lblcr"),
        plain("tcp:10.102.0.7:80", "dh"),
        (
            Service {
                flags: ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT,
                ..Service::new(key("tcp:10.102.0.8:80"), "sh")
            },
            vec![dest("192.168.102.6:80", Route, 1).with_thresholds(10, 2)],
        ),
        plain("tcp:10.102.0.9:80", "sed"),
        plain("tcp:10.102.0.10:80", "nq"),
        plain("tcp:10.102.0.11:80", "fo"),
        plain("tcp:10.102.0.12:80", "ovf"),
        (
            Service {
                flags: ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT,
                ..Service::new(key("tcp:10.102.0.13:80"), "mh")
            },
            vec![],
        ),
        (Service::new(key("sctp:10.102.0.14:5060"), "rr"), vec![dest("192.168.102.7:5060", Masq, 1)]),
        (Service::new(key("fwmark:1201"), "wlc").with_persistence(300, host4), vec![dest("192.168.102.8:0", Route, 4)]),
        (
            Service::new(key6("fwmark:1202"), "rr").with_persistence(45, Netmask::V6(48)),
            vec![dest("[2001:db8:102::20]:0", Route, 1)],
        ),
        (
            Service::new(key("tcp:[2001:db8:102::1]:80"), "wrr").with_persistence(60, Netmask::V6(64)),
            vec![
                dest("[2001:db8:102::10]:80", Masq, 2).with_thresholds(50, 5),
                dest("[2001:db8:102::11]:80", Route, 3),
            ],
        ),
        (
            Service { flags: ServiceFlags::SH_PORT, ..Service::new(key("udp:[2001:db8:102::2]:53"), "sh") },
            vec![dest("[2001:db8:102::12]:53", Tunnel, 1)],
        ),
        (
            Service {
                pe_name: Some("sip".into()),
                ..Service::new(key("udp:10.102.0.15:5060"), "rr").with_persistence(30, host4)
            },
            vec![dest("192.168.102.9:5060", Masq, 65535)],
        ),
        (
            Service::new(key("tcp:10.102.0.16:80"), "rr"),
            vec![
                dest("192.168.102.10:80", Tunnel, 1).with_tunnel(TunnelType::Gue, 6080, TunnelFlags::CSUM),
                dest("192.168.102.11:80", Tunnel, 1).with_tunnel(TunnelType::Gre, 0, TunnelFlags::CSUM),
                dest("192.168.102.12:80", Tunnel, 1).with_tunnel(TunnelType::Gue, 5555, TunnelFlags::empty()),
            ],
        ),
    ]
}

const MARKERS_102: &[&str] = &["10.102.0.", "2001:db8:102:", "FWM  1201", "FWM  1202"];

#[test]
fn what_ipvsadm_writes_the_client_reads() {
    let c = client();
    let expected = written_by_ipvsadm();
    let _cleanup = Cleanup(expected.iter().map(|(s, _)| s.key).collect());
    run_with_input("ipvsadm", &["-R"], Some(RESTORE_102));

    let listed: Vec<Service> =
        c.services().unwrap().into_iter().filter(|s| expected.iter().any(|(e, _)| e.key == s.key)).collect();
    assert_eq!(listed.len(), expected.len(), "services listed: {listed:#?}");
    // Every entry restored is in the kernel: as many -A/-a lines in
    // ipvsadm's own save as the restore had, and as many as we listed.
    let entries = RESTORE_102.lines().filter(|l| !l.trim().is_empty()).count();
    let saved = lines_matching(&run("ipvsadm", &["-S", "-n"]), &["10.102.0.", "2001:db8:102:", "-f 1201 ", "-f 1202 "]);
    assert_eq!(saved.len(), entries, "ipvsadm -S -n after restoring {entries} entries:\n{}", saved.join("\n"));
    let dest_count: usize = listed.iter().map(|s| c.destinations(&s.key).unwrap().len()).sum();
    assert_eq!(listed.len() + dest_count, entries, "services and destinations the client lists");
    for (svc, dests) in &expected {
        let got = listed.iter().find(|s| s.key == svc.key).unwrap();
        let got_dests = c.destinations(&svc.key).unwrap();
        assert_eq!(settings(got, &got_dests), settings(svc, dests), "service {}", svc.key);
        assert!(got.stats.is_some(), "listed services carry stats");
    }
    assert_listing_matches_ipvsadm(&c, MARKERS_102);
}

// ---------------------------------------------------------------------------

#[test]
fn edit_delete_zero_and_flush() {
    let c = client();
    let web = key("tcp:10.103.0.1:80");
    let _cleanup = Cleanup(vec![web]);
    let save = || lines_matching(&run("ipvsadm", &["-S", "-n"]), &["10.103.0."]);

    c.add_service(&Service::new(web, "wlc")).unwrap();
    c.add_destination(&web, &dest("192.168.103.1:80", ForwardMethod::Masq, 1)).unwrap();
    c.add_destination(&web, &dest("192.168.103.2:80", ForwardMethod::Masq, 1)).unwrap();

    c.edit_service(&Service::new(web, "rr").with_persistence(60, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))))
        .unwrap();
    c.edit_destination(&web, &dest("192.168.103.2:80", ForwardMethod::Route, 9)).unwrap();
    assert_eq!(
        save(),
        sorted(&[
            "-A -t 10.103.0.1:80 -s rr -p 60 -M 255.255.255.0",
            "-a -t 10.103.0.1:80 -r 192.168.103.1:80 -m -w 1",
            "-a -t 10.103.0.1:80 -r 192.168.103.2:80 -g -w 9",
        ])
    );
    // An edit says every flag: persistence goes away again.
    c.edit_service(&Service::new(web, "rr")).unwrap();
    assert_eq!(c.service(&web).unwrap().flags, ServiceFlags::empty());

    c.delete_destination(&web, "192.168.103.2:80".parse().unwrap()).unwrap();
    assert_eq!(save(), sorted(&["-A -t 10.103.0.1:80 -s rr", "-a -t 10.103.0.1:80 -r 192.168.103.1:80 -m -w 1",]));

    // Local traffic to the VIP is scheduled (LOCAL_OUT) and counted; the
    // SYN then dies on the dummy link.
    let vip: SocketAddr = "10.103.0.1:80".parse().unwrap();
    for _ in 0..3 {
        let _ = TcpStream::connect_timeout(&vip, Duration::from_millis(100));
    }
    // The kernel folds per-CPU counters into what it lists every 2 s.
    let counted = |c: &IpvsClient| {
        for _ in 0..40 {
            let s = c.service(&web).unwrap().stats.unwrap();
            if s.conns >= 1 {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no connection counted on {web}");
    };
    let before = counted(&c);
    assert!(before.inpkts >= 1, "{before:?}");
    let d = &c.destinations(&web).unwrap()[0];
    assert!(d.inactive_conns + d.active_conns >= 1, "{d:?}");
    assert_eq!(d.stats.unwrap().conns, before.conns);
    let stats_line = run("ipvsadm", &["-L", "-n", "--stats", "--exact", "-t", "10.103.0.1:80"]);
    let conns: u64 = stats_line
        .lines()
        .find(|l| l.starts_with("TCP"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no TCP line in {stats_line}"));
    assert_eq!(conns, before.conns);

    c.zero(Some(&web)).unwrap();
    assert_eq!(c.service(&web).unwrap().stats.unwrap().conns, 0);
    let _ = TcpStream::connect_timeout(&vip, Duration::from_millis(100));
    counted(&c);
    c.zero(None).unwrap();
    assert_eq!(c.service(&web).unwrap().stats.unwrap().conns, 0);
    let missing = c.zero(Some(&key("tcp:10.103.0.99:80"))).unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");

    // Flush takes everything, including entries ipvsadm made.
    run_with_input("ipvsadm", &["-R"], Some("-A -t 10.103.0.2:80 -s rr\n-A -f 1301 -s rr\n"));
    c.add_service(&Service::new(key("udp:[2001:db8:103::1]:53"), "rr")).unwrap();
    c.flush().unwrap();
    assert!(c.services().unwrap().is_empty());
    assert_eq!(run("ipvsadm", &["-S", "-n"]).trim(), "");
}

#[test]
fn timeouts_set_and_get() {
    let c = client();
    let original = c.timeouts().unwrap();
    let shown = || run("ipvsadm", &["-L", "--timeout"]).trim().to_string();
    assert_eq!(shown(), format!("Timeout (tcp tcpfin udp): {} {} {}", original.tcp, original.tcp_fin, original.udp));

    c.set_timeouts(&Timeouts { tcp: 1000, tcp_fin: 130, udp: 310 }).unwrap();
    assert_eq!(shown(), "Timeout (tcp tcpfin udp): 1000 130 310");
    // Zero keeps a timeout as it is.
    c.set_timeouts(&Timeouts { tcp: 901, tcp_fin: 0, udp: 0 }).unwrap();
    assert_eq!(shown(), "Timeout (tcp tcpfin udp): 901 130 310");
    run("ipvsadm", &["--set", "905", "125", "305"]);
    assert_eq!(c.timeouts().unwrap(), Timeouts { tcp: 905, tcp_fin: 125, udp: 305 });
    c.set_timeouts(&original).unwrap();
    assert_eq!(c.timeouts().unwrap(), original);
}

#[test]
fn refusals_are_typed() {
    let c = client();
    let web = key("tcp:10.104.0.1:80");
    let _cleanup = Cleanup(vec![web, key("tcp:10.104.0.2:80")]);
    c.add_service(&Service::new(web, "wlc")).unwrap();

    let dup = c.add_service(&Service::new(web, "rr")).unwrap_err();
    assert_eq!(netlink_errno(&dup), Errno::EEXIST as i32);
    assert!(matches!(dup, Error::Exists { .. }), "{dup:?}");

    let gone = key("tcp:10.104.0.99:80");
    let e = c.delete_service(&gone).unwrap_err();
    assert_eq!(netlink_errno(&e), Errno::ESRCH as i32);
    assert!(e.is_not_found());
    assert!(c.service(&gone).unwrap_err().is_not_found());
    assert!(c.edit_service(&Service::new(gone, "rr")).unwrap_err().is_not_found());
    let e = c.add_destination(&gone, &dest("192.168.104.1:80", ForwardMethod::Masq, 1)).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    let d = dest("192.168.104.1:80", ForwardMethod::Masq, 1);
    c.add_destination(&web, &d).unwrap();
    assert!(c.add_destination(&web, &d).unwrap_err().is_exists());
    let absent = dest("192.168.104.2:80", ForwardMethod::Masq, 1);
    let e = c.edit_destination(&web, &absent).unwrap_err();
    assert_eq!(netlink_errno(&e), Errno::ENOENT as i32);
    assert!(e.is_not_found());
    assert!(c.delete_destination(&web, absent.endpoint()).unwrap_err().is_not_found());

    // Not unicast (multicast, this link's broadcast): the kernel's bare
    // EINVAL, with the likely cause added.
    for addr in ["224.0.0.5:80", "192.0.2.255:80"] {
        let e = c.add_destination(&web, &dest(addr, ForwardMethod::Route, 1)).unwrap_err();
        assert_eq!(netlink_errno(&e), Errno::EINVAL as i32);
        assert!(e.to_string().contains("unicast"), "{e}");
    }

    // A scheduler this kernel lacks (twos arrived in 6.2) is "not installed".
    match c.add_service(&Service::new(key("tcp:10.104.0.2:80"), "twos")) {
        Err(Error::Unavailable(msg)) => assert!(msg.contains("ip_vs_twos"), "{msg}"),
        other => panic!("expected Error::Unavailable, got {other:?}"),
    }
    // Mistakes caught before the kernel sees them.
    assert!(matches!(c.add_service(&Service::new(key("tcp:10.104.0.2:80"), "fastest")), Err(Error::Invalid(_))));
    assert!(matches!(
        c.add_destination(&web, &dest("192.168.104.3:80", ForwardMethod::Masq, 1).with_thresholds(1, 5)),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        c.add_destination(&web, &dest("[2001:db8:104::1]:80", ForwardMethod::Masq, 1)),
        Err(Error::Invalid(_))
    ));
    // ipvsadm's rules that the kernel would silently accept or ignore.
    let gre_remcsum =
        dest("192.168.104.4:80", ForwardMethod::Tunnel, 1).with_tunnel(TunnelType::Gre, 0, TunnelFlags::REMCSUM);
    assert!(matches!(c.add_destination(&web, &gre_remcsum), Err(Error::Invalid(_))));
    let tcp_ops = Service { flags: ServiceFlags::ONE_PACKET, ..Service::new(key("tcp:10.104.0.2:80"), "rr") };
    assert!(matches!(c.add_service(&tcp_ops), Err(Error::Invalid(_))));
    run_ipvsadm_err(&["-A", "-t", "10.104.0.2:80", "-s", "rr", "-o"]);
    // The kernel agrees where we check first.
    let e = run_ipvsadm_err(&["-a", "-t", "10.104.0.1:80", "-r", "192.168.104.3:80", "-m", "-x", "1", "-y", "5"]);
    assert!(!e.is_empty());
}

fn run_ipvsadm_err(args: &[&str]) -> String {
    let out = Command::new("ipvsadm").args(args).output().unwrap();
    assert!(!out.status.success(), "ipvsadm {args:?} unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn reconcile_touches_only_owned_destinations() {
    let c = client();
    let web = key("tcp:10.105.0.1:80");
    let _cleanup = Cleanup(vec![web]);
    c.add_service(&Service::new(web, "wrr")).unwrap();
    // Someone else's destination (a sorry server), added by ipvsadm.
    run("ipvsadm", &["-a", "-t", "10.105.0.1:80", "-r", "192.168.105.99:80", "-m", "-w", "0"]);
    c.add_destination(&web, &dest("192.168.105.1:80", ForwardMethod::Masq, 1)).unwrap();
    c.add_destination(&web, &dest("192.168.105.2:80", ForwardMethod::Masq, 1)).unwrap();

    let owned: BTreeSet<SocketAddr> =
        ["192.168.105.1:80", "192.168.105.2:80", "192.168.105.3:80"].iter().map(|s| s.parse().unwrap()).collect();
    let desired =
        vec![dest("192.168.105.1:80", ForwardMethod::Masq, 5), dest("192.168.105.3:80", ForwardMethod::Masq, 1)];
    let ops = c.reconcile_destinations(&web, &owned, &desired).unwrap();
    assert_eq!(
        ops,
        vec![
            DestOp::Add(desired[1].clone()),
            DestOp::Edit(desired[0].clone()),
            DestOp::Delete("192.168.105.2:80".parse().unwrap()),
        ]
    );
    let save = || lines_matching(&run("ipvsadm", &["-S", "-n"]), &["10.105.0."]);
    assert_eq!(
        save(),
        sorted(&[
            "-A -t 10.105.0.1:80 -s wrr",
            "-a -t 10.105.0.1:80 -r 192.168.105.1:80 -m -w 5",
            "-a -t 10.105.0.1:80 -r 192.168.105.3:80 -m -w 1",
            "-a -t 10.105.0.1:80 -r 192.168.105.99:80 -m -w 0",
        ])
    );
    assert!(c.reconcile_destinations(&web, &owned, &desired).unwrap().is_empty());
    c.reconcile_destinations(&web, &owned, &[]).unwrap();
    assert_eq!(save(), sorted(&["-A -t 10.105.0.1:80 -s wrr", "-a -t 10.105.0.1:80 -r 192.168.105.99:80 -m -w 0",]));
}

/// Deletions in batches (64 requests per sendmsg): each endpoint gets its
/// own answer, a missing one ENOENT, a foreign destination stays, and the
/// same socket works for the next request.
#[test]
fn batched_deletions_answer_each_destination() {
    let c = client();
    let web = key("tcp:10.106.0.1:80");
    let _cleanup = Cleanup(vec![web]);
    c.add_service(&Service::new(web, "wrr")).unwrap();
    run("ipvsadm", &["-a", "-t", "10.106.0.1:80", "-r", "192.168.106.250:80", "-m", "-w", "3"]);
    // 200 reals: three full batches and a part one.
    let ours: Vec<SocketAddr> = (1..=200).map(|i| format!("192.168.106.{i}:80").parse().unwrap()).collect();
    for ep in &ours {
        c.add_destination(&web, &dest(&ep.to_string(), ForwardMethod::Masq, 1)).unwrap();
    }
    let mut asked = ours.clone();
    asked.insert(70, "192.168.106.240:80".parse().unwrap());
    asked.push("192.168.106.241:80".parse().unwrap());
    let mut batches = 0;
    let errnos = c.delete_destinations(&web, &asked, &mut || batches += 1).unwrap();
    assert_eq!(batches, 4, "202 deletions in batches of 64");
    let missing: Vec<(SocketAddr, i32)> =
        asked.iter().zip(&errnos).filter(|(_, e)| **e != 0).map(|(a, e)| (*a, *e)).collect();
    assert_eq!(
        missing,
        vec![
            ("192.168.106.240:80".parse().unwrap(), libc::ENOENT),
            ("192.168.106.241:80".parse().unwrap(), libc::ENOENT)
        ]
    );
    let save = || lines_matching(&run("ipvsadm", &["-S", "-n"]), &["10.106.0."]);
    assert_eq!(save(), sorted(&["-A -t 10.106.0.1:80 -s wrr", "-a -t 10.106.0.1:80 -r 192.168.106.250:80 -m -w 3"]));
    assert_eq!(c.destinations(&web).unwrap().len(), 1, "the socket still answers");
}

#[test]
fn sync_daemons_start_list_stop() {
    let c = client();
    let master = SyncDaemon {
        sync_maxlen: Some(1400),
        mcast_group: Some(IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3))),
        mcast_port: Some(8850),
        mcast_ttl: Some(2),
        ..SyncDaemon::new(SyncState::Master, LAB_IF, 7)
    };
    c.start_daemon(&master).unwrap();
    run("ipvsadm", &["--start-daemon", "backup", "--mcast-interface", LAB_IF, "--syncid", "9"]);
    let listed = c.daemons().unwrap();
    let shown = run("ipvsadm", &["-L", "--daemon"]);
    assert!(listed.contains(&master), "{listed:?}");
    assert!(
        shown.contains(&format!(
            "master sync daemon (mcast={LAB_IF}, syncid=7, maxlen=1400, group=239.1.2.3, port=8850, ttl=2)"
        )),
        "{shown}"
    );
    let backup =
        listed.iter().find(|d| d.state == SyncState::Backup).unwrap_or_else(|| panic!("no backup in {listed:?}"));
    assert_eq!((backup.mcast_ifn.as_str(), backup.syncid), (LAB_IF, 9));
    // Field for field against ipvsadm's line for the kernel's defaults.
    let mut line = format!("backup sync daemon (mcast={LAB_IF}, syncid=9");
    if let Some(m) = backup.sync_maxlen.filter(|m| *m != 0) {
        line.push_str(&format!(", maxlen={m}"));
    }
    if let Some(g) = backup.mcast_group {
        line.push_str(&format!(", group={g}"));
    }
    if let Some(p) = backup.mcast_port.filter(|p| *p != 0) {
        line.push_str(&format!(", port={p}"));
    }
    if let Some(t) = backup.mcast_ttl.filter(|t| *t != 0) {
        line.push_str(&format!(", ttl={t}"));
    }
    line.push(')');
    assert!(shown.contains(&line), "{line} not in:\n{shown}");

    c.stop_daemon(SyncState::Master).unwrap();
    c.stop_daemon(SyncState::Backup).unwrap();
    assert!(c.daemons().unwrap().is_empty());
    assert_eq!(run("ipvsadm", &["-L", "--daemon"]).trim(), "");
    assert!(c.stop_daemon(SyncState::Master).unwrap_err().is_not_found());
}

#[test]
fn info_matches_ipvsadm() {
    let c = client();
    let info = c.info().unwrap();
    let header = run("ipvsadm", &["-L", "-n"]);
    assert_eq!(
        header.lines().next().unwrap(),
        format!("IP Virtual Server version {} (size={})", info.version_string(), info.conn_tab_size)
    );
    assert!(info.conn_tab_size > 0);
}

/// The lab-facts observation: in a namespace with no addresses at all the
/// kernel has no local routing table yet and takes every destination for
/// non-unicast (EINVAL). The client says so.
#[test]
fn a_bare_namespace_refuses_destinations() {
    setup();
    let bare = "lvs-lab-ipvs-bare";
    run("ip", &["netns", "add", bare]);
    enter(bare);
    let c = IpvsClient::connect().unwrap();
    let web = key("tcp:10.106.0.1:80");
    let _cleanup = Cleanup(vec![web]);
    c.add_service(&Service::new(web, "rr")).unwrap();
    let e = c.add_destination(&web, &dest("192.168.106.1:80", ForwardMethod::Masq, 1)).unwrap_err();
    assert_eq!(netlink_errno(&e), Errno::EINVAL as i32);
    assert!(e.to_string().contains("without addresses"), "{e}");
    let out =
        Command::new("ipvsadm").args(["-a", "-t", "10.106.0.1:80", "-r", "192.168.106.1:80", "-m"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not unicast"));
    // One address later, the same destination is fine.
    run("ip", &["link", "set", "lo", "up"]);
    c.add_destination(&web, &dest("192.168.106.1:80", ForwardMethod::Masq, 1)).unwrap();
}

/// What one step of the script answered: done, or the kernel's errno (or
/// the error text when there is none: our own validation).
fn answer<T>(r: lvs_ipvs::Result<T>) -> Result<(), String> {
    r.map(drop).map_err(|e| match e.errno() {
        Some(n) => format!("errno {n} ({})", Errno::from_raw(n)),
        None => e.to_string(),
    })
}

/// Everything either side can be asked: the table, each service's
/// destinations in the order listed, timeouts, sync daemons.
fn everything(ipvs: &dyn Ipvs) -> String {
    let table = ipvs.table().expect("table");
    let mut out = format!("{:?}\n{:?}\n{:?}\n", table.info, ipvs.timeouts().expect("timeouts"), ipvs.daemons());
    for e in &table.entries {
        out.push_str(&format!("{:?}\n", e.service));
        for d in ipvs.destinations(&e.service.key).expect("destinations") {
            out.push_str(&format!("  {d:?}\n"));
        }
    }
    out
}

/// The in-memory table the agents' host tests use answers as the kernel
/// does: one script of commands, right and wrong, against both; after
/// each step the answers and everything listed must be equal. This is
/// what lets agent scenarios run as host tests (see lvs_tests::inproc).
#[test]
fn the_fake_table_answers_as_the_kernel_does() {
    setup();
    // A namespace of its own: an empty table, no sync daemons.
    const PIN: &str = "lvs-lab-pin";
    run("ip", &["netns", "add", PIN]);
    run("ip", &["-n", PIN, "link", "set", "lo", "up"]);
    run("ip", &["-n", PIN, "link", "add", "pin0", "mtu", "1500", "type", "dummy"]);
    run("ip", &["-n", PIN, "link", "set", "pin0", "up", "multicast", "on"]);
    run("ip", &["-n", PIN, "addr", "add", "192.0.2.1/24", "dev", "pin0"]);
    run("ip", &["-n", PIN, "route", "add", "10.0.0.0/8", "dev", "pin0"]);
    run("ip", &["-n", PIN, "-6", "route", "add", "2001:db8::/32", "dev", "pin0"]);
    enter(PIN);
    let kernel = IpvsClient::connect().expect("ipvs");
    let fake = lvs_ipvs::FakeIpvs::new();
    fake.add_link("pin0", 1500);

    let web = key("tcp:10.0.0.1:80");
    let dns = key("udp:10.0.0.1:53");
    let mark6 = key6("fwmark:7");
    let tls6 = key("tcp:[2001:db8::1]:443");
    let missing = key("tcp:10.0.0.9:80");
    let ep = |s: &str| -> std::net::SocketAddr { s.parse().unwrap() };
    let mut ops = Service::new(dns, "rr");
    ops.flags.insert(ServiceFlags::ONE_PACKET);
    let mut mh = Service::new(mark6, "mh");
    mh.flags.insert(ServiceFlags::MH_PORT);
    let tls = Service::new(tls6, "lc").with_persistence(60, Netmask::V6(64));
    let mut sh = Service::new(web, "sh").with_persistence(300, Netmask::V4("255.255.255.0".parse().unwrap()));
    sh.flags.insert(ServiceFlags::SH_PORT);
    sh.flags.insert(ServiceFlags::SH_FALLBACK);
    let tunnel = dest("10.0.1.3:80", ForwardMethod::Tunnel, 2).with_tunnel(TunnelType::Gue, 6080, TunnelFlags::CSUM);
    let inverted = dest("10.0.1.1:80", ForwardMethod::Masq, 1).with_thresholds(10, 20);

    type Step<'a> = (&'a str, Box<dyn Fn(&dyn Ipvs) -> Result<(), String> + 'a>);
    let steps: Vec<Step> = vec![
        ("add a service", Box::new(|i| answer(i.add_service(&Service::new(web, "wlc"))))),
        ("add it again", Box::new(|i| answer(i.add_service(&Service::new(web, "rr"))))),
        ("add a one-packet UDP service", Box::new(|i| answer(i.add_service(&ops)))),
        ("add an IPv6 fwmark service", Box::new(|i| answer(i.add_service(&mh)))),
        ("add a persistent IPv6 service", Box::new(|i| answer(i.add_service(&tls)))),
        ("read a missing service", Box::new(|i| answer(i.service(&missing)))),
        ("edit a missing service", Box::new(|i| answer(i.edit_service(&Service::new(missing, "rr"))))),
        ("delete a missing service", Box::new(|i| answer(i.delete_service(&missing)))),
        (
            "add a destination to a missing service",
            Box::new(|i| answer(i.add_destination(&missing, &dest("10.0.1.1:80", ForwardMethod::Masq, 1)))),
        ),
        (
            "add a NAT destination",
            Box::new(|i| answer(i.add_destination(&web, &dest("10.0.1.1:80", ForwardMethod::Masq, 1)))),
        ),
        (
            "add a DR destination",
            Box::new(|i| answer(i.add_destination(&web, &dest("10.0.1.2:80", ForwardMethod::Route, 0)))),
        ),
        ("add a GUE tunnel destination", Box::new(|i| answer(i.add_destination(&web, &tunnel)))),
        (
            "add a destination again",
            Box::new(|i| answer(i.add_destination(&web, &dest("10.0.1.2:80", ForwardMethod::Masq, 5)))),
        ),
        (
            "edit a missing destination",
            Box::new(|i| answer(i.edit_destination(&web, &dest("10.0.1.9:80", ForwardMethod::Masq, 1)))),
        ),
        (
            "edit a destination",
            Box::new(|i| {
                answer(i.edit_destination(&web, &dest("10.0.1.2:80", ForwardMethod::Masq, 7).with_thresholds(100, 50)))
            }),
        ),
        ("thresholds lower above upper", Box::new(|i| answer(i.edit_destination(&web, &inverted)))),
        ("delete a missing destination", Box::new(|i| answer(i.delete_destination(&web, ep("10.0.1.9:80"))))),
        (
            "delete a destination of a missing service",
            Box::new(|i| answer(i.delete_destination(&missing, ep("10.0.1.1:80")))),
        ),
        (
            "batched deletions, some missing",
            Box::new(|i| {
                i.add_destination(&dns, &dest("10.0.2.1:53", ForwardMethod::Route, 1)).map_err(|e| e.to_string())?;
                i.add_destination(&dns, &dest("10.0.2.2:53", ForwardMethod::Route, 1)).map_err(|e| e.to_string())?;
                let errnos =
                    i.delete_destinations(&dns, &[ep("10.0.2.1:53"), ep("10.0.2.9:53"), ep("10.0.2.2:53")], &mut || {});
                Err(format!("{errnos:?}"))
            }),
        ),
        (
            "batched deletions from a missing service",
            Box::new(|i| Err(format!("{:?}", i.delete_destinations(&missing, &[ep("10.0.2.1:53")], &mut || {})))),
        ),
        ("zero a missing service", Box::new(|i| answer(i.zero(Some(&missing))))),
        ("zero a service", Box::new(|i| answer(i.zero(Some(&web))))),
        ("zero all", Box::new(|i| answer(i.zero(None)))),
        ("set two timeouts", Box::new(|i| answer(i.set_timeouts(&Timeouts { tcp: 600, tcp_fin: 0, udp: 30 })))),
        ("edit scheduler, flags and persistence", Box::new(|i| answer(i.edit_service(&sh)))),
        ("back to wlc, no persistence", Box::new(|i| answer(i.edit_service(&Service::new(web, "wlc"))))),
        (
            "start a master sync daemon",
            Box::new(|i| answer(i.start_daemon(&SyncDaemon::new(SyncState::Master, "pin0", 5)))),
        ),
        ("start a backup on lo", Box::new(|i| answer(i.start_daemon(&SyncDaemon::new(SyncState::Backup, "lo", 5))))),
        (
            "start the master again",
            Box::new(|i| answer(i.start_daemon(&SyncDaemon::new(SyncState::Master, "pin0", 6)))),
        ),
        (
            "start the master again on a missing interface",
            Box::new(|i| answer(i.start_daemon(&SyncDaemon::new(SyncState::Master, "nosuch0", 6)))),
        ),
        ("stop the backup", Box::new(|i| answer(i.stop_daemon(SyncState::Backup)))),
        ("stop the backup again", Box::new(|i| answer(i.stop_daemon(SyncState::Backup)))),
        (
            "start a backup on a missing interface",
            Box::new(|i| answer(i.start_daemon(&SyncDaemon::new(SyncState::Backup, "nosuch0", 5)))),
        ),
        (
            "start a backup with every option",
            Box::new(|i| {
                let mut d = SyncDaemon::new(SyncState::Backup, "pin0", 9);
                d.sync_maxlen = Some(1200);
                d.mcast_group = Some("239.1.2.3".parse().unwrap());
                d.mcast_port = Some(9000);
                d.mcast_ttl = Some(3);
                answer(i.start_daemon(&d))
            }),
        ),
        (
            "stop both",
            Box::new(|i| {
                answer(i.stop_daemon(SyncState::Master))?;
                answer(i.stop_daemon(SyncState::Backup))
            }),
        ),
        ("delete a service with destinations", Box::new(|i| answer(i.delete_service(&web)))),
        (
            "list a deleted service's destinations",
            Box::new(|i| Err(format!("{:?}", i.destinations(&web).map(|d| d.len())))),
        ),
        ("flush", Box::new(|i| answer(i.flush()))),
    ];
    let mut differ = Vec::new();
    for (what, step) in &steps {
        let (k, f) = (step(&kernel), step(&fake));
        if k != f {
            differ.push(format!("{what}: kernel {k:?}, fake {f:?}"));
        }
        let (k, f) = (everything(&kernel), everything(&fake));
        if k != f {
            differ.push(format!("after {what}:\n kernel:\n{k}\n fake:\n{f}"));
        }
    }
    enter(NETNS);
    run("ip", &["netns", "del", PIN]);
    assert!(differ.is_empty(), "the fake answers otherwise than the kernel:\n{}", differ.join("\n"));
}
