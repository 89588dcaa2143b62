//! The request table: every operation in flight, by id.
//!
//! Ids carry a generation, so a stale id (a request already completed and freed, or a
//! forged id in a peer's frame) never reaches a live slot: lookups of stale ids fail.

use super::schedule::Schedule;
use crate::error::{Error, Result};
use crate::status::Status;
use crate::transport::frame::Envelope;
use crate::userbuf::{UserBuf, UserBufMut};

/// Names one request: slot index in the low 32 bits, generation in the high 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ReqId(pub(crate) u64);

impl ReqId {
    /// Not a request: an operation that completed as it started, with an empty status
    /// (no table has 2^32 slots).
    pub(crate) const DONE: ReqId = ReqId(u64::MAX);

    fn new(index: u32, generation: u32) -> ReqId {
        ReqId(u64::from(generation) << 32 | u64::from(index))
    }
    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// Where a send stands.
#[derive(Debug)]
pub(crate) enum SendPhase {
    /// Sent inline. `written`: the payload left the buffer; `acked`: the receiver
    /// matched it (true from the start unless the send is synchronous).
    Eager { written: bool, acked: bool },
    /// Large message announced; waiting for the receiver's clear-to-send.
    AwaitCts,
    /// Data handed to the transport; waiting for it to leave the buffer.
    Data,
    /// Receiver reads the buffer itself; waiting for its FIN.
    AwaitFin,
}

#[derive(Debug)]
pub(crate) struct SendOp {
    /// World rank of the receiver.
    pub peer: usize,
    /// The message's envelope (a blocked rank names the sends it waits for).
    pub env: Envelope,
    pub buf: UserBuf,
    pub phase: SendPhase,
}

/// Where a receive stands.
#[derive(Debug)]
pub(crate) enum RecvPhase {
    /// In the posted queue, waiting for a match.
    Posted,
    /// Matched a large message from world rank `peer`; data arriving.
    Data {
        peer: usize,
        status: Status,
        received: usize,
    },
}

#[derive(Debug)]
pub(crate) struct RecvOp {
    pub buf: UserBufMut,
    pub phase: RecvPhase,
    /// This rank reads the data as soon as it lands (an operand of a reduction): a
    /// single copy below [`KEEP_WHOLE`](super::KEEP_WHOLE) bytes is its own, not
    /// shared with the sender.
    pub keep: bool,
}

/// What a request is doing.
pub(crate) enum Op {
    Send(SendOp),
    Recv(RecvOp),
    Coll(Box<Schedule>),
    /// Finished; the result waits to be collected (a failure boxed, so the common
    /// case keeps the table's entries small).
    Done(std::result::Result<Status, Box<crate::error::Error>>),
}

impl Op {
    /// A finished operation with `result`.
    pub(crate) fn done(result: Result<Status>) -> Op {
        Op::Done(result.map_err(Box::new))
    }
}

/// All requests in flight.
#[derive(Default)]
pub(crate) struct Requests {
    slots: Vec<(u32, Option<Op>)>,
    free: Vec<u32>,
    /// Requests whose handles were dropped before they completed: freed once they
    /// have ([`Requests::detach`]).
    detached: Vec<ReqId>,
    /// How many detached requests are kept before those completed are freed.
    sweep_at: usize,
    /// How many requests have completed with a failure of the job itself so far
    /// ([`Requests::fatal_failures`]).
    fatal: u64,
}

/// Detached requests kept at least before those completed are freed.
const SWEEP_AT: usize = 64;

impl Requests {
    /// Adds `op` to the table (always inlined; see `take_done`).
    #[inline(always)]
    pub(crate) fn insert(&mut self, op: Op) -> ReqId {
        match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                // A free slot holds nothing, but assigning would drop its old value
                // first, and `op` would wait in memory across that call (and be
                // read back in wider pieces than it was written: a stall). The
                // operation is written first, the old value dropped after.
                let old = slot.1.replace(op);
                debug_assert!(old.is_none(), "a free slot holds no operation");
                drop(old);
                ReqId::new(i, slot.0)
            }
            None => {
                self.slots.push((0, Some(op)));
                ReqId::new((self.slots.len() - 1) as u32, 0)
            }
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: ReqId) -> Option<&mut Op> {
        match self.slots.get_mut(id.index()) {
            Some((generation, op)) if *generation == id.generation() => op.as_mut(),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: ReqId) -> Option<&Op> {
        match self.slots.get(id.index()) {
            Some((generation, op)) if *generation == id.generation() => op.as_ref(),
            _ => None,
        }
    }

    /// Whether `pick` picks the operation of any request.
    pub(crate) fn any(&self, pick: impl Fn(&Op) -> bool) -> bool {
        self.slots
            .iter()
            .any(|(_, op)| op.as_ref().is_some_and(&pick))
    }

    /// The requests whose operation `pick` picks.
    pub(crate) fn ids_where(&self, pick: impl Fn(&Op) -> bool) -> Vec<ReqId> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, (generation, op))| {
                op.as_ref()
                    .filter(|op| pick(op))
                    .map(|_| ReqId::new(i as u32, *generation))
            })
            .collect()
    }

    /// Marks `id` finished with `result`.
    #[inline]
    pub(crate) fn complete(&mut self, id: ReqId, result: Result<Status>) {
        if let Err(e) = &result {
            self.count_failure(e);
        }
        if let Some(op) = self.get_mut(id) {
            *op = Op::done(result);
        }
    }

    /// Counts a request's failure `e` if it is a failure of the job itself.
    #[cold]
    fn count_failure(&mut self, e: &Error) {
        if e.is_fatal() {
            self.fatal += 1;
        }
    }

    /// How many requests have completed with a failure of the job itself
    /// ([`Error::is_fatal`]) so far: a wait for several looks for one among them only
    /// when this has changed (`Engine::wait_among`).
    pub(crate) fn fatal_failures(&self) -> u64 {
        self.fatal
    }

    /// Whether request `id` has completed with a failure of the job itself.
    pub(crate) fn failed_fatally(&self, id: ReqId) -> bool {
        matches!(self.get(id), Some(Op::Done(Err(e))) if e.is_fatal())
    }

    #[inline]
    pub(crate) fn is_done(&self, id: ReqId) -> bool {
        matches!(self.get(id), Some(Op::Done(_)) | None)
    }

    /// Nobody will ask for request `id`'s result (its handle was dropped): frees it
    /// now if it has completed, else once it has (looked at again each time the
    /// detached ones have doubled).
    pub(crate) fn detach(&mut self, id: ReqId) {
        if self.take_done(id).is_some() {
            return;
        }
        self.detached.push(id);
        if self.detached.len() >= self.sweep_at {
            let mut detached = std::mem::take(&mut self.detached);
            detached.retain(|&id| self.take_done(id).is_none());
            self.sweep_at = (detached.len() * 2).max(SWEEP_AT);
            self.detached = detached;
        }
    }

    /// Removes a finished request and returns its result; `None` if it is still
    /// running. A stale id yields `Some(Ok(empty status))`: it was collected before.
    // Always inlined, as `insert`: an operation or result that crosses a call goes
    // through memory, written and read back in pieces of different sizes, and the
    // read waits for the writes (a store-forwarding stall; docs/benchmarks.md).
    #[inline(always)]
    pub(crate) fn take_done(&mut self, id: ReqId) -> Option<Result<Status>> {
        match self.slots.get_mut(id.index()) {
            Some((generation, op)) if *generation == id.generation() => {
                if !matches!(op, Some(Op::Done(_))) {
                    return None;
                }
                let Some(Op::Done(result)) = op.take() else {
                    unreachable!()
                };
                *generation = generation.wrapping_add(1);
                self.free.push(id.index() as u32);
                Some(result.map_err(|e| *e))
            }
            _ => Some(Ok(Status::empty())),
        }
    }
}

impl Status {
    /// The status of an operation that carries no message (a send, a null request).
    pub(crate) fn empty() -> Status {
        Status {
            source: -1,
            tag: -1,
            bytes: 0,
        }
    }
}
