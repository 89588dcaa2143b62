//! The receiving half of the protocols: what the engine does with each arriving frame,
//! and how a matched message reaches its receive buffer.
//!
//! Eager: the payload is copied into the matched buffer (or into the unexpected queue).
//! Rendezvous: an RTS is matched like a message; the receiver answers CTS naming its
//! request, the sender streams DATA frames straight into the buffer. A single-copy RTS
//! names the sender's buffer instead: the receiver reads it (the transport batches
//! such reads) and answers FIN, or shares the copy: it sends Help, the sender copies
//! its claimed part and answers Helped, and FIN follows once all parts are in.
//! Synchronous eager sends are acknowledged on match. Invariant: every frame that
//! names a request is checked against the request's kind, phase and peer (a data frame
//! also against the bytes received so far: it must start where the last one ended); a
//! frame that does not fit is a protocol error, never a wild write.

use std::sync::Arc;
use std::time::Instant;

use super::context::is_collective;
use super::credits::Credits;
use super::finalized::Finalized;
use super::large_receives::{self, Way};
use super::matching::{Body, Envelope, Matcher, Pattern, Stored, Unexpected};
use super::rendezvous::Learner;
use super::requests::{Op, RecvPhase, ReqId, Requests, SendPhase};
use crate::copy::copy;
use crate::error::{Error, Result};
use crate::status::Status;
use crate::transport::Sink;
use crate::transport::frame::{Header, HelpRequest, Kind, OutFrame, Payload, RemoteBuf, flags};
use crate::userbuf::{UserBuf, UserBufMut};

/// A matched message's content, wherever it was waiting.
pub(crate) enum Arrival<'a> {
    Eager {
        data: &'a [u8],
        sync: Option<u64>,
    },
    Rts {
        sreq: u64,
        size: usize,
        remote: Option<RemoteBuf>,
        /// Sent with its credit spent ([`flags::BUFFERED`]).
        buffered: bool,
    },
}

/// A large message the receiver reads straight from the sender's memory.
pub(crate) struct Pull {
    pub peer: usize,
    pub remote: RemoteBuf,
    pub dest: UserBufMut,
    pub rreq: ReqId,
    pub sreq: u64,
    /// The receive's [`RecvOp::keep`](super::requests::RecvOp::keep).
    pub keep: bool,
}

/// Pulls of one sender whose copy the sender shares: done when the sender reports its
/// chunks.
pub(crate) struct SharedPull {
    pub pulls: Vec<Pull>,
    /// When the copy began (several pulls are timed together, see
    /// [`Core::finish_split`]).
    pub start: Instant,
    /// The split copy's generation, as named in the sender's reports.
    pub generation: u64,
    /// Chunks the sender copies, of those it has yet to report.
    pub awaiting: u64,
}

/// Our part of a receiver's split copy of one of our messages.
pub(crate) struct Help {
    pub peer: usize,
    pub generation: u64,
    pub src: UserBuf,
    pub request: HelpRequest,
}

/// Engine state the transports deliver into.
pub(crate) struct Core {
    /// This process's world rank.
    pub me: usize,
    pub reqs: Requests,
    pub matcher: Matcher,
    pub credits: Credits,
    /// Frames to send once the transports are free again, in order.
    pub outbox: Vec<(usize, OutFrame)>,
    /// Single-copy reads to do once the transports are free again.
    pub pulls: Vec<Pull>,
    /// Pulls waiting for the sender's part of their copy.
    pub shared: Vec<SharedPull>,
    /// Our parts of receivers' split copies, to do once the transports are free again.
    pub helps: Vec<Help>,
    /// Messages offered for reading with [`flags::BUFFERED`] that no receive
    /// matched (peer, send request): read into the unexpected queue once the
    /// transports are free again, so their sends complete without a receive posted.
    pub takes: Vec<(usize, u64)>,
    /// After finalize began: unmatched messages are dropped, not queued.
    pub finalizing: bool,
    /// Peers that have finalized.
    pub finalized: Finalized,
    /// Whether large messages whose senders offer their buffers to read are read or
    /// streamed, learned by timing both (`None`: always read).
    pub rendezvous: Option<Learner>,
}

