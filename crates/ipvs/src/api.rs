//! What the agents ask of IPVS, as a trait: the kernel client
//! ([`IpvsClient`](crate::IpvsClient)) and the in-memory table
//! ([`FakeIpvs`](crate::FakeIpvs)) both answer it, so agent scenarios run as
//! host tests and the lab proves the kernel contract once (the fake and the
//! kernel answer the same script alike: `lab_ipvs`).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::error::{Error, Result};
use crate::key::ServiceKey;
use crate::model::{Destination, Info, Service, SyncDaemon, SyncState, Timeouts};
use crate::reconcile::{reconcile, DestOp};
use crate::table::{Table, TableEntry};

/// The IPVS commands. Errors are the kernel's: [`Error::Exists`] (EEXIST),
/// [`Error::NotFound`] (ESRCH for services and sync daemons, ENOENT for
/// destinations), other errnos as [`Error::Kernel`].
pub trait Ipvs {
    /// IPVS version and connection-table size.
    fn info(&self) -> Result<Info>;
    fn services(&self) -> Result<Vec<Service>>;
    /// One service; a missing one is an error that [`Error::is_not_found`].
    fn service(&self, key: &ServiceKey) -> Result<Service>;
    fn add_service(&self, svc: &Service) -> Result<()>;
    /// Replaces scheduler, flags, persistence and engine of an existing
    /// service.
    fn edit_service(&self, svc: &Service) -> Result<()>;
    /// Deletes the service and all its destinations.
    fn delete_service(&self, key: &ServiceKey) -> Result<()>;
    /// The destinations of `key` (empty when the service does not exist:
    /// the kernel's dump does not say which), calling `after_each` after
    /// every destination read (a dump of tens of thousands takes seconds).
    fn destinations_with(&self, key: &ServiceKey, after_each: &mut dyn FnMut()) -> Result<Vec<Destination>>;
    fn add_destination(&self, key: &ServiceKey, dest: &Destination) -> Result<()>;
    fn edit_destination(&self, key: &ServiceKey, dest: &Destination) -> Result<()>;
    fn delete_destination(&self, key: &ServiceKey, endpoint: SocketAddr) -> Result<()>;
    /// Deletes `endpoints` from `key`'s service; returns each endpoint's
    /// errno in order, 0 when deleted (ENOENT when it was not there, ESRCH
    /// when the service was not); calls `after_each` now and then.
    fn delete_destinations(
        &self,
        key: &ServiceKey,
        endpoints: &[SocketAddr],
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<i32>>;
    /// Deletes every service (`ipvsadm -C`).
    fn flush(&self) -> Result<()>;
    /// Zeroes the counters of one service, or of all (`ipvsadm -Z`).
    fn zero(&self, key: Option<&ServiceKey>) -> Result<()>;
    fn timeouts(&self) -> Result<Timeouts>;
    /// Sets the non-zero timeouts of `t`, leaving the others as they are.
    fn set_timeouts(&self, t: &Timeouts) -> Result<()>;
    fn start_daemon(&self, d: &SyncDaemon) -> Result<()>;
    fn stop_daemon(&self, state: SyncState) -> Result<()>;
    fn daemons(&self) -> Result<Vec<SyncDaemon>>;

    /// The destinations of `key`; empty when the service does not exist.
    fn destinations(&self, key: &ServiceKey) -> Result<Vec<Destination>> {
        self.destinations_with(key, &mut || {})
    }

    /// The whole table, sorted as `ipvsadm -Ln` prints it.
    fn table(&self) -> Result<Table> {
        let info = self.info()?;
        let mut entries = Vec::new();
        for service in self.services()? {
            let destinations = self.destinations(&service.key)?;
            entries.push(TableEntry { service, destinations });
        }
        Ok(Table::new(info, entries))
    }

    /// Applies operations from [`reconcile`] in order.
    fn apply(&self, key: &ServiceKey, ops: &[DestOp]) -> Result<()> {
        for op in ops {
            match op {
                DestOp::Add(d) => self.add_destination(key, d)?,
                DestOp::Edit(d) => self.edit_destination(key, d)?,
                DestOp::Delete(ep) => self.delete_destination(key, *ep)?,
            }
        }
        Ok(())
    }

    /// Makes the destinations of `key` that the caller owns equal `desired`,
    /// leaving all others alone; returns what it changed. A destination
    /// that vanished meanwhile counts as deleted.
    fn reconcile_destinations(
        &self,
        key: &ServiceKey,
        owned: &BTreeSet<SocketAddr>,
        desired: &[Destination],
    ) -> Result<Vec<DestOp>> {
        self.reconcile_destinations_with(key, owned, desired, &mut || {})
    }

    /// [`reconcile_destinations`](Self::reconcile_destinations), calling
    /// `after_each` after every destination read and kernel write: filling
    /// a large table takes minutes (each addition walks the service's list,
    /// and under wrr recomputes the scheduler's weights over it), and a
    /// daemon shows it is alive meanwhile.
    fn reconcile_destinations_with(
        &self,
        key: &ServiceKey,
        owned: &BTreeSet<SocketAddr>,
        desired: &[Destination],
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<DestOp>> {
        let current = self.destinations_with(key, after_each)?;
        let ops = reconcile(&current, owned, desired)?;
        let mut deletes = Vec::new();
        for op in &ops {
            match op {
                // Deletions come last (see reconcile): all in batches.
                DestOp::Delete(ep) => deletes.push(*ep),
                other => self.apply(key, std::slice::from_ref(other))?,
            }
            after_each();
        }
        let errnos = self.delete_destinations(key, &deletes, after_each)?;
        for (ep, errno) in deletes.iter().zip(errnos) {
            let e = Error::kernel(format!("deleting destination {ep} of {key}"), errno);
            if errno != 0 && !e.is_not_found() {
                return Err(e);
            }
        }
        Ok(ops)
    }
}

/// Where an agent's IPVS commands go: the kernel, or in tests a
/// [`FakeIpvs`](crate::FakeIpvs) table.
#[derive(Clone, Default)]
pub enum Connector {
    #[default]
    Kernel,
    Fake(crate::FakeIpvs),
}

impl Connector {
    /// A connection: a netlink socket (loading `ip_vs` once if the kernel
    /// has no IPVS yet, as an agent's start should), or a handle on the
    /// fake table.
    pub fn connect(&self) -> Result<Box<dyn Ipvs>> {
        match self {
            Connector::Kernel => match crate::IpvsClient::connect() {
                Err(Error::Unavailable(first)) => {
                    let loaded = modprobe_ip_vs();
                    match crate::IpvsClient::connect() {
                        Ok(c) => Ok(Box::new(c)),
                        Err(Error::Unavailable(_)) => Err(Error::Unavailable(match loaded {
                            Err(m) => format!("{first}, and {m}"),
                            Ok(()) => first,
                        })),
                        Err(e) => Err(e),
                    }
                }
                other => Ok(Box::new(other?)),
            },
            Connector::Fake(f) => Ok(Box::new(f.clone())),
        }
    }

    /// Whether IPVS is in the kernel (its module loaded) at all: when not,
    /// nothing of ours can be in it.
    pub fn loaded(&self) -> bool {
        match self {
            Connector::Kernel => crate::loaded(),
            Connector::Fake(_) => true,
        }
    }
}

/// One attempt, no shell: the kernel may have IPVS as a module not yet
/// loaded.
fn modprobe_ip_vs() -> std::result::Result<(), String> {
    match std::process::Command::new("modprobe").arg("ip_vs").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            Err(format!("modprobe ip_vs failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
        Err(e) => Err(format!("cannot run modprobe ip_vs: {e}")),
    }
}
