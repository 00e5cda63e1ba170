use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use neli::consts::nl::NlmF;
use neli::genl::{Genlmsghdr, GenlmsghdrBuilder};
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::{FromBytes, Size, ToBytes};
use proptest::prelude::*;

use super::wire::{self, Attr, AttrMap, Attrs, Part};
use super::*;
use crate::error::Error;

// ---------- operator syntax ----------

#[test]
fn parses_the_documented_examples() {
    let k: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
    assert_eq!(
        k,
        ServiceKey::Addr { protocol: Protocol::Tcp, addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)), port: 80 }
    );
    let k: ServiceKey = "udp:[2001:db8::1]:53".parse().unwrap();
    assert_eq!(k.family(), Family::Inet6);
    assert_eq!(k.to_string(), "udp:[2001:db8::1]:53");
    let k: ServiceKey = "sctp:10.0.0.1:5060".parse().unwrap();
    assert_eq!(k.to_string(), "sctp:10.0.0.1:5060");
    let k: ServiceKey = "fwmark:100".parse().unwrap();
    assert_eq!(k, ServiceKey::FwMark { family: Family::Inet, mark: 100 });
    let k = ServiceKey::parse_with_family("fwmark:100", Family::Inet6).unwrap();
    assert_eq!(k.family(), Family::Inet6);
    assert_eq!(k.to_string(), "fwmark:100");
    let k: ServiceKey = "TCP:10.0.0.1:0".parse().unwrap();
    assert_eq!(k.to_string(), "tcp:10.0.0.1:0");
    assert_eq!("inet6".parse::<Family>().unwrap(), Family::Inet6);
}

#[test]
fn rejects_bad_keys_as_configuration_errors() {
    for bad in [
        "",
        "tcp",
        "tcp:",
        "tcp:10.0.0.1",
        "tcp:10.0.0.1:",
        "tcp:10.0.0.1:65536",
        "tcp:10.0.0.1:-1",
        "tcp:10.0.0.1:+80",
        "tcp:10.0.0.256:80",
        "tcp:2001:db8::1:80",
        "tcp:[2001:db8::1]80",
        "tcp:[2001:db8::1:80",
        "tcp:[10.0.0.1]:80",
        "icmp:10.0.0.1:80",
        "fwmark:",
        "fwmark:0",
        "fwmark:-1",
        "fwmark:0x10",
        "fwmark:4294967296",
        " tcp:10.0.0.1:80x",
    ] {
        match bad.parse::<ServiceKey>() {
            Err(Error::Invalid(msg)) => assert!(!msg.is_empty()),
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    assert!(matches!(ServiceKey::parse_with_family("tcp:10.0.0.1:80", Family::Inet6), Err(Error::Invalid(_))));
    assert!(matches!("inet5".parse::<Family>(), Err(Error::Invalid(_))));
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Inet), Just(Family::Inet6)]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp), Just(Protocol::Sctp)]
}

fn service_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (protocol(), ip(), any::<u16>()).prop_map(|(protocol, addr, port)| ServiceKey::Addr { protocol, addr, port }),
        (family(), 1..=u32::MAX).prop_map(|(family, mark)| ServiceKey::FwMark { family, mark }),
    ]
}

proptest! {
    #[test]
    fn key_display_parses_back(key in service_key()) {
        let text = key.to_string();
        prop_assert_eq!(ServiceKey::parse_with_family(&text, key.family()).unwrap(), key);
        if key.family() == Family::Inet {
            prop_assert_eq!(text.parse::<ServiceKey>().unwrap(), key);
        }
    }

    #[test]
    fn key_parser_never_panics(s in "\\PC*") {
        if let Ok(k) = s.parse::<ServiceKey>() {
            prop_assert_eq!(k.to_string().parse::<ServiceKey>().unwrap(), k);
        }
    }

    #[test]
    fn key_parser_survives_near_misses(
        kind in prop_oneof![Just("tcp"), Just("udp"), Just("sctp"), Just("fwmark"), Just("x")],
        rest in "[0-9a-f:.\\[\\]]{0,45}",
    ) {
        let s = format!("{kind}:{rest}");
        match s.parse::<ServiceKey>() {
            Ok(k) => prop_assert_eq!(k.to_string().parse::<ServiceKey>().unwrap(), k),
            Err(e) => prop_assert!(matches!(e, Error::Invalid(_))),
        }
    }
}

// ---------- model ----------

#[test]
fn scheduler_flags_use_ipvsadm_words() {
    let f = ServiceFlags::parse_sched_flags("sh-fallback,sh-port", "sh").unwrap();
    assert_eq!(f, ServiceFlags::SCHED1 | ServiceFlags::SCHED2);
    assert_eq!(f.sched_flag_names("sh"), vec!["sh-fallback", "sh-port"]);
    assert_eq!(f.sched_flag_names("mh"), vec!["mh-fallback", "mh-port"]);
    assert_eq!(f.sched_flag_names("wlc"), vec!["flag-1", "flag-2"]);
    assert!(matches!(ServiceFlags::parse_sched_flags("sh-port", "mh"), Err(Error::Invalid(_))));
    assert!(matches!(ServiceFlags::parse_sched_flags("turbo", "sh"), Err(Error::Invalid(_))));
}

#[test]
fn every_kernel_scheduler_is_known() {
    for s in SCHEDULERS {
        validate_scheduler(s).unwrap();
    }
    assert!(matches!(validate_scheduler("fastest"), Err(Error::Invalid(_))));
}

#[test]
fn service_validation_catches_what_the_kernel_refuses() {
    let key: ServiceKey = "tcp:10.0.0.1:80".parse().unwrap();
    Service::new(key, "wlc").validate().unwrap();
    assert!(Service::new(key, "nope").validate().is_err());
    let mut s = Service::new(key, "rr");
    s.netmask = Netmask::V6(64);
    assert!(s.validate().is_err());
    let zero: ServiceKey = "tcp:10.0.0.1:0".parse().unwrap();
    assert!(Service::new(zero, "rr").validate().is_err());
    Service::new(zero, "rr").with_persistence(300, Netmask::host(Family::Inet)).validate().unwrap();
    let ops = |k: &str| Service { flags: ServiceFlags::ONE_PACKET, ..Service::new(k.parse().unwrap(), "rr") };
    ops("udp:10.0.0.1:53").validate().unwrap();
    ops("fwmark:3").validate().unwrap();
    assert!(ops("tcp:10.0.0.1:80").validate().is_err());
    assert!(ops("sctp:10.0.0.1:80").validate().is_err());
    let v6 = ServiceKey::parse_with_family("fwmark:1", Family::Inet6).unwrap();
    let mut s = Service::new(v6, "rr");
    assert_eq!(s.netmask, Netmask::V6(128));
    s.netmask = Netmask::V6(0);
    assert!(s.validate().is_err());
}

