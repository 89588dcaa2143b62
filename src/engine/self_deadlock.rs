//! Blocking waits that only this rank itself could end.
//!
//! oxmpi is funneled: the thread blocked in a wait is the only one that could post the
//! receive or send that ends it. So once a progress pass moves nothing (no message of
//! the rank to itself is on its way), a blocking wait for one request that only this
//! rank could complete never ends: a receive from itself, a send to itself announced
//! by rendezvous or sent synchronously with no receive posted, a receive from any
//! source on a communicator of this rank alone. These fail with [`Error::Deadlock`]
//! instead (MPI lets such a program hang). A send that fails takes its announcement
//! out of the rank's own unexpected queue, so no later receive matches it, and gets
//! back the eager credit it spent.

use super::finalized::Finalized;
use super::protocol::{Core, credit_matched};
use super::requests::{Op, ReqId, SendPhase};
use crate::engine::matching::{Body, Pattern};
use crate::error::Error;

impl Core {
    /// Whether request `id` is one only this rank could complete: a send to itself
    /// waiting for its receive, or a posted receive from itself (or from any source
    /// on a communicator of this rank alone).
    pub(crate) fn only_self_could_complete(&self, id: ReqId) -> bool {
        self.sends_to_self_unmatched(id)
            || self
                .matcher
                .any_posted(hopeless_receive(self.me, &self.finalized, id))
    }

    fn sends_to_self_unmatched(&self, id: ReqId) -> bool {
        matches!(
            self.reqs.get(id),
            Some(Op::Send(s)) if s.peer == self.me && matches!(
                s.phase,
                SendPhase::AwaitCts | SendPhase::Eager { acked: false, .. }
            )
        )
    }

    /// Fails request `id` if only this rank could complete it (asked by a blocking
    /// wait once a progress pass moved nothing). Returns whether it did.
    pub(crate) fn fail_self_deadlock(&mut self, id: ReqId) -> bool {
        let me = self.me;
        if self.sends_to_self_unmatched(id) {
            // Its eager credit (spent on a message, or on an offer to buffer one)
            // comes back, as when a receive takes it.
            let (outbox, credits) = (&mut self.outbox, &mut self.credits);
            self.matcher.drop_unexpected_where(|u| {
                let ours = u.peer == me
                    && match u.body {
                        Body::Rts { sreq, .. } => sreq == id.0,
                        Body::Eager { sync, .. } => sync == Some(id.0),
                    };
                if let (true, Some(len)) = (ours, u.credit()) {
                    credit_matched(outbox, credits, me, len);
                }
                ours
            });
            let why = "a send to this rank itself waits for its receive, which only this rank could post while it waits";
            self.reqs.complete(id, Err(Error::Deadlock(why.into())));
            return true;
        }
        // Looked at before anything is taken: most waits ask this once and go on.
        let hopeless = hopeless_receive(me, &self.finalized, id);
        if !self.matcher.any_posted(&hopeless) {
            return false;
        }
        self.matcher.take_posted_where(hopeless);
        let why = "a receive waits for a message that only this rank itself could send, and none is on its way";
        self.reqs.complete(id, Err(Error::Deadlock(why.into())));
        true
    }

    /// Whether a probe for `pattern` waits for what only this rank could send.
    pub(crate) fn probes_self(&self, pattern: &Pattern) -> bool {
        from_self_only(self.me, &self.finalized, pattern)
    }
}

/// Matches posted receive `id` if it waits for what only rank `me` could send.
fn hopeless_receive(
    me: usize,
    finalized: &Finalized,
    id: ReqId,
) -> impl Fn(&Pattern, ReqId) -> bool + '_ {
    move |p: &Pattern, posted: ReqId| posted == id && from_self_only(me, finalized, p)
}

/// Whether only rank `me` itself could send what `pattern` matches: it names `me`, or
/// any source on a communicator of `me` alone.
fn from_self_only(me: usize, finalized: &Finalized, pattern: &Pattern) -> bool {
    match pattern.from() {
        Some(from) => from == me,
        None => finalized.alone(pattern.ctx() / 2),
    }
}
