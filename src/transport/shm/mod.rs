//! The shared-memory transport: ranks on one node write frames straight into each
//! other's inbox rings (see [`ring`]), and large messages are read by the receiver
//! directly from the sender's memory (see [`cma`]; the largest by both ends at once,
//! see [`split`]) or, where the kernel forbids that, streamed through the rings in
//! chunks.
//!
//! One inbox per rank (a multi-producer ring), so memory grows linearly with the
//! number of local ranks however many pairs talk, and a receiver polls one ring
//! whatever the number of peers. Waiting: a rank with nothing to do sets its doorbell
//! and sleeps on it with a futex (or, with TCP peers too, in its poller: see
//! [`wakeup`]); a sender rings the doorbell (one system call) only when it sees it set. A sender that finds a ring full queues its frames in order,
//! registers as a waiter on that ring and retries when the receiver frees room.
//! Invariants: frames to one peer leave in order; a frame's user payload is read until
//! its token is reported; nothing is ever dropped or grown without bound.

pub(crate) mod area;
mod cma;
mod futex;
pub(crate) mod huge_pages;
mod membarrier;
mod placement;
mod read_asks;
mod ring;
pub(crate) mod segment;
mod split;
mod stale;
mod wakeup;

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use super::frame::{Envelope, Header, HelpRequest, Kind, OutFrame, Payload, RemoteBuf, flags};
use super::{Sink, Transport};
use crate::error::{Error, Result};
use crate::userbuf::{UserBuf, UserBufMut};
use area::{Area, Books, Room, Ticket};
use read_asks::Bursts;
pub(crate) use read_asks::ReadRequests;
#[cfg(test)]
pub(crate) use read_asks::offered;
use ring::Inbox;
use segment::LINE;
pub(crate) use segment::{Decline, Segment};
use wakeup::{Kicker, WakeSocket};

/// Settings of the transport, from the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Lines (64 bytes) per inbox ring.
    pub ring_lines: usize,
    /// Largest message sent inline.
    pub eager_limit: usize,
    /// Payload bytes per frame when streaming a large message through the rings.
    pub chunk: usize,
    /// Whether single-copy reads may be used at all.
    pub single_copy: bool,
    /// Whether receivers choose between single copy and streaming by timing both
    /// (`engine::rendezvous`), rather than always reading by single copy.
    pub learn: bool,
    /// Smallest single-copy message the receiver shares the copy of with its sender
    /// (`None`: never).
    pub split: Option<usize>,
    /// Whether a copy is shared with a sender that is itself reading a message of the
    /// receiver's too (where `split` was set explicitly: every copy from that size).
    pub split_busy: bool,
    /// Whether publishers may leave the fence before a doorbell read to sleepers'
    /// `membarrier` calls, where every local rank can make them.
    pub membarrier: bool,
    /// Whether the regions of memory this rank lends most are put on huge pages
    /// ([`huge_pages`]).
    pub huge_pages: bool,
}

impl Config {
    pub(crate) const DEFAULT_RING_KB: usize = 256;
    pub(crate) const DEFAULT_EAGER: usize = 8 * 1024;
    pub(crate) const OVERSUBSCRIBED_EAGER: usize = 32 * 1024;
    pub(crate) const DEFAULT_CHUNK: usize = 16 * 1024;
    pub(crate) const DEFAULT_SPLIT: usize = 128 * 1024;
    /// Rings of up to 1 GiB (every local rank has one, and the segment's size must
    /// not overflow).
    const MAX_RING_LINES: usize = (1 << 30) / LINE;

    /// The largest frame payload a ring of `ring_lines` lines carries: defaults of the
    /// eager limit and chunk size are capped to it, so every ring size works without
    /// setting them too.
    pub(crate) fn largest_payload(ring_lines: usize) -> usize {
        ring::max_payload(ring_lines)
    }

    /// The size in KiB of a ring of `ring_lines` lines (as `OXMPI_SHM_RING_KB` gives it).
    fn ring_kb(ring_lines: usize) -> usize {
        ring_lines * LINE / 1024
    }

    /// Checks the settings, and against each other; the eager limit, which TCP takes
    /// too, is checked against the ring only where shared memory is `used`.
    pub(crate) fn validated(self, used: bool) -> Result<Config> {
        let max = ring::max_payload(self.ring_lines);
        let bad = |var: &str, value: usize, expected: String| {
            Error::config(var, value.to_string(), expected)
        };
        if !(64..=Self::MAX_RING_LINES).contains(&self.ring_lines)
            || !self.ring_lines.is_power_of_two()
        {
            return Err(bad(
                "OXMPI_SHM_RING_KB",
                Self::ring_kb(self.ring_lines),
                format!(
                    "a power of two from 4 to {}",
                    Self::ring_kb(Self::MAX_RING_LINES)
                ),
            ));
        }
        if used && self.eager_limit > max {
            return Err(bad(
                "OXMPI_EAGER_LIMIT",
                self.eager_limit,
                format!("at most {max} with this ring size"),
            ));
        }
        if self.split.is_some_and(|min| min < 2 * PROBE_BYTES) {
            return Err(bad(
                "OXMPI_SHM_SPLIT",
                self.split.unwrap_or(0),
                format!("0 (never) or at least {}", 2 * PROBE_BYTES),
            ));
        }
        if self.chunk == 0 || self.chunk > max {
            return Err(bad(
                "OXMPI_SHM_CHUNK",
                self.chunk,
                format!("between 1 and {max} with this ring size"),
            ));
        }
        Ok(self)
    }
}

/// Doorbell values: how (whether) the rank sleeps.
const AWAKE: u32 = 0;
const ON_FUTEX: u32 = 1;
const IN_POLLER: u32 = 2;
/// The longest sleep after a failed [`membarrier`] fence (as the first sleep of a
/// wait where wake-ups can be missed, `engine::wait`).
const UNFENCED_SLEEP: Duration = Duration::from_micros(100);

