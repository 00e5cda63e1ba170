//! The README's Pacemaker group on the lab VM: `group lvs vip web reals
//! sorry`, the director being the VM's own namespace (where Pacemaker runs
//! agents), the client and the real servers namespaces.

use std::time::Duration;

use crate::cluster::{install_ocf_agent, must, wait_for, Cluster};
use crate::topo::{ip, tempdir, web_root, weights_in, Host, Switch};

pub const CONFIG: &str = r#"primitive vip ocf:lvs:vip params ip=10.0.0.100 cidr_netmask=24 nic=lvsd0 arp_count=1 op monitor interval=5s
primitive web ocf:lvs:service params service=tcp:10.0.0.100:80 scheduler=wrr op monitor interval=5s
primitive reals ocf:lvs:realservers params service=tcp:10.0.0.100:80 real="192.168.7.10:80 masq 1, 192.168.7.20:80 masq 2" check=http request=/test.html receive=test check_interval=1 check_timeout=1 quiescent=true node_attribute=lvs-healthy op monitor interval=2s timeout=20s
primitive sorry ocf:lvs:sorry params service=tcp:10.0.0.100:80 fallback=127.0.0.1:80 op monitor interval=5s
group lvs vip web reals sorry
"#;

/// The director is this namespace: a wire to the client, a switch to the
/// reals. Everything returned must live as long as the test.
pub struct Topology {
    pub client: Host,
    pub reals: Vec<Host>,
    pub roots: Vec<tempdir::Dir>,
    _switch: Switch,
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", "lvsd0"]).status();
        let _ = std::process::Command::new("ip").args(["link", "del", "lvsd1"]).status();
    }
}

pub fn topology() -> Topology {
    for a in ["vip", "service", "realservers", "sorry"] {
        install_ocf_agent(a);
    }
    let switch = Switch::new();
    let client = Host::new("client");
    ip(&["link", "add", "lvsd0", "type", "veth", "peer", "name", "eth0", "netns", &client.ns]);
    ip(&["addr", "add", "10.0.0.1/24", "dev", "lvsd0"]);
    ip(&["link", "set", "lvsd0", "up"]);
    client.must(&["ip", "addr", "add", "10.0.0.2/24", "dev", "eth0"]);
    client.must(&["ip", "link", "set", "eth0", "up"]);
    let (a, b) = ("lvsd1", "lvsdp");
    ip(&["link", "add", a, "type", "veth", "peer", "name", b, "netns", &switch.host.ns]);
    ip(&["addr", "add", "192.168.7.1/24", "dev", a]);
    ip(&["link", "set", a, "up"]);
    switch.host.must(&["ip", "link", "set", b, "master", "br0"]);
    switch.host.must(&["ip", "link", "set", b, "up"]);
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward");
    let mut reals = Vec::new();
    let mut roots = Vec::new();
    for (i, rip) in ["192.168.7.10", "192.168.7.20"].iter().enumerate() {
        let mut r = Host::new(&format!("r{}", i + 1));
        switch.plug(&r, "eth0", Some(&format!("{rip}/24")));
        r.must(&["ip", "route", "add", "default", "via", "192.168.7.1"]);
        let root = web_root(&format!("r{}", i + 1));
        r.http_server(&root.path);
        roots.push(root);
        reals.push(r);
    }
    Topology { client, reals, roots, _switch: switch }
}

/// All four Started, both reals weighted, traffic split 1:2.
pub fn group_serves(cluster: &Cluster, client: &Host) {
    for r in ["vip", "web", "reals", "sorry"] {
        cluster.wait_role(r, "Started", Duration::from_secs(90));
    }
    println!("{}", cluster.status());
    wait_for("both reals weighted", Duration::from_secs(10), || {
        let w = weights_in(&must("ipvsadm", &["-Ln"]));
        (w.get("192.168.7.10:80") == Some(&1) && w.get("192.168.7.20:80") == Some(&2)).then_some(())
    });
    let c = client.requests("10.0.0.100:80", 30);
    assert_eq!((c.get("r1"), c.get("r2")), (Some(&10), Some(&20)), "{c:?}");
}