fn truncation(env: Envelope, message_bytes: usize, buffer_bytes: usize) -> Error {
    Error::Truncated {
        source_rank: env.src,
        tag: env.tag,
        message_bytes,
        buffer_bytes,
    }
}

pub(super) fn control(kind: Kind, a: u64, b: u64) -> OutFrame {
    let mut hdr = Header::new(kind);
    hdr.a = a;
    hdr.b = b;
    OutFrame {
        hdr,
        payload: Payload::Empty,
        token: None,
    }
}

/// The most requests one FIN names: its payload fits the smallest ring's frames.
const FIN_NAMES: usize = 64;

/// Queues the FINs that free the buffers of `peer`'s sends `first` and `more`, read
/// by this rank: one frame for up to [`FIN_NAMES`] of them, `first` in
/// its header and the others as its payload. A bandwidth test's receiver, busy all
/// the time reading 64 messages of 8 KiB a window, spent 3-6% of it writing a FIN
/// for each.
pub(super) fn fin(outbox: &mut Vec<(usize, OutFrame)>, peer: usize, first: u64, more: Vec<u64>) {
    let mut names = std::iter::once(first).chain(more);
    while let Some(head) = names.next() {
        let rest: Vec<u64> = names.by_ref().take(FIN_NAMES - 1).collect();
        let mut frame = control(Kind::Fin, head, 0);
        frame.hdr.payload = (rest.len() * 8) as u64;
        frame.payload = Payload::Names(rest);
        outbox.push((peer, frame));
    }
}

/// The clear-to-send that refuses announced message `sreq`: its sender completes
/// without sending the data.
pub(super) fn refusal(sreq: u64) -> OutFrame {
    let mut cts = control(Kind::Cts, sreq, 0);
    cts.hdr.flags = flags::TRUNCATE;
    cts
}

/// Counts a matched message of `len` bytes for which `peer` spent credit, queueing
/// the credit due back in `outbox`.
#[inline(always)]
pub(super) fn credit_matched(
    outbox: &mut Vec<(usize, OutFrame)>,
    credits: &mut Credits,
    peer: usize,
    len: usize,
) {
    if let Some(amount) = credits.matched(peer, len) {
        outbox.push((peer, control(Kind::Credit, amount, 0)));
    }
}

/// Puts an eager message from `peer` into `buf` (or reports it too large), queueing
/// the acknowledgement of a synchronous send and the credit due in `outbox`. Always
/// inlined, its error boxed as a finished request keeps it, so that the status is
/// stored once, in place (see `Requests::take_done`).
#[inline(always)]
pub(crate) fn land_eager(
    outbox: &mut Vec<(usize, OutFrame)>,
    credits: &mut Credits,
    peer: usize,
    env: Envelope,
    data: &[u8],
    sync: Option<u64>,
    buf: UserBufMut,
) -> std::result::Result<Status, Box<Error>> {
    if let Some(sreq) = sync {
        outbox.push((peer, control(Kind::SyncAck, sreq, 0)));
    }
    credit_matched(outbox, credits, peer, data.len());
    if data.len() > buf.len() {
        return Err(Box::new(truncation(env, data.len(), buf.len())));
    }
    copy(&mut buf.as_mut_slice()[..data.len()], data);
    Ok(Status {
        source: env.src,
        tag: env.tag,
        bytes: data.len(),
    })
}

impl Core {
    pub(crate) fn new(me: usize, size: usize, credit_per_peer: u64) -> Core {
        Core {
            me,
            reqs: Requests::default(),
            matcher: Matcher::new(),
            credits: Credits::new(size, credit_per_peer),
            outbox: Vec::new(),
            pulls: Vec::new(),
            shared: Vec::new(),
            helps: Vec::new(),
            takes: Vec::new(),
            finalizing: false,
            finalized: Finalized::new(me, size),
            rendezvous: None,
        }
    }

