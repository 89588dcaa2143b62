//! Routes every peer to the one transport that reaches it, and waits on all of them.
//!
//! Invariant: a peer's route never changes after init, so all frames to one peer go
//! through one transport, which keeps their order (see the transports module).

use std::time::Duration;

use super::frame::{Envelope, HelpRequest, OutFrame, RemoteBuf};
use super::loopback::Loopback;
use super::shm::area::{Area, Room, Ticket};
use super::shm::{AreaWaitMark, At, Head, Pulled, ReadRequests, Shm};
use super::tcp::Tcp;
use super::{Sink, Transport};
use crate::error::{Error, Result};
use crate::userbuf::{UserBuf, UserBufMut};

/// Which transport reaches a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// This rank itself.
    Loopback,
    /// Shared memory (same node).
    Shm,
    /// A TCP connection.
    Tcp,
}

/// All transports of this rank, and the route to each peer.
pub(crate) struct Network {
    me: usize,
    routes: Vec<Route>,
    lo: Loopback,
    shm: Option<Shm>,
    tcp: Option<Tcp>,
}

impl Network {
    pub(crate) fn new(
        me: usize,
        routes: Vec<Route>,
        shm: Option<Shm>,
        tcp: Option<Tcp>,
    ) -> Network {
        debug_assert!(!routes.contains(&Route::Tcp) || tcp.is_some());
        debug_assert!(!routes.contains(&Route::Shm) || shm.is_some());
        Network {
            me,
            routes,
            lo: Loopback::new(me),
            shm,
            tcp,
        }
    }

    fn transport(&mut self, peer: usize) -> &mut dyn Transport {
        match self.routes[peer] {
            Route::Loopback => &mut self.lo,
            Route::Shm => self
                .shm
                .as_mut()
                .expect("a shared-memory route implies the transport"),
            Route::Tcp => self
                .tcp
                .as_mut()
                .expect("a TCP route implies a TCP transport"),
        }
    }

    /// See [`Transport::send`].
    #[inline(always)]
    pub(crate) fn send(&mut self, peer: usize, frame: OutFrame) -> Result<bool> {
        // Matched here rather than through `transport()`, so the hot path is a
        // direct (inlinable) call.
        match (self.routes[peer], &mut self.shm, &mut self.tcp) {
            (Route::Shm, Some(shm), _) => shm.send(peer, frame),
            (Route::Tcp, _, Some(tcp)) => tcp.send(peer, frame),
            _ => self.transport(peer).send(peer, frame),
        }
    }

    /// Sends a plain eager message ([`Header::eager`](super::frame::Header::eager)) of `buf` to `peer`: as
    /// [`Network::send`], where shared memory writes the header straight into the ring.
    #[inline(always)]
    pub(crate) fn send_eager(&mut self, peer: usize, env: Envelope, buf: UserBuf) -> Result<bool> {
        if let (Route::Shm, Some(shm)) = (self.routes[peer], &mut self.shm) {
            return shm.send_eager(peer, env, buf);
        }
        self.send(peer, OutFrame::eager(env, buf))
    }

    /// See [`Transport::tag_last`].
    pub(crate) fn tag_last(&mut self, peer: usize, token: u64) {
        self.transport(peer).tag_last(peer, token);
    }

    /// Progresses every transport once.
    pub(crate) fn progress(&mut self, sink: &mut dyn Sink) -> Result<bool> {
        let mut moved = self.lo.is_pending() && self.lo.progress(sink)?;
        if let Some(shm) = self.shm.as_mut() {
            moved |= shm.progress(sink)?;
        }
        if let Some(tcp) = self.tcp.as_mut() {
            moved |= tcp.progress(sink)?;
        }
        Ok(moved)
    }

    /// Shared memory, where it is this rank's only way in from other ranks (no TCP
    /// transport) and nothing of its own to itself or to a full ring waits: then a
    /// blocking receive may take its message off the ring itself.
    #[inline]
    fn shm_alone(&mut self) -> Option<&mut Shm> {
        match &mut self.shm {
            Some(shm) if self.tcp.is_none() && !self.lo.is_pending() && !shm.has_blocked() => {
                Some(shm)
            }
            _ => None,
        }
    }