#[test]
fn destination_validation_catches_what_the_kernel_refuses() {
    let key: ServiceKey = "tcp:10.0.0.1:80".parse().unwrap();
    let d = Destination::new("192.168.7.1".parse().unwrap(), 80, ForwardMethod::Masq);
    d.validate(&key).unwrap();
    assert!(d.clone().with_thresholds(0, 5).validate(&key).is_err());
    d.clone().with_thresholds(10, 5).validate(&key).unwrap();
    let v6 = Destination::new("2001:db8::7".parse().unwrap(), 80, ForwardMethod::Route);
    assert!(v6.validate(&key).is_err());
    let mut tun = v6.clone();
    tun.forward = ForwardMethod::Tunnel;
    tun.validate(&key).unwrap();
    let tunnel = |t, port, flags| {
        let mut x = d.clone().with_tunnel(t, port, flags);
        x.forward = ForwardMethod::Tunnel;
        x
    };
    use TunnelType::*;
    let (none, csum, remcsum) = (TunnelFlags::empty(), TunnelFlags::CSUM, TunnelFlags::REMCSUM);
    for ok in [
        tunnel(Ipip, 0, none),
        tunnel(Gue, 6080, none),
        tunnel(Gue, 6080, csum),
        tunnel(Gue, 6080, remcsum),
        tunnel(Gre, 0, none),
        tunnel(Gre, 0, csum),
    ] {
        ok.validate(&key).unwrap();
    }
    for bad in [
        tunnel(Gue, 0, none),
        tunnel(Gue, 6080, csum | remcsum),
        tunnel(Gre, 0, remcsum),
        tunnel(Gre, 4754, none),
        tunnel(Ipip, 0, csum),
        tunnel(Ipip, 1, none),
        d.clone().with_tunnel(Gue, 6080, none),
    ] {
        assert!(matches!(bad.validate(&key), Err(Error::Invalid(_))), "{bad:?}");
    }
}