/// Bytes a split copy reads before it asks the sender for help; its chunks are
/// multiples of this (a page).
const PROBE_BYTES: usize = 4096;

/// Messages to a rank of this node longer than this, up to the eager limit, go
/// eagerly or offered for reading, in each size class as that rank asks
/// ([`ReadRequests`], learned by `engine::rendezvous`); shorter ones always eagerly:
/// reading 4 KiB with `process_vm_readv` alone took 0.85 us here, copying an eager
/// 4 KiB message out 0.52, and writing it in took the sender almost nothing
/// (`benches/copy_floor.c`, slow phase).
pub(crate) const READ_FROM: usize = 4096;

/// What waits at the head of a rank's ring, for a blocking call that takes its own
/// frame off the ring ([`Shm::head`]).
pub(crate) enum Head {
    Empty,
    /// An offer of a single copy: an RTS with the sender's buffer.
    Offer(Offer),
    /// A FIN: the receiver of send `sreq` of ours has read it.
    Fin {
        peer: usize,
        sreq: u64,
        at: At,
    },
    /// Any other frame, or a malformed one (which [`Transport::progress`] reports).
    Other,
}

/// See [`Head::Offer`].
pub(crate) struct Offer {
    /// The sender's world rank.
    pub peer: usize,
    pub hdr: Header,
    /// The buffer to read.
    pub remote: RemoteBuf,
    pub at: At,
}

/// Where a frame [`Shm::head`] found ends: what [`Shm::take_head`] needs.
#[derive(Clone, Copy)]
pub(crate) struct At {
    lines: u64,
}

/// How a single-copy read went.
pub(crate) enum Pulled {
    /// The kernel refused it: the sender must stream the message instead.
    Refused,
    /// The whole message is in the receive buffer.
    Done,
    /// Our part is copied; the sender reports `awaiting` more chunks of split copy
    /// `generation` in a [`Kind::Helped`] frame.
    Shared { generation: u64, awaiting: u64 },
    /// Our read failed with the copy shared: a chunk the sender claimed before may
    /// still land in the receive buffers, so the failure ends the job in either error
    /// mode (the program must not get those buffers back).
    FailedShared(Error),
}

/// Frames waiting for room in a peer's ring.
struct Pending {
    frame: OutFrame,
    /// Payload bytes of a chunked data frame already written.
    off: usize,
}

/// Shared-memory links to the ranks of this node.
pub(crate) struct Shm {
    /// This rank's local index.
    local: usize,
    /// Local index of each world rank (`usize::MAX` for other nodes).
    local_of: Vec<usize>,
    /// World rank of each local index.
    world_of: Vec<usize>,
    inboxes: Vec<Inbox>,
    /// Next position to read in our own ring, and the last one published.
    head: u64,
    published: u64,
    /// Lines after the head to fetch while watching it (see [`Inbox::peek`]).
    ahead: u64,
    /// Per local peer: our last view of its ring's head.
    head_cache: Vec<u64>,
    /// Per local peer: the mid-size messages still to go the way it explores.
    bursts: Bursts,
    pending: Vec<VecDeque<Pending>>,
    /// Local peers with pending frames.
    blocked: Vec<usize>,
    scratch: Vec<u8>,
    config: Config,
    me: usize,
    job: String,
    /// Where this rank is woken when it sleeps in its poller (mixed transports).
    wake: Option<WakeSocket>,
    kicker: Kicker,
    /// The node's collective area, and this rank's books of the collectives over it.
    area: Area,
    books: Books,
    /// The area's large regions are mapped ([`Area::map_large_regions`]).
    large_mapped: bool,
    /// Generation of this rank's last split copy.
    split_generation: u32,
    /// This rank's placement key (see [`placement`]).
    place: u64,
    /// Every local rank could read and write its neighbour's memory at start-up (the
    /// same answer on all of them).
    node_single_copy: bool,
    /// Every local rank registered for `membarrier` fences: a rank reading doorbells
    /// after publishing needs only a compiler fence, since sleepers issue the fence
    /// for it (the same answer on all of them; see [`membarrier`]).
    light_fences: bool,
    /// This rank's last `membarrier` fence failed (see [`Shm::sleep_limit`]).
    unfenced_sleep: bool,
    /// Declared last: unmapped after everything that points into it.
    _segment: Segment,
}

