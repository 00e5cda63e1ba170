//! Real traffic through services made by `ocf:lvs:service` (lab VM):
//! a firewall-mark service covering ports 80 and 8080, and persistence.
//! Destinations are added with our IPVS client, as a test helper may.
#![cfg(feature = "lab")]

use std::time::Duration;

use lvs_ipvs::{Destination, ForwardMethod, Ipvs, IpvsClient, ServiceKey};
use lvs_tests::agent::ocf;
use lvs_tests::topo::{web_root, wire, Host, Switch};

/// client — director (VIP 10.0.0.100) — switch — r1, r2 (NAT).
struct Net {
    client: Host,
    director: Host,
    _reals: Vec<Host>,
    _roots: Vec<lvs_tests::topo::tempdir::Dir>,
    _switch: Switch,
}

fn net(extra_port: Option<&str>) -> Net {
    let switch = Switch::new();
    let client = Host::new("client");
    let director = Host::new("director");
    wire(&client, "eth0", Some("10.0.0.2/24"), &director, "eth0", Some("10.0.0.1/24"));
    director.must(&["ip", "addr", "add", "10.0.0.100/24", "dev", "eth0"]);
    director.sysctl("net.ipv4.ip_forward", "1");
    switch.plug(&director, "eth1", Some("192.168.7.1/24"));
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (i, rip) in ["192.168.7.10", "192.168.7.20"].iter().enumerate() {
        let mut r = Host::new(&format!("r{}", i + 1));
        switch.plug(&r, "eth0", Some(&format!("{rip}/24")));
        r.must(&["ip", "route", "add", "default", "via", "192.168.7.1"]);
        let root = web_root(&format!("r{}", i + 1));
        r.http_server(&root.path);
        if let Some(port) = extra_port {
            r.spawn(&["busybox", "httpd", "-f", "-p", port, "-h", root.path.to_str().expect("dir")]);
        }
        roots.push(root);
        reals.push(r);
    }
    std::thread::sleep(Duration::from_millis(300));
    Net { client, director, _reals: reals, _roots: roots, _switch: switch }
}

fn add_reals(d: &Host, key: ServiceKey, port: u16, weights: [u32; 2]) {
    d.within(|| {
        let ipvs = IpvsClient::connect().expect("ipvs");
        for (rip, w) in ["192.168.7.10", "192.168.7.20"].iter().zip(weights) {
            let dest = Destination::new(rip.parse().expect("ip"), port, ForwardMethod::Masq).with_weight(w);
            ipvs.add_destination(&key, &dest).expect("add destination");
        }
    });
}

#[test]
fn fwmark_service_carries_ports_80_and_8080() {
    let n = net(Some("8080"));
    // Both ports of the VIP get mark 100 on the way in.
    n.director.must(&["nft", "add table ip lvs"]);
    n.director.must(&["nft", "add chain ip lvs pre { type filter hook prerouting priority mangle; }"]);
    n.director.must(&["nft", "add rule ip lvs pre ip daddr 10.0.0.100 tcp dport { 80, 8080 } meta mark set 100"]);
    let p = [("service", "fwmark:100"), ("scheduler", "rr")];
    let c = ocf("lvs-service", Some(&n.director.ns), "start", &p, &[("OCF_RESOURCE_INSTANCE", "fwm")]);
    assert_eq!(c.code, 0, "{c:?}");
    // Port 0: each connection keeps its own destination port.
    add_reals(&n.director, "fwmark:100".parse().expect("key"), 0, [1, 1]);
    let a = n.client.requests("10.0.0.100:80", 20);
    let b = n.client.requests("10.0.0.100:8080", 20);
    println!("fwmark: port 80 {a:?}, port 8080 {b:?}\n{}", n.director.ipvsadm(&[]));
    for c in [&a, &b] {
        assert_eq!(c.get("failed"), None, "{c:?}");
        assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&10)), "rr over one service: {c:?}");
    }
    // Every connection is on the fwmark service's books (stats lag ~2 s in
    // the kernel; the connection counters do not).
    let table = n.director.ipvsadm(&[]);
    let conns: u64 = table
        .lines()
        .filter(|l| l.trim_start().starts_with("-> 192.168.7."))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(f.get(4)?.parse::<u64>().ok()? + f.get(5)?.parse::<u64>().ok()?)
        })
        .sum();
    assert!(conns >= 40, "all 40 connections went through the one fwmark service: {table}");
}