#[test]
fn netmask_and_forward_words() {
    assert_eq!(Netmask::parse("24", Family::Inet).unwrap(), Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(Netmask::parse("0", Family::Inet).unwrap(), Netmask::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(Netmask::parse("255.255.0.0", Family::Inet).unwrap(), Netmask::V4(Ipv4Addr::new(255, 255, 0, 0)));
    assert_eq!(Netmask::parse("64", Family::Inet6).unwrap(), Netmask::V6(64));
    assert!(Netmask::parse("129", Family::Inet6).is_err());
    assert!(Netmask::parse("33", Family::Inet).is_err());
    for (word, m) in [
        ("masq", ForwardMethod::Masq),
        ("gate", ForwardMethod::Route),
        ("ipip", ForwardMethod::Tunnel),
        ("local", ForwardMethod::Local),
        ("bypass", ForwardMethod::Bypass),
    ] {
        assert_eq!(word.parse::<ForwardMethod>().unwrap(), m);
        assert_eq!(m.to_string(), word);
        assert_eq!(ForwardMethod::from_raw(m.raw()), Some(m));
    }
    assert!("nat-ish".parse::<ForwardMethod>().is_err());
    assert_eq!("gre".parse::<TunnelType>().unwrap(), TunnelType::Gre);
    assert_eq!("remcsum".parse::<TunnelFlags>().unwrap(), TunnelFlags::REMCSUM);
}

// ---------- wire: bytes out, bytes in ----------

/// Wraps attributes in a full netlink message, serialises it, parses it
/// back and returns the top-level attributes, as the client sees a reply.
fn through_bytes(attrs: Vec<Attr>) -> AttrMap {
    let genl = GenlmsghdrBuilder::<u8, u16>::default()
        .cmd(wire::IPVS_CMD_NEW_SERVICE)
        .version(wire::IPVS_GENL_VERSION)
        .attrs(attrs.into_iter().collect::<Attrs>())
        .build()
        .unwrap();
    let msg = NlmsghdrBuilder::default()
        .nl_type(0x20u16)
        .nl_flags(NlmF::MULTI)
        .nl_seq(7)
        .nl_pid(0)
        .nl_payload(NlPayload::Payload(genl))
        .build()
        .unwrap();
    let mut buf = Cursor::new(vec![0u8; msg.padded_size()]);
    msg.to_bytes(&mut buf).unwrap();
    let bytes = buf.into_inner();
    let back: Nlmsghdr<u16, Genlmsghdr<u8, u16>> = Nlmsghdr::from_bytes(&mut Cursor::new(&bytes)).unwrap();
    AttrMap::from_attrs("test", back.get_payload().unwrap().attrs())
}

fn nested_raw(top: &AttrMap, outer: u16) -> AttrMap {
    top.nested(outer, "test").unwrap()
}

fn stats() -> impl Strategy<Value = Stats> {
    any::<[u64; 10]>().prop_map(|v| Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
        cps: v[5],
        inpps: v[6],
        outpps: v[7],
        inbps: v[8],
        outbps: v[9],
    })
}

fn service() -> impl Strategy<Value = Service> {
    (
        service_key(),
        proptest::sample::select(SCHEDULERS),
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        proptest::option::of("[a-z]{1,15}"),
        proptest::option::of(stats()),
    )
        .prop_map(|(key, sched, flags, timeout, m4, m6, pe_name, stats)| Service {
            key,
            scheduler: sched.to_string(),
            flags: ServiceFlags::from_bits_retain(flags).without(ServiceFlags::HASHED),
            timeout,
            netmask: match key.family() {
                Family::Inet => Netmask::V4(Ipv4Addr::from(m4)),
                Family::Inet6 => Netmask::V6(m6),
            },
            pe_name,
            stats,
        })
}

fn destination() -> impl Strategy<Value = Destination> {
    (
        ip(),
        any::<u16>(),
        proptest::sample::select(vec![
            ForwardMethod::Masq,
            ForwardMethod::Local,
            ForwardMethod::Tunnel,
            ForwardMethod::Route,
            ForwardMethod::Bypass,
        ]),
        any::<[u32; 3]>(),
        proptest::sample::select(vec![TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre]),
        any::<u16>(),
        0u16..4,
        any::<[u32; 3]>(),
        proptest::option::of(stats()),
    )
        .prop_map(|(addr, port, forward, w, tunnel, tport, tflags, c, stats)| Destination {
            addr,
            port,
            forward,
            weight: w[0],
            upper_threshold: w[1],
            lower_threshold: w[2],
            tunnel,
            tunnel_port: tport,
            tunnel_flags: TunnelFlags::from_bits_retain(tflags),
            active_conns: c[0],
            inactive_conns: c[1],
            persist_conns: c[2],
            stats,
        })
}

fn sync_daemon() -> impl Strategy<Value = SyncDaemon> {
    (
        prop_oneof![Just(SyncState::Master), Just(SyncState::Backup)],
        "[a-z][a-z0-9]{0,14}",
        any::<u8>(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(ip()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(state, mcast_ifn, syncid, sync_maxlen, mcast_group, mcast_port, mcast_ttl)| SyncDaemon {
            state,
            mcast_ifn,
            syncid,
            sync_maxlen,
            mcast_group,
            mcast_port,
            mcast_ttl,
        })
}

proptest! {
    #[test]
    fn service_attributes_round_trip(svc in service()) {
        let top = through_bytes(vec![wire::service_attr(&svc, Part::Listed).unwrap()]);
        let back = wire::decode_service(&nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE)).unwrap();
        prop_assert_eq!(&back, &svc);

        // What the client sends leaves the counters out.
        let top = through_bytes(vec![wire::service_attr(&svc, Part::Full).unwrap()]);
        let back = wire::decode_service(&nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE)).unwrap();
        prop_assert_eq!(back, Service { stats: None, ..svc });
    }

    #[test]
    fn service_key_attributes_round_trip(key in service_key()) {
        let top = through_bytes(vec![wire::service_key_attr(&key).unwrap()]);
        let a = nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE);
        prop_assert!(!a.has(wire::IPVS_SVC_ATTR_SCHED_NAME));
        prop_assert!(!a.has(wire::IPVS_SVC_ATTR_FLAGS));
        // Decoding needs the full set; give it the kernel's defaults.
        let svc = Service::new(key, "rr");
        let top = through_bytes(vec![wire::service_attr(&svc, Part::Full).unwrap()]);
        let back = wire::decode_service(&nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE)).unwrap();
        prop_assert_eq!(back.key, key);
    }

    #[test]
    fn destination_attributes_round_trip(d in destination(), svc_family in family()) {
        let top = through_bytes(vec![wire::dest_attr(&d, Part::Listed).unwrap()]);
        let back = wire::decode_dest(&nested_raw(&top, wire::IPVS_CMD_ATTR_DEST), svc_family).unwrap();
        prop_assert_eq!(&back, &d);

        let top = through_bytes(vec![wire::dest_attr(&d, Part::Full).unwrap()]);
        let back = wire::decode_dest(&nested_raw(&top, wire::IPVS_CMD_ATTR_DEST), svc_family).unwrap();
        prop_assert!(back.same_settings(&d));
        prop_assert_eq!(back.stats, None);
        prop_assert_eq!(back.active_conns, 0);
    }

    #[test]
    fn daemon_attributes_round_trip(d in sync_daemon()) {
        let top = through_bytes(vec![wire::daemon_attr(&d).unwrap()]);
        let back = wire::decode_daemon(&nested_raw(&top, wire::IPVS_CMD_ATTR_DAEMON)).unwrap();
        prop_assert_eq!(back, d);
    }

    #[test]
    fn timeout_attributes_round_trip(tcp in any::<u32>(), tcp_fin in any::<u32>(), udp in any::<u32>()) {
        let t = Timeouts { tcp, tcp_fin, udp };
        let top = through_bytes(wire::timeout_attrs(&t).unwrap());
        prop_assert_eq!(wire::decode_timeouts(&top).unwrap(), t);
    }

    #[test]
    fn info_attributes_round_trip(version in any::<u32>(), conn_tab_size in any::<u32>()) {
        let i = Info { version, conn_tab_size };
        let top = through_bytes(wire::info_attrs(&i).unwrap());
        prop_assert_eq!(wire::decode_info(&top).unwrap(), i);
    }
}

#[test]
fn wire_byte_orders_match_ip_vs_h() {
    let svc = Service::new("tcp:10.1.2.3:8080".parse().unwrap(), "wlc")
        .with_persistence(300, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)));
    let top = through_bytes(vec![wire::service_attr(&svc, Part::Full).unwrap()]);
    let a = nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE);
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_AF).unwrap(), &2u16.to_ne_bytes());
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_PROTOCOL).unwrap(), &6u16.to_ne_bytes());
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_PORT).unwrap(), &[0x1f, 0x90]);
    let addr = a.raw(wire::IPVS_SVC_ATTR_ADDR).unwrap();
    assert_eq!(addr.len(), 16);
    assert_eq!(&addr[..4], &[10, 1, 2, 3]);
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_NETMASK).unwrap(), &[255, 255, 255, 0]);
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_SCHED_NAME).unwrap(), b"wlc\0");
    let mut flags = 1u32.to_ne_bytes().to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_FLAGS).unwrap(), flags.as_slice());
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_TIMEOUT).unwrap(), &300u32.to_ne_bytes());
    assert!(!a.has(wire::IPVS_SVC_ATTR_PE_NAME));

    let v6 = Service::new("udp:[2001:db8::1]:53".parse().unwrap(), "rr").with_persistence(60, Netmask::V6(64));
    let top = through_bytes(vec![wire::service_attr(&v6, Part::Full).unwrap()]);
    let a = nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE);
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_NETMASK).unwrap(), &64u32.to_ne_bytes());
    assert_eq!(a.raw(wire::IPVS_SVC_ATTR_AF).unwrap(), &10u16.to_ne_bytes());

    let d = Destination::new("192.168.7.9".parse().unwrap(), 443, ForwardMethod::Tunnel).with_tunnel(
        TunnelType::Gue,
        6080,
        TunnelFlags::CSUM,
    );
    let top = through_bytes(vec![wire::dest_attr(&d, Part::Full).unwrap()]);
    let a = nested_raw(&top, wire::IPVS_CMD_ATTR_DEST);
    assert_eq!(a.raw(wire::IPVS_DEST_ATTR_PORT).unwrap(), &443u16.to_be_bytes());
    assert_eq!(a.raw(wire::IPVS_DEST_ATTR_TUN_PORT).unwrap(), &6080u16.to_be_bytes());
    assert_eq!(a.raw(wire::IPVS_DEST_ATTR_TUN_TYPE).unwrap(), &[1]);
    assert_eq!(a.raw(wire::IPVS_DEST_ATTR_TUN_FLAGS).unwrap(), &1u16.to_ne_bytes());
    assert_eq!(a.raw(wire::IPVS_DEST_ATTR_FWD_METHOD).unwrap(), &2u32.to_ne_bytes());
    assert_eq!(a.raw(wire::IPVS_DEST_ATTR_ADDR_FAMILY).unwrap(), &2u16.to_ne_bytes());
    assert!(!a.has(wire::IPVS_DEST_ATTR_ACTIVE_CONNS));
}

