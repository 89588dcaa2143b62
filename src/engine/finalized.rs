//! Peers that have finalized, and what can no longer complete because of them.
//!
//! A rank that begins to finalize sends every rank it has a link to a [`Kind::Bye`]
//! frame, behind everything else it sent that rank (transports keep each pair's
//! frames in order).
//! Nothing comes from it after that, so whatever only it could complete never will: a
//! receive only it can match, a send of ours it has not matched, a collective it has
//! not joined. Those fail at once with [`Error::PeerFinalized`] (which ends the job
//! unless errors are returned) instead of waiting until the launcher's timeout. A
//! receive from any source fails only once every other member of its communicator
//! has finalized, in a blocking wait for it alone or in a wait for any of several
//! that has stalled (a progress pass moved nothing, so no message of the rank to
//! itself is on its way). Over TCP, Bye goes only on a connection the rank already
//! sends on (one it opened, or the peer's it answers on): finalize opens no
//! connections just to say goodbye. A peer it never exchanged a message with learns
//! of it from the launcher instead, once it has waited a while ([`super::silent_peers`]).
//!
//! [`Kind::Bye`]: crate::transport::frame::Kind::Bye

use std::sync::Arc;

use super::context::is_collective;
use super::matching::Pattern;
use super::protocol::{Core, control};
use super::requests::{Op, ReqId, SendPhase};
use crate::error::Error;
use crate::transport::frame::Kind;

/// Which peers have finalized, and which communicators have no other member left.
pub(crate) struct Finalized {
    me: usize,
    gone: Vec<bool>,
    count: usize,
    /// The group (world ranks) of each communicator other than the world, indexed by
    /// context pair, with whether every member but this rank has finalized. A table,
    /// not a map: every message on such a communicator looks its sender up here
    /// ([`Finalized::group`]).
    groups: Vec<Option<(Arc<[u32]>, bool)>>,
    /// Whether some communicator (the world included) has no other member left: the
    /// one thing a blocking wait asks on every pass, so it is kept up to date rather
    /// than computed.
    any_silent: bool,
}

impl Finalized {
    /// World rank `me` of a job of `size` ranks, none finalized.
    pub(crate) fn new(me: usize, size: usize) -> Finalized {
        let mut f = Finalized {
            me,
            gone: vec![false; size],
            count: 0,
            groups: Vec::new(),
            any_silent: false,
        };
        f.refresh();
        f
    }

    /// Ranks in the job.
    pub(crate) fn size(&self) -> usize {
        self.gone.len()
    }

    /// Whether some rank has finalized (a wait that asks on every pass which of its
    /// peers did can skip the question while none has).
    pub(crate) fn any(&self) -> bool {
        self.count > 0
    }

    /// Whether world rank `peer` has finalized.
    pub(crate) fn has(&self, peer: usize) -> bool {
        self.gone[peer]
    }

    /// Whether no message matching `pattern` can come any more from another rank: its
    /// one sender has finalized, or (any source) every other member of its
    /// communicator has.
    pub(crate) fn silent(&self, pattern: &Pattern) -> bool {
        match pattern.from() {
            Some(p) => self.has(p),
            None => self.silent_group(pattern.ctx() / 2),
        }
    }

    /// Whether every member but this rank of the communicator with context pair
    /// `pair` has finalized.
    fn silent_group(&self, pair: u32) -> bool {
        match pair {
            0 => self.world_silent(),
            _ => self.entry(pair).is_some_and(|g| g.1),
        }
    }

    /// The other member of the communicator with context pair `pair`, if it has two:
    /// a receive from any source on it waits for that rank alone.
    fn only_other(&self, pair: u32) -> Option<usize> {
        let (a, b) = match pair {
            0 if self.gone.len() == 2 => (0, 1),
            0 => return None,
            _ => match *self.group(pair)? {
                [a, b] => (a as usize, b as usize),
                _ => return None,
            },
        };
        Some(if a == self.me { b } else { a })
    }

    /// Whether the communicator with context pair `pair` has no member but this rank.
    pub(crate) fn alone(&self, pair: u32) -> bool {
        match pair {
            0 => self.gone.len() == 1,
            _ => self.entry(pair).is_some_and(|g| g.0.len() == 1),
        }
    }

    /// Whether some communicator has no other member left (then a receive from any
    /// source on it may be orphaned).
    #[inline]
    pub(crate) fn any_silent(&self) -> bool {
        self.any_silent
    }

    /// Whether the world has other ranks and all of them have finalized.
    fn world_silent(&self) -> bool {
        self.gone.len() > 1 && self.count + 1 >= self.gone.len()
    }

    /// A communicator with context pair `pair` and `group` (world ranks) exists.
    pub(crate) fn register(&mut self, pair: u32, group: Arc<[u32]>) {
        let at = pair as usize;
        if self.groups.len() <= at {
            self.groups.resize(at + 1, None);
        }
        self.groups[at] = Some((group, false));
        self.refresh();
    }

    /// The group (world ranks) of the communicator with context pair `pair` other than
    /// the world's, if this rank has made it.
    #[inline]
    pub(crate) fn group(&self, pair: u32) -> Option<&[u32]> {
        self.entry(pair).map(|g| &*g.0)
    }

