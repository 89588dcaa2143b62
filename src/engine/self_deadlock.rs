//! Blocking waits that only this rank itself could end.
//!
//! oxmpi is funneled: the thread blocked in a wait is the only one that could post the
//! receive or send that ends it. So once a progress pass moves nothing (no message of
//! the rank to itself is on its way), a blocking wait for one request that only this
//! rank could complete never ends: a receive from itself, a send to itself announced
//! by rendezvous or sent synchronously with no receive posted, a receive from any
//! source on a communicator of this rank alone. These fail with [`Error::Deadlock`]
//! instead (MPI lets such a program hang). A send that fails takes its announcement
//! out of the rank's own unexpected queue, so no later receive matches it.

use super::protocol::Core;
use super::requests::{Op, ReqId, SendPhase};
use crate::engine::matching::{Body, Pattern};
use crate::error::Error;

impl Core {
    /// Fails request `id` if only this rank could complete it (asked by a blocking
    /// wait for it alone once a progress pass moved nothing). Returns whether it did.
    pub(crate) fn fail_self_deadlock(&mut self, id: ReqId) -> bool {
        let me = self.me;
        let sending_to_self = matches!(
            self.reqs.get(id),
            Some(Op::Send(s)) if s.peer == me && matches!(
                s.phase,
                SendPhase::AwaitCts | SendPhase::Eager { acked: false, .. }
            )
        );
        if sending_to_self {
            self.matcher.drop_unexpected_where(|u| {
                u.peer == me
                    && match u.body {
                        Body::Rts { sreq, .. } => sreq == id.0,
                        Body::Eager { sync, .. } => sync == Some(id.0),
                    }
            });
            let why = "a send to this rank itself waits for its receive, which only this rank could post while it waits";
            self.reqs.complete(id, Err(Error::Deadlock(why.into())));
            return true;
        }
        let finalized = &self.finalized;
        let hopeless = |p: &Pattern, posted: ReqId| {
            posted == id
                && match p.from() {
                    Some(from) => from == me,
                    None => finalized.alone(p.ctx() / 2),
                }
        };
        // Looked at before anything is taken: most waits ask this once and go on.
        if !self.matcher.any_posted(hopeless) {
            return false;
        }
        self.matcher.take_posted_where(hopeless);
        let why = "a receive waits for a message that only this rank itself could send, and none is on its way";
        self.reqs.complete(id, Err(Error::Deadlock(why.into())));
        true
    }

    /// Whether a probe for `pattern` waits for what only this rank could send.
    pub(crate) fn probes_self(&self, pattern: &Pattern) -> bool {
        match pattern.from() {
            Some(from) => from == self.me,
            None => self.finalized.alone(pattern.ctx() / 2),
        }
    }
}
