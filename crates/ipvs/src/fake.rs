//! An in-memory IPVS table that answers as the kernel does (Linux 6.1's
//! `ip_vs_ctl.c`): EEXIST for a service, destination or sync daemon that
//! is already there, ESRCH for a missing service or sync daemon, ENOENT
//! for a missing destination, an empty listing for the destinations of a
//! missing service, newest destination first, the sync daemons' defaults
//! filled in. `lab_ipvs` runs one script against this and the kernel and
//! compares every answer and the table after each step.
//!
//! Not modelled: connections and traffic (counters stay zero), the
//! destination trash (a deleted destination with connections the kernel
//! keeps for a while), schedulers' own state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::Ipvs;
use crate::client::module_missing;
use crate::error::{Error, Result};
use crate::key::{fmt_addr_port, ServiceKey};
use crate::model::{Destination, Info, Service, ServiceFlags, Stats, SyncDaemon, SyncState, Timeouts, SCHEDULERS};

/// A table shared by every clone (as every socket sees the one kernel
/// table): an agent may connect many times, a test holds one clone to look
/// and to change the table behind the agent's back.
#[derive(Clone, Default)]
pub struct FakeIpvs {
    state: Arc<Mutex<State>>,
}

struct State {
    /// In creation order; each service's destinations newest first, as the
    /// kernel lists them (it adds at the head of the list).
    services: Vec<(Service, Vec<Destination>)>,
    timeouts: Timeouts,
    daemons: Vec<SyncDaemon>,
    /// Interfaces a sync daemon may use, with their MTU.
    links: Vec<(String, u32)>,
    /// Every command (not listing) fails with this errno while set.
    failing: Option<i32>,
    /// Commands that changed the table, for tests that count kernel work.
    writes: usize,
}

impl Default for State {
    fn default() -> State {
        State {
            services: Vec::new(),
            // The kernel's defaults: 15 min, 2 min, 5 min.
            timeouts: Timeouts { tcp: 900, tcp_fin: 120, udp: 300 },
            daemons: Vec::new(),
            links: vec![("lo".into(), 65536)],
            failing: None,
            writes: 0,
        }
    }
}

/// `IP_VS_SYNC_PORT`, `IP_VS_SYNC_GROUP`.
const SYNC_PORT: u16 = 8848;
const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);

impl FakeIpvs {
    pub fn new() -> FakeIpvs {
        FakeIpvs::default()
    }

    /// Lets sync daemons use interface `name` (only "lo" is known at first).
    pub fn add_link(&self, name: &str, mtu: u32) {
        self.lock().links.push((name.into(), mtu));
    }

    /// Makes every command fail with `errno` (None: answer normally again),
    /// as a kernel that runs out of memory or a module that fails would.
    pub fn fail_with(&self, errno: Option<i32>) {
        self.lock().failing = errno;
    }

    /// How many commands changed the table so far.
    pub fn writes(&self) -> usize {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left a whole table.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, for a command: the injected failure first.
    fn command(&self, context: &str) -> Result<MutexGuard<'_, State>> {
        let mut s = self.lock();
        if let Some(errno) = s.failing {
            return Err(Error::kernel(context, errno));
        }
        s.writes += 1;
        Ok(s)
    }
}

impl State {
    fn find(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|(s, _)| s.key == *key)
    }

    fn service_mut(&mut self, key: &ServiceKey, context: &str) -> Result<&mut (Service, Vec<Destination>)> {
        match self.find(key) {
            Some(i) => Ok(&mut self.services[i]),
            None => Err(Error::kernel(context, libc::ESRCH)),
        }
    }
}

/// As the kernel stores and lists a service: HASHED is the kernel's own
/// bit, counters start at zero.
fn stored_service(svc: &Service) -> Service {
    let mut s = svc.clone();
    s.flags = s.flags.without(ServiceFlags::HASHED);
    s.stats = Some(Stats::default());
    s
}

fn stored_destination(dest: &Destination) -> Destination {
    let mut d = dest.clone();
    d.active_conns = 0;
    d.inactive_conns = 0;
    d.persist_conns = 0;
    d.stats = Some(Stats::default());
    d
}

