//! `ocf:lvs:vip` — the director's virtual IP address (IPaddr2's job):
//! add it to an interface, announce it with gratuitous ARP / unsolicited
//! Neighbor Advertisements, and take it away again. With
//! `mode=realserver` it instead holds the VIP on `lo` the way LVS-DR real
//! servers need it, with ARP replies for it suppressed.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lvs_daemon::block_on;
use lvs_daemon::Instance;
use lvs_net as net;
use lvs_net::{AddressSpec, ArpMode, Link, Netlink};
use lvs_ocf::Error;
use lvs_ocf::Result;
use lvs_ocf::{self as ocf, Action, AgentSpec, Context, Heartbeat, Outcome, ParamSpec, Params};
use serde::{Deserialize, Serialize};

pub static SPEC: AgentSpec = AgentSpec {
    name: "vip",
    version: "1.0",
    shortdesc: "Virtual IP address of an LVS director",
    longdesc: "Adds an IPv4 or IPv6 address to an interface and announces it with gratuitous ARP \
        (IPv4) or unsolicited Neighbor Advertisements (IPv6), so that traffic for the LVS \
        virtual services follows the director that runs this resource. Parameter names follow \
        ocf:heartbeat:IPaddr2. Before adding an IPv4 address it sends an RFC 5227 ARP probe and \
        warns about (or refuses) an address that another host already answers for. With \
        mode=realserver the address is put on lo as a host address and \
        net.ipv4.conf.{all,lo}.arp_ignore=1 / arp_announce=2 are set, as LVS direct routing \
        requires on real servers; stop removes the address and leaves those sysctls. \
        Start records the address in /run/lvs-agents; stop removes the recorded address and \
        every copy of ip whatever the other parameters now say, monitor fails (rather than \
        reporting stopped) while the address is on another interface than expected, and \
        reload moves the address when nic, cidr_netmask, iflabel, broadcast or mode changed. \
        Deliberately different from IPaddr2, where matching it would be unsafe: stop goes by \
        the record, not by parameters edited since (IPaddr2 looks only where its current \
        parameters point and can leave the old address up while Pacemaker starts it \
        elsewhere); monitor answers 1, not 7, for the address in an unexpected place (7 would \
        make Pacemaker start a second copy); start refuses an address already up on another \
        interface of this host (IPaddr2 adds a second copy); announcements are sent within \
        the action and cut to its timeout less a second (IPaddr2 sends IPv4 ARPs in the \
        background, after reporting success); nic=lo without cidr_netmask holds a host \
        address (IPaddr2's findif finds no route on lo and fails). \
        heartbeat v1 form: lvs-vip::ip[/prefix[/nic[/broadcast]]].",
    params: &[
        ParamSpec::string("ip", "IPv4 or IPv6 address")
            .required()
            .unique()
            .long("The virtual IP address, IPv4 (10.0.0.100) or IPv6 (2001:db8::100)."),
        ParamSpec::string("cidr_netmask", "Prefix length").long(
            "Prefix length (24) or IPv4 netmask (255.255.255.0), 1 to 32 (IPv4) or 128 (IPv6). \
                Default: the prefix of the most specific connected route that contains ip, as \
                IPaddr2's findif chooses it. A netmask wider than that route matches none.",
        ),
        ParamSpec::string("nic", "Interface").long(
            "Interface to put the address on; nic:label (IPaddr2's older form) also sets the \
                label. Default: the interface of the most specific route of the main table \
                that contains ip (IPv4: directly connected routes only). With nic only its own \
                routes count. When no route matches, start fails with OCF_ERR_GENERIC (another \
                node may have the subnet up) unless both nic and cidr_netmask are set, or nic is \
                lo (a host address, /32 or /128; IPaddr2 fails there). A nic \
                that does not exist is a configuration error; a link-local IPv6 ip needs nic.",
        ),
        ParamSpec::string("broadcast", "IPv4 broadcast address").long(
            "IPv4 broadcast address. Default: that of the base address whose subnet the VIP \
                joins (none if it has none), as IPaddr2; + sets the host bits, - clears them.",
        ),
        ParamSpec::string("iflabel", "Interface label").long(
            "IPv4 only: the address gets the label nic:iflabel (at most 15 characters in all), \
                as ifconfig-era tools show it.",
        ),
        ParamSpec::string("preferred_lft", "Preferred lifetime").default("forever").long(
            "IPv6 only, as in IPaddr2: preferred lifetime of the address in seconds, or \
                forever. 0 makes the address deprecated, so it is not used as a source for \
                outgoing connections.",
        ),
        ParamSpec::boolean("nodad", "Skip IPv6 duplicate address detection").default("false").long(
            "IPv6 only: add the address without duplicate address detection, so start does \
                not wait for DAD to finish.",
        ),
        ParamSpec::boolean("noprefixroute", "Do not add a prefix route")
            .default("false")
            .long("Do not create the route for the address's prefix."),
        ParamSpec::integer("arp_count", 0, 1000, "Announcements on start").default("5").long(
            "How many gratuitous ARPs (IPv4) or unsolicited Neighbor Advertisements (IPv6) \
                to send after adding the address; 0 sends none. They are sent within the \
                action: no more than fit in its timeout less a second.",
        ),
        ParamSpec::integer("arp_interval", 0, 60_000, "Milliseconds between announcements").default("200"),
        ParamSpec::select("arp_mode", &["request", "reply", "both"], "Gratuitous ARP kind").default("request").long(
            "request sends ARP requests for the address (arping -U), reply sends ARP \
                replies (arping -A), both sends one of each per round.",
        ),
        ParamSpec::integer("arp_count_refresh", 0, 1000, "Announcements on each monitor").default("0").long(
            "Announcements re-sent by every recurring monitor, to refresh switches and \
                neighbours that forget; 0 sends none.",
        ),
        ParamSpec::boolean("check_link_status", "Report not running when the link is down").default("true").long(
            "When true, monitor reports the resource as not running while the interface has \
                no carrier, so the cluster moves the address to a director that is connected.",
        ),
        ParamSpec::select("on_duplicate", &["ignore", "warn", "refuse"], "Duplicate address policy")
            .default("warn")
            .long(
                "Before adding an IPv4 address, send an RFC 5227 ARP probe. If another host \
                answers: ignore, warn (log and continue), or refuse (start fails and nothing is \
                configured). Guards against two directors holding the VIP after a split brain.",
            ),
        ParamSpec::select("mode", &["director", "realserver"], "Where the address goes").default("director").long(
            "director: the address goes on nic and is announced. realserver: the address \
                goes on lo as /32 or /128 and is never announced; net.ipv4.conf.all and .lo get \
                at least arp_ignore=1 and arp_announce=2 (higher values are kept; set also when \
                the address was on lo already; left set on stop), as LVS direct routing needs.",
        ),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "ip[/prefix[/nic[/broadcast]]]", map: positional },
};

