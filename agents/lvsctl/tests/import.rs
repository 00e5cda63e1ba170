//! `lvsctl import` and `lvsctl lint` on the seeds' configurations.

use std::process::Command;

fn lvsctl(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lvsctl")).args(args).output().expect("run lvsctl");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn lint_text(text: &str) -> (i32, String) {
    let path = std::env::temp_dir().join(format!("lvsctl-lint-{}-{}", std::process::id(), text.len()));
    std::fs::write(&path, text).expect("write");
    let (code, out, _) = lvsctl(&["lint", path.to_str().expect("path")]);
    let _ = std::fs::remove_file(&path);
    (code, out)
}

#[test]
fn ldirectord_cf_translates_to_crm() {
    let (code, out, err) = lvsctl(&["import", &data("ldirectord.cf")]);
    println!("{out}\n{err}");
    assert_eq!(code, 3, "one unsupported directive (emailalert)");
    assert!(out.contains("primitive lvs_tcp_10_0_0_100_80 ocf:lvs:service params service=tcp:10.0.0.100:80 scheduler=wrr persistent=600"), "{out}");
    assert!(out.contains(r#"real="192.168.7.10:80 gate 1, 192.168.7.20:80 gate 3" check=http request=/test.html receive=test check_interval=5 check_timeout=3 quiescent=true"#), "{out}");
    assert!(out.contains("primitive lvs_tcp_10_0_0_100_80_sorry ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=127.0.0.1:80"), "{out}");
    assert!(out.contains("group lvs_tcp_10_0_0_100_80_group lvs_tcp_10_0_0_100_80 lvs_tcp_10_0_0_100_80_reals lvs_tcp_10_0_0_100_80_sorry"), "{out}");
    assert!(out.contains("service=fwmark:100 scheduler=rr"), "{out}");
    assert!(out.contains("check=connect") && out.contains("checkport=80"), "{out}");
    assert!(out.contains("# unsupported (line 27): emailalert=\"ops@example.com\""), "{out}");
    assert!(err.contains("ldirectord.cf:27: unsupported"), "{err}");
    assert!(out.contains("# note: line 6: logfile is the cluster manager's business"), "{out}");
}

#[test]
fn keepalived_conf_translates_to_crm_and_pcs() {
    let (code, out, err) = lvsctl(&["import", &data("keepalived.conf")]);
    println!("{out}\n{err}");
    assert_eq!(code, 3, "smtp_alert is unsupported");
    assert!(out.contains("# unsupported (line 56): smtp_alert"), "{out}");
    assert!(
        out.contains("primitive lvs_vip_10_0_0_100 ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=24 nic=eth0"),
        "{out}"
    );
    assert!(out.contains(r#"real="192.168.7.10:80 gate 1, 192.168.7.20:80 gate 3" check=connect check_interval=6 check_timeout=3 fall=2 quiescent=true"#), "{out}");
    assert!(out.contains("persistent=600"), "{out}");
    assert!(out.contains("fallback=127.0.0.1:80 forward=gate"), "the virtual's DR: {out}");
    assert!(out.contains(r#"real="192.168.7.10:443 masq 1" check=http request=/health status_codes=200 check_options=digest=9b3a0c85a887a256d6939da88aabd8cd"#), "{out}");
    let (code, pcs, _) = lvsctl(&["import", "--format", "pcs", &data("keepalived.conf")]);
    assert_eq!(code, 3);
    assert!(pcs.contains("pcs resource create lvs_tcp_10_0_0_100_80 ocf:lvs:service service=tcp:10.0.0.100:80 scheduler=wrr persistent=600 op monitor interval=10s --group lvs_tcp_10_0_0_100_80_group"), "{pcs}");
}

#[test]
fn imports_lint_clean() {
    for file in ["ldirectord.cf", "keepalived.conf"] {
        for format in ["crm", "pcs"] {
            let (_, out, _) = lvsctl(&["import", "--format", format, &data(file)]);
            let (code, problems) = lint_text(&out);
            assert_eq!(code, 0, "{file} as {format}: {problems}\n{out}");
        }
    }
}

#[test]
fn lint_reports_each_mistake_with_its_line() {
    let text = "\
primitive web ocf:lvs:service params service=tcp:10.0.0.100:80 scheduler=fastest
primitive web2 ocf:lvs:service params service=tcp:10.0.0.100:80
primitive reals ocf:lvs:realservers \\
    params service=tcp:10.0.0.100:80 real=\"192.168.7.10:80 teleport\" colour=blue
primitive sorry ocf:lvs:sorry params service=tcp:10.0.0.200:80 fallback=127.0.0.1:80
primitive vip ocf:lvs:vip params cidr_netmask=24
primitive x ocf:lvs:nosuch params a=b
primitive y ocf:heartbeat:IPaddr2 params ip=1.2.3.4
";
    let (code, out) = lint_text(text);
    println!("{out}");
    assert_eq!(code, 1);
    for want in [
        "line 1: web (service): unknown scheduler",
        "line 2: web2 (service): service=tcp:10.0.0.100:80 is also set by web (line 1)",
        "line 3: reals (realservers): unknown parameter 'colour'",
        "line 3: reals (realservers): 'teleport'",
        "line 5: sorry: no ocf:lvs:service primitive defines tcp:10.0.0.200:80",
        "line 6: vip (vip): required parameter 'ip' is not set",
        "line 7: x (nosuch): no agent ocf:lvs:nosuch",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    assert!(!out.contains(" y "), "other providers are not ours to lint: {out}");
}

#[test]
fn unreadable_input_is_exit_2() {
    let (code, _, err) = lvsctl(&["import", "/nonexistent/ldirectord.cf"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn values_the_agents_would_refuse_are_reported_not_emitted() {
    let text = "virtual=10.0.0.100:80\n\treal=192.168.7.10:80 teleport\n\treal=192.168.7.20:80 gate 2\n\tscheduler=fastest\nvirtual=10.0.0.100:80\n";
    let path = std::env::temp_dir().join(format!("lvsctl-bad-{}.cf", std::process::id()));
    std::fs::write(&path, text).expect("write");
    let (code, out, _) = lvsctl(&["import", path.to_str().expect("path")]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("# unsupported (line 2): real 192.168.7.10:80 teleport"), "{out}");
    assert!(out.contains("# unsupported (line 1): scheduler"), "{out}");
    assert!(out.contains("# unsupported (line 5): virtual service tcp:10.0.0.100:80 is defined twice"), "{out}");
    assert!(out.contains(r#"real="192.168.7.20:80 gate 2""#), "{out}");
    assert_eq!(lint_text(&out).0, 0, "{out}");
}

#[test]
fn pcs_output_run_by_sh_executes_nothing_and_keeps_values_verbatim() {
    let dir = std::env::temp_dir().join(format!("lvsctl-import-sh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // a valid regex (or import would refuse it) full of shell syntax
    let receive = r#"$(touch dollar) `touch tick` ' " \$HOME !x"#;
    let cf = format!(
        "virtual=10.0.0.100:80\n\treal=192.168.7.10:80 gate 1\n\tservice=http\n\tchecktype=negotiate\n\
         \trequest=\"/health$HOME\"\n\treceive=\"{receive}\"\n\tprotocol=tcp\n"
    );
    let cf_path = dir.join("ldirectord.cf");
    std::fs::write(&cf_path, cf).unwrap();
    let (_, out, err) = lvsctl(&["import", "--format", "pcs", cf_path.to_str().unwrap()]);
    assert!(out.contains("pcs resource create"), "{out}\n{err}");
    let (code, problems) = lint_text(&out);
    assert_eq!(code, 0, "lint reads the quoting back: {problems}\n{out}");
    // Run it as an operator would, with a pcs that records its arguments.
    let script = format!("pcs() {{ for a in \"$@\"; do printf '%s\\n' \"$a\"; done >> args; }}\n{out}");
    let st = Command::new("sh").arg("-c").arg(&script).current_dir(&dir).status().unwrap();
    assert!(st.success());
    let ran: Vec<String> = ["dollar", "tick"].iter().filter(|f| dir.join(f).exists()).map(|f| f.to_string()).collect();
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ran.is_empty(), "the output ran commands: {ran:?}\n{out}");
    assert!(args.lines().any(|l| l == format!("receive={receive}")), "receive changed on the way:\n{args}\n{out}");
    assert!(args.lines().any(|l| l == "request=/health$HOME"), "{args}");
}

#[test]
fn keepalived_sync_daemon_becomes_a_sync_clone() {
    let (code, out, err) = lvsctl(&["import", &data("keepalived-sync.conf")]);
    assert_eq!(code, 0, "{out}\n{err}");
    // The sync ID is the VRRP instance's virtual_router_id when `id` is not given.
    assert!(
        out.contains("primitive lvs_sync ocf:lvs:sync params interface=eth1 syncid=51 maxlen=1400 mcast_port=8849 mcast_ttl=2 mcast_group=239.0.0.81 op monitor interval=10s"),
        "{out}"
    );
    assert!(out.contains("clone lvs_sync_clone lvs_sync"), "{out}");
    let (code, pcs, _) = lvsctl(&["import", "--format", "pcs", &data("keepalived-sync.conf")]);
    assert_eq!(code, 0);
    assert!(pcs.contains("pcs resource create lvs_sync ocf:lvs:sync interface=eth1 syncid=51 maxlen=1400 mcast_port=8849 mcast_ttl=2 mcast_group=239.0.0.81 op monitor interval=10s clone"), "{pcs}");
    for text in [&out, &pcs] {
        let (code, problems) = lint_text(text);
        assert_eq!(code, 0, "{problems}\n{text}");
    }
}

#[test]
fn keepalived_sync_daemon_forms_and_refusals() {
    let conf = |global: &str, instance: &str| {
        format!("global_defs {{\n{global}\n}}\nvrrp_instance VI_1 {{\n virtual_router_id 7\n{instance}\n}}\n")
    };
    let import = |text: String| {
        let path = std::env::temp_dir().join(format!("lvsctl-sync-{}-{}", std::process::id(), text.len()));
        std::fs::write(&path, &text).expect("write");
        let r = lvsctl(&["import", "--kind", "keepalived", path.to_str().expect("path")]);
        let _ = std::fs::remove_file(&path);
        r
    };
    // Explicit id wins over the VRID.
    let (code, out, _) = import(conf("lvs_sync_daemon eth1 VI_1 id 9", ""));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("params interface=eth1 syncid=9 op"), "{out}");
    // The older form inside vrrp_instance: the VRID is the sync ID.
    let (code, out, _) = import(conf("", "lvs_sync_daemon_interface eth2"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("params interface=eth2 syncid=7 op"), "{out}");
    // What the agent would refuse is reported, not emitted.
    for bad in [
        "lvs_sync_daemon eth1 VI_1 id 300",
        "lvs_sync_daemon eth1 VI_1 ttl 0",
        "lvs_sync_daemon eth1 VI_1 group 10.0.0.1",
        "lvs_sync_daemon eth1 VI_1 maxlen 100",
        "lvs_sync_daemon 0123456789abcdef VI_1",
        "lvs_sync_daemon eth1 VI_1 colour blue",
        "lvs_sync_daemon eth1 VI_1 port",
    ] {
        let (code, out, _) = import(conf(bad, ""));
        assert_eq!(code, 3, "{bad}: {out}");
        assert!(out.contains("# unsupported (line 2)") && !out.contains("ocf:lvs:sync"), "{bad}: {out}");
    }
    // Two sync configurations: the second is reported.
    let (code, out, _) = import(conf("lvs_sync_daemon eth1 VI_1", "lvs_sync_daemon_interface eth2"));
    assert_eq!(code, 3, "{out}");
    assert_eq!(out.matches("primitive lvs_sync ocf:lvs:sync").count(), 1, "{out}");
}

#[test]
fn lint_runs_the_sync_agents_own_checks() {
    let text = "\
primitive s1 ocf:lvs:sync params interface=eth1 syncid=300
primitive s2 ocf:lvs:sync params interface=eth1 role=backup mcast_group=10.0.0.1
primitive s3 ocf:lvs:sync params syncid=3
primitive s4 ocf:lvs:sync params interface=eth1 syncid=3
primitive s5 ocf:lvs:sync params interface=eth1 role=master
pcs resource create s6 ocf:lvs:sync interface=eth1 role=backup op monitor interval=10s clone
";
    let (code, out) = lint_text(text);
    assert_eq!(code, 1, "{out}");
    for want in [
        "line 1: s1 (sync): parameter 'syncid': 300 is outside 0..=255",
        "line 2: s2 (sync): mcast_group 10.0.0.1 is not a multicast address",
        "line 3: s3 (sync): required parameter 'interface' is not set",
        "line 5: s5 (sync): a master sync daemon is also run by s4 (line 4)",
        "line 6: s6 (sync): a backup sync daemon is also run by s4 (line 4)",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    assert!(!out.contains("'clone'"), "pcs's clone keyword is no parameter: {out}");
    let (code, out) = lint_text("primitive s ocf:lvs:sync params interface=eth1 syncid=5 mcast_ttl=2\nclone c s\n");
    assert_eq!(code, 0, "{out}");
}

/// Each of these passed lint once and is refused by the agent's
/// validate-all: lint now runs that same code.
#[test]
fn lint_refuses_what_the_agents_refuse() {
    let cases = [
        "primitive a ocf:lvs:service params service=tcp:[2001:db8::1]:80 family=inet",
        "primitive a ocf:lvs:realservers params service=tcp:10.0.0.100:80 real=192.168.7.10:80 check_options=verify",
        "primitive a ocf:lvs:realservers params service=tcp:10.0.0.100:80 real=192.168.7.10:80 check_interval=abc",
        "primitive a ocf:lvs:realservers params service=tcp:10.0.0.100:80 real=192.168.7.10:80 rise=0",
        "primitive a ocf:lvs:realservers params service=tcp:10.0.0.100:80 real=192.168.7.10:80 quiescent=maybe",
        "primitive a ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=0.0.0.0:80",
        "primitive a ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=40",
        "primitive a ocf:lvs:service params service=tcp:10.0.0.200:80 persistent=abc",
        "primitive a ocf:lvs:service params service=tcp:10.0.0.200:80 netmask=255.255.255.0",
        "primitive a ocf:lvs:service params service=tcp:10.0.0.200:80 flags=bogus",
        "primitive a ocf:lvs:realservers params service=fwmark:100 real=192.168.7.10",
        "primitive a ocf:lvs:vip params ip=2001:db8::100 iflabel=web",
        "primitive a ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=127.0.0.1:80 forward=bogus",
    ];
    let service = "primitive s ocf:lvs:service params service=tcp:10.0.0.100:80\n\
                   primitive f ocf:lvs:service params service=fwmark:100\n";
    for case in cases {
        let (code, out) = lint_text(&format!("{service}{case}\n"));
        assert_eq!(code, 1, "lint passed {case}");
        assert!(out.contains("line 3: a ("), "{case}: the problem is not on its line:\n{out}");
        // and nothing else: the agent's reason, once
        assert_eq!(out.lines().count(), 1, "{case}:\n{out}");
    }
}

/// The forms crm and pcs accept, read as they read them.
#[test]
fn lint_reads_every_form_crm_and_pcs_take() {
    for (text, want) in [
        // crm's one-line form, as README shows it
        (
            "crm configure primitive v ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=40 op monitor interval=10s",
            "line 1: v (vip): ",
        ),
        // crm's attribute list without the `params` keyword
        ("primitive v ocf:lvs:vip ip=10.0.0.100 cidr_netmask=40 op monitor interval=10s", "line 1: v (vip): "),
        ("pcs -f cib.xml resource create v ocf:lvs:vip ip=10.0.0.100 cidr_netmask=40", "line 1: v (vip): "),
    ] {
        let (code, out) = lint_text(text);
        assert_eq!(code, 1, "{text}: {out}");
        assert!(out.contains(want) && out.contains("40"), "{text}: {out}");
    }
    for text in [
        "crm configure primitive v ocf:lvs:vip ip=10.0.0.100 description=\"the VIP\" meta target-role=Started",
        "primitive v ocf:lvs:vip ip=10.0.0.100 op monitor interval=10s\nclone c v meta clone-max=2",
        "pcs resource create v ocf:lvs:vip ip=10.0.0.100 op monitor interval=10s clone interleave=true",
        "pcs resource create v ocf:lvs:vip ip=10.0.0.100 --group g\n\
         pcs resource create w ocf:lvs:vip ip=10.0.0.101 --group g",
    ] {
        let (code, out) = lint_text(text);
        assert_eq!(code, 0, "{text}: {out}");
    }
}

/// What crm and pcs refuse before any agent runs.
#[test]
fn lint_reports_ids_and_unique_values_used_twice() {
    let text = "\
primitive v ocf:lvs:vip params ip=10.0.0.100
primitive v ocf:heartbeat:Dummy
primitive w ocf:lvs:vip params ip=10.0.0.100
group v2 v
clone v2 w
primitive s1 ocf:lvs:service params service=tcp:[2001:db8::1]:80
primitive s2 ocf:lvs:service params service=tcp:[2001:db8:0::1]:80
primitive r1 ocf:lvs:realservers params service=tcp:[2001:db8::1]:80 real=[2001:db8::10]:80
primitive r2 ocf:lvs:realservers params service=tcp:[2001:db8::1]:80 real=[2001:db8::10]:80
";
    let (code, out) = lint_text(text);
    assert_eq!(code, 1, "{out}");
    for want in [
        "line 2: id 'v' (primitive) is also the id of a primitive (line 1)",
        "line 5: id 'v2' (clone) is also the id of a group (line 4)",
        "line 3: w (vip): ip=10.0.0.100 is also set by v (line 1)",
        "line 7: s2 (service): service tcp:[2001:db8::1]:80 is also defined by s1 (line 6)",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    // Two real lists alike are two resources, not a conflict: real is not unique.
    assert!(!out.contains("r2"), "{out}");
}

/// ldirectord checks nothing for a firewall-mark virtual whose reals have
/// no port and no checkport; the agent needs a port for a connect check.
#[test]
fn fwmark_reals_without_a_port_are_checked_only_with_checkport() {
    let import = |text: &str| {
        let path = std::env::temp_dir().join(format!("lvsctl-fwmark-{}-{}.cf", std::process::id(), text.len()));
        std::fs::write(&path, text).expect("write");
        let r = lvsctl(&["import", path.to_str().expect("path")]);
        let _ = std::fs::remove_file(&path);
        r
    };
    let base = "virtual=100\n\treal=192.168.7.10 gate\n\treal=192.168.7.20 gate\n\tchecktype=connect\n";
    let (code, out, _) = import(base);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(r#"real="192.168.7.10 gate, 192.168.7.20 gate" check=on"#), "{out}");
    assert!(out.contains("# note: fwmark:100: reals without a port and no checkport"), "{out}");
    assert_eq!(lint_text(&out).0, 0, "{out}");
    let (code, out, _) = import(&format!("{base}\tcheckport=80\n"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("check=connect") && out.contains("checkport=80"), "{out}");
    assert_eq!(lint_text(&out).0, 0, "{out}");
}

/// What the service agent refuses is never emitted: a netmask without
/// persistence means nothing to IPVS and is dropped with a note.
#[test]
fn netmask_without_persistence_is_dropped_with_a_note() {
    let path = std::env::temp_dir().join(format!("lvsctl-netmask-{}.cf", std::process::id()));
    std::fs::write(&path, "virtual=10.0.0.100:80\n\treal=192.168.7.10:80 gate\n\tnetmask=255.255.255.0\n").unwrap();
    let (code, out, _) = lvsctl(&["import", path.to_str().expect("path")]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("netmask=") && out.contains("netmask without persistence"), "{out}");
    assert_eq!(lint_text(&out).0, 0, "{out}");
}

/// `lvsctl import` of `text` (written to a file of its own), and whether
/// its output passes lint.
fn import_text(text: &[u8], format: &str) -> (i32, String, String) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("lvsctl-import-{}-{n}", std::process::id()));
    std::fs::write(&path, text).expect("write");
    let got = lvsctl(&["import", "--format", format, path.to_str().expect("path")]);
    let _ = std::fs::remove_file(&path);
    let (code, problems) = lint_text(&got.1);
    assert_eq!(code, 0, "import output must lint clean: {problems}\n{}", got.1);
    got
}

/// The line of `out` that defines primitive `name`.
fn primitive<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(&format!("primitive {name} "))).unwrap_or_else(|| panic!("no {name} in\n{out}"))
}

#[test]
fn ldirectord_defaults_are_applied_as_ldirectord_applies_them() {
    let (_, out, _) = import_text(
        b"virtual=10.0.0.1:80\n\treal=192.168.7.1:80 gate\n\
          virtual=10.0.0.1:53\n\treal=192.168.7.1:53 gate\n\trequest=\"www.example\"\n\
          virtual=10.0.0.1:8080\n\treal=192.168.7.1:8080 masq\n\
          virtual=10.0.0.1:5000\n\treal=192.168.7.1:5000 gate\n\tprotocol=udp\n\tchecktype=connect\n",
        "crm",
    );
    // scheduler wrr; port 80 negotiates http, in negotiatetimeout (30 s);
    // every 10 s; not quiescent.
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80").contains("scheduler=wrr"), "{out}");
    let web = primitive(&out, "lvs_tcp_10_0_0_1_80_reals");
    assert!(web.contains("check=http check_interval=10 check_timeout=30 quiescent=false"), "{web}");
    // Port 53 is UDP with a DNS check.
    let dns = primitive(&out, "lvs_udp_10_0_0_1_53_reals");
    assert!(dns.contains("service=udp:10.0.0.1:53") && dns.contains("check=dns request=www.example"), "{dns}");
    // No service for 8080: ldirectord checks nothing.
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_8080_reals").contains("check=on"), "{out}");
    assert!(out.contains("negotiates nothing with service none"), "{out}");
    // connect on UDP is ldirectord's ping, in checktimeout (5 s).
    let udp = primitive(&out, "lvs_udp_10_0_0_1_5000_reals");
    assert!(udp.contains("check=ping check_interval=10 check_timeout=5"), "{udp}");
}

#[test]
fn ldirectord_timeouts_go_to_the_checks_that_use_them() {
    let (_, out, _) = import_text(
        b"checktimeout=3\nnegotiatetimeout=20\n\
          virtual=10.0.0.1:80\n\treal=192.168.7.1:80 gate\n\tchecktype=negotiate\n\
          virtual=10.0.0.1:22\n\treal=192.168.7.1:22 gate\n\tchecktype=connect\n\
          virtual=10.0.0.1:25\n\treal=192.168.7.1:25 gate\n\tchecktype=connect\n\tnegotiatetimeout=7\n",
        "crm",
    );
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80_reals").contains("check_timeout=20"), "{out}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_22_reals").contains("check_timeout=3"), "{out}");
    // A virtual's own negotiatetimeout stands in for its missing checktimeout.
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_25_reals").contains("check_timeout=7"), "{out}");
}

#[test]
fn ldirectord_reals_fallbacks_and_ports_keep_their_meaning() {
    let (code, out, err) = import_text(
        b"virtual=10.0.0.1:http\n\
          \treal=192.168.7.1:80 gate 2 \"alive.html\", \"OK\"\n\
          \treal=192.168.7.2:80 gate 1 \"/up\" \"yes\"\n\
          \tfallback=10.0.0.9 masq\n\
          \tchecktype=5\n\
          \tschedflags=sh-port\n\
          \tscheduler=sh\n\
          \tcleanstop=no\n\
          virtual=10.0.0.2:80\n\treal=192.168.7.1:80 gate\n\tfallbackcommand=\"/bin/true\"\n\
          \tconnecttimeout=5\n",
        "crm",
    );
    let reals = primitive(&out, "lvs_tcp_10_0_0_1_80_reals");
    assert!(
        reals.contains(r#"real="192.168.7.1:80 gate 2 \"/alive.html\" \"OK\", 192.168.7.2:80 gate 1 \"/up\" \"yes\"""#),
        "{reals}"
    );
    assert!(reals.contains("check=http") && reals.contains("cleanstop=false"), "{reals}");
    assert!(out.contains("checktype=5 connects every interval"), "{out}");
    assert!(out.contains("port http is 80"), "{out}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80").contains("scheduler=sh flags=sh-port"), "{out}");
    let sorry = primitive(&out, "lvs_tcp_10_0_0_1_80_sorry");
    assert!(sorry.contains("fallback=10.0.0.9:80 forward=masq"), "{sorry}");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("fallbackcommand without a fallback"), "{err}");
    assert!(err.contains("connecttimeout=5"), "ldirectord refuses connecttimeout: {err}");
}

#[test]
fn ldirectord_virtual6_blocks_stand_alone_and_braces_in_values_do_not_make_keepalived() {
    let (_, out, _) = import_text(
        b"virtual=10.0.0.1:80\n\treal=192.168.7.1:80 gate\n\treceive=\"[0-9]{3}\"\n\tservice=http\n\
          virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::10]:80 gate\n\tscheduler=rr\n",
        "crm",
    );
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80").contains("scheduler=wrr"), "the v6 block's rr stays there: {out}");
    assert!(primitive(&out, "lvs_tcp_2001_db8_0_0_0_0_0_1_80").contains("scheduler=rr"), "{out}");
    assert!(primitive(&out, "lvs_tcp_2001_db8_0_0_0_0_0_1_80_reals").contains("[2001:db8::10]:80 gate"), "{out}");
    assert!(!primitive(&out, "lvs_tcp_10_0_0_1_80_reals").contains("2001"), "{out}");
}

#[test]
fn a_latin1_file_is_read_not_refused() {
    let (code, out, _) = import_text(b"# caf\xe9\nvirtual=10.0.0.1:80\n\treal=192.168.7.1:80 gate\n", "crm");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not UTF-8: read as Latin-1"), "{out}");
    assert!(out.contains("primitive lvs_tcp_10_0_0_1_80_reals"), "{out}");
}

#[test]
fn keepalived_methods_defaults_and_comments_as_keepalived_reads_them() {
    let conf = br#"virtual_server 10.0.0.1 80 {
    persistence_granularity 255.255.255.0
    sorry_server 10.0.0.9
    sorry_server_lvs_method DR
    real_server 192.168.7.1 80 {
        HTTP_GET {
            url {
                path "/a#b" ! a comment
            }
            retry 100
        }
    }
    lb_kind TUN
}
virtual_server 10.0.0.2 80 {
    lb_kind FNAT
    real_server 192.168.7.2 80 {
    }
}
"#;
    let (code, out, err) = import_text(conf, "crm");
    let reals = primitive(&out, "lvs_tcp_10_0_0_1_80_reals");
    // lb_kind after the reals still applies; '#' inside quotes is no comment.
    assert!(reals.contains(r#"real="192.168.7.1:80 ipip 1""#), "{reals}");
    assert!(reals.contains(r#"request="/a#b""#) || reals.contains("request=/a#b"), "{reals}");
    assert!(reals.contains("check_interval=60") && reals.contains("fall=100"), "{reals}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80").contains("persistent=360 netmask=255.255.255.0"), "{out}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80_sorry").contains("fallback=10.0.0.9:80 forward=gate"), "{out}");
    // An unknown method is NAT in keepalived, and said; no checker: always up.
    let other = primitive(&out, "lvs_tcp_10_0_0_2_80_reals");
    assert!(other.contains(r#"real="192.168.7.2:80 masq 1""#) && other.contains("check=on"), "{other}");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("lb_kind FNAT"), "{err}");
}

#[test]
fn ipv6_services_that_differ_get_names_that_differ() {
    let (code, out, err) = import_text(
        b"virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::10]:80 gate\n\
          virtual6=[2001:db8:1::]:80\n\treal6=[2001:db8::11]:80 gate\n",
        "crm",
    );
    assert_eq!(code, 0, "{err}");
    assert!(primitive(&out, "lvs_tcp_2001_db8_0_0_0_0_0_1_80").contains("service=tcp:[2001:db8::1]:80"), "{out}");
    assert!(primitive(&out, "lvs_tcp_2001_db8_1_0_0_0_0_0_80").contains("service=tcp:[2001:db8:1::]:80"), "{out}");
}

#[test]
fn keepalived_vips_checkers_and_engines_translate() {
    let conf = br#"vrrp_instance VI_1 {
    interface eth1
    virtual_router_id 7
    virtual_ipaddress {
        10.0.0.100
        10.0.0.101/24 dev eth2
    }
}
virtual_server 10.0.0.100 5060 {
    protocol UDP
    persistence_timeout 60
    persistence_engine sip
    real_server 192.168.7.1 5060 {
        UDP_CHECK {
            require_reply
        }
    }
}
virtual_server 10.0.0.100 53 {
    protocol UDP
    real_server 192.168.7.1 53 {
        DNS_CHECK {
            name www.example
            type AAAA
        }
    }
}
virtual_server 10.0.0.100 80 {
    real_server 192.168.7.1 80 {
        HTTP_GET {
            url {
                path /
                status_code 200-299 301
            }
        }
    }
}
virtual_server 10.0.0.100 25 {
    real_server 192.168.7.1 25 {
        SMTP_CHECK {
        }
    }
    real_server 192.168.7.2 25 {
        PING_CHECK {
        }
    }
}
"#;
    let (_, out, _) = import_text(conf, "crm");
    // keepalived's /32 and the instance's interface.
    assert!(primitive(&out, "lvs_vip_10_0_0_100").contains("ip=10.0.0.100 cidr_netmask=32 nic=eth1"), "{out}");
    assert!(primitive(&out, "lvs_vip_10_0_0_101").contains("cidr_netmask=24 nic=eth2"), "{out}");
    assert!(primitive(&out, "lvs_udp_10_0_0_100_5060").contains("pe=sip"), "{out}");
    assert!(primitive(&out, "lvs_udp_10_0_0_100_5060_reals").contains("check=udp check_options=reply=yes"), "{out}");
    let dns = primitive(&out, "lvs_udp_10_0_0_100_53_reals");
    assert!(dns.contains("check=dns request=www.example check_options=type=AAAA") && dns.contains("fall=4"), "{dns}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_100_80_reals").contains("status_codes=200-299,301"), "{out}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_100_25_reals").contains("check=smtp"), "{out}");
}

#[test]
fn an_ipv6_firewall_mark_service_is_family_inet6_and_one_mark_is_one_service() {
    let (code, out, err) =
        import_text(b"virtual6=7\n\treal6=[2001:db8::1] gate\n\tcheckport=80\n\tchecktype=connect\n", "crm");
    assert_eq!(code, 0, "{err}");
    assert!(primitive(&out, "lvs_fwmark_7_inet6").contains("service=fwmark:7 family=inet6"), "{out}");
    assert!(primitive(&out, "lvs_fwmark_7_inet6_reals").contains("family=inet6 real=\"[2001:db8::1] gate\""), "{out}");
    // Both families on one mark: crm refuses two resources with service=fwmark:7.
    let (code, _, err) = import_text(
        b"virtual=7\n\treal=192.168.7.1 gate\n\tchecktype=on\nvirtual6=7\n\treal6=[2001:db8::1] gate\n\tchecktype=on\n",
        "crm",
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("IPv6 and IPv4 both"), "{err}");
}

#[test]
fn keepalived_host_names_are_resolved_at_import_and_said() {
    // (localhost only: /etc/hosts answers, no query leaves the machine)
    let (code, out, err) = import_text(b"virtual_server 10.0.0.1 80 {\n real_server localhost 80 {\n }\n}\n", "crm");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("# note: host localhost is 127.0.0.1 (resolved at import time)"), "{out}");
    assert!(primitive(&out, "lvs_tcp_10_0_0_1_80_reals").contains(r#"real="127.0.0.1:80 masq 1""#), "{out}");
}
