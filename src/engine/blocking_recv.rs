//! A blocking receive, and its short way: a rank with nothing of its own waiting to
//! go out watches its ring for the message itself and lands it straight into the
//! caller's buffer, without a request, a posted-queue entry or a progress pass. A
//! message offered for a single copy (a rendezvous, or a mid-size one offered as the
//! receiver asked) is read the same way where it is read whole and the learner would
//! read it (`rendezvous`): the receive reads it into the buffer and answers FIN.
//!
//! Why: on the usual way the message crosses the posted queue, the request table, the
//! transport's sink and the wait loop, about 850 instructions for an 8-byte receive
//! here (`callgrind`); the short way takes 400. Measured: `oxbench latency` of 8 B in
//! 0.68-0.76 of the time in the VM's fast phase, 0.50-0.85 in the slow one (two sets
//! of 30 interleaved rounds; docs/benchmarks.md).
//!
//! Invariants, which keep MPI's matching rules: the short way runs only while no
//! receive is posted and no message waits unmatched (so the first message that
//! matches is this receive's, and none older from the same sender is held
//! anywhere), while shared memory is the only way in, and while nothing of this rank
//! waits to go out or to be copied (outbox, single-copy reads and helps, split
//! copies, a full ring, a message to itself, a nonblocking collective): nothing a peer
//! could be waiting for is held back while it watches. Requests that wait for an
//! answer (a rendezvous send's clear-to-send, a synchronous send's acknowledgement,
//! a receive's data) may be in flight: their answers come as frames the short way
//! does not take. It takes only the frame at the head of the ring, in ring order. At
//! the first frame it does not take (another receive's message, a synchronous send,
//! an offer to stream or to split, one too long for the buffer, one the kernel will
//! not let it read, one past its sender's credit or naming another sender, any other
//! kind), when the ring is empty and the rank may not spin
//! ([`WaitPolicy::may_spin`](super::wait::WaitPolicy::may_spin)), or after [`LOOKS`]
//! looks at an empty ring, it posts the receive and waits the usual way, whose
//! progress pass handles that frame. A message taken counts as progress for the
//! watch over silent peers, as one a progress pass delivers does.

use super::large_receives::{self, Way};
use super::matching::Pattern;
use super::protocol::{control, credit_matched, land_eager};
use super::reads_ours;
use super::{Engine, Started};
use crate::error::Result;
use crate::status::Status;
use crate::transport::frame::{Kind, flags};
use crate::transport::shm::Head;
use crate::userbuf::UserBufMut;

/// Looks at an empty ring (a spin hint between two) before the receive is posted the
/// usual way: about as long as a ping-pong partner's answer takes.
pub(super) const LOOKS: u32 = 256;

impl Engine {
    /// Receives a message matching `pattern` into `buf` and waits for it.
    pub(crate) fn recv(&mut self, pattern: Pattern, buf: UserBufMut) -> Result<Status> {
        if self.may_take_straight(pattern)
            && let Some(got) = self.take_straight(pattern, buf)
        {
            // A credit the sender is due goes out now, as after any receive.
            self.flush_outbox()?;
            if self.silent.moved() {
                self.ask_for_silent_peers()?;
            }
            return got;
        }
        match self.start_recv(pattern, buf)? {
            Started::Done(got) => got,
            Started::Pending(id) => self.wait(id),
        }
    }

    /// Whether this receive may take its message off the ring itself (see the module
    /// documentation).
    #[inline]
    fn may_take_straight(&self, pattern: Pattern) -> bool {
        self.may_watch_ring()
            && !self.core.matcher.has_posted()
            && pattern
                .from()
                .is_none_or(|peer| !self.core.finalized.has(peer))
    }

    /// Whether a blocking call may watch its ring for its own frame (see the module
    /// documentation): no message waits unmatched and nothing of this rank waits to
    /// go out or to be copied.
    #[inline]
    pub(super) fn may_watch_ring(&self) -> bool {
        let core = &self.core;
        !core.matcher.has_unexpected()
            && core.outbox.is_empty()
            && core.pulls.is_empty()
            && core.helps.is_empty()
            && core.shared.is_empty()
            && self.colls.is_empty()
    }

    /// Watches the ring for the message; its result, or `None` where the usual way
    /// must take over.
    fn take_straight(&mut self, pattern: Pattern, buf: UserBufMut) -> Option<Result<Status>> {
        for look in 0..LOOKS {
            let core = &mut self.core;
            let mut got = None;
            let taken = self.net.take_eager(|peer, env, data| {
                // One past its credit, or one whose envelope names another sender, is
                // left for the progress pass, which reports it.
                if !pattern.matches(&env)
                    || !core.sent_by(peer, &env)
                    || !core.credits.arrived(peer, data.len())
                {
                    return false;
                }
                let clock = core
                    .rendezvous
                    .as_mut()
                    .and_then(|l| l.eager_clock(peer, data.len()));
                got = Some(land_eager(
                    &mut core.outbox,
                    &mut core.credits,
                    peer,
                    env,
                    data,
                    None,
                    buf,
                ));
                if let (Some(start), Some(l)) = (clock, core.rendezvous.as_mut()) {
                    l.eager_copied(data.len(), start);
                }
                true
            });
            match taken {
                Some(true) => return got.map(|got| got.map_err(|e| *e)),
                Some(false) => return self.read_offer(pattern, buf),
                // The ring is empty: watch on only where this rank may spin, asked
                // after the first look, so that a message already there costs no
                // question (on an oversubscribed node it reads every local rank's
                // line).
                None if look == 0 && !self.policy.may_spin(|cores| self.net.crowded(cores)) => {
                    return None;
                }
                None => std::hint::spin_loop(),
            }
        }
        None
    }

    /// Reads the message offered for a single copy at the head of the ring straight
    /// into `buf`, where it matches, fits, is read whole (not split with its sender)
    /// and the learner would read it (`rendezvous`); `None` where the usual way must
    /// take over (also where the kernel refuses the read: that way has it streamed).
    fn read_offer(&mut self, pattern: Pattern, buf: UserBufMut) -> Option<Result<Status>> {
        let Head::Offer(offer) = self.net.head() else {
            return None;
        };
        let (peer, env) = (offer.peer, offer.hdr.envelope());
        let size = usize::try_from(offer.hdr.b).ok()?;
        let core = &mut self.core;
        if !pattern.matches(&env)
            || !core.sent_by(peer, &env)
            || size > buf.len()
            || self
                .net
                .splits(peer, std::iter::once(size), || reads_ours(&core.reqs, peer))
            || core
                .rendezvous
                .as_ref()
                .is_some_and(|l| !l.would_read(size))
        {
            return None;
        }
        // Counted now: a read the kernel refuses is counted again the usual way.
        let clock = core.rendezvous.as_mut().and_then(|l| l.read_alone(size));
        match self.net.pull_one(peer, &offer.remote, buf.sub(0, size)) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let buffered = offer.hdr.flags & flags::BUFFERED != 0;
        // One past its credit is left for the progress pass, which reports it.
        if buffered && !core.credits.arrived(peer, size) {
            return None;
        }
        self.net.take_head(offer.at);
        if buffered {
            credit_matched(&mut core.outbox, &mut core.credits, peer, size);
        }
        core.outbox.push((peer, control(Kind::Fin, offer.hdr.a, 0)));
        if let (Some(start), Some(l)) = (clock, core.rendezvous.as_mut()) {
            l.read_alone_done(size, start);
        }
        large_receives::count(Way::SingleCopy);
        Some(Ok(Status {
            source: env.src,
            tag: env.tag,
            bytes: size,
        }))
    }
}