/// The round-trip proptests only show that our encoder and decoder agree;
/// these numbers are the kernel's (include/uapi/linux/ip_vs.h, generated
/// from /usr/include/linux/ip_vs.h of linux-libc-dev 6.1).
#[test]
fn attribute_and_command_numbers_are_the_kernels() {
    assert_eq!(wire::IPVS_GENL_VERSION, 1);
    let commands: &[(&str, u8, u8)] = &[
        ("IPVS_CMD_NEW_SERVICE", wire::IPVS_CMD_NEW_SERVICE, 1),
        ("IPVS_CMD_SET_SERVICE", wire::IPVS_CMD_SET_SERVICE, 2),
        ("IPVS_CMD_DEL_SERVICE", wire::IPVS_CMD_DEL_SERVICE, 3),
        ("IPVS_CMD_GET_SERVICE", wire::IPVS_CMD_GET_SERVICE, 4),
        ("IPVS_CMD_NEW_DEST", wire::IPVS_CMD_NEW_DEST, 5),
        ("IPVS_CMD_SET_DEST", wire::IPVS_CMD_SET_DEST, 6),
        ("IPVS_CMD_DEL_DEST", wire::IPVS_CMD_DEL_DEST, 7),
        ("IPVS_CMD_GET_DEST", wire::IPVS_CMD_GET_DEST, 8),
        ("IPVS_CMD_NEW_DAEMON", wire::IPVS_CMD_NEW_DAEMON, 9),
        ("IPVS_CMD_DEL_DAEMON", wire::IPVS_CMD_DEL_DAEMON, 10),
        ("IPVS_CMD_GET_DAEMON", wire::IPVS_CMD_GET_DAEMON, 11),
        ("IPVS_CMD_SET_CONFIG", wire::IPVS_CMD_SET_CONFIG, 12),
        ("IPVS_CMD_GET_CONFIG", wire::IPVS_CMD_GET_CONFIG, 13),
        ("IPVS_CMD_SET_INFO", wire::IPVS_CMD_SET_INFO, 14),
        ("IPVS_CMD_GET_INFO", wire::IPVS_CMD_GET_INFO, 15),
        ("IPVS_CMD_ZERO", wire::IPVS_CMD_ZERO, 16),
        ("IPVS_CMD_FLUSH", wire::IPVS_CMD_FLUSH, 17),
    ];
    let attributes: &[(&str, u16, u16)] = &[
        ("IPVS_CMD_ATTR_SERVICE", wire::IPVS_CMD_ATTR_SERVICE, 1),
        ("IPVS_CMD_ATTR_DEST", wire::IPVS_CMD_ATTR_DEST, 2),
        ("IPVS_CMD_ATTR_DAEMON", wire::IPVS_CMD_ATTR_DAEMON, 3),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP", wire::IPVS_CMD_ATTR_TIMEOUT_TCP, 4),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", wire::IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, 5),
        ("IPVS_CMD_ATTR_TIMEOUT_UDP", wire::IPVS_CMD_ATTR_TIMEOUT_UDP, 6),
        ("IPVS_SVC_ATTR_AF", wire::IPVS_SVC_ATTR_AF, 1),
        ("IPVS_SVC_ATTR_PROTOCOL", wire::IPVS_SVC_ATTR_PROTOCOL, 2),
        ("IPVS_SVC_ATTR_ADDR", wire::IPVS_SVC_ATTR_ADDR, 3),
        ("IPVS_SVC_ATTR_PORT", wire::IPVS_SVC_ATTR_PORT, 4),
        ("IPVS_SVC_ATTR_FWMARK", wire::IPVS_SVC_ATTR_FWMARK, 5),
        ("IPVS_SVC_ATTR_SCHED_NAME", wire::IPVS_SVC_ATTR_SCHED_NAME, 6),
        ("IPVS_SVC_ATTR_FLAGS", wire::IPVS_SVC_ATTR_FLAGS, 7),
        ("IPVS_SVC_ATTR_TIMEOUT", wire::IPVS_SVC_ATTR_TIMEOUT, 8),
        ("IPVS_SVC_ATTR_NETMASK", wire::IPVS_SVC_ATTR_NETMASK, 9),
        ("IPVS_SVC_ATTR_STATS", wire::IPVS_SVC_ATTR_STATS, 10),
        ("IPVS_SVC_ATTR_PE_NAME", wire::IPVS_SVC_ATTR_PE_NAME, 11),
        ("IPVS_SVC_ATTR_STATS64", wire::IPVS_SVC_ATTR_STATS64, 12),
        ("IPVS_DEST_ATTR_ADDR", wire::IPVS_DEST_ATTR_ADDR, 1),
        ("IPVS_DEST_ATTR_PORT", wire::IPVS_DEST_ATTR_PORT, 2),
        ("IPVS_DEST_ATTR_FWD_METHOD", wire::IPVS_DEST_ATTR_FWD_METHOD, 3),
        ("IPVS_DEST_ATTR_WEIGHT", wire::IPVS_DEST_ATTR_WEIGHT, 4),
        ("IPVS_DEST_ATTR_U_THRESH", wire::IPVS_DEST_ATTR_U_THRESH, 5),
        ("IPVS_DEST_ATTR_L_THRESH", wire::IPVS_DEST_ATTR_L_THRESH, 6),
        ("IPVS_DEST_ATTR_ACTIVE_CONNS", wire::IPVS_DEST_ATTR_ACTIVE_CONNS, 7),
        ("IPVS_DEST_ATTR_INACT_CONNS", wire::IPVS_DEST_ATTR_INACT_CONNS, 8),
        ("IPVS_DEST_ATTR_PERSIST_CONNS", wire::IPVS_DEST_ATTR_PERSIST_CONNS, 9),
        ("IPVS_DEST_ATTR_STATS", wire::IPVS_DEST_ATTR_STATS, 10),
        ("IPVS_DEST_ATTR_ADDR_FAMILY", wire::IPVS_DEST_ATTR_ADDR_FAMILY, 11),
        ("IPVS_DEST_ATTR_STATS64", wire::IPVS_DEST_ATTR_STATS64, 12),
        ("IPVS_DEST_ATTR_TUN_TYPE", wire::IPVS_DEST_ATTR_TUN_TYPE, 13),
        ("IPVS_DEST_ATTR_TUN_PORT", wire::IPVS_DEST_ATTR_TUN_PORT, 14),
        ("IPVS_DEST_ATTR_TUN_FLAGS", wire::IPVS_DEST_ATTR_TUN_FLAGS, 15),
        ("IPVS_DAEMON_ATTR_STATE", wire::IPVS_DAEMON_ATTR_STATE, 1),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", wire::IPVS_DAEMON_ATTR_MCAST_IFN, 2),
        ("IPVS_DAEMON_ATTR_SYNC_ID", wire::IPVS_DAEMON_ATTR_SYNC_ID, 3),
        ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", wire::IPVS_DAEMON_ATTR_SYNC_MAXLEN, 4),
        ("IPVS_DAEMON_ATTR_MCAST_GROUP", wire::IPVS_DAEMON_ATTR_MCAST_GROUP, 5),
        ("IPVS_DAEMON_ATTR_MCAST_GROUP6", wire::IPVS_DAEMON_ATTR_MCAST_GROUP6, 6),
        ("IPVS_DAEMON_ATTR_MCAST_PORT", wire::IPVS_DAEMON_ATTR_MCAST_PORT, 7),
        ("IPVS_DAEMON_ATTR_MCAST_TTL", wire::IPVS_DAEMON_ATTR_MCAST_TTL, 8),
        ("IPVS_STATS_ATTR_CONNS", wire::IPVS_STATS_ATTR_CONNS, 1),
        ("IPVS_STATS_ATTR_INPKTS", wire::IPVS_STATS_ATTR_INPKTS, 2),
        ("IPVS_STATS_ATTR_OUTPKTS", wire::IPVS_STATS_ATTR_OUTPKTS, 3),
        ("IPVS_STATS_ATTR_INBYTES", wire::IPVS_STATS_ATTR_INBYTES, 4),
        ("IPVS_STATS_ATTR_OUTBYTES", wire::IPVS_STATS_ATTR_OUTBYTES, 5),
        ("IPVS_STATS_ATTR_CPS", wire::IPVS_STATS_ATTR_CPS, 6),
        ("IPVS_STATS_ATTR_INPPS", wire::IPVS_STATS_ATTR_INPPS, 7),
        ("IPVS_STATS_ATTR_OUTPPS", wire::IPVS_STATS_ATTR_OUTPPS, 8),
        ("IPVS_STATS_ATTR_INBPS", wire::IPVS_STATS_ATTR_INBPS, 9),
        ("IPVS_STATS_ATTR_OUTBPS", wire::IPVS_STATS_ATTR_OUTBPS, 10),
        ("IPVS_INFO_ATTR_VERSION", wire::IPVS_INFO_ATTR_VERSION, 1),
        ("IPVS_INFO_ATTR_CONN_TAB_SIZE", wire::IPVS_INFO_ATTR_CONN_TAB_SIZE, 2),
    ];
    for (name, ours, kernel) in commands {
        assert_eq!(ours, kernel, "{name}");
    }
    for (name, ours, kernel) in attributes {
        assert_eq!(ours, kernel, "{name}");
    }
    assert_eq!(commands.len() + attributes.len(), 70);
}