impl Shm {
    /// Joins `segment` (already created or opened) as world rank `me`; `local_ranks`
    /// are the world ranks on this node, in order. Every local rank calls this during
    /// init; it returns once all have, with the segment's name already removed.
    pub(crate) fn join(
        me: usize,
        world_size: usize,
        local_ranks: &[usize],
        segment: Segment,
        config: Config,
        job: &str,
    ) -> Result<Shm> {
        let local = local_ranks
            .iter()
            .position(|&r| r == me)
            .expect("this rank is local");
        if segment.local_size != local_ranks.len() {
            return Err(Error::Bootstrap(format!(
                "shared memory is laid out for {} local ranks, the launcher says {}",
                segment.local_size,
                local_ranks.len()
            )));
        }
        if segment.ring_lines != config.ring_lines {
            // The rings this rank writes into are the segment's: its eager limit and
            // chunks, checked against its own, might never fit them.
            segment.decline(me, Decline::RingSize);
            return Err(Error::config(
                "OXMPI_SHM_RING_KB",
                Config::ring_kb(config.ring_lines).to_string(),
                format!(
                    "the node's first rank (rank {}) made rings of {} KiB: every rank of a node must set it alike",
                    local_ranks[0],
                    Config::ring_kb(segment.ring_lines)
                ),
            ));
        }
        let inboxes: Vec<Inbox> = (0..local_ranks.len()).map(|i| segment.inbox(i)).collect();
        let mine = inboxes[local];
        mine.pid()
            .store(std::process::id() as u64, Ordering::Relaxed);
        mine.probe_addr()
            .store(cma::probe_addr(), Ordering::Relaxed);
        let place = placement::key();
        mine.place().store(place, Ordering::Relaxed);
        segment.attach();
        segment.wait_all_attached()?;
        huge_pages::enable(config.single_copy && config.huge_pages);
        if config.single_copy && local_ranks.len() > 1 {
            let other = inboxes[(local + 1) % local_ranks.len()];
            if cma::probe(
                other.pid().load(Ordering::Relaxed),
                other.probe_addr().load(Ordering::Relaxed),
            ) {
                mine.single_copy().store(1, Ordering::Release);
            }
        }
        // Nobody sends before every rank has probed (below): writing the rings' zeros
        // is safe here. `bw` of 1 B, the first size of a run, ran about 8% fewer
        // messages a second than 2 B without it; about as many with it.
        for inbox in &inboxes {
            inbox.touch_pages();
        }
        // This rank's slots of the collective area likewise (the others' below).
        let area = segment.area();
        area.map_small_slots(local, true);
        if config.membarrier && membarrier::register() {
            mine.light_fences().store(1, Ordering::Release);
        }
        segment.probed();
        segment.wait_all_probed()?;
        for l in (0..local_ranks.len()).filter(|&l| l != local) {
            area.map_small_slots(l, false);
        }
        let light_fences = inboxes
            .iter()
            .all(|i| i.light_fences().load(Ordering::Acquire) == 1);
        let node_single_copy = config.single_copy
            && inboxes
                .iter()
                .all(|i| i.single_copy().load(Ordering::Acquire) == 1);
        let mut local_of = vec![usize::MAX; world_size];
        for (i, &r) in local_ranks.iter().enumerate() {
            local_of[r] = i;
        }
        let n = local_ranks.len();
        Ok(Shm {
            local,
            local_of,
            world_of: local_ranks.to_vec(),
            inboxes,
            head: 0,
            published: 0,
            ahead: 1,
            head_cache: vec![0; n],
            bursts: Bursts::new(n),
            pending: (0..n).map(|_| VecDeque::new()).collect(),
            blocked: Vec::new(),
            scratch: Vec::new(),
            config,
            me,
            job: job.to_owned(),
            wake: None,
            kicker: Kicker::new(),
            area,
            books: Books::default(),
            large_mapped: false,
            split_generation: 0,
            place,
            node_single_copy,
            light_fences,
            unfenced_sleep: false,
            _segment: segment,
        })
    }

    /// A protocol error seen by this rank, from world rank `peer` where known.
    fn protocol(&self, peer: Option<usize>, detail: String) -> Error {
        Error::Protocol {
            rank: self.me as i32,
            peer: peer.map_or(-1, |p| p as i32),
            detail,
        }
    }

    /// Wakes local rank `l` if it sleeps.
    ///
    /// Only a compiler fence orders our ring write before this read of the doorbell: a
    /// full fence would make every send wait for its stores to drain. Where the node
    /// has `membarrier` fences the sleeper issues the fence for us ([`membarrier`]);
    /// elsewhere a sleeper that sets its doorbell in the moment our write is still in
    /// flight misses this wake-up and finds the frame after its first, short sleep
    /// ([`crate::engine::wait`]).
    #[inline(always)]
    fn notify(&mut self, l: usize) {
        membarrier::light();
        if self.inboxes[l].doorbell().load(Ordering::Relaxed) != 0 {
            self.ring_bell(l);
        }
    }

    /// The part of [`Shm::notify`] for a peer that sleeps (or is about to).
    #[cold]
    #[inline(never)]
    fn ring_bell(&mut self, l: usize) {
        let bell = self.inboxes[l].doorbell();
        match bell.swap(AWAKE, Ordering::AcqRel) {
            ON_FUTEX => futex::wake(bell),
            IN_POLLER => self.kicker.kick(&self.job, self.world_of[l]),
            _ => {}
        }
    }

    /// Sends a plain eager message ([`Header::eager`]) to world rank `peer`, its
    /// header stored straight into the ring (see [`Inbox::try_push_eager`]). True
    /// when it is written; false when it waits in the queue for room, as
    /// [`Transport::send`] reports.
    #[inline(always)]
    pub(crate) fn send_eager(&mut self, peer: usize, env: Envelope, buf: UserBuf) -> Result<bool> {
        let l = self.local_of[peer];
        if self.pending[l].is_empty()
            && self.inboxes[l].try_push_eager(
                &mut self.head_cache[l],
                self.local,
                env,
                buf.as_slice(),
            )
        {
            self.notify(l);
            return Ok(true);
        }
        self.send_eager_queued(peer, env, buf)
    }

    /// [`Shm::send_eager`] when the ring lacks room or frames wait before this one.
    #[cold]
    #[inline(never)]
    fn send_eager_queued(&mut self, peer: usize, env: Envelope, buf: UserBuf) -> Result<bool> {
        self.send(peer, OutFrame::eager(env, buf))
    }

    /// Whether `frame` is streamed through the ring in several chunks.
    #[inline]
    fn chunked(&self, frame: &OutFrame) -> bool {
        frame.hdr.kind() == Some(Kind::Data) && frame.payload.bytes().len() > self.config.chunk
    }

    /// Writes all of `frame`, which is not [`Shm::chunked`], into local peer `l`'s
    /// ring, if it has room.
    #[inline]
    fn push_whole(&mut self, l: usize, frame: &OutFrame) -> bool {
        self.inboxes[l].try_push(
            &mut self.head_cache[l],
            self.local,
            &frame.hdr,
            frame.payload.bytes(),
        )
    }

