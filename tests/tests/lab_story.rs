//! The seeds' failover story, end to end, in the lab VM with real IPVS:
//! client → VIP on the director → IPVS → two real servers, with
//! `ocf:lvs:{vip,service,realservers,sorry}` called exactly as Pacemaker
//! calls them. Run for NAT and for direct routing.
#![cfg(feature = "lab")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lvs_tests::agent::{ocf, Call};
use lvs_tests::topo::{web_root, weights_in, wire, Host, Switch};

const VIP: &str = "10.0.0.100";
const INTERVAL: u64 = 1;
const TIMEOUT: u64 = 1;
/// Allowance for the emulated (TCG) lab on top of interval + timeout.
const SLACK: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Nat,
    Dr,
}

struct Story {
    client: Host,
    director: Host,
    reals: Vec<Host>,
    servers: Vec<usize>,
    roots: Vec<lvs_tests::topo::tempdir::Dir>,
    _sorry_root: lvs_tests::topo::tempdir::Dir,
    _switch: Switch,
    mode: Mode,
    quiescent: bool,
}

fn vip_params() -> Vec<(&'static str, &'static str)> {
    vec![("ip", VIP), ("cidr_netmask", "24"), ("nic", "eth0"), ("arp_count", "1")]
}

impl Story {
    fn build(mode: Mode, quiescent: bool) -> Story {
        let switch = Switch::new();
        let client = Host::new("client");
        let mut director = Host::new("director");
        let mut reals = vec![Host::new("r1"), Host::new("r2")];
        let rips = match mode {
            Mode::Nat => ["192.168.7.10", "192.168.7.20"],
            Mode::Dr => ["10.0.0.10", "10.0.0.20"],
        };
        match mode {
            Mode::Nat => {
                wire(&client, "eth0", Some("10.0.0.2/24"), &director, "eth0", Some("10.0.0.1/24"));
                switch.plug(&director, "eth1", Some("192.168.7.1/24"));
                for (r, rip) in reals.iter().zip(rips) {
                    switch.plug(r, "eth0", Some(&format!("{rip}/24")));
                    r.must(&["ip", "route", "add", "default", "via", "192.168.7.1"]);
                }
                director.sysctl("net.ipv4.ip_forward", "1");
            }
            Mode::Dr => {
                switch.plug(&client, "eth0", Some("10.0.0.2/24"));
                switch.plug(&director, "eth0", Some("10.0.0.1/24"));
                for (r, rip) in reals.iter().zip(rips) {
                    switch.plug(r, "eth0", Some(&format!("{rip}/24")));
                    // DR real servers hold the VIP on lo and never ARP for it.
                    let c = ocf("lvs-vip", Some(&r.ns), "start", &[("ip", VIP), ("mode", "realserver")], &[]);
                    assert_eq!(c.code, 0, "realserver vip: {c:?}");
                    assert_eq!(r.must(&["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"]).trim(), "1");
                    assert_eq!(r.must(&["sysctl", "-n", "net.ipv4.conf.lo.arp_announce"]).trim(), "2");
                }
            }
        }
        let mut roots = Vec::new();
        let mut servers = Vec::new();
        for (i, r) in reals.iter_mut().enumerate() {
            let root = web_root(&format!("r{}", i + 1));
            servers.push(r.http_server(&root.path));
            roots.push(root);
        }
        let sorry_root = web_root("sorry");
        director.http_server(&sorry_root.path);
        let mut s = Story {
            client,
            director,
            reals,
            servers,
            roots,
            _sorry_root: sorry_root,
            _switch: switch,
            mode,
            quiescent,
        };
        s.start_all();
        s
    }

    fn agent(&self, agent: &str, action: &str, params: &[(&str, &str)]) -> Call {
        let instance = format!("{agent}-{}", self.director.ns);
        ocf(&format!("lvs-{agent}"), Some(&self.director.ns), action, params, &[("OCF_RESOURCE_INSTANCE", &instance)])
    }

    fn service_params(&self) -> Vec<(&'static str, &'static str)> {
        vec![("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr")]
    }