    fn protocol(&self, peer: usize, detail: String) -> Error {
        Error::Protocol {
            rank: self.me as i32,
            peer: peer as i32,
            detail,
        }
    }

    /// Whether world rank `peer` is the sender `env` names (by its rank in the
    /// communicator of `env.ctx`). Taken as true on a communicator this rank has not
    /// made yet: [`Core::register_group`] checks its messages when it does.
    #[inline]
    pub(super) fn sent_by(&self, peer: usize, env: &Envelope) -> bool {
        match env.ctx / 2 {
            0 => env.src as usize == peer,
            pair => self.finalized.group(pair).is_none_or(|group| {
                let world = usize::try_from(env.src).ok().and_then(|s| group.get(s));
                world.is_some_and(|&w| w as usize == peer)
            }),
        }
    }

    /// The error for a message from `peer` whose envelope `env` names another sender.
    #[cold]
    fn impostor(&self, peer: usize, env: &Envelope) -> Error {
        self.protocol(
            peer,
            format!(
                "a message on context {} says it is from rank {} there, which is not the rank \
                 of its connection",
                env.ctx, env.src
            ),
        )
    }

    /// A communicator with context pair `pair` and `group` (world ranks) exists here:
    /// the messages that came for it before are checked against their connections'
    /// ranks, as later ones are when they arrive.
    pub(crate) fn register_group(&mut self, pair: u32, group: Arc<[u32]>) -> Result<()> {
        self.finalized.register(pair, group);
        let mut early = self.matcher.queued_since(0);
        match early.find(|u| u.env.ctx / 2 == pair && !self.sent_by(u.peer, &u.env)) {
            Some(u) => Err(self.impostor(u.peer, &u.env)),
            None => Ok(()),
        }
    }

    /// Hands a matched message to receive `id`, completing it or starting the data
    /// phase of a rendezvous (one lookup of the request: this runs for every message).
    pub(crate) fn deliver(&mut self, id: ReqId, peer: usize, env: Envelope, arrival: Arrival<'_>) {
        if let Arrival::Rts {
            size,
            buffered: true,
            ..
        } = arrival
        {
            credit_matched(&mut self.outbox, &mut self.credits, peer, size);
        }
        let Some(op) = self.reqs.get_mut(id) else {
            unreachable!("matched request {id:?} is a live receive");
        };
        let Op::Recv(r) = op else {
            unreachable!("matched request {id:?} is a live receive");
        };
        let (buf, keep) = (r.buf, r.keep);
        match arrival {
            Arrival::Eager { data, sync } => {
                *op = Op::Done(land_eager(
                    &mut self.outbox,
                    &mut self.credits,
                    peer,
                    env,
                    data,
                    sync,
                    buf,
                ));
            }
            Arrival::Rts { sreq, size, .. } if size > buf.len() => {
                self.outbox.push((peer, refusal(sreq)));
                *op = Op::done(Err(truncation(env, size, buf.len())));
            }
            Arrival::Rts {
                sreq, size, remote, ..
            } => {
                r.phase = RecvPhase::Data {
                    peer,
                    status: Status {
                        source: env.src,
                        tag: env.tag,
                        bytes: size,
                    },
                    received: 0,
                };
                // The sender offers its buffer to read where the kernel allows it;
                // the receiver may have it streamed instead (see `rendezvous`).
                let read = remote.filter(|_| {
                    self.rendezvous.as_mut().is_none_or(|l| {
                        let choice = l.choose(size);
                        l.start(id, choice);
                        choice.first
                    })
                });
                match read {
                    Some(remote) => self.pulls.push(Pull {
                        peer,
                        remote,
                        dest: buf.sub(0, size),
                        rreq: id,
                        sreq,
                        keep,
                    }),
                    None => self.outbox.push((peer, control(Kind::Cts, sreq, id.0))),
                }
            }
        }
    }

