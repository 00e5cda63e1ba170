use std::cell::RefCell;
use std::time::Duration;

use super::*;
use crate::spec::positional_in_order;

fn positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    positional_in_order(&["ip", "count"], args)
}

static SPEC: AgentSpec = AgentSpec {
    name: "test",
    version: "1.0",
    shortdesc: "A test agent",
    longdesc: "Used by the runtime's tests.",
    params: &[
        ParamSpec::string("ip", "The address").required().unique(),
        ParamSpec::integer("count", 1, 10, "How many").default("5"),
        ParamSpec::select("mode", &["a", "b"], "Mode").default("a"),
    ],
    actions: STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "ip[::count]", map: positional },
};

struct Call {
    code: u8,
    out: String,
    err: String,
}

fn call(args: &[&str], env: &[(&str, &str)], f: impl FnOnce(&Context) -> Result<Outcome>) -> Call {
    let args: Vec<String> = std::iter::once("lvs-test").chain(args.iter().copied()).map(String::from).collect();
    let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push(("HA_LOGFACILITY".into(), "none".into()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(&SPEC, &args, &env, f, &mut out, &mut err);
    Call { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

fn never(_: &Context) -> Result<Outcome> {
    panic!("handler must not run")
}

#[test]
fn no_action_is_an_argument_error_with_usage() {
    let c = call(&[], &[], never);
    assert_eq!(c.code, 2);
    assert!(c.err.contains("usage: lvs-test"), "{}", c.err);
}

#[test]
fn unknown_action_is_unimplemented() {
    let c = call(&["migrate_to"], &[("OCF_RESKEY_ip", "x")], never);
    assert_eq!(c.code, 3);
}

#[test]
fn meta_data_needs_no_parameters() {
    let c = call(&["meta-data"], &[], never);
    assert_eq!(c.code, 0);
    assert!(
        c.out.starts_with("<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"),
        "{}",
        c.out
    );
    assert!(c.out.contains(r#"<parameter name="ip" unique="1" required="1">"#), "{}", c.out);
    assert!(c.out.contains(r#"<content type="integer" default="5"/>"#), "{}", c.out);
    // select is advertised as string with its choices described
    assert!(c.out.contains(r#"<content type="string" default="a"/>"#), "{}", c.out);
    assert!(c.out.contains("One of: a, b."), "{}", c.out);
    assert!(c.out.contains(r#"<action name="monitor" timeout="20s" interval="10s"/>"#), "{}", c.out);
    assert!(!c.out.contains("reload-agent"));
}

#[test]
fn help_prints_usage_with_parameters() {
    let c = call(&["--help"], &[], never);
    assert_eq!(c.code, 0);
    assert!(c.out.contains("ip[::count] {start|stop|status}"), "{}", c.out);
    assert!(c.out.contains("count") && c.out.contains("default 5"), "{}", c.out);
}

#[test]
fn handler_gets_typed_parameters_and_cluster_context() {
    let seen = RefCell::new(None);
    let c = call(
        &["monitor"],
        &[
            ("OCF_RESKEY_ip", "10.0.0.1"),
            ("OCF_RESKEY_count", "7"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_CRM_meta_timeout", "15000"),
            ("OCF_CHECK_LEVEL", "10"),
            ("OCF_RESOURCE_INSTANCE", "vip1"),
        ],
        |ctx| {
            *seen.borrow_mut() = Some((
                ctx.action,
                ctx.params.str("ip").map(String::from),
                ctx.params.int("count"),
                ctx.interval,
                ctx.timeout,
                ctx.check_level,
                ctx.instance.clone(),
                ctx.is_probe(),
            ));
            Ok(Outcome::Running)
        },
    );
    assert_eq!(c.code, 0);
    assert_eq!(
        seen.into_inner().unwrap(),
        (
            Action::Monitor,
            Some("10.0.0.1".to_string()),
            Some(7),
            Duration::from_secs(10),
            Duration::from_secs(15),
            10,
            "vip1".to_string(),
            false
        )
    );
}

#[test]
fn monitor_not_running_is_seven() {
    let c = call(&["monitor"], &[("OCF_RESKEY_ip", "x")], |ctx| {
        assert!(ctx.is_probe());
        Ok(Outcome::NotRunning)
    });
    assert_eq!(c.code, 7);
    assert_eq!(c.out, "");
}

#[test]
fn bad_parameters_are_not_configured_except_on_stop() {
    for action in ["start", "monitor", "validate-all"] {
        let c = call(&[action], &[("OCF_RESKEY_count", "3")], never);
        assert_eq!(c.code, 6, "{action}");
        assert!(c.err.contains("ocf-exit-reason:required parameter 'ip' is not set"), "{}", c.err);
    }
    // Stop still runs, with what checks out, so it can clean up.
    let c = call(&["stop"], &[("OCF_RESKEY_ip", "x"), ("OCF_RESKEY_count", "99")], |ctx| {
        assert_eq!((ctx.params.str("ip"), ctx.params.int("count")), (Some("x"), Some(5)));
        Ok(Outcome::NotRunning)
    });
    assert_eq!(c.code, 0);
    // An agent that cannot make sense of them has nothing to stop.
    let c = call(&["stop"], &[("OCF_RESKEY_count", "3")], |_| Err(Error::configured("no ip")));
    assert_eq!(c.code, 0);
    let c = call(&["stop"], &[("OCF_RESKEY_ip", "x")], |_| Err(Error::generic("cannot delete")));
    assert_eq!(c.code, 1, "real stop failures still fail");
}

#[test]
fn errors_become_exit_reason_and_code() {
    let c = call(&["start"], &[("OCF_RESKEY_ip", "x"), ("OCF_EXIT_REASON_PREFIX", "reason:")], |_| {
        Err(Error::installed("no IPVS in this kernel"))
    });
    assert_eq!(c.code, 5);
    assert_eq!(c.err, "reason:no IPVS in this kernel\n");
}

#[test]
fn heartbeat_positional_form_maps_and_prints_status_text() {
    let c = call(&["10.1.1.1", "3", "status"], &[("OCF_RESKEY_ip", "ignored")], |ctx| {
        assert!(ctx.heartbeat);
        assert_eq!(ctx.params.str("ip"), Some("10.1.1.1"));
        assert_eq!(ctx.params.int("count"), Some(3));
        assert_eq!(ctx.instance, "10.1.1.1::3");
        Ok(Outcome::Running)
    });
    assert_eq!((c.code, c.out.as_str()), (0, "running\n"));
    let c = call(&["10.1.1.1", "status"], &[], |_| Ok(Outcome::NotRunning));
    assert_eq!((c.code, c.out.as_str()), (3, "stopped\n"));
    // A failing status must not print anything heartbeat would read as ours.
    let c = call(&["10.1.1.1", "status"], &[], |_| Err(Error::generic("link is OK but running wild")));
    assert_eq!(c.out, "stopped\n");
    assert_eq!(c.code, 1);
}

#[test]
fn heartbeat_start_and_too_many_arguments() {
    let c = call(&["10.1.1.1", "start"], &[], |ctx| {
        assert_eq!(ctx.action, Action::Start);
        Ok(Outcome::Running)
    });
    assert_eq!((c.code, c.out.as_str()), (0, ""));
    let c = call(&["a", "1", "extra", "start"], &[], never);
    assert_eq!(c.code, 2);
}

#[test]
fn man_page_comes_from_the_same_declaration() {
    let c = call(&["--man"], &[], never);
    assert_eq!(c.code, 0);
    assert!(c.out.starts_with(".TH OCF_LVS_TEST 7"), "{}", c.out);
    assert!(c.out.contains(".B ip\n(string, required, unique) The address"), "{}", c.out);
    assert!(c.out.contains(".B count\n(integer, default: 5) How many"), "{}", c.out);
    assert!(c.out.contains(".B monitor\ntimeout 20s, interval 10s"), "{}", c.out);
}