    fn real_list(&self) -> &'static str {
        match self.mode {
            Mode::Nat => "192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2",
            Mode::Dr => "10.0.0.10:80 gate 1, 10.0.0.20:80 gate 2",
        }
    }

    fn reals_params(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("service", "tcp:10.0.0.100:80"),
            ("real", self.real_list()),
            ("check", "http"),
            ("request", "/test.html"),
            ("receive", "test"),
            ("check_interval", "1"),
            ("check_timeout", "1"),
            ("quiescent", if self.quiescent { "true" } else { "false" }),
        ]
    }

    fn sorry_params(&self) -> Vec<(&'static str, &'static str)> {
        vec![("service", "tcp:10.0.0.100:80"), ("fallback", "127.0.0.1:80"), ("check_interval", "1")]
    }

    fn start_all(&mut self) {
        for (agent, params) in [
            ("vip", vip_params()),
            ("service", self.service_params()),
            ("realservers", self.reals_params()),
            ("sorry", self.sorry_params()),
        ] {
            let c = self.agent(agent, "start", &params);
            assert_eq!(c.code, 0, "start {agent}: {c:?}");
            assert_eq!(self.agent(agent, "monitor", &params).code, 0, "monitor {agent} after start");
        }
    }

    fn stop_all(&mut self) {
        for (agent, params) in [
            ("sorry", self.sorry_params()),
            ("realservers", self.reals_params()),
            ("service", self.service_params()),
            ("vip", vip_params()),
        ] {
            let c = self.agent(agent, "stop", &params);
            assert_eq!(c.code, 0, "stop {agent}: {c:?}");
            assert_eq!(self.agent(agent, "monitor", &params).code, 7, "monitor {agent} after stop");
        }
        let table = self.director.ipvsadm(&[]);
        assert!(!table.contains("10.0.0.100"), "table empty after stop:\n{table}");
    }

    /// Weights of the service's destinations by address:port.
    fn weights(&self) -> HashMap<String, u32> {
        weights_in(&self.director.ipvsadm(&["-t", "10.0.0.100:80"]))
    }

    fn wait_table(&self, what: &str, limit: Duration, ok: impl Fn(&HashMap<String, u32>) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let w = self.weights();
            if ok(&w) {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}; table:\n{}", self.director.ipvsadm(&[]));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `n` requests from the client; counts of answers by body.
    fn requests(&self, n: usize) -> HashMap<String, usize> {
        self.client.requests(&format!("{VIP}:80"), n)
    }

    /// `lvsctl status` shows the real's health beside its table line, and
    /// `--json` says the same.
    fn check_lvsctl(&self, real: &str, up: bool) {
        let lvsctl = lvs_tests::agent::bin("lvsctl");
        let text = self.director.must(&[lvsctl.to_str().expect("path"), "status"]);
        println!("{text}");
        let line = text.lines().find(|l| l.contains(real)).unwrap_or_else(|| panic!("{real} in:\n{text}"));
        assert!(line.contains(if up { " up for " } else { " DOWN for " }), "{line}");
        let json: serde_json::Value =
            serde_json::from_str(&self.director.must(&[lvsctl.to_str().expect("path"), "status", "--json"]))
                .expect("json");
        let dest = json["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["service"] == "tcp:10.0.0.100:80"))
            .and_then(|s| s["destinations"].as_array())
            .and_then(|d| d.iter().find(|d| d["address"] == real).cloned())
            .unwrap_or_else(|| panic!("{real} in {json:#}"));
        assert_eq!(dest["health"]["up"], serde_json::Value::Bool(up), "{dest:#}");
    }

    fn r1(&self) -> &'static str {
        if self.mode == Mode::Nat {
            "192.168.7.10:80"
        } else {
            "10.0.0.10:80"
        }
    }
    fn r2(&self) -> &'static str {
        if self.mode == Mode::Nat {
            "192.168.7.20:80"
        } else {
            "10.0.0.20:80"
        }
    }

    fn run(&mut self) {
        let limit = Duration::from_secs(INTERVAL + TIMEOUT) + SLACK;
        println!("[{:?}] (1) both up:\n{}", self.mode, self.director.ipvsadm(&[]));
        self.wait_table("both reals in rotation", limit, |w| {
            w.get(self.r1()) == Some(&1) && w.get(self.r2()) == Some(&2)
        });
        assert!(!self.weights().contains_key("127.0.0.1:80"), "no sorry while reals serve");
        let c = self.requests(60);
        println!("[{:?}] 60 requests: {c:?}", self.mode);
        assert_eq!(c.get("failed"), None, "{c:?}");
        let (n1, n2) = (c.get("r1").copied().unwrap_or(0), c.get("r2").copied().unwrap_or(0));
        assert!((18..=22).contains(&n1) && (38..=42).contains(&n2), "wrr 1:2 split, got {c:?}");

        // (2) real 1's server dies.
        self.reals[0].kill(self.servers[0]);
        let quiescent = self.quiescent;
        let r1 = self.r1();
        let took = self.wait_table("real 1 out of rotation", limit, |w| {
            if quiescent {
                w.get(r1) == Some(&0)
            } else {
                !w.contains_key(r1)
            }
        });
        println!(
            "[{:?}] (2) real 1 down detected in {took:?} (interval {INTERVAL}s + timeout {TIMEOUT}s):\n{}",
            self.mode,
            self.director.ipvsadm(&[])
        );
        let c = self.requests(20);
        assert_eq!(c.get("r2"), Some(&20), "every request served by r2 after detection: {c:?}");
        self.check_lvsctl(r1, false);

        // (3) both down: the sorry server answers.
        self.reals[1].kill(self.servers[1]);
        self.wait_table("sorry server in", limit + Duration::from_secs(1), |w| {
            w.get("127.0.0.1:80").is_some_and(|&x| x > 0)
        });
        println!("[{:?}] (3) both down, sorry in:\n{}", self.mode, self.director.ipvsadm(&[]));
        let c = self.requests(5);
        assert_eq!(c.get("sorry"), Some(&5), "sorry page answers: {c:?}");

        // (4) both restored: back in rotation, sorry out.
        for i in 0..2 {
            let root = self.roots[i].path.clone();
            self.servers[i] = self.reals[i].http_server(&root);
        }
        let (r1, r2) = (self.r1(), self.r2());
        self.wait_table("both back, sorry out", limit + Duration::from_secs(1), |w| {
            w.get(r1) == Some(&1) && w.get(r2) == Some(&2) && !w.contains_key("127.0.0.1:80")
        });
        println!("[{:?}] (4) restored:\n{}", self.mode, self.director.ipvsadm(&[]));
        let c = self.requests(30);
        assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "{c:?}");

        // (5) the health daemon is killed: monitor says so, recovery works.
        let instance = format!("realservers-{}", self.director.ns);
        let pid = std::fs::read_to_string(format!("/run/lvs-agents/realservers-{instance}.pid")).expect("pidfile");
        self.director.must(&["kill", "-9", pid.trim()]);
        std::thread::sleep(Duration::from_millis(300));
        let c = self.agent("realservers", "monitor", &self.reals_params());
        assert_eq!(c.code, 1, "monitor after kill -9: {c:?}");
        assert!(c.stderr.contains("died"), "{c:?}");
        assert_eq!(self.agent("realservers", "stop", &self.reals_params()).code, 0);
        assert_eq!(self.agent("realservers", "start", &self.reals_params()).code, 0);
        assert_eq!(self.agent("realservers", "monitor", &self.reals_params()).code, 0);
        println!("[{:?}] (5) daemon killed, reported, recovered", self.mode);

        // (6) the table is flushed by hand: the service's monitor notices,
        // its recovery (a start, as Pacemaker would do) brings it back and the
        // daemons restore their destinations within one interval.
        self.director.must(&["ipvsadm", "-C"]);
        assert_eq!(self.agent("service", "monitor", &self.service_params()).code, 7);
        assert_eq!(self.agent("service", "start", &self.service_params()).code, 0);
        let (r1, r2) = (self.r1(), self.r2());
        let took = self.wait_table("destinations restored after flush", Duration::from_secs(INTERVAL) + SLACK, |w| {
            w.get(r1) == Some(&1) && w.get(r2) == Some(&2)
        });
        println!("[{:?}] (6) flushed table restored in {took:?}:\n{}", self.mode, self.director.ipvsadm(&[]));
        let c = self.agent("realservers", "monitor", &[self.reals_params(), vec![]].concat());
        assert_eq!(c.code, 0);
        let deep = ocf(
            "lvs-realservers",
            Some(&self.director.ns),
            "monitor",
            &self.reals_params(),
            &[("OCF_RESOURCE_INSTANCE", &instance), ("OCF_CHECK_LEVEL", "10")],
        );
        assert_eq!(deep.code, 0, "level-10 monitor agrees with the kernel: {deep:?}");
        self.stop_all();
    }
}

#[test]
fn story_nat_quiescent() {
    Story::build(Mode::Nat, true).run();
}

#[test]
fn story_dr_removing() {
    Story::build(Mode::Dr, false).run();
}