    /// The communicator with context pair `pair` is freed.
    pub(crate) fn unregister(&mut self, pair: u32) {
        if let Some(slot) = self.groups.get_mut(pair as usize) {
            *slot = None;
        }
        self.refresh();
    }

    #[inline]
    fn entry(&self, pair: u32) -> Option<&(Arc<[u32]>, bool)> {
        self.groups.get(pair as usize).and_then(Option::as_ref)
    }

    fn mark(&mut self, peer: usize) {
        if !self.gone[peer] {
            self.gone[peer] = true;
            self.count += 1;
            self.refresh();
        }
    }

    /// Recomputes the communicators' flags (when a rank finalized or a communicator
    /// came or went: rare events).
    fn refresh(&mut self) {
        let (me, gone) = (self.me, &self.gone);
        // A communicator of this rank alone is never silent: its receives wait for
        // the rank itself (see `self_deadlock`).
        for (group, silent) in self.groups.iter_mut().flatten() {
            *silent =
                group.len() > 1 && group.iter().all(|&r| r as usize == me || gone[r as usize]);
        }
        self.any_silent = self.world_silent() || self.groups.iter().flatten().any(|g| g.1);
    }
}

/// What waits for a message from world rank `peer`: a collective (on a collective
/// context), or a receive.
pub(crate) fn awaited(collective: bool, peer: usize) -> String {
    let who = if collective {
        "a collective"
    } else {
        "a receive"
    };
    format!("{who} waits for a message from rank {peer}")
}

impl Core {
    /// [`Core::finalized_error`] for a wait on context `ctx` for a message from
    /// `peer` (`None`: any source), where a communicator of two names the other rank.
    pub(crate) fn orphaned_error(&self, ctx: u32, peer: Option<usize>, what: &str) -> Error {
        let peer = peer.or_else(|| self.finalized.only_other(ctx / 2));
        self.finalized_error(peer, what)
    }

    /// The failure of waiting for `what` from world rank `peer` (`None`: from any
    /// rank), which has finalized.
    pub(crate) fn finalized_error(&self, peer: Option<usize>, what: &str) -> Error {
        let who = match peer {
            Some(p) => format!("rank {p} has finalized (its program ended)"),
            None => "every other rank of its communicator has finalized (their programs ended)"
                .to_owned(),
        };
        Error::PeerFinalized {
            rank: self.me as i32,
            peer: peer.map_or(-1, |p| p as i32),
            detail: format!("{what}, but {who}"),
        }
    }

    /// Queues a [`crate::transport::frame::Kind::Bye`] to each of `peers` (this rank
    /// begins to finalize).
    pub(crate) fn say_bye(&mut self, peers: impl IntoIterator<Item = usize>) {
        for peer in peers {
            self.outbox.push((peer, control(Kind::Bye, 0, 0)));
        }
    }

    /// World rank `peer` said [`crate::transport::frame::Kind::Bye`]: fails what only
    /// it could complete.
    pub(crate) fn peer_finalized(&mut self, peer: usize) {
        self.finalized.mark(peer);
        if self.finalizing {
            return;
        }
        let err = |c: &Core, what: &str| Err(c.finalized_error(Some(peer), what));
        for coll in [true, false] {
            let doomed = |p: &Pattern, _| p.from() == Some(peer) && is_collective(p.ctx()) == coll;
            for id in self.matcher.take_posted_where(doomed) {
                let e = err(self, &awaited(coll, peer));
                self.reqs.complete(id, e);
            }
        }
        let unanswered = self.reqs.ids_where(|op| {
            matches!(op, Op::Send(s) if s.peer == peer && matches!(
                s.phase,
                SendPhase::AwaitCts | SendPhase::AwaitFin | SendPhase::Eager { acked: false, .. }
            ))
        });
        for id in unanswered {
            let e = err(self, &format!("a send waits for rank {peer} to receive it"));
            self.reqs.complete(id, e);
        }
    }

    /// Fails receive `id` if it is posted for any source and every other member of its
    /// communicator has finalized (asked by a blocking wait once no message of this
    /// rank to itself can match it any more). Returns whether it did.
    #[inline]
    pub(crate) fn fail_orphaned_any_source(&mut self, id: ReqId) -> bool {
        // A blocking wait asks on every pass: mostly a single flag is all it reads.
        self.finalized.any_silent() && self.fail_if_orphaned(id)
    }