    /// Writes as much of `p` as fits into local peer `l`'s ring. Returns whether all
    /// of it is written.
    fn push(&mut self, l: usize, p: &mut Pending) -> bool {
        if !self.chunked(&p.frame) {
            return self.push_whole(l, &p.frame);
        }
        let inbox = self.inboxes[l];
        let body = p.frame.payload.bytes();
        while p.off < body.len() {
            let n = (body.len() - p.off).min(self.config.chunk);
            let mut hdr = p.frame.hdr;
            hdr.b += p.off as u64;
            hdr.payload = n as u64;
            if !inbox.try_push(
                &mut self.head_cache[l],
                self.local,
                &hdr,
                &body[p.off..p.off + n],
            ) {
                return false;
            }
            p.off += n;
        }
        true
    }

    /// Retries the frames queued for local peer `l`.
    fn flush(&mut self, l: usize, sink: &mut dyn Sink) -> Result<bool> {
        let mut moved = false;
        while let Some(mut p) = self.pending[l].pop_front() {
            let before = p.off;
            let done = self.push(l, &mut p);
            moved |= done || p.off != before;
            if !done {
                self.pending[l].push_front(p);
                self.inboxes[l].add_waiter(self.local);
                break;
            }
            if let Some(t) = p.frame.token {
                sink.sent(t)?;
            }
        }
        if moved {
            self.notify(l);
        }
        if self.pending[l].is_empty() {
            self.blocked.retain(|&b| b != l);
        }
        Ok(moved)
    }

    /// Hands the frame at our ring's head to the sink.
    fn deliver(&mut self, frame: &ring::Frame, sink: &mut dyn Sink) -> Result<()> {
        let inbox = self.inboxes[self.local];
        let peer = self.sender(frame)?;
        if frame.hdr.kind() == Some(Kind::Data) {
            let dest = sink.data_dest(peer, &frame.hdr)?;
            inbox.copy_payload(frame, 0, dest.as_mut_slice());
            return sink.data_done(peer, &frame.hdr);
        }
        match inbox.payload(frame) {
            Some(bytes) => sink.frame(peer, &frame.hdr, bytes),
            None => {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.resize(frame.hdr.payload as usize, 0);
                inbox.copy_payload(frame, 0, &mut scratch);
                let r = sink.frame(peer, &frame.hdr, &scratch);
                self.scratch = scratch;
                r
            }
        }
    }

    /// The world rank that sent `frame`, once the frame is checked: its sender is a
    /// local rank, and its payload fits a ring.
    #[inline]
    fn sender(&self, frame: &ring::Frame) -> Result<usize> {
        let Some(&peer) = self.world_of.get(frame.from) else {
            return Err(self.protocol(
                None,
                format!("frame from unknown local rank {}", frame.from),
            ));
        };
        if frame.hdr.payload as usize > ring::max_payload(self.config.ring_lines) {
            return Err(self.protocol(
                None,
                format!("frame of {} bytes cannot be in a ring", frame.hdr.payload),
            ));
        }
        Ok(peer)
    }

    /// Moves this rank's head past a frame of `lines`, which it has handled.
    #[inline]
    fn consumed(&mut self, lines: u64) {
        self.head += lines;
        self.ahead = ring::lines_ahead(lines);
    }

    /// Takes the frame at the head of this rank's ring if it is a plain eager message
    /// (no acknowledgement asked) that `accept` takes, given the sender's world rank,
    /// the envelope and the payload: `accept` lands the payload itself. `None`: the
    /// ring is empty. `Some(false)`: a frame waits that [`Transport::progress`] must
    /// handle (another kind, one `accept` refused, one whose payload wraps around the
    /// ring's end, or one that is malformed, which `progress` reports).
    #[inline]
    pub(crate) fn take_eager(
        &mut self,
        accept: impl FnOnce(usize, Envelope, &[u8]) -> bool,
    ) -> Option<bool> {
        let inbox = self.inboxes[self.local];
        let frame = inbox.peek(self.head, self.ahead)?;
        if frame.hdr.kind() != Some(Kind::Eager) || frame.hdr.flags != 0 {
            return Some(false);
        }
        // Checked before its payload is looked at, as `deliver` does.
        let Ok(peer) = self.sender(&frame) else {
            return Some(false);
        };
        let Some(bytes) = inbox.payload(&frame) else {
            return Some(false);
        };
        if !accept(peer, frame.hdr.envelope(), bytes) {
            return Some(false);
        }
        self.consumed(frame.lines);
        self.publish();
        Some(true)
    }

    /// What waits at the head of this rank's ring. It stays there until
    /// [`Shm::take_head`].
    #[inline]
    pub(crate) fn head(&self) -> Head {
        let inbox = self.inboxes[self.local];
        let Some(frame) = inbox.peek(self.head, self.ahead) else {
            return Head::Empty;
        };
        let Ok(peer) = self.sender(&frame) else {
            return Head::Other;
        };
        let at = At { lines: frame.lines };
        let hdr = frame.hdr;
        match hdr.kind() {
            Some(Kind::Fin) if hdr.payload == 0 => Head::Fin {
                peer,
                sreq: hdr.a,
                at,
            },
            Some(Kind::Rts) if hdr.flags & flags::SINGLE_COPY != 0 => match inbox.payload(&frame) {
                Some(bytes) if bytes.len() == std::mem::size_of::<RemoteBuf>() => {
                    Head::Offer(Offer {
                        peer,
                        hdr,
                        remote: bytemuck::pod_read_unaligned(bytes),
                        at,
                    })
                }
                _ => Head::Other,
            },
            _ => Head::Other,
        }
    }

    /// Takes the frame that ends `at` ([`Shm::head`]) off the ring.
    #[inline]
    pub(crate) fn take_head(&mut self, at: At) {
        self.consumed(at.lines);
        self.publish();
    }