/// The checks validate-all makes that need no kernel: all but the
/// interface's existence and findif's choice of interface.
pub fn check(p: &Params) -> Result<()> {
    Vip::from_params(p).map(drop)
}

/// The agent's binary: every action, as Pacemaker and heartbeat call it.
pub fn main() -> std::process::ExitCode {
    ocf::run(&SPEC, |ctx| {
        let instance = Instance::new(SPEC.name, &ctx.instance);
        block_on(async {
            let nl = Netlink::connect()?;
            if ctx.action == Action::Stop {
                // Stop needs only ip and what start recorded: parameters
                // edited since (or no longer valid) must not leave the VIP up.
                return stop(&nl, &ctx.params, &instance).await;
            }
            let vip = Vip::from_params(&ctx.params)?;
            match ctx.action {
                Action::Start => vip.start(&nl, ctx, &instance).await,
                Action::Reload => vip.reload(&nl, ctx, &instance).await,
                Action::Monitor => vip.monitor(&nl, ctx, &instance).await,
                Action::ValidateAll => vip.validate(&nl).await,
                Action::Stop => stop(&nl, &ctx.params, &instance).await,
            }
        })?
    })
}

/// heartbeat v1: `lvs-vip::10.0.0.100/24/eth0/10.0.0.255`.
fn positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    let [arg] = args else {
        return Err(Error::Args(format!(
            "expected one positional argument ip[/prefix[/nic[/broadcast]]], got {}",
            args.len()
        )));
    };
    let names = ["ip", "cidr_netmask", "nic", "broadcast"];
    let parts: Vec<&str> = arg.split('/').collect();
    if parts.len() > names.len() {
        return Err(Error::Args(format!("'{arg}' is not ip[/prefix[/nic[/broadcast]]]")));
    }
    Ok(names.iter().zip(parts).filter(|(_, v)| !v.is_empty()).map(|(n, v)| (*n, v.to_string())).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDuplicate {
    Ignore,
    Warn,
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broadcast {
    /// Unset: the base address's broadcast, as IPaddr2's findif takes it.
    Inherited,
    /// `+`: host bits set.
    HostBitsSet,
    /// `-`: host bits cleared (ip addr's `brd -`).
    HostBitsCleared,
    Given(Ipv4Addr),
}

/// What start put into the kernel (the instance's record file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    ip: IpAddr,
    prefix: u8,
    ifname: String,
}

/// The agent's parameters, checked for meaning (types are checked already).
#[derive(Debug)]
struct Vip {
    ip: IpAddr,
    prefix: Option<u8>,
    nic: Option<String>,
    broadcast: Broadcast,
    iflabel: Option<String>,
    preferred_lft: Option<u32>,
    nodad: bool,
    noprefixroute: bool,
    arp_count: u32,
    arp_interval: Duration,
    arp_mode: ArpMode,
    arp_count_refresh: u32,
    check_link_status: bool,
    on_duplicate: OnDuplicate,
    realserver: bool,
}

/// Where the address goes and how, as IPaddr2 would put it.
#[derive(Debug)]
struct Placement {
    link: Link,
    prefix: u8,
    broadcast: Option<Ipv4Addr>,
    label: Option<String>,
}

fn bad(msg: String) -> Error {
    Error::Configured(msg)
}

fn parse_ip(text: &str) -> Result<IpAddr> {
    let ip: IpAddr = text.parse().map_err(|_| bad(format!("ip '{text}' is not an IPv4 or IPv6 address")))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(bad(format!("ip {ip} is not a unicast address")));
    }
    Ok(ip)
}

fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

impl Vip {
    fn from_params(p: &Params) -> Result<Vip> {
        let ip = parse_ip(p.str("ip").unwrap_or_default())?;
        let v4 = ip.is_ipv4();
        let prefix = p.str("cidr_netmask").map(|m| parse_prefix(m, v4)).transpose()?;
        let broadcast = match p.str("broadcast") {
            None => Broadcast::Inherited,
            Some("+") if v4 => Broadcast::HostBitsSet,
            Some("-") if v4 => Broadcast::HostBitsCleared,
            Some(b) if v4 => {
                Broadcast::Given(b.parse().map_err(|_| bad(format!("broadcast '{b}' is not an IPv4 address")))?)
            }
            Some(_) => return Err(bad("broadcast applies to IPv4 addresses only".into())),
        };
        // IPaddr2 still takes nic=eth0:label; the label in nic wins.
        let (nic, mut iflabel) = match p.str("nic") {
            Some(n) => match n.split_once(':') {
                Some((nic, label)) => (Some(nic.to_string()), Some(label.to_string()).filter(|l| !l.is_empty())),
                None => (Some(n.to_string()), None),
            },
            None => (None, None),
        };
        if nic.as_deref() == Some("") {
            return Err(bad("nic is empty before its ':label'".into()));
        }
        if iflabel.is_none() {
            iflabel = p.str("iflabel").map(String::from);
        }
        if iflabel.is_some() && !v4 {
            return Err(bad("iflabel applies to IPv4 addresses only".into()));
        }
        if let (Some(nic), Some(label)) = (&nic, &iflabel) {
            check_label(nic, label)?;
        }
        let preferred_lft = match p.str("preferred_lft") {
            None | Some("forever") => None,
            Some(s) => Some(
                s.parse::<u32>()
                    .map_err(|_| bad(format!("preferred_lft '{s}' is neither forever nor a number of seconds")))?,
            ),
        };
        let realserver = p.str("mode") == Some("realserver");
        let count = |name: &str| p.num::<u32>(name).map(Option::unwrap_or_default);
        Ok(Vip {
            ip,
            prefix,
            nic,
            broadcast,
            iflabel,
            // As IPaddr2: the lifetime is an IPv6 matter.
            preferred_lft: if v4 { None } else { preferred_lft },
            nodad: p.flag("nodad"),
            noprefixroute: p.flag("noprefixroute"),
            arp_count: count("arp_count")?,
            arp_interval: Duration::from_millis(p.num_or_default("arp_interval")?),
            arp_mode: match p.str("arp_mode") {
                Some("reply") => ArpMode::Reply,
                Some("both") => ArpMode::Both,
                _ => ArpMode::Request,
            },
            arp_count_refresh: count("arp_count_refresh")?,
            check_link_status: p.flag("check_link_status"),
            on_duplicate: match p.str("on_duplicate") {
                Some("ignore") => OnDuplicate::Ignore,
                Some("refuse") => OnDuplicate::Refuse,
                _ => OnDuplicate::Warn,
            },
            realserver,
        })
    }