/// The kernel loads `ip_vs_<scheduler>` (and `ip_vs_pe_<engine>`) on demand;
/// a name it has no module for is ENOENT.
fn check_modules(svc: &Service, context: &str) -> Result<()> {
    let known_pe = svc.pe_name.as_deref().is_none_or(|pe| pe == "sip");
    if !SCHEDULERS.contains(&svc.scheduler.as_str()) || !known_pe {
        return Err(module_missing(Error::kernel(context, libc::ENOENT), svc));
    }
    Ok(())
}

/// What the kernel refuses of a destination that our own validation lets
/// through.
fn check_destination(dest: &Destination, context: &str) -> Result<()> {
    if dest.lower_threshold > dest.upper_threshold && dest.upper_threshold != 0 {
        return Err(Error::kernel(context, libc::ERANGE));
    }
    Ok(())
}

fn dest_context(verb: &str, key: &ServiceKey, addr: &IpAddr, port: u16) -> String {
    format!("{verb} destination {} of {key}", fmt_addr_port(addr, port))
}

impl Ipvs for FakeIpvs {
    fn info(&self) -> Result<Info> {
        Ok(Info { version: 0x010201, conn_tab_size: 4096 })
    }

    fn services(&self) -> Result<Vec<Service>> {
        Ok(self.lock().services.iter().map(|(s, _)| s.clone()).collect())
    }

    fn service(&self, key: &ServiceKey) -> Result<Service> {
        let s = self.lock();
        match s.find(key) {
            Some(i) => Ok(s.services[i].0.clone()),
            None => Err(Error::kernel(format!("reading virtual service {key}"), libc::ESRCH)),
        }
    }

    fn add_service(&self, svc: &Service) -> Result<()> {
        svc.validate()?;
        let context = format!("adding virtual service {}", svc.key);
        let mut s = self.command(&context)?;
        if s.find(&svc.key).is_some() {
            return Err(Error::kernel(context, libc::EEXIST));
        }
        check_modules(svc, &context)?;
        s.services.push((stored_service(svc), Vec::new()));
        Ok(())
    }

    fn edit_service(&self, svc: &Service) -> Result<()> {
        svc.validate()?;
        let context = format!("changing virtual service {}", svc.key);
        let mut s = self.command(&context)?;
        let entry = s.service_mut(&svc.key, &context)?;
        check_modules(svc, &context)?;
        let stats = entry.0.stats;
        entry.0 = stored_service(svc);
        entry.0.stats = stats;
        Ok(())
    }

    fn delete_service(&self, key: &ServiceKey) -> Result<()> {
        let context = format!("deleting virtual service {key}");
        let mut s = self.command(&context)?;
        match s.find(key) {
            Some(i) => {
                s.services.remove(i);
                Ok(())
            }
            None => Err(Error::kernel(context, libc::ESRCH)),
        }
    }

    fn destinations_with(&self, key: &ServiceKey, after_each: &mut dyn FnMut()) -> Result<Vec<Destination>> {
        let dests = {
            let s = self.lock();
            s.find(key).map(|i| s.services[i].1.clone()).unwrap_or_default()
        };
        for _ in &dests {
            after_each();
        }
        Ok(dests)
    }

    fn add_destination(&self, key: &ServiceKey, dest: &Destination) -> Result<()> {
        dest.validate(key)?;
        let context = dest_context("adding", key, &dest.addr, dest.port);
        let mut s = self.command(&context)?;
        let (_, dests) = s.service_mut(key, &context)?;
        check_destination(dest, &context)?;
        if dests.iter().any(|d| d.endpoint() == dest.endpoint()) {
            return Err(Error::kernel(context, libc::EEXIST));
        }
        dests.insert(0, stored_destination(dest));
        Ok(())
    }

    fn edit_destination(&self, key: &ServiceKey, dest: &Destination) -> Result<()> {
        dest.validate(key)?;
        let context = dest_context("changing", key, &dest.addr, dest.port);
        let mut s = self.command(&context)?;
        let (_, dests) = s.service_mut(key, &context)?;
        check_destination(dest, &context)?;
        match dests.iter_mut().find(|d| d.endpoint() == dest.endpoint()) {
            Some(d) => {
                let (stats, active, inactive, persist) = (d.stats, d.active_conns, d.inactive_conns, d.persist_conns);
                *d = dest.clone();
                (d.stats, d.active_conns, d.inactive_conns, d.persist_conns) = (stats, active, inactive, persist);
                Ok(())
            }
            None => Err(Error::kernel(context, libc::ENOENT)),
        }
    }