    /// [`Shm::take_eager`] where [`Network::shm_alone`]; `None` when nothing has
    /// arrived, `Some(false)` when a progress pass is needed (also wherever shared
    /// memory is not alone).
    #[inline]
    pub(crate) fn take_eager(
        &mut self,
        accept: impl FnOnce(usize, Envelope, &[u8]) -> bool,
    ) -> Option<bool> {
        self.shm_alone()
            .map_or(Some(false), |shm| shm.take_eager(accept))
    }

    /// [`Shm::head`] where [`Network::shm_alone`] (else [`Head::Other`]).
    #[inline]
    pub(crate) fn head(&mut self) -> Head {
        self.shm_alone().map_or(Head::Other, |shm| shm.head())
    }

    /// [`Shm::take_head`]: the frame that ends `at`, from [`Network::head`], is handled.
    #[inline]
    pub(crate) fn take_head(&mut self, at: At) {
        if let Some(shm) = self.shm.as_mut() {
            shm.take_head(at);
        }
    }

    /// Whether a message of `len` bytes to `peer` goes eagerly (else by rendezvous):
    /// up to the transport's eager limit, and to a rank of this node, if `asks`, as it
    /// asks for mid sizes ([`Shm::sends_eagerly`]).
    pub(crate) fn sends_eagerly(&mut self, peer: usize, len: usize, asks: bool) -> bool {
        match (self.routes[peer], &mut self.shm, &self.tcp) {
            (Route::Shm, Some(shm), _) => shm.sends_eagerly(peer, len, asks),
            (Route::Tcp, _, Some(tcp)) => len <= tcp.eager_limit(),
            _ => len <= self.transport(peer).eager_limit(),
        }
    }

    /// Whether `len` bytes to `peer` are within the shared-memory eager limit (false
    /// for a peer over another route). Such a message that does not go eagerly, a
    /// mid-size one its receiver asked to read ([`Shm::sends_eagerly`]), is offered
    /// so that the receiver takes it unasked where credit allows.
    pub(crate) fn within_eager_limit(&self, peer: usize, len: usize) -> bool {
        match (self.routes[peer], &self.shm) {
            (Route::Shm, Some(shm)) => len <= shm.eager_limit(),
            _ => false,
        }
    }

    /// Where this rank asks the ranks of its node for mid-size messages to be offered
    /// for reading, if it learns how they should come ([`Shm::read_requests`]), and
    /// which world ranks are on its node.
    pub(crate) fn read_requests(&self) -> Option<(ReadRequests, Vec<bool>)> {
        let requests = self.shm.as_ref()?.read_requests()?;
        let on_node = self.routes.iter().map(|&r| r == Route::Shm).collect();
        Some((requests, on_node))
    }

    /// The TCP eager limit, if this rank reaches some rank of `group` (world ranks)
    /// over TCP. Every rank of a group gets the same answer: routes follow the nodes
    /// (and `OXMPI_TRANSPORT`, a job-wide setting), and a group that spans two nodes
    /// has, for each of its ranks, a rank on another node. The collectives' selection
    /// tells traffic between nodes by it.
    pub(crate) fn tcp_among(&self, group: &[u32]) -> Option<usize> {
        let tcp = self.tcp.as_ref()?;
        group
            .iter()
            .any(|&r| self.routes[r as usize] == Route::Tcp)
            .then(|| tcp.eager_limit())
    }

    /// Whether a frame to `peer` goes over a link that already exists (shared memory
    /// always; TCP once this rank has a connection to send to `peer` on), so sending
    /// it opens nothing new.
    pub(crate) fn linked(&self, peer: usize) -> bool {
        match self.routes[peer] {
            Route::Loopback => false,
            Route::Shm => true,
            Route::Tcp => self.tcp.as_ref().is_some_and(|t| t.connected(peer)),
        }
    }

