//! `ocf:lvs:service` — one IPVS virtual service: its address (or firewall
//! mark), scheduler, persistence and flags. Real servers are not its
//! business: `ocf:lvs:realservers` and `ocf:lvs:sorry` own those.

#![forbid(unsafe_code)]

pub mod params;
pub mod swap;

use crate::params::RecordedService;
use lvs_daemon::Instance;
use lvs_ipvs::{self as ipvs, Connector, Ipvs, Netmask, Service, ServiceFlags, ServiceKey, Timeouts};
use lvs_ocf::Error;
use lvs_ocf::Result;
use lvs_ocf::{
    self as ocf, spec::positional_in_order, Action, AgentSpec, Context, Heartbeat, Outcome, ParamSpec, Params,
};

pub static SPEC: AgentSpec = AgentSpec {
    name: "service",
    version: "1.0",
    shortdesc: "IPVS virtual service",
    longdesc: "Creates one IPVS virtual service (what `ipvsadm -A` does) and removes it on stop, \
        together with its real servers. A service that already exists with other settings is \
        adopted: edited to match and logged. Monitor reports drift (another scheduler, \
        persistence or flags than configured) as an error. Reload changes scheduler, persistence \
        and flags in place without dropping the service or its real servers, and applies the \
        table-wide timeouts. Start records the service in /run/lvs-agents; stop deletes the \
        recorded service and the one service/family name, needing no other parameter. \
        heartbeat v1 form: lvs-service::service[::scheduler[::persistent]].",
    params: &[
        crate::params::SERVICE,
        crate::params::FAMILY,
        ParamSpec::string("scheduler", "Scheduler").default("wlc").long(
            "Scheduling method: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh \
                or twos, as the kernel provides them.",
        ),
        ParamSpec::integer("persistent", 0, 31_536_000, "Persistence timeout (s)").default("0").long(
            "Persistence timeout in seconds: connections from one client go to the same real \
                server while it has connections or within this time. 0 turns persistence off.",
        ),
        ParamSpec::string("netmask", "Persistence granularity").long(
            "With persistence, clients in one network share a real server: an IPv4 netmask \
                (255.255.255.0) or prefix length (24); for IPv6 a prefix length. Default: one \
                address (/32 or /128).",
        ),
        ParamSpec::string("flags", "Service flags").long(
            "Comma-separated: sh-fallback, sh-port (scheduler sh), mh-fallback, mh-port \
                (scheduler mh), ops (one-packet scheduling, for UDP).",
        ),
        ParamSpec::string("pe", "Persistence engine")
            .long("Persistence engine, e.g. sip (Call-ID based persistence; needs persistent)."),
        ParamSpec::integer("tcp_timeout", 0, 2_147_483, "Table-wide TCP timeout (s)").long(
            "Sets the IPVS TCP session timeout for the whole table at start and reload \
                (ipvsadm --set). Unset leaves it alone.",
        ),
        ParamSpec::integer("tcpfin_timeout", 0, 2_147_483, "Table-wide TCP FIN timeout (s)")
            .long("Sets the IPVS TCP timeout after FIN for the whole table at start and reload."),
        ParamSpec::integer("udp_timeout", 0, 2_147_483, "Table-wide UDP timeout (s)")
            .long("Sets the IPVS UDP timeout for the whole table at start and reload."),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "service[::scheduler[::persistent]]", map: positional },
};

fn positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    positional_in_order(&["service", "scheduler", "persistent"], args)
}

/// The checks validate-all makes (all of them need no kernel).
pub fn check(p: &Params) -> Result<()> {
    desired(p).map(drop)
}

/// The agent's binary: every action, as Pacemaker and heartbeat call it.
pub fn main() -> std::process::ExitCode {
    ocf::run(&SPEC, |ctx| act(ctx, &Instance::new(SPEC.name, &ctx.instance), &Connector::Kernel))
}

