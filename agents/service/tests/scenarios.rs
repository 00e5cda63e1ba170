//! `ocf:lvs:service` scenarios on an in-memory IPVS table that answers as
//! the kernel does (lvs_ipvs::FakeIpvs; lab_ipvs pins it to the kernel).
//! The same agent code as the binary, called through the OCF runtime.

use lvs_ipvs::{listing, Columns, Destination, ForwardMethod, Ipvs, Service, ServiceKey};
use lvs_tests::agent::Call;
use lvs_tests::inproc::Director;

fn service(d: &Director, action: &str, params: &[(&str, &str)]) -> Call {
    d.call(&lvs_service::SPEC, lvs_service::act, "web", action, params)
}

/// The table as `ipvsadm -Ln` prints it.
fn table(d: &Director) -> String {
    listing(&d.ipvs.table().expect("table"), Columns::Table, false, None)
}

fn key(s: &str) -> ServiceKey {
    s.parse().expect("key")
}

#[test]
fn lifecycle_is_idempotent_adopts_and_reports_drift() {
    let d = Director::new();
    let p = [("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr"), ("persistent", "600")];
    assert_eq!(service(&d, "monitor", &p).code, 7, "probe before start");
    let c = service(&d, "start", &p);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(table(&d).contains("TCP  10.0.0.100:80 wrr persistent 600"), "{}", table(&d));
    assert_eq!(service(&d, "start", &p).code, 0, "second start");
    assert_eq!(service(&d, "monitor", &p).code, 0);

    // Someone else's real and scheduler: drift is an error, start adopts,
    // reload edits in place and the real stays.
    let k = key("tcp:10.0.0.100:80");
    let other = Destination::new("192.168.7.10".parse().unwrap(), 80, ForwardMethod::Masq).with_weight(3);
    d.ipvs.add_destination(&k, &other).unwrap();
    let mut edited = d.ipvs.service(&k).unwrap();
    edited.scheduler = "rr".into();
    d.ipvs.edit_service(&edited).unwrap();
    let c = service(&d, "monitor", &p);
    assert_eq!(c.code, 1, "drift is an error: {c:?}");
    assert!(c.stderr.contains("scheduler is rr, expected wrr"), "{c:?}");
    assert_eq!(service(&d, "start", &p).code, 0, "start adopts");
    assert_eq!(service(&d, "monitor", &p).code, 0);
    let reload = [("service", "tcp:10.0.0.100:80"), ("scheduler", "sh"), ("flags", "sh-port")];
    assert_eq!(service(&d, "reload", &reload).code, 0);
    assert!(table(&d).contains("TCP  10.0.0.100:80 sh (sh-port)"), "{}", table(&d));
    let kept: Vec<(String, u32)> =
        d.ipvs.destinations(&k).unwrap().iter().map(|x| (x.endpoint().to_string(), x.weight)).collect();
    assert_eq!(kept, [("192.168.7.10:80".to_string(), 3)], "reload kept the real");

    assert_eq!(service(&d, "stop", &reload).code, 0);
    assert!(d.ipvs.services().unwrap().is_empty(), "stopped: {}", table(&d));
    assert_eq!(service(&d, "stop", &reload).code, 0, "second stop");
    assert_eq!(service(&d, "monitor", &reload).code, 7);
}

#[test]
fn stop_with_parameters_that_no_longer_check_out_deletes_the_recorded_service() {
    let d = Director::new();
    assert_eq!(service(&d, "start", &[("service", "tcp:10.0.0.100:80")]).code, 0);
    for broken in
        [vec![("service", "tcp:10.0.0.100:80"), ("scheduler", "nosuch")], vec![("service", "nonsense")], vec![]]
    {
        assert_eq!(service(&d, "start", &[("service", "tcp:10.0.0.100:80")]).code, 0);
        let c = service(&d, "stop", &broken);
        assert_eq!(c.code, 0, "{broken:?}: {c:?}");
        assert!(d.ipvs.services().unwrap().is_empty(), "{broken:?} left {}", table(&d));
    }
}