#[test]
fn kernel_bookkeeping_flags_are_stripped_and_mask_applies() {
    let svc = Service::new("tcp:10.0.0.1:80".parse().unwrap(), "rr");
    let top = through_bytes(vec![wire::service_attr(&svc, Part::Full).unwrap()]);
    let mut a = nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE);
    // Re-encode as the kernel lists it: HASHED|ONE_PACKET with a partial mask.
    let mut flags = (0x2u32 | 0x4 | 0x8).to_ne_bytes().to_vec();
    flags.extend_from_slice(&0x6u32.to_ne_bytes());
    let rebuilt = rebuild_with(&mut a, wire::IPVS_SVC_ATTR_FLAGS, &flags);
    let back = wire::decode_service(&rebuilt).unwrap();
    assert_eq!(back.flags, ServiceFlags::ONE_PACKET);
}

fn rebuild_with(a: &mut AttrMap, ty: u16, payload: &[u8]) -> AttrMap {
    let mut children = Vec::new();
    for t in 1..=16u16 {
        if t == ty {
            children.push(wire::attr(t, payload).unwrap());
        } else if let Some(raw) = a.raw(t) {
            children.push(wire::attr(t, raw).unwrap());
        }
    }
    let top = through_bytes(vec![wire::nest(wire::IPVS_CMD_ATTR_SERVICE, &children).unwrap()]);
    nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE)
}