#[test]
fn persistence_keeps_a_client_on_one_real() {
    let n = net(None);
    let p = [("service", "tcp:10.0.0.100:80"), ("scheduler", "rr"), ("persistent", "300")];
    let c = ocf("lvs-service", Some(&n.director.ns), "start", &p, &[("OCF_RESOURCE_INSTANCE", "pers")]);
    assert_eq!(c.code, 0, "{c:?}");
    add_reals(&n.director, "tcp:10.0.0.100:80".parse().expect("key"), 80, [1, 1]);
    let c = n.client.requests("10.0.0.100:80", 20);
    assert_eq!(c.get("failed"), None, "{c:?}");
    assert_eq!(c.len(), 1, "one client, one real server while persistent: {c:?}");

    // Without persistence, rr alternates: the check above can fail.
    let p = [("service", "tcp:10.0.0.100:80"), ("scheduler", "rr")];
    assert_eq!(ocf("lvs-service", Some(&n.director.ns), "reload", &p, &[("OCF_RESOURCE_INSTANCE", "pers")]).code, 0);
    let c = n.client.requests("10.0.0.100:80", 20);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&10)), "{c:?}");
}

/// LVS-TUN: the director encapsulates in IPIP; real servers decapsulate on
/// tunl0, hold the VIP (ocf:lvs:vip mode=realserver) and answer directly.
#[test]
fn tunnel_mode_reaches_reals_over_ipip() {
    let switch = Switch::new();
    let client = Host::new("client");
    let director = Host::new("director");
    switch.plug(&client, "eth0", Some("10.0.0.2/24"));
    switch.plug(&director, "eth0", Some("10.0.0.1/24"));
    director.must(&["ip", "addr", "add", "10.0.0.100/24", "dev", "eth0"]);
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (i, rip) in ["10.0.0.10", "10.0.0.20"].iter().enumerate() {
        let mut r = Host::new(&format!("r{}", i + 1));
        switch.plug(&r, "eth0", Some(&format!("{rip}/24")));
        let c = ocf("lvs-vip", Some(&r.ns), "start", &[("ip", "10.0.0.100"), ("mode", "realserver")], &[]);
        assert_eq!(c.code, 0, "{c:?}");
        r.must(&["ip", "link", "set", "tunl0", "up"]);
        for conf in ["all", "default", "tunl0", "eth0"] {
            r.sysctl(&format!("net.ipv4.conf.{conf}.rp_filter"), "0");
        }
        let root = web_root(&format!("r{}", i + 1));
        r.http_server(&root.path);
        roots.push(root);
        reals.push(r);
    }
    let p = [("service", "tcp:10.0.0.100:80"), ("scheduler", "rr")];
    assert_eq!(ocf("lvs-service", Some(&director.ns), "start", &p, &[("OCF_RESOURCE_INSTANCE", "tun")]).code, 0);
    let reals_p = [
        ("service", "tcp:10.0.0.100:80"),
        ("real", "10.0.0.10:80 ipip 1, 10.0.0.20:80 ipip 1"),
        ("check", "http"),
        ("check_interval", "1"),
    ];
    let c = ocf("lvs-realservers", Some(&director.ns), "start", &reals_p, &[("OCF_RESOURCE_INSTANCE", "tun-reals")]);
    assert_eq!(c.code, 0, "{c:?}");
    // Both are added at weight 0 and weighted once their first check passes.
    let table = lvs_tests::cluster::wait_for("both tunnel reals weighted", Duration::from_secs(10), || {
        let t = director.ipvsadm(&[]);
        (t.matches("Tunnel  1").count() == 2).then_some(t)
    });
    // Direct routing would answer the same on this wire: that the packets
    // came encapsulated shows on each real's tunl0 (health checks go to the
    // real's own address, not through it).
    let tunl0_rx = |r: &Host| -> u64 {
        r.must(&["cat", "/sys/class/net/tunl0/statistics/rx_packets"]).trim().parse().expect("rx_packets")
    };
    let before: Vec<u64> = reals.iter().map(tunl0_rx).collect();
    let c = client.requests("10.0.0.100:80", 20);
    let after: Vec<u64> = reals.iter().map(tunl0_rx).collect();
    println!("tunnel: {c:?}, tunl0 rx packets {before:?} -> {after:?}\n{table}");
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&10)), "{c:?}");
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        // Each request is a connection of several packets, all via tunl0.
        assert!(a - b >= 10 * 3, "r{}: tunl0 received {} packets for 10 requests", i + 1, a - b);
    }
    assert_eq!(
        ocf("lvs-realservers", Some(&director.ns), "stop", &reals_p, &[("OCF_RESOURCE_INSTANCE", "tun-reals")]).code,
        0
    );
}