#[test]
fn stop_after_an_edited_service_removes_the_old_and_the_named_one() {
    let d = Director::new();
    assert_eq!(service(&d, "start", &[("service", "tcp:10.0.0.100:80")]).code, 0);
    // Someone created the newly named service by hand meanwhile.
    d.ipvs.add_service(&Service::new(key("tcp:10.0.0.101:80"), "rr")).unwrap();
    let c = service(&d, "monitor", &[("service", "tcp:10.0.0.100:8080")]);
    assert_eq!(c.code, 1, "ours under its old key is up, not stopped: {c:?}");
    assert_eq!(service(&d, "stop", &[("service", "tcp:10.0.0.101:80")]).code, 0);
    assert!(d.ipvs.services().unwrap().is_empty(), "{}", table(&d));
}

#[test]
fn reload_of_the_family_replaces_the_fwmark_service_and_applies_timeouts() {
    let d = Director::new();
    let v4 = [("service", "fwmark:7"), ("scheduler", "rr")];
    assert_eq!(service(&d, "start", &v4).code, 0);
    let v6 = [
        ("service", "fwmark:7"),
        ("family", "inet6"),
        ("scheduler", "rr"),
        ("tcp_timeout", "600"),
        ("udp_timeout", "30"),
    ];
    assert_eq!(service(&d, "reload", &v6).code, 0);
    let t = table(&d);
    assert!(t.contains("FWM  7 IPv6 rr") && !t.contains("FWM  7 rr"), "{t}");
    let timeouts = d.ipvs.timeouts().unwrap();
    assert_eq!((timeouts.tcp, timeouts.tcp_fin, timeouts.udp), (600, 120, 30));
    assert_eq!(service(&d, "stop", &v6).code, 0);
    assert!(d.ipvs.services().unwrap().is_empty(), "{}", table(&d));
}

#[test]
fn bad_parameters_fail_cleanly_and_touch_nothing() {
    let d = Director::new();
    d.ipvs.add_service(&Service::new(key("tcp:10.0.0.5:80"), "rr")).unwrap();
    let before = table(&d);
    for params in [
        vec![("service", "tcp:10.0.0.100")],
        vec![("service", "tcp:10.0.0.100:80"), ("scheduler", "nosuch")],
        vec![("scheduler", "rr")],
        vec![("service", "tcp:10.0.0.100:80"), ("netmask", "255.255.255.0")],
    ] {
        let c = service(&d, "start", &params);
        assert_eq!(c.code, 6, "{params:?}: {c:?}");
        assert!(c.stderr.contains("ocf-exit-reason:"), "{c:?}");
    }
    assert_eq!(table(&d), before, "nothing changed");
}

#[test]
fn a_kernel_refusal_is_a_generic_error_with_a_reason_and_stop_still_works() {
    let d = Director::new();
    let p = [("service", "tcp:10.0.0.100:80")];
    d.ipvs.fail_with(Some(libc::ENOMEM));
    let c = service(&d, "start", &p);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("ocf-exit-reason:") && c.stderr.contains("10.0.0.100:80"), "{c:?}");
    let c = service(&d, "stop", &p);
    assert_eq!(c.code, 1, "a stop that could not delete must not claim it did: {c:?}");
    d.ipvs.fail_with(None);
    assert_eq!(service(&d, "stop", &p).code, 0);
}

#[test]
fn monitor_of_a_flushed_table_says_stopped_and_start_puts_it_back() {
    let d = Director::new();
    let p = [("service", "udp:10.0.0.100:53"), ("scheduler", "rr"), ("flags", "ops")];
    assert_eq!(service(&d, "start", &p).code, 0);
    d.ipvs.flush().unwrap();
    assert_eq!(service(&d, "monitor", &p).code, 7);
    assert_eq!(service(&d, "start", &p).code, 0);
    assert!(table(&d).contains("UDP  10.0.0.100:53 rr ops"), "{}", table(&d));
}

#[test]
fn deep_monitor_of_a_service_with_reals_passes_and_of_a_deleted_one_says_stopped() {
    let d = Director::new();
    let p = [("service", "tcp:10.0.0.100:80")];
    assert_eq!(service(&d, "start", &p).code, 0);
    let k = key("tcp:10.0.0.100:80");
    d.ipvs.add_destination(&k, &Destination::new("192.168.7.10".parse().unwrap(), 80, ForwardMethod::Route)).unwrap();
    let c = d.call_at(&lvs_service::SPEC, lvs_service::act, "web", "monitor", &p, 10);
    assert_eq!(c.code, 0, "{c:?}");
    d.ipvs.delete_service(&k).unwrap();
    let c = d.call_at(&lvs_service::SPEC, lvs_service::act, "web", "monitor", &p, 10);
    assert_eq!(c.code, 7, "{c:?}");
}