    fn host_prefix(&self) -> u8 {
        if self.ip.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The interface this resource's address must be on by its parameters,
    /// when they name one.
    fn expected_nic(&self) -> Option<&str> {
        if self.realserver {
            Some("lo")
        } else {
            self.nic.as_deref()
        }
    }

    /// Where the address belongs, with which prefix and broadcast: IPaddr2's
    /// findif. `strict` (start, validate-all, reload) adds findif's
    /// parameter checks, which IPaddr2 skips in monitor so that a vanished
    /// nic is a failure there, not a configuration error.
    async fn placement(&self, nl: &Netlink, strict: bool) -> Result<Placement> {
        if self.realserver {
            let lo =
                nl.link_by_name("lo").await?.ok_or_else(|| Error::generic("the loopback interface lo is missing"))?;
            return Ok(Placement { link: lo, prefix: self.host_prefix(), broadcast: None, label: None });
        }
        let nic = match &self.nic {
            Some(name) => match nl.link_by_name(name).await? {
                Some(link) => Some(link),
                None if strict => return Err(bad(format!("nic {name} does not exist"))),
                None => return Err(Error::generic(format!("nic {name} does not exist"))),
            },
            None if strict && is_link_local(self.ip) => {
                return Err(bad(format!("nic is required for the link-local address {}", self.ip)))
            }
            None => None,
        };
        let routes = nl.routes(self.ip.is_ipv4()).await?;
        let route = net::findif(&routes, self.ip, nic.as_ref().map(|l| l.index), self.prefix);
        if let Some(r) = route.filter(|r| r.gateway && strict) {
            // findif reads IPv6 routes of every scope, and IPaddr2 then
            // fails to add the VIP on the gateway's name; say why instead.
            return Err(Error::generic(format!(
                "{} is reached through a gateway ({}/{}), not a connected subnet: \
                 cannot tell the interface (set both nic and cidr_netmask)",
                self.ip, r.dst, r.prefix
            )));
        }
        let (link, prefix) = match (route, nic, self.prefix) {
            (Some(r), Some(link), p) => (link, p.unwrap_or(r.prefix)),
            (Some(r), None, p) => {
                let link = nl
                    .link_by_index(r.oif)
                    .await?
                    .ok_or_else(|| Error::generic(format!("the interface of the route to {} vanished", self.ip)))?;
                (link, p.unwrap_or(r.prefix))
            }
            // Both given: no route needed, as in IPaddr2.
            (None, Some(link), Some(p)) => (link, p),
            // nic=lo asks for a host address (a VIP held for DR or a local
            // service); IPaddr2's findif has no rule for lo and fails.
            (None, Some(link), None) if link.name == "lo" => (link, self.host_prefix()),
            (None, nic, p) => {
                // Generic, not configured: a base address or link that is
                // not up yet on this node may be on another.
                let within = p.map(|p| format!("/{p}")).unwrap_or_default();
                let on = nic.map(|l| format!(" on {}", l.name)).unwrap_or_default();
                return Err(Error::generic(format!(
                    "no connected route contains {}{within}{on}: cannot tell the interface or prefix \
                     (add the subnet's base address, or set both nic and cidr_netmask)",
                    self.ip
                )));
            }
        };
        let IpAddr::V4(ip) = self.ip else {
            return Ok(Placement { link, prefix, broadcast: None, label: None });
        };
        let inherited = match (self.broadcast, route.and_then(|r| r.prefsrc)) {
            (Broadcast::Inherited, Some(base)) => nl.find_address(base).await?.and_then(|a| a.broadcast),
            _ => None,
        };
        let broadcast = broadcast_for(self.broadcast, ip, prefix, inherited);
        let label = match &self.iflabel {
            Some(l) => {
                check_label(&link.name, l)?;
                Some(format!("{}:{l}", link.name))
            }
            None => None,
        };
        Ok(Placement { link, prefix, broadcast, label })
    }

    async fn validate(&self, nl: &Netlink) -> Result<Outcome> {
        let at = self.placement(nl, true).await?;
        tracing::debug!("{} would go on {} with prefix {}", self.ip, at.link.name, at.prefix);
        Ok(Outcome::Running)
    }

    async fn start(&self, nl: &Netlink, ctx: &Context, instance: &Instance) -> Result<Outcome> {
        let began = Instant::now();
        let at = self.placement(nl, true).await?;
        let link = &at.link;
        // Before anything else: a VIP already on lo (a hand-made setup the
        // agent adopts) must stop being answered too.
        if self.realserver && self.ip.is_ipv4() {
            // Raised to the least that works, never lowered: an operator's
            // stricter value (arp_ignore 2..8) stays.
            for (name, least) in net::REALSERVER_ARP_SYSCTLS {
                let now = net::read_sysctl(name).ok().and_then(|v| v.parse::<u32>().ok());
                if now.is_none_or(|v| v < least) {
                    net::write_sysctl(name, &least.to_string())?;
                }
            }
        }
        if let Some(have) = nl.find_address(self.ip).await? {
            if have.index == link.index {
                tracing::info!("{} is already on {}", self.ip, link.name);
                instance.save_record(&Record { ip: self.ip, prefix: have.prefix, ifname: link.name.clone() });
                return Ok(Outcome::Running);
            }
            // IPaddr2 would add a second copy; one host, one copy.
            let elsewhere = nl.link_by_index(have.index).await?.map(|l| l.name).unwrap_or_default();
            return Err(Error::generic(format!(
                "{} is already configured on {elsewhere} (index {}), not on {}",
                self.ip, have.index, link.name
            )));
        }
        if !self.realserver && !link.admin_up {
            // IPaddr2 brings the interface up after adding the address.
            nl.set_link_up(link.index).await?;
            tracing::info!("set {} up", link.name);
        }
        if let (IpAddr::V4(ip), Some(mac), false) = (self.ip, link.mac, self.realserver) {
            if self.on_duplicate != OnDuplicate::Ignore {
                if let Some(other) = net::probe_duplicate(link.index, mac, ip, DUPLICATE_WAIT)? {
                    let msg = format!("{ip} is already in use on {} by {}", link.name, net::format_mac(&other));
                    if self.on_duplicate == OnDuplicate::Refuse {
                        return Err(Error::Generic(format!("{msg}; refusing to take it")));
                    }
                    tracing::warn!("{msg}; taking it anyway (on_duplicate=warn)");
                }
            }
        }
        let spec = AddressSpec {
            ip: self.ip,
            prefix: at.prefix,
            broadcast: at.broadcast,
            label: at.label.clone(),
            preferred_lft: self.preferred_lft,
            nodad: self.nodad,
            noprefixroute: self.noprefixroute,
        };
        // Recorded before the address goes on, so that a start killed
        // halfway still leaves stop something to work from.
        instance.save_record(&Record { ip: self.ip, prefix: at.prefix, ifname: link.name.clone() });
        nl.add_address(link.index, &spec).await?;
        tracing::info!("added {}/{} to {}", self.ip, at.prefix, link.name);
        if let IpAddr::V6(ip6) = self.ip {
            if !self.nodad && !link.loopback {
                // Leave a second of the action's time for cleanup.
                let budget = ctx.timeout.saturating_sub(began.elapsed() + Duration::from_secs(1));
                if let Err(e) = nl.wait_dad(link.index, ip6, budget).await {
                    let _ = nl.delete_address(link.index, self.ip, at.prefix).await;
                    return Err(e.into());
                }
            }
        }
        if !self.realserver {
            self.announce(link, self.arp_count, remaining(ctx, began))?;
        }
        Ok(Outcome::Running)
    }

    /// Sends `count` announcements, fewer if they would not fit in `budget`.
    fn announce(&self, link: &Link, count: u32, budget: Duration) -> Result<()> {
        let (Some(mac), false) = (link.mac, link.loopback) else {
            return Ok(());
        };
        let count = fitting(count, self.arp_interval, budget);
        if count == 0 {
            return Ok(());
        }
        Ok(match self.ip {
            IpAddr::V4(ip) => net::send_gratuitous_arp(link.index, mac, ip, self.arp_mode, count, self.arp_interval),
            IpAddr::V6(ip) => net::send_unsolicited_na(link.index, mac, ip, count, self.arp_interval),
        }?)
    }

    /// Re-places the address when a parameter that shapes it changed:
    /// the old one goes, the new one comes, so that a reload never leaves
    /// the VIP where it was.
    async fn reload(&self, nl: &Netlink, ctx: &Context, instance: &Instance) -> Result<Outcome> {
        let at = self.placement(nl, true).await?;
        let Some(have) = nl.find_address(self.ip).await? else {
            // Not up here: a reload is no start (ocf-tester reloads a
            // stopped resource); the next monitor tells the cluster.
            return Ok(Outcome::Running);
        };
        {
            let same = have.index == at.link.index
                && have.prefix == at.prefix
                && (!self.ip.is_ipv4() || (have.broadcast == at.broadcast && have.label == label_or_name(&at)));
            if same {
                instance.save_record(&Record { ip: self.ip, prefix: have.prefix, ifname: at.link.name.clone() });
                return Ok(Outcome::Running);
            }
            tracing::info!("reload moves {} to {}/{} on {}", self.ip, self.ip, at.prefix, at.link.name);
        }
        remove_ours(nl, Some(self.ip), instance).await?;
        self.start(nl, ctx, instance).await
    }

    async fn monitor(&self, nl: &Netlink, ctx: &Context, instance: &Instance) -> Result<Outcome> {
        let began = Instant::now();
        let Some(have) = nl.find_address(self.ip).await? else {
            if ctx.is_probe() || self.realserver {
                return Ok(Outcome::NotRunning);
            }
            // As IPaddr2: a recurring monitor whose interface or route has
            // gone says so (1), where a probe only says stopped.
            if !(self.nic.is_some() && self.prefix.is_some()) {
                self.placement(nl, false).await?;
            }
            return Ok(Outcome::NotRunning);
        };
        let link = nl
            .link_by_index(have.index)
            .await?
            .ok_or_else(|| Error::generic(format!("the interface of {} vanished", self.ip)))?;
        // Ours but not where it should be: an error, never "not running",
        // or the cluster would start it elsewhere while it is up here.
        let recorded = instance.load_record::<Record>().filter(|r| r.ip == self.ip).map(|r| r.ifname);
        if let Some(want) = self.expected_nic().map(String::from).or(recorded) {
            if link.name != want {
                return Err(Error::generic(format!("{} is on {}, expected on {want}", self.ip, link.name)));
            }
        }
        if self.check_link_status && !self.realserver && !(link.admin_up && link.oper_up) {
            tracing::warn!("{} is on {}, but the link is down", self.ip, link.name);
            return Ok(Outcome::NotRunning);
        }
        if have.dadfailed {
            return Err(Error::generic(format!("{} failed duplicate address detection", self.ip)));
        }
        if ctx.check_level >= 10 {
            let want = self.placement(nl, false).await?;
            if want.link.index != link.index || have.prefix != want.prefix {
                return Err(Error::generic(format!(
                    "{} is configured as /{} on {}, expected /{} on {}",
                    self.ip, have.prefix, link.name, want.prefix, want.link.name
                )));
            }
            if want.label.is_some() && have.label != want.label {
                return Err(Error::generic(format!(
                    "{} has label {:?}, expected {:?}",
                    self.ip, have.label, want.label
                )));
            }
        }
        if self.arp_count_refresh > 0 && !ctx.is_probe() && !self.realserver {
            self.announce(&link, self.arp_count_refresh, remaining(ctx, began))?;
        }
        Ok(Outcome::Running)
    }
}

/// The IPv4 broadcast address; `inherited` is the base address's.
fn broadcast_for(kind: Broadcast, ip: Ipv4Addr, prefix: u8, inherited: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    match kind {
        Broadcast::Given(b) => Some(b),
        // /31 and /32 have no broadcast address (RFC 3021).
        Broadcast::HostBitsSet | Broadcast::HostBitsCleared if prefix >= 31 => None,
        Broadcast::HostBitsSet => Some(Ipv4Addr::from(u32::from(ip) | host_bits)),
        Broadcast::HostBitsCleared => Some(Ipv4Addr::from(u32::from(ip) & !host_bits)),
        Broadcast::Inherited => inherited,
    }
}

/// The label an IPv4 address shows: its own, or the interface name.
fn label_or_name(at: &Placement) -> Option<String> {
    Some(at.label.clone().unwrap_or_else(|| at.link.name.clone()))
}

fn check_label(nic: &str, label: &str) -> Result<()> {
    // The kernel keeps labels in IFNAMSIZ (16 bytes with the NUL).
    if nic.len() + 1 + label.len() > 15 {
        return Err(bad(format!("label '{nic}:{label}' is longer than 15 characters")));
    }
    Ok(())
}

/// The action's time left, less a second for the cluster manager's margin.
fn remaining(ctx: &Context, began: Instant) -> Duration {
    ctx.timeout.saturating_sub(began.elapsed() + Duration::from_secs(1))
}

/// How many of `count` announcements `interval` apart fit in `budget`.
fn fitting(count: u32, interval: Duration, budget: Duration) -> u32 {
    if count == 0 || interval.is_zero() {
        return count;
    }
    let fit = u32::try_from(budget.as_millis() / interval.as_millis() + 1).unwrap_or(u32::MAX);
    if fit < count {
        tracing::warn!("sending {fit} of {count} announcements: more would outlast the action's timeout");
    }
    count.min(fit)
}

/// Removes every copy of `ip` and of the recorded address, wherever it is.
async fn remove_ours(nl: &Netlink, ip: Option<IpAddr>, instance: &Instance) -> Result<()> {
    let record = instance.load_record::<Record>();
    let mut ips: Vec<IpAddr> = record.iter().map(|r| r.ip).chain(ip).collect();
    ips.dedup();
    for addr in nl.addresses(None).await? {
        if !ips.contains(&addr.ip) {
            continue;
        }
        if nl.delete_address(addr.index, addr.ip, addr.prefix).await? {
            let name = nl.link_by_index(addr.index).await?.map(|l| l.name).unwrap_or_default();
            tracing::info!("removed {}/{} from {name}", addr.ip, addr.prefix);
        }
    }
    instance.forget_record();
    Ok(())
}

/// Stop goes by `ip` and the record alone: whatever nic, cidr_netmask,
/// iflabel or mode now say, the address this resource put up comes down.
async fn stop(nl: &Netlink, params: &Params, instance: &Instance) -> Result<Outcome> {
    let ip = params.str("ip").and_then(|s| parse_ip(s).ok());
    if ip.is_none() && instance.load_record::<Record>().is_none() {
        tracing::info!("ip does not parse and nothing was recorded: nothing of ours can be up");
        return Ok(Outcome::NotRunning);
    }
    remove_ours(nl, ip, instance).await?;
    Ok(Outcome::NotRunning)
}

/// How long start listens for another host's answer to its ARP probe:
/// long enough for a LAN, short enough not to slow a failover.
const DUPLICATE_WAIT: Duration = Duration::from_millis(300);

fn parse_prefix(text: &str, v4: bool) -> Result<u8> {
    let max = if v4 { 32 } else { 128 };
    if let Ok(n) = text.parse::<u8>() {
        if (1..=max).contains(&n) {
            return Ok(n);
        }
        return Err(bad(format!("cidr_netmask {n} is not between 1 and {max}")));
    }
    if v4 {
        if let Ok(mask) = text.parse::<Ipv4Addr>() {
            let bits = u32::from(mask);
            // A netmask is ones followed by zeros.
            if bits != 0 && bits.leading_ones() + bits.trailing_zeros() == 32 {
                return Ok(u8::try_from(bits.leading_ones()).unwrap_or(32));
            }
        }
    }
    Err(bad(format!("cidr_netmask '{text}' is not a prefix length{}", if v4 { " or netmask" } else { "" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(pairs: &[(&str, &str)]) -> Result<Vip> {
        let p = Params::from_pairs(&SPEC, pairs)?;
        Vip::from_params(&p)
    }

    #[test]
    fn defaults_match_ipaddr2() {
        let v = vip(&[("ip", "10.0.0.100")]).unwrap();
        assert_eq!(v.arp_count, 5);
        assert_eq!(v.arp_interval, Duration::from_millis(200));
        assert_eq!(v.arp_mode, ArpMode::Request);
        assert!(v.check_link_status);
        assert_eq!(v.on_duplicate, OnDuplicate::Warn);
        assert_eq!(v.preferred_lft, None);
        assert!(!v.realserver);
    }

    #[test]
    fn netmask_accepts_prefix_or_dotted_mask() {
        assert_eq!(parse_prefix("24", true).unwrap(), 24);
        assert_eq!(parse_prefix("255.255.255.0", true).unwrap(), 24);
        assert_eq!(parse_prefix("255.255.255.255", true).unwrap(), 32);
        assert_eq!(parse_prefix("64", false).unwrap(), 64);
        for bad in ["33", "0", "0.0.0.0", "255.0.255.0", "x", "-1"] {
            assert!(matches!(parse_prefix(bad, true), Err(Error::Configured(_))), "{bad}");
        }
        assert!(parse_prefix("255.255.0.0", false).is_err());
        assert!(parse_prefix("129", false).is_err());
    }

    #[test]
    fn broadcast_like_ip_addr_brd() {
        let ip = Ipv4Addr::new(10, 0, 0, 100);
        let base = Some(Ipv4Addr::new(10, 0, 0, 255));
        let kind = |b: &str| vip(&[("ip", "10.0.0.100"), ("broadcast", b)]).unwrap().broadcast;
        assert_eq!(vip(&[("ip", "10.0.0.100")]).unwrap().broadcast, Broadcast::Inherited);
        assert_eq!(broadcast_for(Broadcast::Inherited, ip, 28, base), base, "the base address's, as IPaddr2");
        assert_eq!(broadcast_for(Broadcast::Inherited, ip, 24, None), None);
        assert_eq!(broadcast_for(kind("+"), ip, 24, base), Some(Ipv4Addr::new(10, 0, 0, 255)));
        assert_eq!(broadcast_for(kind("+"), ip, 31, base), None);
        assert_eq!(broadcast_for(kind("-"), ip, 24, base), Some(Ipv4Addr::new(10, 0, 0, 0)));
        assert_eq!(broadcast_for(kind("10.0.0.127"), ip, 24, base), Some(Ipv4Addr::new(10, 0, 0, 127)));
    }

    #[test]
    fn nic_may_carry_the_label() {
        let v = vip(&[("ip", "10.0.0.100"), ("nic", "eth0:web"), ("iflabel", "other")]).unwrap();
        assert_eq!((v.nic.as_deref(), v.iflabel.as_deref()), (Some("eth0"), Some("web")));
        let v = vip(&[("ip", "10.0.0.100"), ("nic", "eth0")]).unwrap();
        assert_eq!((v.nic.as_deref(), v.iflabel.as_deref()), (Some("eth0"), None));
        assert!(matches!(vip(&[("ip", "10.0.0.1"), ("nic", "eth0:waytoolonglabel")]), Err(Error::Configured(_))));
    }

    #[test]
    fn announcements_fit_the_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(fitting(5, ms(200), ms(10_000)), 5);
        assert_eq!(fitting(1000, ms(60_000), ms(19_000)), 1, "one goes out at once");
        assert_eq!(fitting(10, ms(1000), ms(4_500)), 5);
        assert_eq!(fitting(7, Duration::ZERO, Duration::ZERO), 7, "no interval, no wait");
    }

    #[test]
    fn meaningless_parameters_are_configuration_errors() {
        for pairs in [
            vec![("ip", "10.0.0.300")],
            vec![("ip", "0.0.0.0")],
            vec![("ip", "224.0.0.1")],
            vec![("ip", "2001:db8::1"), ("broadcast", "10.0.0.255")],
            vec![("ip", "2001:db8::1"), ("iflabel", "vip")],
            vec![("ip", "10.0.0.1"), ("nic", "eth0"), ("iflabel", "muchtoolonglabel")],
            vec![("ip", "10.0.0.1"), ("preferred_lft", "soon")],
            vec![("ip", "10.0.0.1"), ("arp_mode", "shout")],
            vec![("ip", "10.0.0.1"), ("arp_count", "-1")],
        ] {
            assert!(matches!(vip(&pairs), Err(Error::Configured(_))), "{pairs:?}");
        }
    }

    #[test]
    fn heartbeat_positional_form() {
        let args = |s: &str| vec![s.to_string()];
        assert_eq!(
            positional(&args("10.0.0.100/24/eth0/10.0.0.255")).unwrap(),
            vec![
                ("ip", "10.0.0.100".to_string()),
                ("cidr_netmask", "24".to_string()),
                ("nic", "eth0".to_string()),
                ("broadcast", "10.0.0.255".to_string())
            ]
        );
        assert_eq!(positional(&args("10.0.0.100")).unwrap(), vec![("ip", "10.0.0.100".to_string())]);
        assert_eq!(
            positional(&args("2001:db8::1//eth0")).unwrap(),
            vec![("ip", "2001:db8::1".to_string()), ("nic", "eth0".to_string())]
        );
        assert!(positional(&args("1/2/3/4/5")).is_err());
        assert!(positional(&["a".into(), "b".into()]).is_err());
    }
}