    /// Whether more ranks than `cores` (the CPUs this rank may run on) are awake among
    /// those that may run on the same CPUs (true when that cannot be told: no shared
    /// memory).
    pub(crate) fn crowded(&self, cores: usize) -> bool {
        self.shm
            .as_ref()
            .is_none_or(|shm| shm.awake_beside() > cores)
    }

    /// Whether no frame this rank sent waits in a queue: for room in a ring, for a
    /// socket, to itself.
    pub(crate) fn sends_nothing(&self) -> bool {
        !self.lo.is_pending()
            && self.shm.as_ref().is_none_or(|shm| !shm.has_blocked())
            && self.tcp.as_ref().is_none_or(Tcp::sends_nothing)
    }

    /// Whether the peers acknowledged every byte this rank wrote to a socket (with
    /// [`Network::sends_nothing`]: everything sent is where its receiver looks), and
    /// no connection is being set up or holds frames it took back.
    pub(crate) fn settled(&self) -> bool {
        self.tcp
            .as_ref()
            .is_none_or(|tcp| tcp.takes_nothing() && tcp.all_acked())
    }

    /// Whether `peer` can read a large message straight from our memory.
    pub(crate) fn single_copy(&self, peer: usize) -> bool {
        self.routes[peer] == Route::Shm && self.shm.as_ref().is_some_and(|s| s.single_copy(peer))
    }

    /// Whether single-copy messages of `lens` bytes from `peer`, read together, have
    /// their copy shared by both ends ([`Network::pull`]) rather than read by the
    /// receiver alone ([`Network::pull_many`]): long enough ([`Shm::splits`]), and
    /// unless `peer` is `busy` (reading a message of this rank's), where the sizes
    /// were not set explicitly ([`Shm::shares_with_busy`]).
    pub(crate) fn splits(
        &self,
        peer: usize,
        lens: impl Iterator<Item = usize>,
        busy: impl FnOnce() -> bool,
    ) -> bool {
        self.routes[peer] == Route::Shm
            && self
                .shm
                .as_ref()
                .is_some_and(|s| s.splits(lens) && (s.shares_with_busy() || !busy()))
    }

    /// Reads a large message from `peer`'s memory (single copy) into `dest`.
    /// `Ok(false)` as for [`Network::pull_many`].
    pub(crate) fn pull_one(
        &self,
        peer: usize,
        remote: &RemoteBuf,
        dest: UserBufMut,
    ) -> Result<bool> {
        match (self.routes[peer], self.shm.as_ref()) {
            (Route::Shm, Some(shm)) => shm.pull_one(peer, remote, dest),
            _ => Ok(false),
        }
    }

    /// Reads large messages from `peer`'s memory (single copy), together. `Ok(false)`
    /// when that is not possible; the caller then asks for the data to be sent.
    pub(crate) fn pull_many(&self, peer: usize, parts: &[(RemoteBuf, UserBufMut)]) -> Result<bool> {
        match (self.routes[peer], self.shm.as_ref()) {
            (Route::Shm, Some(shm)) => shm.pull_many(peer, parts),
            _ => Ok(false),
        }
    }

    /// Reads large messages (each with its send request) from `peer`'s memory into
    /// their buffers, sharing the copy with `peer` (where [`Network::splits`] says so
    /// of their bytes together).
    pub(crate) fn pull(
        &mut self,
        peer: usize,
        parts: &[(RemoteBuf, UserBufMut, u64)],
    ) -> Result<Pulled> {
        match (self.routes[peer], self.shm.as_mut()) {
            (Route::Shm, Some(shm)) => shm.pull(peer, parts),
            _ => Ok(Pulled::Refused),
        }
    }

    /// Copies our part of a split copy of generation `generation` of `src` into
    /// `peer`'s buffer. Returns how many chunks we copied.
    pub(crate) fn help(
        &mut self,
        peer: usize,
        generation: u64,
        src: UserBuf,
        request: &HelpRequest,
    ) -> Result<u64> {
        match (self.routes[peer], self.shm.as_mut()) {
            (Route::Shm, Some(shm)) => shm.help(peer, generation, src, request),
            _ => Err(Error::Protocol {
                rank: self.me as i32,
                peer: peer as i32,
                detail: "help request from a rank not in shared memory".into(),
            }),
        }
    }