    /// Receives into `buf` at once if the oldest message `pattern` matches is an eager
    /// one already here; no request is needed then. `None`: start a receive instead.
    pub(crate) fn recv_now(
        &mut self,
        pattern: &Pattern,
        buf: UserBufMut,
    ) -> Option<Result<Status>> {
        let msg = self.matcher.take_unexpected_eager(pattern)?;
        let Body::Eager { data, sync } = &msg.body else {
            unreachable!("take_unexpected_eager returns eager messages")
        };
        Some(
            land_eager(
                &mut self.outbox,
                &mut self.credits,
                msg.peer,
                msg.env,
                data.as_slice(),
                *sync,
                buf,
            )
            .map_err(|e| *e),
        )
    }

    /// Finishes single-copy reads, all from one sender: the receives complete and the
    /// sender's requests may too (one FIN names them all, [`fin`]), or, when the reads
    /// were refused, the sender is asked to send the data of each instead.
    pub(crate) fn finish_pulls(&mut self, pulls: impl IntoIterator<Item = Pull>, pulled: bool) {
        let mut done: Option<(usize, u64)> = None;
        let mut more = Vec::new();
        for pull in pulls {
            if let Some(l) = self.rendezvous.as_mut() {
                if pulled {
                    l.finished(pull.rreq, pull.dest.len());
                } else {
                    l.forget(pull.rreq);
                }
            }
            if !pulled {
                self.outbox
                    .push((pull.peer, control(Kind::Cts, pull.sreq, pull.rreq.0)));
                continue;
            }
            match done {
                None => done = Some((pull.peer, pull.sreq)),
                Some((peer, _)) => {
                    debug_assert_eq!(peer, pull.peer, "pulls finished together share a sender");
                    more.push(pull.sreq);
                }
            }
            if let Some(Op::Recv(r)) = self.reqs.get(pull.rreq)
                && let RecvPhase::Data { status, .. } = r.phase
            {
                self.reqs.complete(pull.rreq, Ok(status));
            }
        }
        if let Some((peer, first)) = done {
            fin(&mut self.outbox, peer, first, more);
        }
    }

    /// Finishes the pulls of a split copy begun at `start`, all now in their buffers.
    /// Several are timed as reads done together are ([`Learner::finished_together`]):
    /// finished one by one, the first would take the copy's time and the others none.
    pub(crate) fn finish_split(&mut self, pulls: Vec<Pull>, start: Instant) {
        if pulls.len() > 1
            && let Some(l) = self.rendezvous.as_mut()
        {
            let reads: Vec<_> = pulls.iter().map(|p| (p.rreq, p.dest.len())).collect();
            l.finished_together(&reads, start.elapsed());
        }
        self.finish_pulls(pulls, true);
    }

    /// Our part of a split copy is done: tells receiver `peer` how many chunks of
    /// copy `generation` we copied.
    pub(crate) fn helped(&mut self, peer: usize, generation: u64, chunks: u64) {
        if chunks > 0 {
            self.outbox
                .push((peer, control(Kind::Helped, generation, chunks)));
        }
    }

    /// Delivers a message taken from the unexpected queue to receive `id`.
    pub(crate) fn deliver_unexpected(&mut self, id: ReqId, msg: Unexpected) {
        let arrival = match &msg.body {
            Body::Eager { data, sync } => Arrival::Eager {
                data: data.as_slice(),
                sync: *sync,
            },
            Body::Rts {
                sreq,
                size,
                remote,
                buffered,
            } => Arrival::Rts {
                sreq: *sreq,
                size: *size,
                remote: *remote,
                buffered: *buffered,
            },
        };
        self.deliver(id, msg.peer, msg.env, arrival);
    }

    /// Starts a receive: matches the oldest unexpected message or joins the posted
    /// queue.
    pub(crate) fn post_recv(&mut self, pattern: Pattern, id: ReqId) {
        match self.matcher.take_unexpected(&pattern) {
            Some(msg) => self.deliver_unexpected(id, msg),
            None => self.matcher.post(pattern, id),
        }
    }

