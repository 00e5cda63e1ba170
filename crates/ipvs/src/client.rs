//! The IPVS commands over generic netlink: one socket (see [`genl`](crate::genl)),
//! the family id resolved once, every request acknowledged.

use std::net::SocketAddr;

use neli::consts::nl::NlmF;

use super::api::Ipvs;
use super::genl::{GenlSocket, Request};
use super::key::ServiceKey;
use super::model::{Destination, Info, Service, SyncDaemon, SyncState, Timeouts};
use super::wire::{self, Attr, AttrMap, Part};
use crate::error::{Error, Result};

pub struct IpvsClient {
    genl: GenlSocket,
    family: u16,
}

impl IpvsClient {
    /// Opens the socket and resolves the "IPVS" family. A kernel without
    /// it (module not loaded) is [`Error::Unavailable`]; loading the
    /// module is the caller's choice (see [`Connector`](crate::Connector)).
    pub fn connect() -> Result<IpvsClient> {
        let genl = GenlSocket::connect()?;
        let family = match genl.family(wire::IPVS_GENL_NAME) {
            Ok(id) => id,
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                return Err(Error::Unavailable(format!(
                    "IPVS is not available: the kernel has no generic netlink family {} (module ip_vs)",
                    wire::IPVS_GENL_NAME
                )))
            }
            Err(e) => return Err(e),
        };
        Ok(IpvsClient { genl, family })
    }

    fn req(&self, cmd: u8, flags: NlmF) -> Request {
        Request { family: self.family, cmd, version: wire::IPVS_GENL_VERSION, flags }
    }

    /// Deletes `endpoints` from `key`'s service in batches (see
    /// [`GenlSocket::batched`]).
    fn delete_in_batches(
        &self,
        key: &ServiceKey,
        endpoints: &[SocketAddr],
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<i32>> {
        let mut requests = endpoints.iter().map(|ep| {
            let dest = Destination::new(ep.ip(), ep.port(), super::ForwardMethod::Masq);
            Ok(vec![wire::service_key_attr(key)?, wire::dest_attr(&dest, Part::Key)?])
        });
        let context = format!("deleting destinations of {key}");
        self.genl.batched(self.req(wire::IPVS_CMD_DEL_DEST, NlmF::ACK), &mut requests, &context, after_each)
    }

    fn ipvs(&self, cmd: u8, flags: NlmF, attrs: Vec<Attr>, context: &str) -> Result<Vec<AttrMap>> {
        self.genl.exchange(self.req(cmd, flags), attrs, context)
    }

    fn command(&self, cmd: u8, attrs: Vec<Attr>, context: &str) -> Result<()> {
        self.ipvs(cmd, NlmF::ACK, attrs, context).map(|_| ())
    }

    fn dest_command(&self, cmd: u8, key: &ServiceKey, dest: &Destination, part: Part, verb: &str) -> Result<()> {
        let ep = super::key::fmt_addr_port(&dest.addr, dest.port);
        let mut context = format!("{verb} destination {ep} of {key}");
        // The kernel's bare EINVAL on a new destination nearly always means
        // its address type check failed: not unicast (multicast, broadcast),
        // or a network namespace with no addresses, hence no local table.
        let hint = cmd == wire::IPVS_CMD_NEW_DEST;
        let attrs = vec![wire::service_key_attr(key)?, wire::dest_attr(dest, part)?];
        self.command(cmd, attrs, &context).map_err(|e| match e {
            Error::Kernel { errno: libc::EINVAL, .. } if hint => {
                context.push_str(
                    " (the kernel takes only unicast destination addresses, and none in a \
                     network namespace without addresses)",
                );
                Error::Kernel { context, errno: libc::EINVAL }
            }
            other => other,
        })
    }
}

impl Ipvs for IpvsClient {
    /// IPVS version and connection-table size.
    fn info(&self) -> Result<Info> {
        let replies = self.ipvs(wire::IPVS_CMD_GET_INFO, NlmF::ACK, vec![], "reading IPVS info")?;
        let first = replies.first().ok_or_else(|| Error::decode("the kernel sent no IPVS info"))?;
        wire::decode_info(first)
    }

    fn services(&self) -> Result<Vec<Service>> {
        let replies = self.ipvs(wire::IPVS_CMD_GET_SERVICE, NlmF::DUMP, vec![], "listing virtual services")?;
        replies.iter().map(|r| wire::decode_service(&r.nested(wire::IPVS_CMD_ATTR_SERVICE, "service")?)).collect()
    }

    /// One service; a missing one is an error that [`Error::is_not_found`].
    fn service(&self, key: &ServiceKey) -> Result<Service> {
        let context = format!("reading virtual service {key}");
        let replies = self.ipvs(wire::IPVS_CMD_GET_SERVICE, NlmF::ACK, vec![wire::service_key_attr(key)?], &context)?;
        let first = replies.first().ok_or_else(|| Error::decode(format!("{context}: the kernel sent nothing")))?;
        wire::decode_service(&first.nested(wire::IPVS_CMD_ATTR_SERVICE, "service")?)
    }

    fn add_service(&self, svc: &Service) -> Result<()> {
        svc.validate()?;
        let context = format!("adding virtual service {}", svc.key);
        self.command(wire::IPVS_CMD_NEW_SERVICE, vec![wire::service_attr(svc, Part::Full)?], &context)
            .map_err(|e| module_missing(e, svc))
    }

