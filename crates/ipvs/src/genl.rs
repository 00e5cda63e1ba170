//! The generic-netlink transport under the IPVS commands: one socket,
//! sequence numbers, the family lookup, requests (alone, or many in one
//! sendmsg with their acks read in batches), and replies read as they come.

use std::cell::Cell;
use std::io;

use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF, Nlmsg};
use neli::consts::socket::NlFamily;
use neli::err::SocketError;
use neli::genl::{Genlmsghdr, GenlmsghdrBuilder};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::utils::Groups;

use super::wire::{self, Attr, AttrMap, Attrs};
use crate::error::{Error, Result};

type GenlMsg = Genlmsghdr<u8, u16>;

/// Requests per sendmsg in [`GenlSocket::batched`]: the kernel queues an
/// ack datagram for each, and all must fit the socket's receive buffer
/// (208 KiB by default; an ack takes about 1 KiB of it).
const BATCH: usize = 64;

/// What a request is, apart from its attributes: family, command,
/// version, flags.
#[derive(Clone, Copy)]
pub(crate) struct Request {
    pub family: u16,
    pub cmd: u8,
    pub version: u8,
    pub flags: NlmF,
}

pub(crate) struct GenlSocket {
    sock: NlSocketHandle,
    seq: Cell<u32>,
}

impl GenlSocket {
    pub fn connect() -> Result<GenlSocket> {
        let sock = NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| socket_error("opening a generic netlink socket", e))?;
        Ok(GenlSocket { sock, seq: Cell::new(1) })
    }

    /// The id of generic-netlink family `name`; the kernel answers ENOENT
    /// ([`Error::NotFound`]) when it has none.
    pub fn family(&self, name: &str) -> Result<u16> {
        let attr = wire::attr(CtrlAttr::FamilyName.into(), format!("{name}\0").as_bytes())?;
        let lookup =
            Request { family: GenlId::Ctrl.into(), cmd: CtrlCmd::Getfamily.into(), version: 2, flags: NlmF::ACK };
        let replies = self.exchange(lookup, vec![attr], &format!("looking up the generic netlink family {name}"))?;
        replies
            .iter()
            .find_map(|r| {
                let id = r.raw(CtrlAttr::FamilyId.into())?;
                Some(u16::from_ne_bytes([*id.first()?, *id.get(1)?]))
            })
            .ok_or_else(|| Error::decode(format!("the kernel's family lookup reply has no {name} id")))
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1).max(1));
        seq
    }

    /// Sends one request and collects the top-level attributes of every
    /// reply until the ACK (or, for a dump, NLMSG_DONE). Errors are checked
    /// here, including those that arrive inside a dump.
    pub fn exchange(&self, req: Request, attrs: Vec<Attr>, context: &str) -> Result<Vec<AttrMap>> {
        let seq = self.send(req, attrs, context)?;
        let mut out = Vec::new();
        self.replies(seq, req.flags, context, &mut |reply| {
            out.push(reply);
            Ok(())
        })?;
        Ok(out)
    }

    /// Sends one request; returns its sequence number.
    pub fn send(&self, req: Request, attrs: Vec<Attr>, context: &str) -> Result<u32> {
        let (seq, bytes) = self.request(req, attrs, context)?;
        self.send_bytes(&bytes, context)?;
        Ok(seq)
    }

    /// One request as bytes on the wire, and its sequence number.
    fn request(&self, req: Request, attrs: Vec<Attr>, context: &str) -> Result<(u32, Vec<u8>)> {
        use neli::{Size, ToBytes};
        let building = |e: &dyn std::fmt::Display| Error::decode(format!("{context}: building the request: {e}"));
        let genl = GenlmsghdrBuilder::<u8, u16>::default()
            .cmd(req.cmd)
            .version(req.version)
            .attrs(attrs.into_iter().collect::<Attrs>())
            .build()
            .map_err(|e| building(&e))?;
        let seq = self.next_seq();
        let msg = NlmsghdrBuilder::default()
            .nl_type(req.family)
            .nl_flags(req.flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_pid(self.sock.pid())
            .nl_payload(NlPayload::Payload(genl))
            .build()
            .map_err(|e| building(&e))?;
        let mut bytes = io::Cursor::new(vec![0; msg.padded_size()]);
        msg.to_bytes(&mut bytes).map_err(|e| building(&e))?;
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

    /// Sends `req` once per attribute list, [`BATCH`] requests per sendmsg
    /// (`req.flags` must ask for an ACK), reading their acks into one small
    /// buffer: one round trip per request (each also zeroing the netlink
    /// library's 32 KiB receive buffer) made removing 65,536 reals take
    /// seconds of user time. Returns each request's errno in order, 0 when
    /// done; calls `after_each` after every batch.
    pub fn batched(
        &self,
        req: Request,
        requests: &mut dyn Iterator<Item = Result<Vec<Attr>>>,
        context: &str,
        after_each: &mut dyn FnMut(),
    ) -> Result<Vec<i32>> {
        let mut errnos = Vec::new();
        let mut acks = vec![0u8; 16 << 10];
        loop {
            let mut bytes = Vec::with_capacity(BATCH * 64);
            let mut seqs = Vec::with_capacity(BATCH);
            for attrs in (&mut *requests).take(BATCH) {
                let (seq, b) = self.request(req, attrs?, context)?;
                seqs.push(seq);
                bytes.extend_from_slice(&b);
            }
            if seqs.is_empty() {
                break;
            }
            self.send_bytes(&bytes, context)?;
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
    pub fn replies(
        &self,
        seq: u32,
        flags: NlmF,
        context: &str,
        each: &mut dyn FnMut(AttrMap) -> Result<()>,
    ) -> Result<()> {
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
}

pub(crate) fn socket_error(context: &str, e: SocketError) -> Error {
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