    fn fail_if_orphaned(&mut self, id: ReqId) -> bool {
        let finalized = &self.finalized;
        let ctx = std::cell::Cell::new(0);
        if self
            .matcher
            .take_posted_where(|p, posted| {
                let doomed = posted == id && p.from().is_none() && finalized.silent(p);
                if doomed {
                    ctx.set(p.ctx());
                }
                doomed
            })
            .is_empty()
        {
            return false;
        }
        let e = self.orphaned_error(
            ctx.get(),
            None,
            "a receive from any source waits for a message",
        );
        self.reqs.complete(id, Err(e));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::requests::{RecvOp, RecvPhase, SendOp};
    use crate::status::{Source, TagSel};
    use crate::transport::frame::Envelope;
    use crate::userbuf::{UserBuf, UserBufMut};

    fn recv(core: &mut Core, from: Option<usize>, buf: &mut [u8]) -> ReqId {
        let id = core.reqs.insert(Op::Recv(RecvOp {
            // SAFETY: `buf` outlives the core the test drives.
            buf: unsafe { UserBufMut::new(buf) },
            phase: RecvPhase::Posted,
            keep: false,
        }));
        let src = from.map_or(Source::Any, |p| Source::Rank(p as i32));
        let pattern = Pattern::new(0, src, TagSel::Any, from);
        core.post_recv(pattern, id);
        id
    }

    fn failed(core: &Core, id: ReqId) -> bool {
        matches!(core.reqs.get(id), Some(Op::Done(Err(e))) if matches!(**e, Error::PeerFinalized { .. }))
    }

    #[test]
    fn a_bye_fails_what_only_that_peer_could_complete() {
        let mut core = Core::new(0, 3, 1 << 20);
        let (mut a, mut b, mut c) = ([0u8; 4], [0u8; 4], [0u8; 4]);
        let from1 = recv(&mut core, Some(1), &mut a);
        let from2 = recv(&mut core, Some(2), &mut b);
        let any = recv(&mut core, None, &mut c);
        let data = [1u8; 4];
        let to1 = core.reqs.insert(Op::Send(SendOp {
            peer: 1,
            env: Envelope {
                ctx: 0,
                src: 0,
                tag: 0,
            },
            // SAFETY: `data` outlives the core the test drives.
            buf: unsafe { UserBuf::new(&data) },
            phase: SendPhase::AwaitCts,
        }));
        let eager_to1 = core.reqs.insert(Op::Send(SendOp {
            peer: 1,
            env: Envelope {
                ctx: 0,
                src: 0,
                tag: 0,
            },
            // SAFETY: `data` outlives the core the test drives.
            buf: unsafe { UserBuf::new(&data) },
            phase: SendPhase::Eager {
                written: false,
                acked: true,
            },
        }));
        core.peer_finalized(1);
        assert!(failed(&core, from1) && failed(&core, to1));
        assert!(!core.reqs.is_done(from2) && !core.reqs.is_done(any));
        assert!(!core.reqs.is_done(eager_to1), "it completes once written");
        assert!(!core.fail_orphaned_any_source(any), "rank 2 may still send");
        core.peer_finalized(2);
        assert!(failed(&core, from2));
        assert!(core.fail_orphaned_any_source(any) && failed(&core, any));
        let any = |ctx| Pattern::new(ctx, Source::Any, TagSel::Any, None);
        assert!(core.finalized.silent(&any(0)));
    }

    #[test]
    fn any_source_on_a_communicator_is_orphaned_when_its_other_members_finalized() {
        // Rank 0 of 4; a communicator (context pair 3, p2p context 6) of ranks 0 and 2.
        let mut core = Core::new(0, 4, 1 << 20);
        core.finalized.register(3, Arc::from([0u32, 2]));
        let mut buf = [0u8; 4];
        let id = core.reqs.insert(Op::Recv(RecvOp {
            // SAFETY: `buf` outlives the core the test drives.
            buf: unsafe { UserBufMut::new(&mut buf) },
            phase: RecvPhase::Posted,
            keep: false,
        }));
        let pattern = Pattern::new(6, Source::Any, TagSel::Any, None);
        core.post_recv(pattern, id);
        core.peer_finalized(1);
        assert!(!core.finalized.any_silent() && !core.fail_orphaned_any_source(id));
        core.peer_finalized(2);
        assert!(core.finalized.any_silent() && core.finalized.silent(&pattern));
        assert!(core.fail_orphaned_any_source(id) && failed(&core, id));
        core.finalized.unregister(3);
        assert!(!core.finalized.any_silent(), "rank 3 is still there");
    }

    #[test]
    fn a_communicator_of_two_names_the_other_member() {
        assert_eq!(Finalized::new(1, 2).only_other(0), Some(0));
        let mut f = Finalized::new(1, 5);
        assert_eq!(f.only_other(0), None);
        f.register(3, Arc::from([4u32, 1]));
        f.register(4, Arc::from([0u32, 1, 2]));
        assert_eq!(f.only_other(3), Some(4));
        assert_eq!(f.only_other(4), None);
        assert_eq!(f.only_other(5), None);
    }

    #[test]
    fn a_finalizing_rank_fails_nothing_and_says_bye_to_the_peers_named() {
        let mut core = Core::new(1, 4, 1 << 20);
        core.finalizing = true;
        let mut a = [0u8; 4];
        let from0 = recv(&mut core, Some(0), &mut a);
        core.peer_finalized(0);
        assert!(!core.reqs.is_done(from0));
        core.say_bye([0, 2, 3]);
        let to: Vec<usize> = core.outbox.iter().map(|(p, _)| *p).collect();
        assert_eq!(to, [0, 2, 3]);
    }
}