/// IPv6 all the way: VIP, service and real servers (NAT).
#[test]
fn ipv6_nat_service() {
    let switch = Switch::new();
    let client = Host::new("client");
    let director = Host::new("director");
    wire(&client, "eth0", None, &director, "eth0", None);
    client.must(&["ip", "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad"]);
    director.must(&["ip", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
    let c = ocf(
        "lvs-vip",
        Some(&director.ns),
        "start",
        &[("ip", "2001:db8::100"), ("cidr_netmask", "64"), ("nic", "eth0"), ("nodad", "true")],
        &[],
    );
    assert_eq!(c.code, 0, "{c:?}");
    director.sysctl("net.ipv6.conf.all.forwarding", "1");
    switch.plug(&director, "eth1", None);
    director.must(&["ip", "addr", "add", "fd00:7::1/64", "dev", "eth1", "nodad"]);
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (i, rip) in ["fd00:7::10", "fd00:7::20"].iter().enumerate() {
        let mut r = Host::new(&format!("r{}", i + 1));
        switch.plug(&r, "eth0", None);
        r.must(&["ip", "addr", "add", &format!("{rip}/64"), "dev", "eth0", "nodad"]);
        r.must(&["ip", "-6", "route", "add", "default", "via", "fd00:7::1"]);
        let root = web_root(&format!("r{}", i + 1));
        r.spawn(&["busybox", "httpd", "-f", "-p", "[::]:80", "-h", root.path.to_str().expect("dir")]);
        roots.push(root);
        reals.push(r);
    }
    std::thread::sleep(Duration::from_millis(500));
    let p = [("service", "tcp:[2001:db8::100]:80"), ("scheduler", "rr")];
    assert_eq!(ocf("lvs-service", Some(&director.ns), "start", &p, &[("OCF_RESOURCE_INSTANCE", "v6")]).code, 0);
    let reals_p = [
        ("service", "tcp:[2001:db8::100]:80"),
        ("real", "[fd00:7::10]:80 masq, [fd00:7::20]:80 masq"),
        ("check", "http"),
        ("check_interval", "1"),
    ];
    let c = ocf("lvs-realservers", Some(&director.ns), "start", &reals_p, &[("OCF_RESOURCE_INSTANCE", "v6-reals")]);
    assert_eq!(c.code, 0, "{c:?}");
    let table = director.ipvsadm(&[]);
    assert!(table.contains("[fd00:7::10]:80") && table.matches("Masq    1").count() == 2, "both up: {table}");
    let c = client.requests("[2001:db8::100]:80", 20);
    println!("ipv6: {c:?}\n{table}");
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&10)), "{c:?}");
    assert_eq!(
        ocf("lvs-realservers", Some(&director.ns), "stop", &reals_p, &[("OCF_RESOURCE_INSTANCE", "v6-reals")]).code,
        0
    );
}