    fn arrive(&mut self, peer: usize, env: Envelope, arrival: Arrival<'_>) {
        if let Some(id) = self.matcher.take_posted(peer, &env) {
            self.deliver(id, peer, env, arrival);
            return;
        }
        if self.finalizing {
            // Dropped as an eager message would be: its send completes.
            if let Arrival::Rts {
                sreq,
                buffered: true,
                ..
            } = arrival
            {
                self.outbox.push((peer, control(Kind::Fin, sreq, 0)));
            }
            return;
        }
        let body = match arrival {
            Arrival::Eager { data, sync } => Body::Eager {
                data: Stored::new(data),
                sync,
            },
            Arrival::Rts {
                sreq,
                size,
                remote,
                buffered,
            } => {
                if buffered {
                    self.takes.push((peer, sreq));
                }
                Body::Rts {
                    sreq,
                    size,
                    remote,
                    buffered,
                }
            }
        };
        self.matcher.push_unexpected(Unexpected { peer, env, body });
    }

    /// `peer` has read the buffer of our send `sreq`: it completes.
    fn fin_arrived(&mut self, peer: usize, sreq: u64) -> Result<()> {
        let (id, s) = self.send_op(peer, sreq, "FIN")?;
        if !matches!(s.phase, SendPhase::AwaitFin) {
            return Err(self.protocol(peer, "FIN for a send not waiting for one".into()));
        }
        self.reqs.complete(id, Ok(Status::empty()));
        Ok(())
    }

    fn send_op(
        &mut self,
        peer: usize,
        sreq: u64,
        what: &str,
    ) -> Result<(ReqId, &mut super::requests::SendOp)> {
        let id = ReqId(sreq);
        // Looked up twice so that the error (a formatted string) is built only when
        // needed: the mutable borrow cannot be returned from one arm and dropped in
        // the other.
        if !matches!(self.reqs.get(id), Some(Op::Send(s)) if s.peer == peer) {
            return Err(self.protocol(peer, format!("{what} names no send of ours in progress")));
        }
        match self.reqs.get_mut(id) {
            Some(Op::Send(s)) => Ok((id, s)),
            _ => unreachable!("checked above"),
        }
    }

    fn data_recv(
        &mut self,
        peer: usize,
        hdr: &Header,
    ) -> Result<(ReqId, UserBufMut, usize, usize)> {
        let id = ReqId(hdr.a);
        let (off, len) = (hdr.b, hdr.payload);
        if let Some(Op::Recv(r)) = self.reqs.get(id)
            && let RecvPhase::Data {
                peer: from,
                status,
                received,
            } = r.phase
            && from == peer
        {
            // Each frame starts where the last ended (every transport sends a message's
            // data in order), so the count reaches the size only once every byte came:
            // overlapping or repeated frames would complete the receive with a gap.
            if off == received as u64 && len <= (status.bytes - received) as u64 {
                return Ok((id, r.buf, received, status.bytes));
            }
            return Err(self.protocol(
                peer,
                format!(
                    "data frame of {len} bytes at offset {off} for request {:#x}, which has \
                     {received} of {} bytes",
                    hdr.a, status.bytes
                ),
            ));
        }
        Err(self.protocol(
            peer,
            format!(
                "data frame for request {:#x} which is not receiving from it",
                hdr.a
            ),
        ))
    }
}

