//! Peers that have finalized, and what can no longer complete because of them.
//!
//! A rank that begins to finalize sends every other rank a [`Kind::Bye`] frame, behind
//! everything else it sent that rank (transports keep each pair's frames in order).
//! Nothing comes from it after that, so whatever only it could complete never will: a
//! receive only it can match, a send of ours it has not matched, a collective it has
//! not joined. Those fail at once with [`Error::PeerFinalized`] (which ends the job
//! unless errors are returned) instead of waiting until the launcher's timeout. A
//! receive from any source fails only once every other rank of the job has
//! finalized, in a blocking wait for it alone or in a wait for any of several that
//! has stalled (a progress pass moved nothing, so no message of the rank to itself
//! is on its way). Over TCP, Bye goes only on
//! connections the rank has already opened: a peer it never sent anything to learns
//! nothing (finalize opens no connections just to say goodbye).
//!
//! [`Kind::Bye`]: crate::transport::frame::Kind::Bye

use super::protocol::{Core, control};
use super::requests::{Op, ReqId, SendPhase};
use crate::error::Error;
use crate::transport::frame::Kind;

/// Which peers have finalized.
pub(crate) struct Finalized {
    gone: Vec<bool>,
    count: usize,
}

impl Finalized {
    /// A job of `size` ranks, none finalized.
    pub(crate) fn new(size: usize) -> Finalized {
        Finalized {
            gone: vec![false; size],
            count: 0,
        }
    }

    /// Ranks in the job.
    pub(crate) fn size(&self) -> usize {
        self.gone.len()
    }

    /// Whether world rank `peer` has finalized.
    pub(crate) fn has(&self, peer: usize) -> bool {
        self.gone[peer]
    }

    /// Whether no message can come any more from world rank `from` (`None`: from any
    /// rank, asked by a blocking wait).
    pub(crate) fn silent(&self, from: Option<usize>) -> bool {
        from.map_or_else(|| self.all_others(), |p| self.has(p))
    }

    /// Whether every rank but one (this one) has finalized.
    #[inline]
    pub(crate) fn all_others(&self) -> bool {
        self.count + 1 >= self.gone.len()
    }

    fn mark(&mut self, peer: usize) {
        if !self.gone[peer] {
            self.gone[peer] = true;
            self.count += 1;
        }
    }
}

impl Core {
    /// The failure of waiting for `what` from world rank `peer` (`None`: from any
    /// rank), which has finalized.
    pub(crate) fn finalized_error(&self, peer: Option<usize>, what: &str) -> Error {
        let who = match peer {
            Some(p) => format!("rank {p} has finalized (its program ended)"),
            None => "every other rank has finalized (their programs ended)".to_owned(),
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
        for id in self.matcher.take_posted_where(|p, _| p.from == Some(peer)) {
            let e = err(
                self,
                &format!("a receive waits for a message from rank {peer}"),
            );
            self.reqs.complete(id, e);
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

    /// Fails receive `id` if it is posted for any source and every other rank has
    /// finalized (asked by a blocking wait once no message of this rank to itself
    /// can match it any more). Returns whether it did.
    #[inline]
    pub(crate) fn fail_orphaned_any_source(&mut self, id: ReqId) -> bool {
        if !self.finalized.all_others()
            || self
                .matcher
                .take_posted_where(|p, posted| posted == id && p.from.is_none())
                .is_empty()
        {
            return false;
        }
        let e = self.finalized_error(None, "a receive from any source waits for a message");
        self.reqs.complete(id, Err(e));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::matching::Pattern;
    use crate::engine::requests::{RecvOp, RecvPhase, SendOp};
    use crate::status::{Source, TagSel};
    use crate::userbuf::{UserBuf, UserBufMut};

    fn recv(core: &mut Core, from: Option<usize>, buf: &mut [u8]) -> ReqId {
        let id = core.reqs.insert(Op::Recv(RecvOp {
            buf: UserBufMut::new(buf),
            phase: RecvPhase::Posted,
        }));
        let src = from.map_or(Source::Any, |p| Source::Rank(p as i32));
        let pattern = Pattern {
            ctx: 0,
            src,
            tag: TagSel::Any,
            from,
        };
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
            buf: UserBuf::new(&data),
            phase: SendPhase::AwaitCts,
        }));
        let eager_to1 = core.reqs.insert(Op::Send(SendOp {
            peer: 1,
            buf: UserBuf::new(&data),
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
        assert!(core.finalized.silent(None) && core.finalized.silent(Some(1)));
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