#[test]
fn old_kernels_32_bit_stats_and_missing_family_are_read() {
    let stats32 = wire::nest(
        wire::IPVS_DEST_ATTR_STATS,
        &[
            wire::attr(wire::IPVS_STATS_ATTR_CONNS, &5u32.to_ne_bytes()).unwrap(),
            wire::attr(wire::IPVS_STATS_ATTR_INBYTES, &7u64.to_ne_bytes()).unwrap(),
        ],
    )
    .unwrap();
    let dest = wire::nest(
        wire::IPVS_CMD_ATTR_DEST,
        &[
            wire::attr(wire::IPVS_DEST_ATTR_ADDR, &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap(),
            wire::attr(wire::IPVS_DEST_ATTR_PORT, &80u16.to_be_bytes()).unwrap(),
            wire::attr(wire::IPVS_DEST_ATTR_FWD_METHOD, &3u32.to_ne_bytes()).unwrap(),
            wire::attr(wire::IPVS_DEST_ATTR_WEIGHT, &2u32.to_ne_bytes()).unwrap(),
            wire::attr(wire::IPVS_DEST_ATTR_U_THRESH, &0u32.to_ne_bytes()).unwrap(),
            wire::attr(wire::IPVS_DEST_ATTR_L_THRESH, &0u32.to_ne_bytes()).unwrap(),
            stats32,
        ],
    )
    .unwrap();
    let top = through_bytes(vec![dest]);
    let d = wire::decode_dest(&nested_raw(&top, wire::IPVS_CMD_ATTR_DEST), Family::Inet6).unwrap();
    assert_eq!(d.addr, "fe80::1".parse::<IpAddr>().unwrap());
    assert_eq!(d.forward, ForwardMethod::Route);
    let s = d.stats.unwrap();
    assert_eq!((s.conns, s.inbytes, s.outpkts), (5, 7, 0));
}

#[test]
fn truncated_replies_are_errors_not_panics() {
    let svc = Service::new("tcp:10.0.0.1:80".parse().unwrap(), "rr");
    let top = through_bytes(vec![wire::service_attr(&svc, Part::Full).unwrap()]);
    let mut a = nested_raw(&top, wire::IPVS_CMD_ATTR_SERVICE);
    let short = rebuild_with(&mut a, wire::IPVS_SVC_ATTR_FLAGS, &[1, 0, 0]);
    assert!(matches!(wire::decode_service(&short), Err(Error::Decode(_))));
    let short = rebuild_with(&mut a, wire::IPVS_SVC_ATTR_PORT, &[1]);
    assert!(matches!(wire::decode_service(&short), Err(Error::Decode(_))));
    assert!(AttrMap::parse("x", &[200, 0, 1, 0, 1]).is_err());
}

// ---------- captured kernel replies ----------

/// Replies of a Debian 6.1 kernel to a table ipvsadm built, captured in the
/// lab VM by tests/lab/capture-ipvs-replies (regenerate them with it): our
/// decoder must read what the kernel sends, not only what our encoder wrote.
const KERNEL_SERVICES: &[&str] = &[
    "400100002000020002000000b0000000010100002c01010006000100020000000600020006000000140003000a010203000000000000000000000000060004001f90000008000600776c63000c00070003000000ffffffff080008002c01000008000900ffffff005c000a000800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c00090000000000000000000c000a000000000000000000",
    "400100002000020002000000b0000000010100002c010100060001000a00000006000200110000001400030020010db8000000000000000000000001060004000035000007000600727200000c00070007000000ffffffff080008003c00000008000900400000005c000a000800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c00090000000000000000000c000a000000000000000000",
    "240100002000020002000000b000000001010000100101000600010002000000080005006400000007000600736800000c0007001a000000ffffffff080008000000000008000900ffffffff5c000a000800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c00090000000000000000000c000a000000000000000000",
];
const KERNEL_DESTS_TCP: &[&str] = &[
    "640100002000020003000000b0000000050100005001020014000100c0a8070a000000000000000000000000060002001f9000000800030000000000080004000500000005000d000000000006000e000000000006000f00000000000800050064000000080006000a00000008000700000000000800080000000000080009000000000006000b00020000005c000a000800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c00090000000000000000000c000a000000000000000000",
    "640100002000020003000000b0000000050100005001020014000100c0a80709000000000000000000000000060002001f9000000800030002000000080004000300000005000d000100000006000e0017c0000006000f00010000000800050000000000080006000000000008000700000000000800080000000000080009000000000006000b00020000005c000a000800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c00090000000000000000000c000a000000000000000000",
];
const KERNEL_DESTS_UDP6: &[&str] = &[
    "640100002000020004000000b000000005010000500102001400010020010db800000000000000000000001006000200003500000800030003000000080004000000000005000d000000000006000e000000000006000f00000000000800050000000000080006000000000008000700000000000800080000000000080009000000000006000b000a0000005c000a000800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c00090000000000000000000c000a000000000000000000",
];
const KERNEL_CONFIG: &str = "2c0000002000000005000000b00000000c01000008000400840300000800050078000000080006002c010000";
const KERNEL_INFO: &str = "240000002000000006000000b00000000e01000008000100010201000800020000100000";

/// The top-level attributes of one captured netlink message.
fn kernel_reply(hex: &str) -> AttrMap {
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let msg: Nlmsghdr<u16, Genlmsghdr<u8, u16>> = Nlmsghdr::from_bytes(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(msg.padded_size(), bytes.len(), "one whole message");
    AttrMap::from_attrs("fixture", msg.get_payload().unwrap().attrs())
}

#[test]
fn captured_kernel_replies_decode_to_what_ipvsadm_set() {
    let key = |s: &str| s.parse::<ServiceKey>().unwrap();
    let mut services: Vec<Service> = KERNEL_SERVICES
        .iter()
        .map(|h| {
            let s = wire::decode_service(&kernel_reply(h).nested(wire::IPVS_CMD_ATTR_SERVICE, "svc").unwrap()).unwrap();
            assert!(s.stats.is_some(), "the kernel lists counters");
            Service { stats: None, ..s }
        })
        .collect();
    services.sort_by_key(|s| s.key.to_string());
    let fwmark = Service::new(key("fwmark:100"), "sh");
    let mut want = vec![
        Service { flags: ServiceFlags::parse_sched_flags("sh-fallback,sh-port", "sh").unwrap(), ..fwmark },
        Service::new(key("tcp:10.1.2.3:8080"), "wlc")
            .with_persistence(300, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))),
        {
            let mut s = Service::new(key("udp:[2001:db8::1]:53"), "rr").with_persistence(60, Netmask::V6(64));
            s.flags |= ServiceFlags::ONE_PACKET;
            s
        },
    ];
    want.sort_by_key(|s| s.key.to_string());
    assert_eq!(services, want);

    let dests = |hexes: &[&str], family| -> Vec<Destination> {
        let mut v: Vec<Destination> = hexes
            .iter()
            .map(|h| {
                let d = wire::decode_dest(&kernel_reply(h).nested(wire::IPVS_CMD_ATTR_DEST, "dest").unwrap(), family)
                    .unwrap();
                Destination { stats: None, ..d }
            })
            .collect();
        v.sort_by_key(|d| d.endpoint());
        v
    };
    assert_eq!(
        dests(KERNEL_DESTS_TCP, Family::Inet),
        vec![
            // Not masq: the kernel gives the destination the service's port.
            Destination::new("192.168.7.9".parse().unwrap(), 8080, ForwardMethod::Tunnel).with_weight(3).with_tunnel(
                TunnelType::Gue,
                6080,
                TunnelFlags::CSUM
            ),
            Destination::new("192.168.7.10".parse().unwrap(), 8080, ForwardMethod::Masq)
                .with_weight(5)
                .with_thresholds(100, 10),
        ]
    );
    assert_eq!(
        dests(KERNEL_DESTS_UDP6, Family::Inet6),
        vec![Destination::new("2001:db8::10".parse().unwrap(), 53, ForwardMethod::Route).with_weight(0)]
    );
    assert_eq!(
        wire::decode_timeouts(&kernel_reply(KERNEL_CONFIG)).unwrap(),
        Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }
    );
    let info = wire::decode_info(&kernel_reply(KERNEL_INFO)).unwrap();
    assert_eq!((info.version_string(), info.conn_tab_size), ("1.2.1".to_string(), 4096));
}