    fn delete_destination(&self, key: &ServiceKey, endpoint: SocketAddr) -> Result<()> {
        let context = dest_context("deleting", key, &endpoint.ip(), endpoint.port());
        let mut s = self.command(&context)?;
        let (_, dests) = s.service_mut(key, &context)?;
        let ep = SocketAddr::new(endpoint.ip(), endpoint.port());
        match dests.iter().position(|d| d.endpoint() == ep) {
            Some(i) => {
                dests.remove(i);
                Ok(())
            }
            None => Err(Error::kernel(context, libc::ENOENT)),
        }
    }

    fn delete_destinations(
        &self,
        key: &ServiceKey,
        endpoints: &[SocketAddr],
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<i32>> {
        let mut errnos = Vec::with_capacity(endpoints.len());
        for ep in endpoints {
            errnos.push(match self.delete_destination(key, *ep) {
                Ok(()) => 0,
                Err(e) => e.errno().unwrap_or(libc::EIO),
            });
        }
        if !endpoints.is_empty() {
            after_each();
        }
        Ok(errnos)
    }

    fn flush(&self) -> Result<()> {
        self.command("flushing the IPVS table")?.services.clear();
        Ok(())
    }

    fn zero(&self, key: Option<&ServiceKey>) -> Result<()> {
        let context = match key {
            Some(k) => format!("zeroing the counters of {k}"),
            None => "zeroing the IPVS counters".into(),
        };
        let mut s = self.command(&context)?;
        if let Some(k) = key {
            s.service_mut(k, &context)?;
        }
        // Counters are zero already: nothing here makes traffic.
        Ok(())
    }

    fn timeouts(&self) -> Result<Timeouts> {
        Ok(self.lock().timeouts)
    }

    fn set_timeouts(&self, t: &Timeouts) -> Result<()> {
        let mut s = self.command("setting IPVS timeouts")?;
        let have = &mut s.timeouts;
        for (have, want) in [(&mut have.tcp, t.tcp), (&mut have.tcp_fin, t.tcp_fin), (&mut have.udp, t.udp)] {
            if want != 0 {
                *have = want;
            }
        }
        Ok(())
    }

    fn start_daemon(&self, d: &SyncDaemon) -> Result<()> {
        d.validate()?;
        let context = format!("starting the {} sync daemon on {}", d.state, d.mcast_ifn);
        let mut s = self.command(&context)?;
        // The interface first, then whether one runs (lab_ipvs saw ENODEV
        // for a second master on a missing interface).
        let Some(&(_, link_mtu)) = s.links.iter().find(|(name, _)| *name == d.mcast_ifn) else {
            return Err(Error::kernel(context, libc::ENODEV));
        };
        if s.daemons.iter().any(|have| have.state == d.state) {
            return Err(Error::kernel(context, libc::EEXIST));
        }
        // start_sync_thread(): defaults, and the message size from the MTU
        // (a master's fixed at 1500, a backup's the link's within 1500-65535).
        let v6 = matches!(d.mcast_group, Some(IpAddr::V6(_)));
        let headers: u32 = if v6 { 40 + 8 } else { 20 + 8 };
        let (mtu, min) = match d.state {
            SyncState::Backup => (link_mtu.clamp(1500, 65535), 1024),
            SyncState::Master => (1500, 1),
        };
        let maxlen = match d.sync_maxlen {
            Some(n) if n != 0 => u32::from(n).clamp(min, 65535 - headers),
            _ => mtu - headers,
        };
        let mut stored = d.clone();
        stored.sync_maxlen = Some(u16::try_from(maxlen).unwrap_or(u16::MAX));
        stored.mcast_port = Some(d.mcast_port.filter(|p| *p != 0).unwrap_or(SYNC_PORT));
        stored.mcast_ttl = Some(d.mcast_ttl.filter(|t| *t != 0).unwrap_or(1));
        stored.mcast_group = Some(d.mcast_group.unwrap_or(IpAddr::V4(SYNC_GROUP)));
        s.daemons.push(stored);
        // Listed master first.
        s.daemons.sort_by_key(|d| d.state.raw());
        Ok(())
    }

    fn stop_daemon(&self, state: SyncState) -> Result<()> {
        let context = format!("stopping the {state} sync daemon");
        let mut s = self.command(&context)?;
        match s.daemons.iter().position(|d| d.state == state) {
            Some(i) => {
                s.daemons.remove(i);
                Ok(())
            }
            None => Err(Error::kernel(context, libc::ESRCH)),
        }
    }

    fn daemons(&self) -> Result<Vec<SyncDaemon>> {
        Ok(self.lock().daemons.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ForwardMethod;

    fn key(s: &str) -> ServiceKey {
        s.parse().expect("key")
    }

    #[test]
    fn answers_with_the_kernels_errnos() {
        let ipvs = FakeIpvs::new();
        let k = key("tcp:10.0.0.1:80");
        let d = Destination::new("10.0.1.1".parse().unwrap(), 80, ForwardMethod::Masq);
        assert_eq!(ipvs.add_destination(&k, &d).unwrap_err().errno(), Some(libc::ESRCH));
        ipvs.add_service(&Service::new(k, "wlc")).unwrap();
        assert!(ipvs.add_service(&Service::new(k, "rr")).unwrap_err().is_exists());
        ipvs.add_destination(&k, &d).unwrap();
        assert!(ipvs.add_destination(&k, &d).unwrap_err().is_exists());
        assert_eq!(
            ipvs.delete_destination(&k, "10.0.1.2:80".parse().unwrap()).unwrap_err().errno(),
            Some(libc::ENOENT)
        );
        assert_eq!(ipvs.delete_service(&key("tcp:10.0.0.2:80")).unwrap_err().errno(), Some(libc::ESRCH));
        assert!(ipvs.destinations(&key("tcp:10.0.0.2:80")).unwrap().is_empty());
        ipvs.delete_service(&k).unwrap();
        assert!(ipvs.table().unwrap().entries.is_empty());
    }

    #[test]
    fn lists_the_newest_destination_first_and_clones_share_the_table() {
        let ipvs = FakeIpvs::new();
        let other = ipvs.clone();
        let k = key("udp:10.0.0.1:53");
        ipvs.add_service(&Service::new(k, "rr")).unwrap();
        for last in 1..=3u8 {
            let d = Destination::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, last)), 53, ForwardMethod::Route);
            ipvs.add_destination(&k, &d).unwrap();
        }
        let order: Vec<String> = other.destinations(&k).unwrap().iter().map(|d| d.addr.to_string()).collect();
        assert_eq!(order, ["10.0.1.3", "10.0.1.2", "10.0.1.1"]);
    }