/// `lvsctl list` in each view prints what `ipvsadm -Ln` prints with the
/// same options, on a table with NAT traffic in both directions, a
/// persistent service (templates in the connection table) and timeouts
/// that are not the defaults.
#[test]
fn lvsctl_lists_what_ipvsadm_lists() {
    let n = net(Some("8080"));
    let d = &n.director;
    for (name, service, extra) in [("web", "tcp:10.0.0.100:80", None), ("alt", "tcp:10.0.0.100:8080", Some("300"))] {
        let mut p = vec![("service", service), ("scheduler", "rr")];
        if let Some(t) = extra {
            p.push(("persistent", t));
        }
        assert_eq!(ocf("lvs-service", Some(&d.ns), "start", &p, &[("OCF_RESOURCE_INSTANCE", name)]).code, 0);
    }
    add_reals(d, "tcp:10.0.0.100:80".parse().expect("key"), 80, [1, 2]);
    add_reals(d, "tcp:10.0.0.100:8080".parse().expect("key"), 8080, [1, 1]);
    d.must(&["ipvsadm", "--set", "1000", "100", "200"]);
    let a = n.client.requests("10.0.0.100:80", 30);
    let b = n.client.requests("10.0.0.100:8080", 10);
    assert_eq!((a.get("failed"), b.get("failed")), (None, None), "{a:?} {b:?}");
    // The kernel folds its per-CPU counters into the listed ones every 2 s.
    d.ipvsadm_until(Duration::from_secs(10), |_| {
        let stats = d.ipvsadm(&["--stats"]);
        let web = stats.lines().find(|l| l.starts_with("TCP  10.0.0.100:80 ")).unwrap_or_default().to_string();
        web.split_whitespace().nth(2).and_then(|c| c.parse::<u64>().ok()).is_some_and(|c| c >= 30)
    });

    let lvsctl = lvs_tests::agent::bin("lvsctl");
    let lvsctl = lvsctl.to_str().expect("path");
    // Rates and expiry times move while we read: ours must equal what
    // ipvsadm printed just before or just after it.
    let same = |ours: &[&str], theirs: &[&str]| -> String {
        let mut last = String::new();
        for _ in 0..10 {
            let before = d.must(&[&["ipvsadm"], theirs].concat());
            let got = d.must(&[&[lvsctl, "list"], ours].concat());
            let after = d.must(&[&["ipvsadm"], theirs].concat());
            if got == before || got == after {
                return got;
            }
            last = format!("lvsctl list {ours:?}:\n{got}\nipvsadm {theirs:?} before:\n{before}\nafter:\n{after}");
        }
        panic!("ten tries, never the same:\n{last}");
    };
    let plain = same(&[], &["-Ln"]);
    let stats = same(&["--stats"], &["-Ln", "--stats"]);
    same(&["--stats", "--exact"], &["-Ln", "--stats", "--exact"]);
    let rate = same(&["--rate"], &["-Ln", "--rate"]);
    same(&["--rate", "--exact"], &["-Ln", "--rate", "--exact"]);
    let timeout = same(&["--timeout"], &["-Ln", "--timeout"]);
    let conns = same(&["-c"], &["-Lnc"]);
    same(&["--connections", "--persistent-conn"], &["-Lnc", "--persistent-conn"]);
    same(&["--stats", "--service", "tcp:10.0.0.100:8080"], &["-Ln", "--stats", "-t", "10.0.0.100:8080"]);
    println!("{plain}{stats}{rate}{timeout}{conns}");
    // Not vacuous: the counters saw the traffic, the table its connections.
    assert_eq!(timeout, "Timeout (tcp tcpfin udp): 1000 100 200\n");
    let web = stats.lines().find(|l| l.starts_with("TCP  10.0.0.100:80 ")).expect("the service's line");
    let f: Vec<u64> = web.split_whitespace().skip(2).map(|x| x.parse().expect("a number")).collect();
    assert!(f[0] >= 30 && f[1] > 0 && f[2] > 0 && f[3] > 0 && f[4] > 0, "counters in both directions: {web}");
    assert!(
        conns.lines().any(|l| l.contains(" ASSURED ") && l.contains("10.0.0.2:0 ")),
        "a persistence template (client port 0): {conns}"
    );
    assert!(conns.lines().filter(|l| l.starts_with("TCP ")).count() >= 40, "{conns}");

    // Filtered connection listings are ipvsadm's lines for that real or
    // service, in the same order.
    let filtered = |args: &[&str], keep: &dyn Fn(&[&str]) -> bool| {
        for _ in 0..10 {
            let all = d.must(&["ipvsadm", "-Lnc"]);
            let ours = d.must(&[&[lvsctl, "list", "-c"], args].concat());
            let theirs: Vec<&str> =
                all.lines().skip(2).filter(|l| keep(&l.split_whitespace().collect::<Vec<_>>())).collect();
            if ours.lines().skip(2).collect::<Vec<_>>() == theirs {
                assert!(!theirs.is_empty(), "{args:?} selects something:\n{all}");
                return;
            }
        }
        panic!("lvsctl list -c {args:?} never matched ipvsadm's lines");
    };
    filtered(&["--real", "192.168.7.20:80"], &|f| f.get(5) == Some(&"192.168.7.20:80"));
    filtered(&["--service", "tcp:10.0.0.100:8080"], &|f| f.get(4) == Some(&"10.0.0.100:8080"));
    let (ok, out) = d.run(&[lvsctl, "list", "-c", "--service", "fwmark:1"]);
    assert!(!ok && out.contains("firewall marks"), "{out}");
    let (ok, out) = d.run(&[lvsctl, "list", "--stats", "--service", "tcp:10.0.0.100:81"]);
    assert!(!ok && out.contains("no service"), "{out}");
}