    /// Replaces scheduler, flags, persistence and engine of an existing
    /// service.
    fn edit_service(&self, svc: &Service) -> Result<()> {
        svc.validate()?;
        let context = format!("changing virtual service {}", svc.key);
        self.command(wire::IPVS_CMD_SET_SERVICE, vec![wire::service_attr(svc, Part::Full)?], &context)
            .map_err(|e| module_missing(e, svc))
    }

    /// Deletes the service and all its destinations.
    fn delete_service(&self, key: &ServiceKey) -> Result<()> {
        self.command(
            wire::IPVS_CMD_DEL_SERVICE,
            vec![wire::service_key_attr(key)?],
            &format!("deleting virtual service {key}"),
        )
    }

    /// [`destinations`](Self::destinations), calling `after_each` after
    /// every destination read (a dump of tens of thousands takes seconds).
    fn destinations_with(&self, key: &ServiceKey, after_each: &mut dyn FnMut()) -> Result<Vec<Destination>> {
        let context = format!("listing destinations of {key}");
        let attrs = vec![wire::service_key_attr(key)?];
        let seq = self.genl.send(self.req(wire::IPVS_CMD_GET_DEST, NlmF::DUMP), attrs, &context)?;
        // Decoded as they come: only the destinations are kept.
        let mut out = Vec::new();
        self.genl.replies(seq, NlmF::DUMP, &context, &mut |r| {
            out.push(wire::decode_dest(&r.nested(wire::IPVS_CMD_ATTR_DEST, "destination")?, key.family())?);
            after_each();
            Ok(())
        })?;
        Ok(out)
    }

    fn add_destination(&self, key: &ServiceKey, dest: &Destination) -> Result<()> {
        dest.validate(key)?;
        self.dest_command(wire::IPVS_CMD_NEW_DEST, key, dest, Part::Full, "adding")
    }

    fn edit_destination(&self, key: &ServiceKey, dest: &Destination) -> Result<()> {
        dest.validate(key)?;
        self.dest_command(wire::IPVS_CMD_SET_DEST, key, dest, Part::Full, "changing")
    }

    fn delete_destination(&self, key: &ServiceKey, endpoint: SocketAddr) -> Result<()> {
        let dest = Destination::new(endpoint.ip(), endpoint.port(), super::ForwardMethod::Masq);
        self.dest_command(wire::IPVS_CMD_DEL_DEST, key, &dest, Part::Key, "deleting")
    }

    /// Deletes every service (`ipvsadm -C`).
    fn delete_destinations(
        &self,
        key: &ServiceKey,
        endpoints: &[SocketAddr],
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<i32>> {
        self.delete_in_batches(key, endpoints, after_each)
    }

    fn flush(&self) -> Result<()> {
        self.command(wire::IPVS_CMD_FLUSH, vec![], "flushing the IPVS table")
    }

    /// Zeroes the counters of one service, or of all (`ipvsadm -Z`).
    fn zero(&self, key: Option<&ServiceKey>) -> Result<()> {
        match key {
            Some(k) => self.command(
                wire::IPVS_CMD_ZERO,
                vec![wire::service_key_attr(k)?],
                &format!("zeroing the counters of {k}"),
            ),
            None => self.command(wire::IPVS_CMD_ZERO, vec![], "zeroing the IPVS counters"),
        }
    }

    fn timeouts(&self) -> Result<Timeouts> {
        let replies = self.ipvs(wire::IPVS_CMD_GET_CONFIG, NlmF::ACK, vec![], "reading IPVS timeouts")?;
        let first = replies.first().ok_or_else(|| Error::decode("the kernel sent no IPVS timeouts"))?;
        wire::decode_timeouts(first)
    }

    /// Sets the non-zero timeouts of `t`, leaving the others as they are.
    fn set_timeouts(&self, t: &Timeouts) -> Result<()> {
        self.command(wire::IPVS_CMD_SET_CONFIG, wire::timeout_attrs(t)?, "setting IPVS timeouts")
    }

    fn start_daemon(&self, d: &SyncDaemon) -> Result<()> {
        d.validate()?;
        self.command(
            wire::IPVS_CMD_NEW_DAEMON,
            vec![wire::daemon_attr(d)?],
            &format!("starting the {} sync daemon on {}", d.state, d.mcast_ifn),
        )
    }

    fn stop_daemon(&self, state: SyncState) -> Result<()> {
        self.command(
            wire::IPVS_CMD_DEL_DAEMON,
            vec![wire::daemon_state_attr(state)?],
            &format!("stopping the {state} sync daemon"),
        )
    }

    fn daemons(&self) -> Result<Vec<SyncDaemon>> {
        let replies = self.ipvs(wire::IPVS_CMD_GET_DAEMON, NlmF::DUMP, vec![], "listing sync daemons")?;
        replies.iter().map(|r| wire::decode_daemon(&r.nested(wire::IPVS_CMD_ATTR_DAEMON, "sync daemon")?)).collect()
    }
}

/// ENOENT on a new or changed service means the scheduler's or persistence
/// engine's module could not be loaded.
pub(crate) fn module_missing(e: Error, svc: &Service) -> Error {
    if matches!(e, Error::NotFound { errno: libc::ENOENT, .. }) {
        let pe = match &svc.pe_name {
            Some(pe) => format!(" or persistence engine '{pe}' (ip_vs_pe_{pe})"),
            None => String::new(),
        };
        Error::Unavailable(format!(
            "{e}: the kernel has no scheduler '{}' (module ip_vs_{}){pe}",
            svc.scheduler, svc.scheduler
        ))
    } else {
        e
    }
}
