//! `ocf:lvs:vip` — the director's virtual IP address (IPaddr2's job):
//! add it to an interface, announce it with gratuitous ARP / unsolicited
//! Neighbor Advertisements, and take it away again. With
//! `mode=realserver` it instead holds the VIP on `lo` the way LVS-DR real
//! servers need it, with ARP replies for it suppressed.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lvs_common::net::{AddressInfo, AddressSpec, ArpMode, Link, Netlink};
use lvs_common::ocf::{self, Action, AgentSpec, Context, Heartbeat, Outcome, ParamSpec, Params};
use lvs_common::{block_on, net, Error, Result};

static SPEC: AgentSpec = AgentSpec {
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
        heartbeat v1 form: lvs-vip::ip[/prefix[/nic[/broadcast]]].",
    params: &[
        ParamSpec::string("ip", "IPv4 or IPv6 address")
            .required()
            .unique()
            .long("The virtual IP address, IPv4 (10.0.0.100) or IPv6 (2001:db8::100)."),
        ParamSpec::string("cidr_netmask", "Prefix length").long(
            "Prefix length (24) or IPv4 netmask (255.255.255.0). Default: the prefix of the \
                route that matches ip, else 32 (IPv4) or 128 (IPv6).",
        ),
        ParamSpec::string("nic", "Interface").long(
            "Interface to put the address on. Default: the interface of the most specific \
                non-default route that matches ip. A nic that does not exist is a configuration \
                error; one that disagrees with the routing table is logged.",
        ),
        ParamSpec::string("broadcast", "IPv4 broadcast address")
            .long("IPv4 broadcast address; empty or + computes it from the prefix, - sets none."),
        ParamSpec::string("iflabel", "Interface label").long(
            "IPv4 only: the address gets the label nic:iflabel (at most 15 characters in all), \
                as ifconfig-era tools show it.",
        ),
        ParamSpec::string("preferred_lft", "Preferred lifetime").default("forever").long(
            "Preferred lifetime of the address in seconds, or forever. 0 makes an IPv6 \
                address deprecated, so it is not used as a source for outgoing connections.",
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
                to send after adding the address; 0 sends none.",
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
                arp_ignore=1 and arp_announce=2 (left set on stop), as LVS direct routing needs.",
        ),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "ip[/prefix[/nic[/broadcast]]]", map: positional },
};

