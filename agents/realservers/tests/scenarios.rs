//! `ocf:lvs:realservers` stop on an in-memory IPVS table that answers as
//! the kernel does (lvs_ipvs::FakeIpvs, pinned to the kernel by lab_ipvs):
//! our reals leave whatever the parameters say now, others stay. (Start
//! runs the health daemon, a process of its own on the kernel: lab.)

use lvs_daemon::Instance;
use lvs_ipvs::{Destination, ForwardMethod, Ipvs, Service, ServiceKey};
use lvs_tests::agent::Call;
use lvs_tests::inproc::Director;

fn realservers(d: &Director, action: &str, params: &[(&str, &str)]) -> Call {
    d.call(&lvs_realservers::SPEC, lvs_realservers::act, "reals", action, params)
}

fn endpoints(d: &Director, key: &ServiceKey) -> Vec<String> {
    let mut e: Vec<String> = d.ipvs.destinations(key).unwrap().iter().map(|x| x.endpoint().to_string()).collect();
    e.sort();
    e
}

/// The table as a daemon started with `real` would have left it, plus
/// someone else's destination.
fn filled(d: &Director, key: &ServiceKey, reals: &[&str]) {
    d.ipvs.add_service(&Service::new(*key, "wrr")).unwrap();
    for r in reals.iter().chain(["192.168.9.9"].iter()) {
        d.ipvs.add_destination(key, &Destination::new(r.parse().unwrap(), 80, ForwardMethod::Route)).unwrap();
    }
}

/// What the daemon ran with, as its start leaves it for stop.
fn recorded(d: &Director, params: &[(&str, &str)]) {
    let instance = Instance::in_dir("realservers", "reals", d.run_dir.clone());
    let raw: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    instance.write_json(&instance.paramsfile(), &raw).unwrap();
}

#[test]
fn stop_removes_our_reals_and_leaves_others() {
    let d = Director::new();
    let key: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
    filled(&d, &key, &["192.168.7.10", "192.168.7.20"]);
    let p = [("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10:80 gate, 192.168.7.20:80 gate")];
    let c = realservers(&d, "stop", &p);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(endpoints(&d, &key), ["192.168.9.9:80"]);
    assert_eq!(realservers(&d, "stop", &p).code, 0, "second stop");
    assert_eq!(d.ipvs.service(&key).unwrap().scheduler, "wrr", "the service is not ours");
}

#[test]
fn stop_with_edited_or_broken_parameters_removes_what_the_daemon_ran_with() {
    let d = Director::new();
    let key: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
    filled(&d, &key, &["192.168.7.10", "192.168.7.20"]);
    recorded(&d, &[("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10:80 gate, 192.168.7.20:80 gate")]);
    // A ca= file gone since start, a real list edited down.
    let now = [
        ("service", "tcp:10.0.0.100:80"),
        ("real", "192.168.7.10:80 gate"),
        ("check", "https"),
        ("ca", "/nonexistent/ca.pem"),
    ];
    let c = realservers(&d, "stop", &now);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(endpoints(&d, &key), ["192.168.9.9:80"]);
}

#[test]
fn a_stop_the_kernel_refuses_fails_rather_than_claiming_success() {
    let d = Director::new();
    let key: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
    filled(&d, &key, &["192.168.7.10"]);
    let p = [("service", "tcp:10.0.0.100:80"), ("real", "192.168.7.10:80 gate")];
    d.ipvs.fail_with(Some(libc::ENOMEM));
    let c = realservers(&d, "stop", &p);
    assert_eq!(c.code, 1, "{c:?}");
    d.ipvs.fail_with(None);
    assert_eq!(realservers(&d, "stop", &p).code, 0);
    assert_eq!(endpoints(&d, &key), ["192.168.9.9:80"]);
}