    /// Whether frames of ours wait for room in a local peer's ring.
    pub(crate) fn has_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Makes our consumed lines free for producers if any wait (or a good part of the
    /// ring is held back), waking the waiters.
    ///
    /// The check is inline (a receive asks after every message it takes off the
    /// ring, and nearly always nothing is due); [`Shm::publish_now`] does the rest.
    #[inline]
    fn publish(&mut self) {
        if self.head == self.published {
            return;
        }
        let lazy = self.head - self.published < self.config.ring_lines as u64 / 8;
        if lazy && !self.inboxes[self.local].has_waiters() {
            return;
        }
        self.publish_now();
    }

    /// [`Shm::publish`] once room is due to producers.
    #[inline(never)]
    fn publish_now(&mut self) {
        let inbox = self.inboxes[self.local];
        inbox.publish_head(self.head);
        self.published = self.head;
        fence(Ordering::SeqCst);
        inbox.take_waiters(|w| self.notify(w));
    }

    /// Whether world rank `peer` is reached through shared memory and can read our
    /// memory directly.
    pub(crate) fn single_copy(&self, peer: usize) -> bool {
        self.config.single_copy
            && self.inboxes[self.local_of[peer]]
                .single_copy()
                .load(Ordering::Acquire)
                == 1
    }

    /// Whether receivers learn which way large messages go (see [`Config::learn`]).
    pub(crate) fn learns_rendezvous(&self) -> bool {
        self.config.single_copy && self.config.learn
    }

    /// Where this rank asks for mid-size messages to be offered for reading, where
    /// it learns which way they go (as for large messages) and the eager limit leaves
    /// mid sizes.
    pub(crate) fn read_requests(&self) -> Option<ReadRequests> {
        (self.learns_rendezvous() && self.config.eager_limit > READ_FROM).then(|| ReadRequests {
            inbox: self.inboxes[self.local],
            eager_limit: self.config.eager_limit,
        })
    }

    /// Whether a message of `len` bytes to world rank `peer` (of this node) goes
    /// eagerly: up to the eager limit, unless it is mid-size, one that `asks` (a
    /// point-to-point one, not a collective's), and `peer` can read it and asks for it
    /// to be offered for reading (see [`ReadRequests`]).
    #[inline]
    pub(crate) fn sends_eagerly(&mut self, peer: usize, len: usize, asks: bool) -> bool {
        len <= self.config.eager_limit && (len <= READ_FROM || !asks || !self.offers(peer, len))
    }

    /// Whether a mid-size message of `len` bytes to `peer` is offered for reading
    /// ([`Shm::sends_eagerly`]).
    fn offers(&mut self, peer: usize, len: usize) -> bool {
        let local = self.local_of[peer];
        self.bursts.offers(local, &self.inboxes[local], len) && self.single_copy(peer)
    }

    /// Whether single-copy messages of `lens` bytes from one sender, read together,
    /// have their copy shared by both ends (see [`split`]): one alone from
    /// [`Config::split`] bytes on; several where they make that many together, each
    /// of at least half as many (smaller ones cost the sender a Help frame and a
    /// system call each, and `oxbench bw` of 16 / 32 KiB lost 23 / 15%).
    pub(crate) fn splits(&self, lens: impl Iterator<Item = usize>) -> bool {
        let Some(min) = self.config.split.filter(|_| self.node_single_copy) else {
            return false;
        };
        let (mut n, mut bytes, mut least) = (0, 0, usize::MAX);
        for len in lens {
            n += 1;
            bytes += len;
            least = least.min(len);
        }
        bytes >= min && (n == 1 || 2 * least >= min)
    }

    /// Whether copies are shared with a sender busy reading a message of this rank's
    /// (see [`Config::split_busy`]).
    pub(crate) fn shares_with_busy(&self) -> bool {
        self.config.split_busy
    }

    /// Reads large messages of world rank `peer` (none of which [`Shm::splits`])
    /// straight from its memory, in as few system calls as possible. `Ok(false)` when
    /// the kernel refuses (the caller falls back to streaming them).
    pub(crate) fn pull_many(&self, peer: usize, parts: &[(RemoteBuf, UserBufMut)]) -> Result<bool> {
        let pid = self.checked_pid(peer, parts.iter().map(|(r, _)| r))?;
        let mut io: Vec<(u64, &mut [u8])> = parts
            .iter()
            .map(|(remote, dest)| (remote.addr, dest.as_mut_slice()))
            .collect();
        let read = cma::read_many(pid, &mut io)
            .map_err(|e| self.lost(peer, format!("reading its send buffers failed: {e}")))?;
        self.still_lent(peer)?;
        Ok(read)
    }

    /// Reads one large message of world rank `peer` (one whose copy is not split, see
    /// [`Shm::splits`]) straight from its memory; results as for [`Shm::pull_many`].
    pub(crate) fn pull_one(
        &self,
        peer: usize,
        remote: &RemoteBuf,
        dest: UserBufMut,
    ) -> Result<bool> {
        let pid = self.checked_pid(peer, std::iter::once(remote))?;
        let read = cma::read(pid, remote.addr, dest.as_mut_slice())
            .map_err(|e| self.lost(peer, format!("reading its send buffer failed: {e}")))?;
        self.still_lent(peer)?;
        Ok(read)
    }

    /// World rank `peer`'s process id, which every one of `remotes` must name.
    fn checked_pid<'r>(
        &self,
        peer: usize,
        mut remotes: impl Iterator<Item = &'r RemoteBuf>,
    ) -> Result<u64> {
        let pid = self.inboxes[self.local_of[peer]]
            .pid()
            .load(Ordering::Relaxed);
        match remotes.find(|r| r.pid != pid) {
            None => Ok(pid),
            Some(r) => Err(self.protocol(
                Some(peer),
                format!("its buffer is said to be in process {}, not {pid}", r.pid),
            )),
        }
    }