// ---------- table ----------

#[test]
fn table_prints_like_ipvsadm_ln() {
    let web: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
    let dns: ServiceKey = "udp:[2001:db8::1]:53".parse().unwrap();
    let mark = ServiceKey::parse_with_family("fwmark:7", Family::Inet6).unwrap();
    let mut web_svc = Service::new(web, "sh").with_persistence(300, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)));
    web_svc.flags |= ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT | ServiceFlags::ONE_PACKET;
    let mut d1 = Destination::new("192.168.7.2".parse().unwrap(), 80, ForwardMethod::Masq).with_weight(3);
    d1.active_conns = 12;
    d1.inactive_conns = 4;
    let d0 = Destination::new("192.168.7.1".parse().unwrap(), 80, ForwardMethod::Route);
    let table = Table::new(
        Info { version: 0x010201, conn_tab_size: 4096 },
        vec![
            TableEntry { service: Service::new(mark, "rr"), destinations: vec![] },
            TableEntry {
                service: Service::new(dns, "wrr"),
                destinations: vec![Destination::new("2001:db8::53".parse().unwrap(), 53, ForwardMethod::Tunnel)],
            },
            TableEntry { service: web_svc, destinations: vec![d1, d0] },
        ],
    );
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0 ops
  -> 192.168.7.1:80               Route   1      0          0         
  -> 192.168.7.2:80               Masq    3      12         4         
UDP  [2001:db8::1]:53 wrr
  -> [2001:db8::53]:53            Tunnel  1      0          0         
FWM  7 IPv6 rr
";
    assert_eq!(table.to_string(), expected);
    assert!(table.get(&dns).is_some());
}

// ---------- reconcile ----------

fn ep(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn dest(s: &str, weight: u32) -> Destination {
    let e = ep(s);
    Destination::new(e.ip(), e.port(), ForwardMethod::Route).with_weight(weight)
}

#[test]
fn reconcile_adds_edits_deletes_only_owned() {
    let current = vec![
        dest("192.168.7.1:80", 1),
        dest("192.168.7.2:80", 1),
        dest("192.168.7.3:80", 1),
        dest("192.168.7.99:80", 0), // the sorry server: someone else's
    ];
    let owned: BTreeSet<_> =
        ["192.168.7.1:80", "192.168.7.2:80", "192.168.7.3:80", "192.168.7.4:80"].iter().map(|s| ep(s)).collect();
    let desired = vec![dest("192.168.7.1:80", 1), dest("192.168.7.2:80", 5), dest("192.168.7.4:80", 1)];
    let ops = reconcile(&current, &owned, &desired).unwrap();
    assert_eq!(
        ops,
        vec![
            DestOp::Add(dest("192.168.7.4:80", 1)),
            DestOp::Edit(dest("192.168.7.2:80", 5)),
            DestOp::Delete(ep("192.168.7.3:80")),
        ]
    );
    // Nothing to do once the kernel matches.
    let after = vec![
        dest("192.168.7.1:80", 1),
        dest("192.168.7.2:80", 5),
        dest("192.168.7.4:80", 1),
        dest("192.168.7.99:80", 0),
    ];
    assert!(reconcile(&after, &owned, &desired).unwrap().is_empty());
    // Counters do not make a destination differ.
    let mut busy = after.clone();
    busy[0].active_conns = 40;
    assert!(reconcile(&busy, &owned, &desired).unwrap().is_empty());
}

#[test]
fn reconcile_refuses_unowned_or_duplicate_wishes() {
    let owned: BTreeSet<_> = [ep("192.168.7.1:80")].into_iter().collect();
    assert!(matches!(reconcile(&[], &owned, &[dest("192.168.7.99:80", 1)]), Err(Error::Invalid(_))));
    assert!(matches!(
        reconcile(&[], &owned, &[dest("192.168.7.1:80", 1), dest("192.168.7.1:80", 2)]),
        Err(Error::Invalid(_))
    ));
}

fn small_dest() -> impl Strategy<Value = Destination> {
    (0u8..6, 0u16..2, 0u32..3, prop_oneof![Just(ForwardMethod::Masq), Just(ForwardMethod::Route)]).prop_map(
        |(host, port, weight, fwd)| {
            Destination::new(IpAddr::V4(Ipv4Addr::new(192, 168, 7, host)), 80 + port, fwd).with_weight(weight)
        },
    )
}

fn unique(ds: Vec<Destination>) -> Vec<Destination> {
    let mut seen = BTreeMap::new();
    for d in ds {
        seen.entry(d.endpoint()).or_insert(d);
    }
    seen.into_values().collect()
}

proptest! {
    #[test]
    fn reconcile_converges_and_spares_others(
        current in proptest::collection::vec(small_dest(), 0..10).prop_map(unique),
        owned_pick in proptest::collection::vec(any::<bool>(), 12),
        desired in proptest::collection::vec(small_dest(), 0..10).prop_map(unique),
    ) {
        // Owned: a random subset of all endpoints, plus everything desired.
        let all: Vec<SocketAddr> = (0u8..6)
            .flat_map(|h| (0u16..2).map(move |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 7, h)), 80 + p)))
            .collect();
        let mut owned: BTreeSet<SocketAddr> = all.iter().zip(&owned_pick).filter(|(_, k)| **k).map(|(e, _)| *e).collect();
        owned.extend(desired.iter().map(Destination::endpoint));

        let ops = reconcile(&current, &owned, &desired).unwrap();
        for op in &ops {
            prop_assert!(owned.contains(&op.endpoint()));
        }
        // Apply the operations to a model of the kernel.
        let mut kernel: BTreeMap<SocketAddr, Destination> =
            current.iter().map(|d| (d.endpoint(), d.clone())).collect();
        for op in &ops {
            match op {
                DestOp::Add(d) => prop_assert!(kernel.insert(d.endpoint(), d.clone()).is_none()),
                DestOp::Edit(d) => prop_assert!(kernel.insert(d.endpoint(), d.clone()).is_some()),
                DestOp::Delete(e) => prop_assert!(kernel.remove(e).is_some()),
            }
        }
        for d in &current {
            if !owned.contains(&d.endpoint()) {
                prop_assert_eq!(kernel.get(&d.endpoint()), Some(d));
            }
        }
        let mine: BTreeMap<_, _> = kernel.into_iter().filter(|(e, _)| owned.contains(e)).collect();
        let want: BTreeMap<_, _> = desired.iter().map(|d| (d.endpoint(), d.clone())).collect();
        prop_assert_eq!(mine, want);
        // A second pass has nothing left to do.
        let now: Vec<Destination> = current
            .iter()
            .filter(|d| !owned.contains(&d.endpoint()))
            .cloned()
            .chain(desired.iter().cloned())
            .collect();
        prop_assert!(reconcile(&now, &owned, &desired).unwrap().is_empty());
    }
}