impl Sink for Core {
    fn frame(&mut self, peer: usize, hdr: &Header, payload: &[u8]) -> Result<()> {
        let env = hdr.envelope();
        match hdr.kind() {
            Some(Kind::Eager | Kind::Rts) if !self.sent_by(peer, &env) => {
                return Err(self.impostor(peer, &env));
            }
            Some(Kind::Eager) => {
                if !self.credits.arrived(peer, payload.len()) {
                    return Err(self.protocol(peer, self.credits.overdrawn(peer, payload.len())));
                }
                let sync = (hdr.flags & flags::SYNC != 0).then_some(hdr.a);
                // A collective's mid-size messages come eagerly unasked (`start_send`):
                // only point-to-point ones tell the learner how the asked way does.
                let clock = self
                    .rendezvous
                    .as_mut()
                    .filter(|_| !is_collective(env.ctx))
                    .and_then(|l| l.eager_clock(peer, payload.len()));
                self.arrive(
                    peer,
                    env,
                    Arrival::Eager {
                        data: payload,
                        sync,
                    },
                );
                if let (Some(start), Some(l)) = (clock, self.rendezvous.as_mut()) {
                    l.eager_copied(payload.len(), start);
                }
            }
            Some(Kind::Rts) => {
                let remote = if hdr.flags & flags::SINGLE_COPY != 0 {
                    if payload.len() != std::mem::size_of::<RemoteBuf>() {
                        return Err(self
                            .protocol(peer, "single-copy RTS without its buffer address".into()));
                    }
                    Some(bytemuck::pod_read_unaligned(payload))
                } else {
                    None
                };
                let size = usize::try_from(hdr.b)
                    .map_err(|_| self.protocol(peer, "RTS size overflows".into()))?;
                let buffered = hdr.flags & flags::BUFFERED != 0;
                if buffered && remote.is_none() {
                    return Err(
                        self.protocol(peer, "buffered RTS without its buffer address".into())
                    );
                }
                if buffered && !self.credits.arrived(peer, size) {
                    return Err(self.protocol(peer, self.credits.overdrawn(peer, size)));
                }
                self.arrive(
                    peer,
                    env,
                    Arrival::Rts {
                        sreq: hdr.a,
                        size,
                        remote,
                        buffered,
                    },
                );
            }
            Some(Kind::Cts) => {
                let (id, s) = self.send_op(peer, hdr.a, "clear-to-send")?;
                if !matches!(s.phase, SendPhase::AwaitCts | SendPhase::AwaitFin) {
                    return Err(
                        self.protocol(peer, "clear-to-send for a send not waiting for one".into())
                    );
                }
                if hdr.flags & flags::TRUNCATE != 0 {
                    self.reqs.complete(id, Ok(Status::empty()));
                } else {
                    s.phase = SendPhase::Data;
                    let mut data = Header::new(Kind::Data);
                    data.a = hdr.b;
                    data.payload = s.buf.len() as u64;
                    let frame = OutFrame {
                        hdr: data,
                        payload: Payload::User(s.buf),
                        token: Some(id.0),
                    };
                    self.outbox.push((peer, frame));
                }
            }
            Some(Kind::SyncAck) => {
                let (id, s) = self.send_op(peer, hdr.a, "synchronous-send acknowledgement")?;
                match &mut s.phase {
                    SendPhase::Eager { written, acked } => {
                        *acked = true;
                        if *written {
                            self.reqs.complete(id, Ok(Status::empty()));
                        }
                    }
                    _ => {
                        return Err(self.protocol(
                            peer,
                            "acknowledgement for a send that is not eager".into(),
                        ));
                    }
                }
            }
            Some(Kind::Fin) => {
                if !payload.len().is_multiple_of(8) {
                    return Err(
                        self.protocol(peer, format!("FIN naming sends in {} bytes", payload.len()))
                    );
                }
                self.fin_arrived(peer, hdr.a)?;
                for name in payload.chunks_exact(8) {
                    self.fin_arrived(peer, bytemuck::pod_read_unaligned(name))?;
                }
            }
            Some(Kind::Help) => {
                if payload.len() != std::mem::size_of::<HelpRequest>() {
                    return Err(self.protocol(peer, "help request without its buffer".into()));
                }
                let (_, s) = self.send_op(peer, hdr.a, "help request")?;
                if !matches!(s.phase, SendPhase::AwaitFin) {
                    return Err(self.protocol(peer, "help for a send not being pulled".into()));
                }
                let src = s.buf;
                self.helps.push(Help {
                    peer,
                    generation: hdr.b,
                    src,
                    request: bytemuck::pod_read_unaligned(payload),
                });
            }
            Some(Kind::Helped) => {
                let Some(i) = self
                    .shared
                    .iter()
                    .position(|s| s.pulls[0].peer == peer && s.generation == hdr.a)
                else {
                    return Err(self.protocol(peer, format!("report on split copy {}", hdr.a)));
                };
                // A copy of several messages may be reported in parts (the sender
                // reports what it copied of those whose Help frames it has read).
                let awaiting = self.shared[i].awaiting;
                match awaiting.checked_sub(hdr.b) {
                    None => {
                        return Err(self.protocol(
                            peer,
                            format!(
                                "copied {} chunks of split copy {}, {awaiting} were left",
                                hdr.b, hdr.a
                            ),
                        ));
                    }
                    Some(0) => {
                        let shared = self.shared.swap_remove(i);
                        self.finish_split(shared.pulls, shared.start);
                    }
                    Some(left) => self.shared[i].awaiting = left,
                }
            }
            Some(Kind::Credit) => {
                if !self.credits.returned(peer, hdr.a) {
                    return Err(self.protocol(
                        peer,
                        format!("returned {} bytes of credit it was never given", hdr.a),
                    ));
                }
            }
            Some(Kind::Bye) => self.peer_finalized(peer),
            Some(Kind::Data) | None => {
                return Err(self.protocol(peer, format!("unexpected frame kind {}", hdr.kind)));
            }
        }
        Ok(())
    }

