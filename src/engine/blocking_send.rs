//! A blocking send by rendezvous, and its short way: while the receiver reads the
//! buffer, the sender watches its ring for the receiver's FIN and takes it off the
//! ring itself, leaving whatever came after it where it is.
//!
//! Why: in a ping-pong of messages sent by rendezvous, the answer's offer follows the
//! FIN at once. A progress pass that took the FIN took the offer too, into the
//! unexpected queue, and the receive that came next matched it there through the
//! request table, the posted queue and a progress pass of its own; left on the ring,
//! the offer is read by the receive's short way (`blocking_recv`) with none of them.
//! The invariants are the blocking receive's: the rank watches only while nothing of
//! its own waits to go out or to be copied and no message waits unmatched, it takes
//! only the FIN of this send at the head of the ring, and at any other frame, at an
//! empty ring where it may not spin, or after [`LOOKS`] looks it waits the usual
//! way, whose progress pass handles that frame.

use super::Engine;
use super::blocking_recv::LOOKS;
use super::requests::{Op, ReqId, SendPhase};
use crate::error::Result;
use crate::status::Status;
use crate::transport::shm::Head;

impl Engine {
    /// Blocks until the send started by [`Engine::start_send`] completes, or one of
    /// the requests `among` that the caller waits for too fails in a way that ends the
    /// job ([`Engine::wait_among`]).
    pub(crate) fn wait_send(&mut self, id: Option<ReqId>, among: &[ReqId]) -> Result<()> {
        let Some(id) = id else {
            return Ok(());
        };
        if self.may_watch_ring() && self.take_fin(id) {
            if self.silent.moved() {
                self.ask_for_silent_peers()?;
            }
            return Ok(());
        }
        self.wait_among(id, among).map(drop)
    }

    /// Watches the ring for the FIN of send `id`; whether it took it (the send is
    /// then complete and gone).
    fn take_fin(&mut self, id: ReqId) -> bool {
        for look in 0..LOOKS {
            match self.net.head() {
                Head::Fin { peer, sreq, at } if sreq == id.0 => {
                    let awaits = matches!(
                        self.core.reqs.get(id),
                        Some(Op::Send(s)) if s.peer == peer && matches!(s.phase, SendPhase::AwaitFin)
                    );
                    if !awaits {
                        return false;
                    }
                    self.net.take_head(at);
                    self.core.reqs.complete(id, Ok(Status::empty()));
                    return self.core.reqs.take_done(id).is_some();
                }
                Head::Empty
                    if look > 0 || self.policy.may_spin(|cores| self.net.crowded(cores)) =>
                {
                    std::hint::spin_loop();
                }
                _ => return false,
            }
        }
        false
    }
}