// ---------- client without IPVS ----------

/// Where IPVS is missing (this host: no IPVS, no modules), connecting says
/// "not installed"; where it exists (the lab VM), the client talks to it.
/// Which case holds is judged from /proc/net/ip_vs, not from the client.
#[test]
fn missing_ipvs_is_not_installed() {
    let connected = IpvsClient::connect();
    // Read after connect: the client may have just loaded the module.
    let proc_net = std::fs::read_to_string("/proc/net/ip_vs");
    match (connected, proc_net) {
        (Ok(c), Ok(text)) => {
            let info = c.info().unwrap();
            let header = text.lines().next().unwrap_or_default();
            assert_eq!(
                header,
                format!("IP Virtual Server version {} (size={})", info.version_string(), info.conn_tab_size)
            );
        }
        (Err(Error::Unavailable(msg)), Err(_)) => assert!(msg.starts_with("IPVS is not available"), "{msg}"),
        (Ok(_), Err(e)) => panic!("connected, but /proc/net/ip_vs is unreadable ({e}): which IPVS answered?"),
        (Err(e), Ok(_)) => panic!("/proc/net/ip_vs exists, yet connecting failed: {e:?}"),
        (Err(e), Err(_)) => panic!("expected Error::Unavailable, got {e:?}"),
    }
}

#[test]
fn refusals_are_classified() {
    let exists = Error::kernel("adding", libc::EEXIST);
    assert!(exists.is_exists());
    assert!(!exists.is_not_found());
    for errno in [libc::ESRCH, libc::ENOENT] {
        let e = Error::kernel("deleting", errno);
        assert!(e.is_not_found() && !e.is_exists());
        assert_eq!(e.errno(), Some(errno));
    }
    let other = Error::kernel("adding", libc::EINVAL);
    assert!(!other.is_exists() && !other.is_not_found());
    assert!(!Error::decode("x").is_not_found());
    // The exit codes the cluster manager sees do not change with the type.
    for (e, code) in [
        (Error::kernel("adding", libc::EPERM), lvs_ocf::ExitCode::ErrPerm),
        (Error::kernel("adding", libc::EEXIST), lvs_ocf::ExitCode::ErrGeneric),
        (Error::invalid("bad"), lvs_ocf::ExitCode::ErrConfigured),
        (Error::Unavailable("no ip_vs".into()), lvs_ocf::ExitCode::ErrInstalled),
        (Error::decode("short"), lvs_ocf::ExitCode::ErrGeneric),
    ] {
        let text = e.to_string();
        let ocf = lvs_ocf::Error::from(e);
        assert_eq!(ocf.to_string(), text);
        assert_eq!(lvs_ocf::ExitCode::from(&ocf), code, "{text}");
    }
}

/// An ack as the kernel writes it: a header, the error, and (for an error)
/// the request's header and payload echoed.
fn ack(seq: u32, error: i32, echo: usize) -> Vec<u8> {
    let len = 16 + 4 + 16 + echo;
    let mut b = Vec::new();
    b.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
    b.extend_from_slice(&2u16.to_ne_bytes());
    b.extend_from_slice(&0x100u16.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&7u32.to_ne_bytes());
    b.extend_from_slice(&error.to_ne_bytes());
    b.resize(len, 0xaa);
    b.resize((len + 3) & !3, 0);
    b
}

#[test]
fn acks_are_read_by_sequence_number_with_their_errno() {
    let mut buf = ack(5, 0, 0);
    buf.extend(ack(6, -libc::ENOENT, 41));
    buf.extend(ack(7, -libc::EINVAL, 3));
    assert_eq!(wire::acks(&buf), vec![(5, 0), (6, libc::ENOENT), (7, libc::EINVAL)]);
    // A message that is not an ack is skipped; one cut short ends the walk.
    let mut other = ack(8, 0, 0);
    other[4] = 16; // a reply of another type
    let mut buf = other;
    buf.extend(ack(9, 0, 0));
    let cut = ack(10, 0, 8);
    buf.extend_from_slice(&cut[..cut.len() - 4]);
    assert_eq!(wire::acks(&buf), vec![(9, 0)]);
    assert_eq!(wire::acks(&[]), vec![]);
    assert_eq!(wire::acks(&[0u8; 3]), vec![]);
    // A length below a header's would never advance.
    assert_eq!(wire::acks(&[0u8; 32]), vec![]);
}
