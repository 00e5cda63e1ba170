//! Declarations shared by the IPVS agents (service, realservers, sorry), so
//! the same parameter reads and documents the same way in each.

use crate::ipvs::{Family, ServiceKey};
use crate::ocf::{ParamSpec, Params};
use crate::Result;

/// `service`: which virtual service the agent works on.
pub const SERVICE: ParamSpec = ParamSpec::string("service", "Virtual service").required().unique().long(
    "The virtual service: tcp:10.0.0.100:80, udp:[2001:db8::1]:53, sctp:10.0.0.1:5060, \
         or fwmark:100 for a firewall-mark service (see family).",
);

/// `family`: what a fwmark service's mark applies to.
pub const FAMILY: ParamSpec =
    ParamSpec::select("family", &["inet", "inet6"], "Address family of a fwmark service").default("inet").long(
        "For fwmark services, whether the mark applies to IPv4 (inet) or IPv6 (inet6) packets. \
         Address services take the family of their address.",
    );

/// Same as `SERVICE` but not unique: agents that add destinations to a
/// service share it with the agent that owns the service.
pub const SERVICE_SHARED: ParamSpec = ParamSpec { unique: false, ..SERVICE };

/// The virtual service named by `service` and `family`. `family` only
/// decides for fwmark services; an address brings its own family, and a
/// family stated explicitly must agree with it.
pub fn service_key(p: &Params) -> Result<ServiceKey> {
    let text = p.str("service").unwrap_or_default();
    if p.is_explicit("family") {
        let family: Family = p.str("family").unwrap_or("inet").parse()?;
        return ServiceKey::parse_with_family(text, family);
    }
    match text.parse::<ServiceKey>() {
        Ok(k) => Ok(k),
        Err(e) => ServiceKey::parse_with_family(text, Family::Inet6).map_err(|_| e),
    }
}

/// Whether the ip_vs module is loaded. Without it there is no service to
/// stop or monitor, and stop and probes must not load it just to learn that.
pub fn ipvs_loaded() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
}