    /// Reads large messages of world rank `peer` (each with its send request) that
    /// together [`Shm::splits`] straight from its memory, sharing the copy with the
    /// sender: one message in two page-aligned halves; several (a window of a
    /// bandwidth test) a chunk each.
    pub(crate) fn pull(
        &mut self,
        peer: usize,
        parts: &[(RemoteBuf, UserBufMut, u64)],
    ) -> Result<Pulled> {
        self.checked_pid(peer, parts.iter().map(|(r, _, _)| r))?;
        debug_assert!(self.splits(parts.iter().map(|p| p.1.len())));
        // With the sender already polling (as it is while it waits for its sends),
        // finer cuts only add system calls and contention.
        let chunk_of = |len: usize| {
            if parts.len() == 1 {
                len.div_ceil(2).next_multiple_of(PROBE_BYTES)
            } else {
                len
            }
        };
        // A first page before asking for help: a refusal still lets the sender stream
        // every message.
        let (remote, dest, _) = &parts[0];
        let probe = PROBE_BYTES.min(dest.len());
        if !self.read(peer, remote, 0, &mut dest.as_mut_slice()[..probe])? {
            return Ok(Pulled::Refused);
        }
        self.split_generation = self.split_generation.wrapping_add(1);
        let generation = self.split_generation;
        let inbox = self.inboxes[self.local];
        let word = inbox.claim();
        split::open(word, generation);
        // The messages' chunks are numbered one after the other; the sender claims
        // a message's chunks only once its Help frame is in. Every destination is
        // lent before the first frame goes: the sender may write into the first while
        // a later one is still being counted, and a window's are often one buffer.
        let mut chunks = 0u32;
        let requests: Vec<(u64, HelpRequest)> = parts
            .iter()
            .map(|&(_, dest, sreq)| {
                let chunk = chunk_of(dest.len());
                let request = HelpRequest {
                    dest: RemoteBuf::lent(dest.addr(), dest.len()).0,
                    chunk: chunk as u64,
                    first: u64::from(chunks),
                };
                chunks += dest.len().div_ceil(chunk) as u32;
                (sreq, request)
            })
            .collect();
        for (sreq, request) in requests {
            let mut hdr = Header::new(Kind::Help);
            hdr.a = sreq;
            hdr.b = u64::from(generation);
            hdr.payload = std::mem::size_of::<HelpRequest>() as u64;
            let help = OutFrame {
                hdr,
                payload: Payload::Help(request),
                token: None,
            };
            Transport::send(self, peer, help)?;
        }
        let mut own = 0;
        let (mut at, mut first) = (0, 0);
        while let Some(i) = split::claim(word, generation, chunks) {
            // Claims come in order: the message of chunk `i` is this one or later.
            let (remote, dest, chunk) = loop {
                let (remote, dest, _) = &parts[at];
                let chunk = chunk_of(dest.len());
                let n = dest.len().div_ceil(chunk) as u32;
                if i < first + n {
                    break (remote, dest, chunk);
                }
                first += n;
                at += 1;
            };
            let r = split::range(i - first, chunk, dest.len());
            let read = self.read(
                peer,
                remote,
                r.start,
                dest.sub(r.start, r.len()).as_mut_slice(),
            );
            if !matches!(read, Ok(true)) {
                // No more claims for the sender (one it made already still lands: the
                // job ends on this error, see docs/shared-memory.md).
                split::close(word, generation);
                return Ok(Pulled::FailedShared(read.err().unwrap_or_else(|| {
                    self.lost(peer, "reading its memory was refused midway".into())
                })));
            }
            own += 1;
        }
        Ok(if own == chunks {
            Pulled::Done
        } else {
            Pulled::Shared {
                generation: u64::from(generation),
                awaiting: u64::from(chunks - own),
            }
        })
    }

    /// Copies chunks of our message `src` into the buffer of local receiver `peer` for
    /// its split copy of generation `generation`, until none of the message's is left
    /// to claim. Returns how many chunks we copied.
    pub(crate) fn help(
        &mut self,
        peer: usize,
        generation: u64,
        src: UserBuf,
        request: &HelpRequest,
    ) -> Result<u64> {
        let len = src.len();
        let chunk = usize::try_from(request.chunk).unwrap_or(0);
        // The message's chunks are numbered from `first` in the copy.
        let (Ok(generation), Ok(first), Some(Ok(chunks))) = (
            u32::try_from(generation),
            u32::try_from(request.first),
            (chunk > 0).then(|| u32::try_from(len.div_ceil(chunk))),
        ) else {
            return Err(self.protocol(
                Some(peer),
                format!(
                    "help request with generation {generation}, chunk {chunk} and first \
                     chunk {}",
                    request.first
                ),
            ));
        };
        self.checked_pid(peer, std::iter::once(&request.dest))?;
        let inbox = self.inboxes[self.local_of[peer]];
        let word = inbox.claim();
        let mut copied = 0;
        while let Some(i) = split::claim(word, generation, first.saturating_add(chunks)) {
            // Help frames come in the order of their chunks, and we claim each one's
            // until none is left: an earlier chunk is one the receiver skipped.
            let Some(i) = i.checked_sub(first) else {
                return Err(self.protocol(Some(peer), format!("chunk {i} left unclaimed")));
            };
            let range = split::range(i, chunk, len);
            let addr = request.dest.addr + range.start as u64;
            let written = cma::write(request.dest.pid, addr, &src.as_slice()[range])
                .map_err(|e| self.lost(peer, format!("writing its receive buffer failed: {e}")))?;
            if !written {
                return Err(self.lost(peer, "writing its receive buffer was refused".into()));
            }
            copied += 1;
        }
        Ok(copied)
    }