fn main() -> std::process::ExitCode {
    ocf::run(&SPEC, |ctx| {
        let vip = Vip::from_params(&ctx.params)?;
        block_on(async {
            let nl = Netlink::connect()?;
            match ctx.action {
                Action::Start => vip.start(&nl, ctx).await,
                // Every parameter that can change in place (the ARP ones)
                // is read by each action anyway; others need a restart.
                Action::Reload => vip.monitor(&nl, ctx).await,
                Action::Stop => vip.stop(&nl).await,
                Action::Monitor => vip.monitor(&nl, ctx).await,
                Action::ValidateAll => vip.validate(&nl).await,
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
    Computed,
    None,
    Given(Ipv4Addr),
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

fn bad(msg: String) -> Error {
    Error::Configured(msg)
}

impl Vip {
    fn from_params(p: &Params) -> Result<Vip> {
        let ip_text = p.str("ip").unwrap_or_default();
        let ip: IpAddr = ip_text.parse().map_err(|_| bad(format!("ip '{ip_text}' is not an IPv4 or IPv6 address")))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(bad(format!("ip {ip} is not a unicast address")));
        }
        let v4 = ip.is_ipv4();
        let prefix = p.str("cidr_netmask").map(|m| parse_prefix(m, v4)).transpose()?;
        let broadcast = match p.str("broadcast") {
            None | Some("+") => Broadcast::Computed,
            Some("-") => Broadcast::None,
            Some(b) if v4 => {
                Broadcast::Given(b.parse().map_err(|_| bad(format!("broadcast '{b}' is not an IPv4 address")))?)
            }
            Some(_) => return Err(bad("broadcast applies to IPv4 addresses only".into())),
        };
        let iflabel = p.str("iflabel").map(String::from);
        if iflabel.is_some() && !v4 {
            return Err(bad("iflabel applies to IPv4 addresses only".into()));
        }
        let preferred_lft = match p.str("preferred_lft") {
            None | Some("forever") => None,
            Some(s) => Some(
                s.parse::<u32>()
                    .map_err(|_| bad(format!("preferred_lft '{s}' is neither forever nor a number of seconds")))?,
            ),
        };
        let realserver = p.str("mode") == Some("realserver");
        let nic = p.str("nic").map(String::from);
        if let (Some(nic), Some(label)) = (&nic, &iflabel) {
            // The kernel keeps labels in IFNAMSIZ (16 bytes with the NUL).
            if nic.len() + 1 + label.len() > 15 {
                return Err(bad(format!("label '{nic}:{label}' is longer than 15 characters")));
            }
        }
        let count = |name: &str| p.int(name).unwrap_or(0).clamp(0, u32::MAX.into()) as u32;
        Ok(Vip {
            ip,
            prefix,
            nic,
            broadcast,
            iflabel,
            preferred_lft,
            nodad: p.flag("nodad"),
            noprefixroute: p.flag("noprefixroute"),
            arp_count: count("arp_count"),
            arp_interval: Duration::from_millis(p.int("arp_interval").unwrap_or(200).max(0) as u64),
            arp_mode: match p.str("arp_mode") {
                Some("reply") => ArpMode::Reply,
                Some("both") => ArpMode::Both,
                _ => ArpMode::Request,
            },
            arp_count_refresh: count("arp_count_refresh"),
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

    /// Where the address belongs and with which prefix, IPaddr2-style.
    async fn placement(&self, nl: &Netlink) -> Result<(Link, u8)> {
        if self.realserver {
            let lo =
                nl.link_by_name("lo").await?.ok_or_else(|| Error::generic("the loopback interface lo is missing"))?;
            return Ok((lo, self.host_prefix()));
        }
        let routed = nl.find_interface(self.ip).await?;
        let link = match &self.nic {
            Some(name) => {
                let link = nl.link_by_name(name).await?.ok_or_else(|| bad(format!("nic {name} does not exist")))?;
                if let Some((r, _)) = &routed {
                    if r.index != link.index {
                        tracing::warn!(
                            "nic {name} disagrees with the routing table, which reaches {} via {}",
                            self.ip,
                            r.name
                        );
                    }
                }
                link
            }
            None => match &routed {
                Some((link, _)) => link.clone(),
                None => {
                    return Err(bad(format!(
                        "no route matches {}: cannot choose an interface; set nic and cidr_netmask",
                        self.ip
                    )))
                }
            },
        };
        let prefix = self
            .prefix
            .or_else(|| routed.as_ref().filter(|(r, _)| r.index == link.index).map(|(_, p)| *p))
            .unwrap_or_else(|| self.host_prefix());
        Ok((link, prefix))
    }

    fn label(&self, link: &Link) -> Option<String> {
        self.iflabel.as_ref().map(|l| format!("{}:{l}", link.name))
    }

    fn broadcast(&self, prefix: u8) -> Option<Ipv4Addr> {
        let IpAddr::V4(ip) = self.ip else { return None };
        match self.broadcast {
            Broadcast::Given(b) => Some(b),
            Broadcast::None => None,
            // /31 and /32 have no broadcast address (RFC 3021).
            Broadcast::Computed if prefix >= 31 || self.realserver => None,
            Broadcast::Computed => Some(Ipv4Addr::from(u32::from(ip) | (u32::MAX >> prefix))),
        }
    }

    async fn validate(&self, nl: &Netlink) -> Result<Outcome> {
        let (link, prefix) = self.placement(nl).await?;
        tracing::debug!("{} would go on {} with prefix {prefix}", self.ip, link.name);
        Ok(Outcome::Running)
    }

    async fn start(&self, nl: &Netlink, ctx: &Context) -> Result<Outcome> {
        let began = Instant::now();
        let (link, prefix) = self.placement(nl).await?;
        if let Some(have) = nl.find_address(self.ip).await? {
            if have.index == link.index {
                tracing::info!("{} is already on {}", self.ip, link.name);
                return Ok(Outcome::Running);
            }
            return Err(Error::generic(format!(
                "{} is already configured on another interface (index {})",
                self.ip, have.index
            )));
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
        if self.realserver && self.ip.is_ipv4() {
            for conf in ["all", "lo"] {
                net::write_sysctl(&format!("net.ipv4.conf.{conf}.arp_ignore"), "1")?;
                net::write_sysctl(&format!("net.ipv4.conf.{conf}.arp_announce"), "2")?;
            }
        }
        let spec = AddressSpec {
            ip: self.ip,
            prefix,
            broadcast: self.broadcast(prefix),
            label: self.label(&link),
            preferred_lft: self.preferred_lft,
            nodad: self.nodad,
            noprefixroute: self.noprefixroute,
        };
        nl.add_address(link.index, &spec).await?;
        tracing::info!("added {}/{prefix} to {}", self.ip, link.name);
        if let IpAddr::V6(ip6) = self.ip {
            if !self.nodad && !link.loopback {
                // Leave a second of the action's time for cleanup.
                let budget = ctx.timeout.saturating_sub(began.elapsed() + Duration::from_secs(1));
                if let Err(e) = nl.wait_dad(link.index, ip6, budget).await {
                    let _ = nl.delete_address(link.index, self.ip, prefix).await;
                    return Err(e);
                }
            }
        }
        if !self.realserver {
            self.announce(&link, self.arp_count)?;
        }
        Ok(Outcome::Running)
    }

    fn announce(&self, link: &Link, count: u32) -> Result<()> {
        let (Some(mac), false) = (link.mac, link.loopback) else {
            return Ok(());
        };
        if count == 0 {
            return Ok(());
        }
        match self.ip {
            IpAddr::V4(ip) => net::send_gratuitous_arp(link.index, mac, ip, self.arp_mode, count, self.arp_interval),
            IpAddr::V6(ip) => net::send_unsolicited_na(link.index, mac, ip, count, self.arp_interval),
        }
    }

    /// The address as it is on the interface it belongs to, if it is there.
    async fn find(&self, nl: &Netlink) -> Result<Option<(AddressInfo, Link)>> {
        let Some(have) = nl.find_address(self.ip).await? else {
            return Ok(None);
        };
        let Some(link) = nl.link_by_index(have.index).await? else {
            return Ok(None);
        };
        let expected = if self.realserver { Some("lo") } else { self.nic.as_deref() };
        if let Some(name) = expected {
            if link.name != name {
                tracing::warn!("{} is on {}, not on {name}", self.ip, link.name);
                return Ok(None);
            }
        }
        Ok(Some((have, link)))
    }

    async fn stop(&self, nl: &Netlink) -> Result<Outcome> {
        // Stop must succeed whenever the address is gone, including when
        // its interface vanished (then so did the address).
        let Some((have, link)) = self.find(nl).await? else {
            tracing::info!("{} is not configured", self.ip);
            return Ok(Outcome::NotRunning);
        };
        if nl.delete_address(have.index, have.ip, have.prefix).await? {
            tracing::info!("removed {}/{} from {}", self.ip, have.prefix, link.name);
        }
        Ok(Outcome::NotRunning)
    }

    async fn monitor(&self, nl: &Netlink, ctx: &Context) -> Result<Outcome> {
        let Some((have, link)) = self.find(nl).await? else {
            return Ok(Outcome::NotRunning);
        };
        if self.check_link_status && !self.realserver && !(link.admin_up && link.oper_up) {
            tracing::warn!("{} is on {}, but the link is down", self.ip, link.name);
            return Ok(Outcome::NotRunning);
        }
        if have.dadfailed {
            return Err(Error::generic(format!("{} failed duplicate address detection", self.ip)));
        }
        if ctx.check_level >= 10 {
            let (want_link, want_prefix) = self.placement(nl).await?;
            if want_link.index != link.index || have.prefix != want_prefix {
                return Err(Error::generic(format!(
                    "{} is configured as /{} on {}, expected /{want_prefix} on {}",
                    self.ip, have.prefix, link.name, want_link.name
                )));
            }
            let label = self.label(&link);
            if label.is_some() && have.label != label {
                return Err(Error::generic(format!("{} has label {:?}, expected {:?}", self.ip, have.label, label)));
            }
        }
        if self.arp_count_refresh > 0 && !ctx.is_probe() && !self.realserver {
            self.announce(&link, self.arp_count_refresh)?;
        }
        Ok(Outcome::Running)
    }
}

/// How long start listens for another host's answer to its ARP probe:
/// long enough for a LAN, short enough not to slow a failover.
const DUPLICATE_WAIT: Duration = Duration::from_millis(300);

fn parse_prefix(text: &str, v4: bool) -> Result<u8> {
    let max = if v4 { 32 } else { 128 };
    if let Ok(n) = text.parse::<u8>() {
        if n <= max {
            return Ok(n);
        }
        return Err(bad(format!("cidr_netmask {n} is larger than {max}")));
    }
    if v4 {
        if let Ok(mask) = text.parse::<Ipv4Addr>() {
            let bits = u32::from(mask);
            // A netmask is ones followed by zeros.
            if bits.leading_ones() + bits.trailing_zeros() == 32 {
                return Ok(bits.leading_ones() as u8);
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
        for bad in ["33", "255.0.255.0", "x", "-1"] {
            assert!(matches!(parse_prefix(bad, true), Err(Error::Configured(_))), "{bad}");
        }
        assert!(parse_prefix("255.255.0.0", false).is_err());
        assert!(parse_prefix("129", false).is_err());
    }

    #[test]
    fn broadcast_is_computed_like_brd_plus() {
        let v = vip(&[("ip", "10.0.0.100")]).unwrap();
        assert_eq!(v.broadcast(24), Some(Ipv4Addr::new(10, 0, 0, 255)));
        assert_eq!(v.broadcast(31), None);
        let v = vip(&[("ip", "10.0.0.100"), ("broadcast", "-")]).unwrap();
        assert_eq!(v.broadcast(24), None);
        let v = vip(&[("ip", "10.0.0.100"), ("broadcast", "10.0.0.127")]).unwrap();
        assert_eq!(v.broadcast(24), Some(Ipv4Addr::new(10, 0, 0, 127)));
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