    fn data_dest(&mut self, peer: usize, hdr: &Header) -> Result<UserBufMut> {
        let (_, buf, _, _) = self.data_recv(peer, hdr)?;
        Ok(buf.sub(hdr.b as usize, hdr.payload as usize))
    }

    fn data_done(&mut self, peer: usize, hdr: &Header) -> Result<()> {
        let (id, _, received, total) = self.data_recv(peer, hdr)?;
        let received = received + hdr.payload as usize;
        let Some(Op::Recv(r)) = self.reqs.get_mut(id) else {
            unreachable!("checked by data_recv")
        };
        let RecvPhase::Data {
            status,
            received: slot,
            ..
        } = &mut r.phase
        else {
            unreachable!()
        };
        *slot = received;
        if received >= total {
            if let Some(l) = self.rendezvous.as_mut() {
                l.finished(id, total);
            }
            let status = *status;
            self.reqs.complete(id, Ok(status));
            large_receives::count(Way::Streamed);
        }
        Ok(())
    }

    fn sent(&mut self, token: u64) -> Result<()> {
        let id = ReqId(token);
        let Some(Op::Send(s)) = self.reqs.get_mut(id) else {
            return Err(Error::Protocol {
                rank: self.me as i32,
                peer: -1,
                detail: format!("transport reported unknown send {token:#x} as sent"),
            });
        };
        let finished = match &mut s.phase {
            SendPhase::Eager { written, acked } => {
                *written = true;
                *acked
            }
            SendPhase::Data => true,
            SendPhase::AwaitCts | SendPhase::AwaitFin => false,
        };
        if finished {
            self.reqs.complete(id, Ok(Status::empty()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::requests::SendOp;

    /// Sends of rank 0 to rank 1 waiting for their FINs, from `data`.
    fn awaiting_fins(core: &mut Core, data: &[u8], n: usize) -> Vec<ReqId> {
        (0..n)
            .map(|_| {
                core.reqs.insert(Op::Send(SendOp {
                    peer: 1,
                    env: Envelope {
                        ctx: 0,
                        src: 0,
                        tag: 0,
                    },
                    // SAFETY: `data` outlives the core the test drives.
                    buf: unsafe { UserBuf::new(data) },
                    phase: SendPhase::AwaitFin,
                }))
            })
            .collect()
    }

    /// The FIN frames `fin` queues, as rank 1 would send them, handed to `core`.
    fn deliver_fins(core: &mut Core, outbox: Vec<(usize, OutFrame)>) -> Result<()> {
        outbox.into_iter().try_for_each(|(peer, frame)| {
            assert_eq!((peer, frame.hdr.kind()), (0, Some(Kind::Fin)));
            let mut hdr = frame.hdr;
            hdr.src = 1;
            core.frame(1, &hdr, frame.payload.bytes())
        })
    }

    #[test]
    fn one_fin_frees_the_buffers_of_sends_read_together_64_a_frame() {
        let mut core = Core::new(0, 2, 1 << 20);
        let data = [5u8; 8];
        let sends = awaiting_fins(&mut core, &data, 130);
        let names: Vec<u64> = sends.iter().map(|id| id.0).collect();
        let mut outbox = Vec::new();
        fin(&mut outbox, 0, names[0], names[1..].to_vec());
        let per_frame: Vec<usize> = outbox
            .iter()
            .map(|(_, f)| 1 + f.payload.len() / 8)
            .collect();
        assert_eq!(per_frame, [64, 64, 2]);
        assert!(
            outbox
                .iter()
                .all(|(_, f)| f.hdr.payload == f.payload.len() as u64)
        );
        deliver_fins(&mut core, outbox).unwrap();
        assert!(sends.iter().all(|&id| core.reqs.is_done(id)));
        // One send read alone gets a FIN with no payload (a blocking send takes that
        // one off its ring itself, `blocking_send`).
        let alone = awaiting_fins(&mut core, &data, 1)[0];
        let mut outbox = Vec::new();
        fin(&mut outbox, 0, alone.0, Vec::new());
        assert_eq!(outbox[0].1.hdr.payload, 0);
        deliver_fins(&mut core, outbox).unwrap();
        assert!(core.reqs.is_done(alone));
    }

    /// A message whose envelope names a sender other than the rank of its connection
    /// (by that rank's place in the communicator) is a protocol error, on the world
    /// and on a communicator made later, and is not queued to be matched.
    #[test]
    fn a_message_naming_another_sender_is_a_protocol_error() {
        let eager = |ctx, src| Header::eager(Envelope { ctx, src, tag: 5 }, 8);
        let impostor = |got: Result<()>| match got {
            Err(Error::Protocol {
                peer: 1, detail, ..
            }) => {
                assert!(
                    detail.contains("not the rank of its connection"),
                    "{detail}"
                )
            }
            other => panic!("expected a protocol error, got {other:?}"),
        };
        let mut core = Core::new(0, 3, 1 << 20);
        impostor(core.frame(1, &eager(0, 2), &[0; 8]));
        assert!(!core.matcher.has_unexpected());
        // Communicator pair 3 holds world ranks 2, 0, 1: world rank 1 is its rank 2.
        let group: Arc<[u32]> = Arc::from([2, 0, 1]);
        // One that came before this rank made the communicator is checked when it does.
        core.frame(1, &eager(6, 0), &[0; 8]).unwrap();
        impostor(core.register_group(3, group.clone()));
        let mut core = Core::new(0, 3, 1 << 20);
        core.register_group(3, group).unwrap();
        core.frame(1, &eager(6, 2), &[0; 8]).unwrap();
        impostor(core.frame(1, &eager(7, 1), &[0; 8]));
        assert_eq!(core.matcher.queued_since(0).count(), 1);
    }

    #[test]
    fn a_fin_naming_sends_badly_is_a_protocol_error() {
        let data = [5u8; 8];
        let mut core = Core::new(0, 2, 1 << 20);
        let sends = awaiting_fins(&mut core, &data, 2);
        // A payload that is not whole request ids.
        let mut hdr = control(Kind::Fin, sends[0].0, 0).hdr;
        (hdr.src, hdr.payload) = (1, 12);
        match core.frame(1, &hdr, &[0; 12]) {
            Err(Error::Protocol { detail, .. }) => {
                assert!(detail.contains("FIN naming sends in 12 bytes"), "{detail}")
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
        // A name among the others that is no send waiting for a FIN.
        let mut outbox = Vec::new();
        fin(&mut outbox, 0, sends[0].0, vec![sends[1].0, 999]);
        match deliver_fins(&mut core, outbox) {
            Err(Error::Protocol { detail, .. }) => {
                assert!(detail.contains("FIN names no send of ours"), "{detail}")
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
}