/// One action on `kernel`'s table, with `instance`'s records.
pub fn act(ctx: &Context, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    if ctx.action == Action::Stop {
        // Only service/family and the record: a scheduler or flag
        // edited into nonsense must not leave the service behind.
        return stop(crate::params::service_key(&ctx.params).ok(), instance, kernel);
    }
    let want = desired(&ctx.params)?;
    match ctx.action {
        Action::ValidateAll => Ok(Outcome::Running),
        Action::Start => start(&want, &ctx.params, instance, kernel),
        Action::Reload => reload(&want, &ctx.params, instance, kernel),
        Action::Stop => stop(Some(want.key), instance, kernel),
        Action::Monitor => monitor(&want, ctx, instance, kernel),
    }
}

/// The service this instance created, if it recorded one.
fn recorded(instance: &Instance) -> Option<ServiceKey> {
    instance.load_record::<RecordedService>().and_then(|r| r.key())
}

/// The service as the parameters describe it.
fn desired(p: &Params) -> Result<Service> {
    let key = crate::params::service_key(p)?;
    let scheduler = p.str("scheduler").unwrap_or(ipvs::DEFAULT_SCHEDULER);
    let mut svc = Service::new(key, scheduler);
    let persistent: u32 = p.num_or_default("persistent")?;
    let netmask = match p.str("netmask") {
        Some(m) => Netmask::parse(m, key.family())?,
        None => Netmask::host(key.family()),
    };
    if persistent > 0 {
        svc = svc.with_persistence(persistent, netmask);
    } else if p.str("netmask").is_some() {
        return Err(Error::configured("netmask applies to persistent services only; set persistent"));
    }
    for word in p.str("flags").unwrap_or_default().split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let flag = match word {
            "ops" | "one-packet" => ServiceFlags::ONE_PACKET,
            other => ServiceFlags::parse_sched_flags(other, scheduler)?,
        };
        svc.flags.insert(flag);
    }
    if let Some(pe) = p.str("pe") {
        if persistent == 0 {
            return Err(Error::configured(format!("pe={pe} needs persistence; set persistent")));
        }
        svc.pe_name = Some(pe.to_string());
    }
    svc.validate()?;
    Ok(svc)
}

/// How the kernel's service differs from the wanted one, in words.
fn drift(want: &Service, have: &Service) -> Vec<String> {
    let mut d = Vec::new();
    if want.scheduler != have.scheduler {
        d.push(format!("scheduler is {}, expected {}", have.scheduler, want.scheduler));
    }
    let (wf, hf) = (want.flags.without(ServiceFlags::HASHED), have.flags.without(ServiceFlags::HASHED));
    if wf != hf {
        d.push(format!("flags are {:#x}, expected {:#x}", hf.bits(), wf.bits()));
    }
    if want.is_persistent() && (want.timeout != have.timeout || want.netmask != have.netmask) {
        d.push(format!(
            "persistence is {}s/{}, expected {}s/{}",
            have.timeout, have.netmask, want.timeout, want.netmask
        ));
    }
    if want.pe_name != have.pe_name {
        d.push(format!("persistence engine is {:?}, expected {:?}", have.pe_name, want.pe_name));
    }
    d
}