    /// Whether every local rank could read and write its neighbour's memory at
    /// start-up (the same answer on all of them).
    pub(crate) fn node_single_copy(&self) -> bool {
        self.node_single_copy
    }

    /// Reads bytes of local rank `l`'s buffer `remote`, from `offset` on, into `dst`
    /// (for a collective whose ranks read each other's buffers directly).
    pub(crate) fn read_local(
        &self,
        l: usize,
        remote: &RemoteBuf,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<()> {
        let peer = self.world_of[l];
        self.checked_pid(peer, std::iter::once(remote))?;
        if self.read(peer, remote, offset, dst)? {
            Ok(())
        } else {
            Err(self.lost(peer, "reading its buffer was refused".into()))
        }
    }

    /// Reads bytes of world rank `peer`'s buffer `remote`, from `offset` on, into `dst`.
    fn read(&self, peer: usize, remote: &RemoteBuf, offset: usize, dst: &mut [u8]) -> Result<bool> {
        let read = cma::read(remote.pid, remote.addr + offset as u64, dst)
            .map_err(|e| self.lost(peer, format!("reading its memory failed: {e}")))?;
        self.still_lent(peer)?;
        Ok(read)
    }

    /// Gives up this rank's claim on what it lent for reading: its engine failed in
    /// return-errors mode, and the buffers of its unfinished sends and collectives go
    /// back to the program, which may write them at once. A peer that read them since
    /// learns it from [`Shm::still_lent`] and fails rather than keep the program's
    /// new data as a message.
    pub(crate) fn withdraw(&self) {
        self.inboxes[self.local]
            .withdrawn()
            .store(1, Ordering::Relaxed);
        // The flag is visible before any later write of the program's (as a seqlock's
        // writer: its flag, a fence, then its data).
        fence(Ordering::SeqCst);
    }

    /// After a read of `peer`'s memory: whether `peer` still lent its buffers when
    /// the read was done. If it withdrew them ([`Shm::withdraw`]) the bytes read may
    /// be its program's later data, so the read fails.
    fn still_lent(&self, peer: usize) -> Result<()> {
        // The bytes read are older than the flag read below (a seqlock's reader: its
        // data, a fence, then its flag): a flag still clear means the read ended before
        // the peer gave the buffers back.
        fence(Ordering::Acquire);
        let flag = self.inboxes[self.local_of[peer]].withdrawn();
        if flag.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        Err(self.lost(
            peer,
            "it failed and gave its program back the buffer this rank was reading".into(),
        ))
    }

    fn lost(&self, peer: usize, detail: String) -> Error {
        Error::PeerLost {
            rank: self.me as i32,
            peer: peer as i32,
            detail,
        }
    }

    /// The node's collective area and the next collective's place in it, with
    /// `room` for this rank's data.
    #[inline(always)]
    pub(crate) fn area(&mut self, room: Room) -> (Area, Ticket) {
        if !self.large_mapped && !matches!(room, Room::Slot) {
            // Once, at this rank's first collective with data beyond a slot: every
            // rank pays for it only if it uses large buffers (8 ranks spent 11 ms more
            // starting up when all mapped them then, 16 ranks 33 ms).
            self.area.map_large_regions(self.local);
            self.large_mapped = true;
        }
        (self.area, self.books.next(room))
    }

    /// Every local rank has been seen to have entered collective `seq` over the area.
    pub(crate) fn all_entered(&mut self, seq: u64) {
        self.books.all_entered(seq);
    }

    /// Number of ranks on this node.
    pub(crate) fn local_ranks(&self) -> usize {
        self.inboxes.len()
    }

    /// Local index of world rank `peer`, if it is on this node.
    pub(crate) fn local_index(&self, peer: usize) -> Option<usize> {
        self.local_of
            .get(peer)
            .copied()
            .filter(|&l| l != usize::MAX)
    }

    /// How many local ranks that may run on the same CPUs as this one (the same
    /// affinity mask: bound to its core, or unbound like it) could use them: awake,
    /// not asleep in a wait, and not waiting in the collective area for as much as
    /// this one waits for there ([`Shm::mark_area_wait`], [`area::waits_as_long`]);
    /// this one included.
    pub(crate) fn awake_beside(&self) -> usize {
        let mine = self.inboxes[self.local].area_wait().load(Ordering::Relaxed);
        let others = self
            .inboxes
            .iter()
            .enumerate()
            .filter(|&(l, i)| {
                l != self.local
                    && i.doorbell().load(Ordering::Relaxed) == AWAKE
                    && i.place().load(Ordering::Relaxed) == self.place
                    && !area::waits_as_long(mine, i.area_wait().load(Ordering::Relaxed))
            })
            .count();
        1 + others
    }

    /// Publishes the collective over the area that this rank waits for every local
    /// rank to enter, until the returned mark is dropped. A rank that shares its CPU
    /// and waits for as much may keep the CPU instead of yielding it to this one,
    /// which would only wait again. The mark must not outlive this transport.
    pub(crate) fn mark_area_wait(&self, seq: u64) -> AreaWaitMark {
        let inbox = self.inboxes[self.local];
        inbox.area_wait().store(seq, Ordering::Relaxed);
        AreaWaitMark { inbox }
    }

    /// Wakes every local rank that sleeps, if `worth_it` says so (asked only when
    /// some rank sleeps: doorbells are cheap to read, `worth_it` may not be). The
    /// caller has just published what they wait for. A fence between that and the
    /// doorbell reads (a full one, or the sleepers' [`membarrier`] fence) makes a rank
    /// that starts to sleep after this looked at its doorbell see it in its re-check
    /// (see [`Shm::block`]); and a full fence before `worth_it` reads what the other
    /// publishers wrote makes, of two ranks publishing the last arrivals at once, at
    /// least one see the other's and wake the sleeper (the sleeper's fence does not
    /// order two publishers: it went to sleep long before).
    pub(crate) fn wake_sleepers(&mut self, worth_it: impl FnOnce() -> bool) {
        if self.light_fences {
            membarrier::light();
        } else {
            fence(Ordering::SeqCst);
        }
        let mut worth_it = Some(worth_it);
        for l in 0..self.inboxes.len() {
            if l == self.local || self.inboxes[l].doorbell().load(Ordering::Relaxed) == AWAKE {
                continue;
            }
            if let Some(f) = worth_it.take() {
                if self.light_fences {
                    fence(Ordering::SeqCst);
                }
                if !f() {
                    return;
                }
            }
            self.notify(l);
        }
    }

    /// Sleeps on the futex until a frame arrives, a ring we wait on frees room, a
    /// local rank wakes us, or `timeout`. `recheck` says whether what the caller waits
    /// for in the collective area has happened; it runs after the doorbell is set.
    pub(crate) fn block(&mut self, timeout: Duration, recheck: &dyn Fn() -> bool) {
        if self.announce_sleep(ON_FUTEX) && !recheck() {
            let timeout = self.sleep_limit(timeout);
            futex::wait(self.inboxes[self.local].doorbell(), ON_FUTEX, timeout);
        }
        self.end_sleep();
    }

    /// `timeout`, or less if this rank's last [`membarrier`] fence failed: the other
    /// ranks still leave out their fences, so a wake-up may have been missed.
    pub(crate) fn sleep_limit(&self, timeout: Duration) -> Duration {
        if self.unfenced_sleep {
            timeout.min(UNFENCED_SLEEP)
        } else {
            timeout
        }
    }

    /// Prepares to sleep in the poller (mixed transports). Returns the socket to add to
    /// the poller when it is safe to sleep; call [`Shm::end_sleep`] afterwards.
    /// `recheck` is as for [`Shm::block`].
    pub(crate) fn begin_poller_sleep(
        &mut self,
        recheck: &dyn Fn() -> bool,
    ) -> Result<Option<RawFd>> {
        if self.wake.is_none() {
            let sock = WakeSocket::bind(&self.job, self.me)
                .map_err(|e| Error::io("binding the wake-up socket", e))?;
            self.wake = Some(sock);
        }
        let fd = self.wake.as_ref().map(WakeSocket::fd);
        Ok(if self.announce_sleep(IN_POLLER) && !recheck() {
            fd
        } else {
            None
        })
    }

    /// Sets the doorbell to `how` and re-checks everything a sender could have done
    /// meanwhile. Returns whether it is safe to sleep. Fences between the two: a
    /// SeqCst fence, which pairs with the one of a rank publishing in the collective
    /// area, and where the node has them a [`membarrier`] fence on every CPU, which
    /// stands in for the fences publishers leave out (should it fail, this sleep is
    /// cut short, [`Shm::sleep_limit`]).
    fn announce_sleep(&mut self, how: u32) -> bool {
        let inbox = self.inboxes[self.local];
        inbox.doorbell().store(how, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.unfenced_sleep = self.light_fences && !membarrier::heavy();
        let mut ready = inbox.peek(self.head, self.ahead).is_some()
            || (inbox.has_waiters() && self.head != self.published);
        for &l in &self.blocked {
            self.inboxes[l].add_waiter(self.local);
            ready |= self.inboxes[l].head_moved(self.head_cache[l]);
        }
        !ready
    }

    /// Back from a sleep.
    pub(crate) fn end_sleep(&mut self) {
        self.inboxes[self.local]
            .doorbell()
            .store(AWAKE, Ordering::Relaxed);
        if let Some(w) = &self.wake {
            w.drain();
        }
    }
}

/// A published wait in the collective area ([`Shm::mark_area_wait`]), withdrawn when
/// the mark is dropped: when the wait ends, fails, or unwinds.
pub(crate) struct AreaWaitMark {
    inbox: Inbox,
}

impl Drop for AreaWaitMark {
    fn drop(&mut self) {
        self.inbox.area_wait().store(0, Ordering::Relaxed);
    }
}

impl Transport for Shm {
    #[inline(always)]
    fn send(&mut self, peer: usize, frame: OutFrame) -> Result<bool> {
        let l = self.local_of[peer];
        if !self.pending[l].is_empty() {
            self.pending[l].push_back(Pending { frame, off: 0 });
            return Ok(false);
        }
        let p = if !self.chunked(&frame) {
            // The common case, without building a queue entry.
            if self.push_whole(l, &frame) {
                self.notify(l);
                return Ok(true);
            }
            Pending { frame, off: 0 }
        } else {
            let mut p = Pending { frame, off: 0 };
            let written = self.push(l, &mut p);
            if written || p.off > 0 {
                self.notify(l);
            }
            if written {
                return Ok(true);
            }
            p
        };
        self.inboxes[l].add_waiter(self.local);
        self.blocked.push(l);
        self.pending[l].push_back(p);
        Ok(false)
    }

    fn tag_last(&mut self, peer: usize, token: u64) {
        if let Some(p) = self.pending[self.local_of[peer]].back_mut() {
            p.frame.token = Some(token);
        }
    }

    fn progress(&mut self, sink: &mut dyn Sink) -> Result<bool> {
        let inbox = self.inboxes[self.local];
        let mut moved = false;
        while let Some(frame) = inbox.peek(self.head, self.ahead) {
            self.deliver(&frame, sink)?;
            self.consumed(frame.lines);
            moved = true;
        }
        self.publish();
        // Each blocked peer once: a flush that empties its queue takes it off the list.
        let mut i = 0;
        while let Some(&l) = self.blocked.get(i) {
            moved |= self.flush(l, sink)?;
            if self.blocked.get(i) == Some(&l) {
                i += 1;
            }
        }
        Ok(moved)
    }

    fn eager_limit(&self) -> usize {
        self.config.eager_limit
    }
}
