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
        return Ok(ServiceKey::parse_with_family(text, family)?);
    }
    match text.parse::<ServiceKey>() {
        Ok(k) => Ok(k),
        Err(e) => ServiceKey::parse_with_family(text, Family::Inet6).map_err(|_| e.into()),
    }
}

/// Schedulers whose kernel code walks all of a service's destinations at
/// every addition, edit and removal (wrr: the gcd and maximum weight; mh:
/// its lookup table), so that removing n reals costs O(n^2): 65,536 under
/// wrr took 396 s of kernel time in the emulated lab VM.
const PAYS_PER_REMOVAL: [&str; 2] = ["wrr", "mh"];

/// Removals from one service past which they run under rr (see
/// [`removing_many`]); below, the O(n^2) is small (1,024 under wrr: about
/// a tenth of a second in the lab VM).
pub const SWAP_SCHEDULER_FROM: usize = 1024;

/// What the swap file says: the scheduler put aside and who did it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Swap {
    scheduler: String,
    pid: u32,
}

/// Where the swap file of `key`'s service is (tests write one).
pub fn swap_path(key: &ServiceKey) -> std::path::PathBuf {
    swap_file(key).1
}

/// The swap file of `key`'s service, next to the agents' other files.
fn swap_file(key: &ServiceKey) -> (crate::daemon::Instance, std::path::PathBuf) {
    let name = format!("{key}{}", if key.family() == Family::Inet6 { "/inet6" } else { "" });
    let instance = crate::daemon::Instance::new("scheduler", &name);
    let path = instance.recordfile();
    (instance, path)
}

/// Runs `remove` (about `count` removals from `key`'s service) with the
/// service's scheduler set to rr when its own pays per removal and the
/// count is large, then puts the scheduler (flags, persistence and all)
/// back, whatever `remove` returned. Meanwhile a swap file says so and
/// [`swapped_out`] reads it, so the service agent's monitor takes rr for
/// the real scheduler while this process lives. Traffic to the service's
/// other destinations is scheduled rr for those seconds.
pub fn removing_many<T>(
    ipvs: &crate::ipvs::IpvsClient,
    key: &ServiceKey,
    count: usize,
    remove: impl FnOnce() -> lvs_ipvs::Result<T>,
) -> lvs_ipvs::Result<T> {
    use crate::ipvs::ServiceFlags;
    if count < SWAP_SCHEDULER_FROM {
        return remove();
    }
    let svc = match ipvs.service(key) {
        Ok(s) if PAYS_PER_REMOVAL.contains(&s.scheduler.as_str()) => s,
        Ok(_) => return remove(),
        Err(e) if e.is_not_found() => return remove(),
        Err(e) => return Err(e),
    };
    let (instance, path) = swap_file(key);
    // No swap file, no swap: the service agent's monitor must never see rr
    // unexplained.
    if let Err(e) = instance.write_json(&path, &Swap { scheduler: svc.scheduler.clone(), pid: std::process::id() }) {
        tracing::warn!("{e}; removing under {}", svc.scheduler);
        return remove();
    }
    let mut rr = svc.clone();
    rr.scheduler = "rr".into();
    rr.flags = rr.flags.without(ServiceFlags::SCHED_MASK);
    if let Err(e) = ipvs.edit_service(&rr) {
        let _ = std::fs::remove_file(&path);
        tracing::warn!("{e}; removing under {}", svc.scheduler);
        return remove();
    }
    tracing::info!(
        "removing {count} reals from {key} under rr ({} pays per removal), then {} again",
        svc.scheduler,
        svc.scheduler
    );
    let removed = remove();
    let restored = ipvs.edit_service(&svc);
    let _ = std::fs::remove_file(&path);
    match restored {
        Err(e) if !e.is_not_found() => Err(e),
        _ => removed,
    }
}

/// The scheduler a live [`removing_many`] has put aside on `key`'s
/// service, if any.
pub fn swapped_out(key: &ServiceKey) -> Option<String> {
    let (instance, path) = swap_file(key);
    let (swap, _) = instance.read_json::<Swap>(&path).ok()??;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(swap.pid).ok()?);
    nix::sys::signal::kill(pid, None).is_ok().then_some(swap.scheduler)
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