/// The realservers agent's `metrics_listen` scraped by a real Prometheus
/// (Debian's package): the real's `lvs_real_up` is 1, and 0 once the real
/// fails. `lvsctl metrics` passes `promtool check metrics`, and counts the
/// traffic the kernel saw; the endpoint serves the same families.
#[test]
fn prometheus_sees_a_real_fail_through_metrics_listen() {
    let mut n = net(None);
    let d = &n.director;
    let inst = |name: &'static str| [("OCF_RESOURCE_INSTANCE", name)];
    let web = [("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")];
    assert_eq!(ocf("lvs-service", Some(&d.ns), "start", &web, &inst("web")).code, 0);
    let reals = |listen: &'static str| {
        [
            ("service", "tcp:10.0.0.100:80"),
            ("real", "192.168.7.10 masq 1, 192.168.7.20 masq 2"),
            ("check", "http"),
            ("request", "/test.html"),
            ("receive", "test"),
            ("check_interval", "1"),
            ("check_timeout", "1"),
            ("metrics_listen", listen),
        ]
    };
    // A port already taken fails start, saying so.
    let taken = d.within(|| std::net::TcpListener::bind("127.0.0.1:9465").expect("bind"));
    let c = ocf("lvs-realservers", Some(&d.ns), "start", &reals("127.0.0.1:9465"), &inst("busy"));
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("metrics_listen 127.0.0.1:9465") && c.stderr.contains("in use"), "{c:?}");
    drop(taken);

    let c = ocf("lvs-realservers", Some(&d.ns), "start", &reals("127.0.0.1:9464"), &inst("reals"));
    assert_eq!(c.code, 0, "{c:?}");
    d.ipvsadm_until(Duration::from_secs(20), |t| t.contains("192.168.7.10:80") && t.contains("192.168.7.20:80"));
    let served = n.client.requests("10.0.0.100:80", 30);
    assert_eq!(served.get("failed"), None, "{served:?}");

    // lvsctl metrics: well-formed for Prometheus' own linter, and true.
    let lvsctl = lvs_tests::agent::bin("lvsctl");
    let metrics = || d.must(&[lvsctl.to_str().expect("path"), "metrics"]);
    let connections = "lvs_service_connections_total{service=\"tcp:10.0.0.100:80\"} ";
    // The kernel folds its per-CPU counters into the listed ones every 2 s,
    // not all at once: wait for all 30 (seen: 23 at the first non-zero read).
    let count = |text: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(connections)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    let mut text = metrics();
    for _ in 0..75 {
        if count(&text) >= 30 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        text = metrics();
    }
    println!("$ lvsctl metrics (head)\n{}", text.lines().take(40).collect::<Vec<_>>().join("\n"));
    let (ok, lint) = fed(&["promtool", "check", "metrics"], &text);
    assert!(ok, "promtool check metrics: {lint}");
    let value = |text: &str, series: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series} in:\n{text}"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number")
    };
    let r1 = r#"resource="reals",service="tcp:10.0.0.100:80",real="192.168.7.10:80""#;
    assert_eq!(value(&text, &format!("lvs_real_up{{{r1}}} ")), 1.0);
    assert!(value(&text, connections) >= 30.0, "{text}");
    assert!(value(&text, &format!("lvs_real_check_duration_seconds_count{{{r1}}} ")) >= 1.0, "{text}");
    // The endpoint: the same families (its own resource and service only).
    let scrape = d
        .within(|| {
            lvs_tests::topo::http_get("127.0.0.1:9464".parse().expect("addr"), "/metrics", Duration::from_secs(5))
        })
        .expect("a scrape");
    let families = |t: &str| -> std::collections::BTreeSet<String> {
        t.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(String::from).collect()
    };
    assert_eq!(families(&scrape), families(&text), "endpoint:\n{scrape}");

    // A real Prometheus scraping every second.
    let dir = lvs_tests::topo::tempdir::Dir::new("prometheus");
    let config = dir.path.join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: lvs\n    \
         static_configs:\n      - targets: ['127.0.0.1:9464']\n",
    )
    .expect("config");
    let data = dir.path.join("data");
    let (config, data) =
        (format!("--config.file={}", config.display()), format!("--storage.tsdb.path={}", data.display()));
    let prometheus = n.director.spawn(&["prometheus", &config, &data, "--web.listen-address=127.0.0.1:9090"]);
    let d = &n.director;
    let query = |q: &str| -> Option<String> {
        let path = format!("/api/v1/query?query={}", q.replace('{', "%7B").replace('}', "%7D").replace('"', "%22"));
        let body = d.within(|| {
            lvs_tests::topo::http_get("127.0.0.1:9090".parse().expect("addr"), &path, Duration::from_secs(5))
        })?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str().map(String::from)
    };
    let up = "lvs_real_up{real=\"192.168.7.10:80\"}";
    let began = std::time::Instant::now();
    let until = |want: &str, limit: Duration| {
        while began.elapsed() < limit {
            if query(up).as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus never said {up} = {want} in {limit:?}; last: {:?}", query(up));
    };
    until("1", Duration::from_secs(180));
    println!("Prometheus has {up} = 1 after {:?}", began.elapsed());
    // r1's web server dies: refused checks take it down.
    let killed = std::time::Instant::now();
    n._reals[0].kill(0);
    let began_wait = began.elapsed();
    until("0", began_wait + Duration::from_secs(60));
    println!("Prometheus has {up} = 0 {:?} after r1's httpd died", killed.elapsed());
    let refused = query("lvs_real_check_failures_total{real=\"192.168.7.10:80\",reason=\"refused\"}");
    assert!(refused.as_deref().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v >= 1.0), "{refused:?}");
    assert_eq!(query("lvs_real_up{real=\"192.168.7.20:80\"}").as_deref(), Some("1"), "r2 stays up");
    // Two reals checked every second.
    let rate = query("lvs_realservers_checks_per_second").and_then(|v| v.parse::<f64>().ok());
    assert!(rate.is_some_and(|r| (1.0..=4.0).contains(&r)), "checks per second: {rate:?}");
    n.director.kill(prometheus);

    let d = &n.director;
    assert_eq!(ocf("lvs-realservers", Some(&d.ns), "stop", &reals("127.0.0.1:9464"), &inst("reals")).code, 0);
    let gone = d.within(|| std::net::TcpStream::connect("127.0.0.1:9464").is_err());
    assert!(gone, "the endpoint ends with the daemon");
    assert_eq!(ocf("lvs-service", Some(&d.ns), "stop", &web, &inst("web")).code, 0);
}

/// `argv` run with `input` on its stdin: (succeeded, stdout + stderr).
fn fed(argv: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}
