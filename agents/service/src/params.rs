//! The `service` and `family` parameters, which name a virtual service the
//! same way (and are documented the same way) in every agent that works on
//! one: service, realservers, sorry. And the service as records keep it.

use lvs_ipvs::{Family, ServiceKey};
use lvs_ocf::Result;
use lvs_ocf::{ParamSpec, Params};

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
        return Ok(ServiceKey::parse_with_family(text, family)?);
    }
    match text.parse::<ServiceKey>() {
        Ok(k) => Ok(k),
        Err(e) => ServiceKey::parse_with_family(text, Family::Inet6).map_err(|_| e.into()),
    }
}

/// A service key as records keep it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordedService {
    pub service: String,
    pub inet6: bool,
}

impl From<&ServiceKey> for RecordedService {
    fn from(k: &ServiceKey) -> Self {
        RecordedService { service: k.to_string(), inet6: k.family() == Family::Inet6 }
    }
}

impl RecordedService {
    pub fn key(&self) -> Option<ServiceKey> {
        ServiceKey::parse_with_family(&self.service, if self.inet6 { Family::Inet6 } else { Family::Inet }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_services_round_trip_with_their_family() {
        for (text, family) in
            [("tcp:10.0.0.1:80", Family::Inet), ("fwmark:7", Family::Inet6), ("udp:[2001:db8::1]:53", Family::Inet6)]
        {
            let key = ServiceKey::parse_with_family(text, family).unwrap();
            assert_eq!(RecordedService::from(&key).key(), Some(key), "{text}");
        }
    }
}