    #[test]
    fn an_injected_failure_fails_commands_not_listings() {
        let ipvs = FakeIpvs::new();
        ipvs.fail_with(Some(libc::ENOMEM));
        let e = ipvs.add_service(&Service::new(key("tcp:10.0.0.1:80"), "wlc")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOMEM));
        assert!(ipvs.services().unwrap().is_empty());
        ipvs.fail_with(None);
        ipvs.add_service(&Service::new(key("tcp:10.0.0.1:80"), "wlc")).unwrap();
    }

    #[test]
    fn sync_daemons_get_the_kernels_defaults() {
        let ipvs = FakeIpvs::new();
        ipvs.start_daemon(&SyncDaemon::new(SyncState::Backup, "lo", 7)).unwrap();
        ipvs.start_daemon(&SyncDaemon::new(SyncState::Master, "lo", 7)).unwrap();
        let listed = ipvs.daemons().unwrap();
        assert_eq!(listed[0].state, SyncState::Master);
        assert_eq!(listed[0].sync_maxlen, Some(1472));
        assert_eq!(listed[1].sync_maxlen, Some(65507));
        assert_eq!(listed[1].mcast_port, Some(8848));
        assert!(ipvs.start_daemon(&SyncDaemon::new(SyncState::Master, "lo", 7)).unwrap_err().is_exists());
        // The interface is looked at first, as the kernel does.
        let e = ipvs.start_daemon(&SyncDaemon::new(SyncState::Master, "eth9", 7)).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert_eq!(ipvs.stop_daemon(SyncState::Master).map_err(|e| e.errno()), Ok(()));
        assert_eq!(ipvs.stop_daemon(SyncState::Master).unwrap_err().errno(), Some(libc::ESRCH));
        assert_eq!(
            ipvs.start_daemon(&SyncDaemon::new(SyncState::Master, "eth9", 7)).unwrap_err().errno(),
            Some(libc::ENODEV)
        );
    }
}