fn start(want: &Service, p: &Params, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    let ipvs = kernel.connect()?;
    set_timeouts(&*ipvs, p)?;
    // Before the kernel has it, so a start cut short still leaves stop a
    // record to work from.
    instance.save_record(&RecordedService::from(&want.key));
    match ipvs.service(&want.key) {
        Ok(have) => {
            let d = drift(want, &have);
            if d.is_empty() {
                tracing::info!("{} is already configured", want.key);
            } else {
                ipvs.edit_service(want)?;
                tracing::info!("adopted existing {}: {}", want.key, d.join("; "));
            }
        }
        Err(e) if e.is_not_found() => {
            ipvs.add_service(want)?;
            tracing::info!("added {} ({})", want.key, want.scheduler);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Outcome::Running)
}

/// Edits the service in place; its real servers stay. A new family for a
/// fwmark service is a new service: the old one goes, with its reals, and
/// the new one comes. Pacemaker reloads only running resources, so an
/// absent service is left absent. Table-wide timeouts apply here too.
fn reload(want: &Service, p: &Params, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    if !kernel.loaded() {
        return Ok(Outcome::NotRunning);
    }
    let ipvs = kernel.connect()?;
    if let Some(old) = recorded(instance).filter(|k| *k != want.key) {
        match ipvs.service(&old) {
            Ok(_) => {
                delete(&*ipvs, &old)?;
                tracing::info!("reload replaces {old} with {}", want.key);
                return start(want, p, instance, kernel);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    set_timeouts(&*ipvs, p)?;
    match ipvs.service(&want.key) {
        Ok(have) if drift(want, &have).is_empty() => Ok(Outcome::Running),
        Ok(have) => {
            ipvs.edit_service(want)?;
            tracing::info!("reloaded {}: was {}", want.key, drift(want, &have).join("; "));
            Ok(Outcome::Running)
        }
        Err(e) if e.is_not_found() => {
            tracing::info!("{} is not running; nothing to reload", want.key);
            Ok(Outcome::NotRunning)
        }
        Err(e) => Err(e.into()),
    }
}

fn set_timeouts(ipvs: &dyn Ipvs, p: &Params) -> Result<()> {
    let (tcp, fin, udp): (Option<u32>, Option<u32>, Option<u32>) =
        (p.num("tcp_timeout")?, p.num("tcpfin_timeout")?, p.num("udp_timeout")?);
    if tcp.is_none() && fin.is_none() && udp.is_none() {
        return Ok(());
    }
    // 0 leaves a timeout unchanged in the kernel's SET_CONFIG.
    let t = Timeouts { tcp: tcp.unwrap_or(0), tcp_fin: fin.unwrap_or(0), udp: udp.unwrap_or(0) };
    Ok(ipvs.set_timeouts(&t)?)
}

fn delete(ipvs: &dyn Ipvs, key: &ServiceKey) -> Result<()> {
    match ipvs.delete_service(key) {
        Ok(()) => tracing::info!("deleted {key}"),
        Err(e) if e.is_not_found() => tracing::info!("{key} is not configured"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Deletes the recorded service and the one the parameters name.
fn stop(key: Option<ServiceKey>, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    if !kernel.loaded() {
        instance.forget_record();
        return Ok(Outcome::NotRunning);
    }
    let mut keys: Vec<ServiceKey> = recorded(instance).into_iter().collect();
    if let Some(k) = key.filter(|k| !keys.contains(k)) {
        keys.push(k);
    }
    if keys.is_empty() {
        tracing::info!("service does not parse and nothing was recorded: nothing of ours can be up");
        return Ok(Outcome::NotRunning);
    }
    let ipvs = kernel.connect()?;
    for k in &keys {
        delete(&*ipvs, k)?;
    }
    instance.forget_record();
    Ok(Outcome::NotRunning)
}

fn monitor(want: &Service, ctx: &Context, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    if !kernel.loaded() {
        return Ok(Outcome::NotRunning);
    }
    let ipvs = kernel.connect()?;
    let have = match ipvs.service(&want.key) {
        Ok(have) => have,
        Err(e) if e.is_not_found() => {
            // Ours under another key (family edited without a reload):
            // up, so never "not running".
            if let Some(old) = recorded(instance).filter(|k| *k != want.key) {
                if ipvs.service(&old).is_ok() {
                    return Err(Error::generic(format!(
                        "{old} (created by this resource) is configured, but the parameters name {}",
                        want.key
                    )));
                }
            }
            return Ok(Outcome::NotRunning);
        }
        Err(e) => return Err(e.into()),
    };
    let mut have = have;
    if have.scheduler == "rr" && crate::swap::swapped_out(&want.key).as_deref() == Some(want.scheduler.as_str()) {
        tracing::info!("{} runs under rr while a realservers stop removes many reals", want.key);
        // The swap cleared the scheduler's own flags; the others still count.
        have.scheduler = want.scheduler.clone();
        have.flags.insert(ServiceFlags::from_bits_retain(want.flags.bits() & ServiceFlags::SCHED_MASK.bits()));
    }
    let d = drift(want, &have);
    if !d.is_empty() {
        return Err(Error::generic(format!("{} has drifted: {}", want.key, d.join("; "))));
    }
    if ctx.check_level >= 10 {
        let dests = ipvs.destinations(&want.key)?;
        let weights: Vec<String> = dests.iter().map(|d| format!("{} w{}", d.endpoint(), d.weight)).collect();
        tracing::info!("{}: {} real servers: {}", want.key, dests.len(), weights.join(", "));
    }
    Ok(Outcome::Running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_ipvs::Family;

    fn svc(pairs: &[(&str, &str)]) -> Result<Service> {
        let p = Params::from_pairs(&SPEC, pairs)?;
        desired(&p)
    }

    #[test]
    fn parameters_build_the_service() {
        let s = svc(&[("service", "tcp:10.0.0.100:80"), ("scheduler", "wrr"), ("persistent", "600")]).unwrap();
        assert_eq!(s.key.to_string(), "tcp:10.0.0.100:80");
        assert_eq!(s.scheduler, "wrr");
        assert!(s.is_persistent());
        assert_eq!(s.timeout, 600);
        let s = svc(&[("service", "fwmark:100"), ("family", "inet6")]).unwrap();
        assert_eq!(s.key.family(), Family::Inet6);
        assert_eq!(s.scheduler, "wlc");
        let s = svc(&[("service", "udp:[2001:db8::1]:53")]).unwrap();
        assert_eq!(s.key.family(), Family::Inet6);
        let s = svc(&[("service", "tcp:10.0.0.1:80"), ("scheduler", "sh"), ("flags", "sh-fallback,sh-port")]).unwrap();
        assert!(s.flags.contains(ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT));
        let s = svc(&[("service", "udp:10.0.0.1:53"), ("flags", "ops")]).unwrap();
        assert!(s.flags.contains(ServiceFlags::ONE_PACKET));
    }

    #[test]
    fn nonsense_is_a_configuration_error() {
        for pairs in [
            vec![("service", "tcp:10.0.0.1")],
            vec![("service", "icmp:10.0.0.1:80")],
            vec![("service", "tcp:10.0.0.1:80"), ("scheduler", "fastest")],
            vec![("service", "tcp:10.0.0.1:80"), ("flags", "sh-port")],
            vec![("service", "tcp:10.0.0.1:80"), ("netmask", "24")],
            vec![("service", "tcp:10.0.0.1:80"), ("pe", "sip")],
            vec![("service", "tcp:10.0.0.1:80"), ("family", "inet6")],
        ] {
            match svc(&pairs) {
                Err(Error::Configured(_)) => {}
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn drift_names_each_difference() {
        let want = svc(&[("service", "tcp:10.0.0.1:80"), ("scheduler", "wrr"), ("persistent", "60")]).unwrap();
        let mut have = want.clone();
        assert!(drift(&want, &have).is_empty());
        have.flags.insert(ServiceFlags::HASHED);
        assert!(drift(&want, &have).is_empty(), "the kernel's hashed bit is not drift");
        have.scheduler = "rr".into();
        have.timeout = 300;
        let d = drift(&want, &have);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("scheduler is rr, expected wrr"));
        assert!(d[1].contains("persistence is 300s"));
    }

    #[test]
    fn heartbeat_form() {
        let a: Vec<String> = ["tcp:10.0.0.100:80", "wrr", "600"].iter().map(|s| s.to_string()).collect();
        let p = positional(&a).unwrap();
        assert_eq!(p[1], ("scheduler", "wrr".to_string()));
        assert_eq!(p[2], ("persistent", "600".to_string()));
    }
}
