//! A synchronous client of the kernel's IPVS generic-netlink family: one
//! socket, the family id resolved once, every request acknowledged.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::process::Command;

use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF, Nlmsg};
use neli::consts::socket::NlFamily;
use neli::err::SocketError;
use neli::genl::{Genlmsghdr, GenlmsghdrBuilder};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::utils::Groups;

use super::api::Ipvs;
use super::key::ServiceKey;
use super::model::{Destination, Info, Service, SyncDaemon, SyncState, Timeouts};
use super::wire::{self, Attr, AttrMap, Attrs, Part};
use crate::error::{Error, Result};

type GenlMsg = Genlmsghdr<u8, u16>;

/// Requests per sendmsg in [`IpvsClient::delete_destinations`]: the kernel
/// queues an ack datagram for each, and all must fit the socket's receive
/// buffer (208 KiB by default; an ack takes about 1 KiB of it).
const BATCH: usize = 64;

pub struct IpvsClient {
    sock: NlSocketHandle,
    family: u16,
    seq: Cell<u32>,
}

impl IpvsClient {
    /// Opens the socket and resolves the "IPVS" family, loading `ip_vs`
    /// once if the family is missing.
    pub fn connect() -> Result<IpvsClient> {
        let sock = NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| socket_error("opening a generic netlink socket", e))?;
        let mut client = IpvsClient { sock, family: 0, seq: Cell::new(1) };
        client.family = match client.resolve_family() {
            Ok(id) => id,
            Err(first) if first.errno() == Some(libc::ENOENT) => {
                let loaded = modprobe_ip_vs();
                client.resolve_family().map_err(|e| {
                    if e.errno() != Some(libc::ENOENT) {
                        return e;
                    }
                    let why = match loaded {
                        Err(m) => format!("the kernel has no generic netlink family IPVS and {m}"),
                        Ok(()) => "the kernel has no generic netlink family IPVS".to_string(),
                    };
                    Error::Unavailable(format!("IPVS is not available: {why}"))
                })?
            }
            Err(e) => return Err(e),
        };
        Ok(client)
    }

    fn resolve_family(&self) -> Result<u16> {
        let name = wire::attr(CtrlAttr::FamilyName.into(), format!("{}\0", wire::IPVS_GENL_NAME).as_bytes())?;
        let replies = self.exchange(
            GenlId::Ctrl.into(),
            CtrlCmd::Getfamily.into(),
            2,
            NlmF::ACK,
            vec![name],
            "looking up the generic netlink family IPVS",
        )?;
        replies
            .iter()
            .find_map(|r| {
                let id = r.raw(CtrlAttr::FamilyId.into())?;
                Some(u16::from_ne_bytes([*id.first()?, *id.get(1)?]))
            })
            .ok_or_else(|| Error::decode("the kernel's family lookup reply has no IPVS id"))
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1).max(1));
        seq
    }

    /// Sends one request and collects the top-level attributes of every
    /// reply until the ACK (or, for a dump, NLMSG_DONE). Errors are checked
    /// here, including those that arrive inside a dump.
    fn exchange(
        &self,
        nl_type: u16,
        cmd: u8,
        version: u8,
        flags: NlmF,
        attrs: Vec<Attr>,
        context: &str,
    ) -> Result<Vec<AttrMap>> {
        let seq = self.send(nl_type, cmd, version, flags, attrs, context)?;
        let mut out = Vec::new();
        self.replies(seq, flags, context, &mut |reply| {
            out.push(reply);
            Ok(())
        })?;
        Ok(out)
    }

    /// Sends one request; returns its sequence number.
    fn send(&self, nl_type: u16, cmd: u8, version: u8, flags: NlmF, attrs: Vec<Attr>, context: &str) -> Result<u32> {
        let (seq, bytes) = self.request(nl_type, cmd, version, flags, attrs, context)?;
        self.send_bytes(&bytes, context)?;
        Ok(seq)
    }

    /// One request as bytes on the wire, and its sequence number.
    fn request(
        &self,
        nl_type: u16,
        cmd: u8,
        version: u8,
        flags: NlmF,
        attrs: Vec<Attr>,
        context: &str,
    ) -> Result<(u32, Vec<u8>)> {
        use neli::{Size, ToBytes};
        let genl = GenlmsghdrBuilder::<u8, u16>::default()
            .cmd(cmd)
            .version(version)
            .attrs(attrs.into_iter().collect::<Attrs>())
            .build()
            .map_err(|e| Error::decode(format!("{context}: building the request: {e}")))?;
        let seq = self.next_seq();
        let msg = NlmsghdrBuilder::default()
            .nl_type(nl_type)
            .nl_flags(flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_pid(self.sock.pid())
            .nl_payload(NlPayload::Payload(genl))
            .build()
            .map_err(|e| Error::decode(format!("{context}: building the request: {e}")))?;
        let mut bytes = io::Cursor::new(vec![0; msg.padded_size()]);
        msg.to_bytes(&mut bytes).map_err(|e| Error::decode(format!("{context}: building the request: {e}")))?;
        Ok((seq, bytes.into_inner()))
    }

    /// Sends requests, one or several back to back, in one sendmsg.
    fn send_bytes(&self, bytes: &[u8], context: &str) -> Result<()> {
        use std::os::fd::AsRawFd;
        loop {
            match nix::sys::socket::send(self.sock.as_raw_fd(), bytes, nix::sys::socket::MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io(format!("{context}: sending"), io::Error::from(e))),
            }
        }
    }

    /// Deletes `endpoints` from `key`'s service, [`BATCH`] requests per
    /// sendmsg, reading their acks into one small buffer: one round trip
    /// per destination (each also zeroing the netlink library's 32 KiB
    /// receive buffer) made removing 65,536 reals take seconds of user
    /// time. Returns each endpoint's errno in order, 0 when deleted;
    /// calls `after_each` after every batch.
    fn delete_in_batches(
        &self,
        key: &ServiceKey,
        endpoints: &[SocketAddr],
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<i32>> {
        let context = format!("deleting destinations of {key}");
        let mut errnos = Vec::with_capacity(endpoints.len());
        let mut acks = vec![0u8; 16 << 10];
        for chunk in endpoints.chunks(BATCH) {
            let mut bytes = Vec::with_capacity(chunk.len() * 64);
            let mut seqs = Vec::with_capacity(chunk.len());
            for ep in chunk {
                let dest = Destination::new(ep.ip(), ep.port(), super::ForwardMethod::Masq);
                let attrs = vec![wire::service_key_attr(key)?, wire::dest_attr(&dest, Part::Key)?];
                let (seq, b) = self.request(
                    self.family,
                    wire::IPVS_CMD_DEL_DEST,
                    wire::IPVS_GENL_VERSION,
                    NlmF::ACK,
                    attrs,
                    &context,
                )?;
                seqs.push(seq);
                bytes.extend_from_slice(&b);
            }
            self.send_bytes(&bytes, &context)?;
            let mut answered: Vec<Option<i32>> = vec![None; seqs.len()];
            let mut left = seqs.len();
            while left > 0 {
                let n = loop {
                    match nix::sys::socket::recv(
                        std::os::fd::AsRawFd::as_raw_fd(&self.sock),
                        &mut acks,
                        nix::sys::socket::MsgFlags::empty(),
                    ) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => break other.map_err(|e| Error::io(format!("{context}: reading acks"), e.into()))?,
                    }
                };
                for (seq, errno) in wire::acks(&acks[..n]) {
                    // Leftovers of an earlier request are not ours.
                    if let Some(i) = seqs.iter().position(|s| *s == seq) {
                        if answered[i].replace(errno).is_none() {
                            left -= 1;
                        }
                    }
                }
            }
            errnos.extend(answered.into_iter().map(|e| e.unwrap_or_default()));
            after_each();
        }
        Ok(errnos)
    }

    /// The replies to request `seq` (sent with `flags`), each handed to
    /// `each` as it comes rather than collected: a dump of 65,536
    /// destinations then never holds all its raw replies at once (about
    /// 40 MiB of them). After an error from `each` the rest is still read
    /// (and not handed on), then that first error returned: a dump left
    /// unread keeps the socket's dump running, and the kernel would answer
    /// the next dump on it with EBUSY instead.
    fn replies(&self, seq: u32, flags: NlmF, context: &str, each: &mut dyn FnMut(AttrMap) -> Result<()>) -> Result<()> {
        let mut first_error = None;
        let mut each = |reply: AttrMap| {
            if first_error.is_none() {
                first_error = each(reply).err();
            }
        };
        let done = self.read_replies(seq, flags, context, &mut each);
        match first_error {
            Some(e) => Err(e),
            None => done,
        }
    }

    fn read_replies(&self, seq: u32, flags: NlmF, context: &str, each: &mut dyn FnMut(AttrMap)) -> Result<()> {
        let dump = flags.contains(NlmF::DUMP);
        loop {
            let (iter, _) = loop {
                match self.sock.recv::<u16, GenlMsg>() {
                    Err(SocketError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other.map_err(|e| socket_error(context, e))?,
                }
            };
            for reply in iter {
                let reply = reply.map_err(|e| socket_error(context, e))?;
                // Leftovers of an earlier request that failed half-way.
                if *reply.nl_seq() != seq {
                    continue;
                }
                match reply.nl_payload() {
                    NlPayload::Ack(_) => return Ok(()),
                    NlPayload::Err(e) => return Err(Error::kernel(context, e.error().abs())),
                    NlPayload::DumpExtAck(e) => {
                        if *e.error() != 0 {
                            return Err(Error::kernel(context, e.error().abs()));
                        }
                        return Ok(());
                    }
                    NlPayload::Payload(p) => {
                        each(AttrMap::from_attrs("reply", p.attrs()));
                        if !dump && !flags.contains(NlmF::ACK) {
                            return Ok(());
                        }
                    }
                    NlPayload::Empty => {
                        if *reply.nl_type() == u16::from(Nlmsg::Done) {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn ipvs(&self, cmd: u8, flags: NlmF, attrs: Vec<Attr>, context: &str) -> Result<Vec<AttrMap>> {
        self.exchange(self.family, cmd, wire::IPVS_GENL_VERSION, flags, attrs, context)
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
        let seq =
            self.send(self.family, wire::IPVS_CMD_GET_DEST, wire::IPVS_GENL_VERSION, NlmF::DUMP, attrs, &context)?;
        // Decoded as they come: only the destinations are kept.
        let mut out = Vec::new();
        self.replies(seq, NlmF::DUMP, &context, &mut |r| {
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

fn socket_error(context: &str, e: SocketError) -> Error {
    match e {
        SocketError::Io(io) => Error::io(
            context,
            io.raw_os_error()
                .map(io::Error::from_raw_os_error)
                .unwrap_or_else(|| io::Error::new(io.kind(), io.to_string())),
        ),
        other => Error::decode(format!("{context}: {other}")),
    }
}

/// One attempt, no shell: the kernel may have IPVS as a module not yet
/// loaded.
fn modprobe_ip_vs() -> Result<(), String> {
    match Command::new("modprobe").arg("ip_vs").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            Err(format!("modprobe ip_vs failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
        Err(e) => Err(format!("cannot run modprobe ip_vs: {e}")),
    }
}