    /// Whether receivers time large shared-memory messages to choose how they go.
    pub(crate) fn learns_rendezvous(&self) -> bool {
        self.shm.as_ref().is_some_and(Shm::learns_rendezvous)
    }

    /// Whether the ranks of this node can read each other's memory directly.
    pub(crate) fn node_single_copy(&self) -> bool {
        self.shm.as_ref().is_some_and(Shm::node_single_copy)
    }

    /// Reads bytes `offset..offset + dst.len()` of local rank `l`'s buffer `remote`
    /// into `dst`.
    pub(crate) fn read_local(
        &self,
        l: usize,
        remote: &RemoteBuf,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<()> {
        self.shm
            .as_ref()
            .expect("a meeting has shared memory")
            .read_local(l, remote, offset, dst)
    }

    /// The local index (in the node's collective area) of each rank of `group` (world
    /// ranks, in any order), if `group` is exactly the ranks of this node.
    pub(crate) fn node_indices(&self, group: &[u32]) -> Option<Vec<usize>> {
        let shm = self.shm.as_ref()?;
        if group.len() != shm.local_ranks() {
            return None;
        }
        group.iter().map(|&r| shm.local_index(r as usize)).collect()
    }

    /// The node's collective area and the next collective's place in it (see
    /// [`Shm::area`]).
    #[inline(always)]
    pub(crate) fn area(&mut self, room: Room) -> Option<(Area, Ticket)> {
        self.shm.as_mut().map(|shm| shm.area(room))
    }

    /// Publishes what this rank waits for in the area while the mark lives (see
    /// [`Shm::mark_area_wait`]).
    pub(crate) fn mark_area_wait(&self, seq: u64) -> Option<AreaWaitMark> {
        self.shm.as_ref().map(|shm| shm.mark_area_wait(seq))
    }

    /// Every local rank has been seen to have entered collective `seq` over the area.
    pub(crate) fn all_entered(&mut self, seq: u64) {
        if let Some(shm) = self.shm.as_mut() {
            shm.all_entered(seq);
        }
    }

    /// Wakes every local rank that sleeps, if `worth_it` (see [`Shm::wake_sleepers`]).
    pub(crate) fn wake_local(&mut self, worth_it: impl FnOnce() -> bool) {
        if let Some(shm) = self.shm.as_mut() {
            shm.wake_sleepers(worth_it);
        }
    }

    /// Sleeps until something may have arrived, or `timeout` passed. `recheck` says
    /// whether what the caller waits for in shared memory has happened (see
    /// [`Shm::block`]).
    pub(crate) fn block(&mut self, timeout: Duration, recheck: &dyn Fn() -> bool) -> Result<()> {
        match (self.shm.as_mut(), self.tcp.as_mut()) {
            (Some(shm), None) => shm.block(timeout, recheck),
            (None, Some(tcp)) => tcp.block(timeout)?,
            (Some(shm), Some(tcp)) => {
                let slept = match shm.begin_poller_sleep(recheck) {
                    Ok(Some(fd)) => tcp.block_with(shm.sleep_limit(timeout), fd),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                // Awake again whatever happened, or every later sender would kick us.
                shm.end_sleep();
                slept?;
            }
            (None, None) => std::thread::sleep(timeout.min(Duration::from_millis(1))),
        }
        Ok(())
    }

    /// Withdraws every buffer this rank lent its node's ranks to read: the engine
    /// failed, and they go back to the program (see `Shm::withdraw`).
    pub(crate) fn withdraw(&self) {
        if let Some(shm) = self.shm.as_ref() {
            shm.withdraw();
        }
    }

    /// Closed connections are expected from now on.
    pub(crate) fn set_closing(&mut self) {
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.set_closing();
        }
    }
}
