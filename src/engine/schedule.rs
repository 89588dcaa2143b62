//! Schedules: an operation made of point-to-point steps and local work, run by the
//! progress engine (how every collective is executed, blocking or not).
//!
//! A schedule is a list of steps. Sends and receives start as soon as they are
//! reached; a [`Step::Fence`] waits until everything started before it completed.
//! Builders add steps through the helper methods, which keep transfers of nothing
//! as empty messages (a collective's messages depend on the ranks, the root and the
//! algorithm, never on a count, so ranks that disagree on one, 0 on one side, still
//! meet, and the receive of the wrong length fails the collective), except in an
//! alltoallv's schedule ([`Schedule::skip_empty_transfers`]), and put a fence before
//! every local step (reduce, copy) that follows a transfer, so local work never
//! touches a buffer a transfer may still be reading or writing.
//! Invariants: buffers named by steps stay valid until the schedule finishes (user
//! buffers by the request scope, temporaries because the schedule owns them and
//! outlives every request it started); a receive must get exactly the bytes its span
//! names, otherwise the ranks disagree about counts and the schedule fails; after a
//! failure no new step starts, and the schedule reports the failure only once nothing
//! it started is still in flight.

use std::sync::Arc;

use super::matching::{Envelope, Pattern};
use super::requests::ReqId;
use super::{Engine, Started};
use crate::copy::copy;
use crate::error::{Error, Result};
use crate::status::{Source, Status, TAG_UB, TagSel};
use crate::userbuf::{TempBuf, UserBuf, UserBufMut};

/// Which buffer a span lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buf {
    /// The caller's send buffer.
    Send,
    /// The caller's receive buffer.
    Recv,
    /// A temporary the schedule owns.
    Temp(usize),
}

/// A byte range of one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub buf: Buf,
    pub off: usize,
    pub len: usize,
}

impl Span {
    pub(crate) fn new(buf: Buf, off: usize, len: usize) -> Span {
        Span { buf, off, len }
    }
}

/// Combines equally long byte ranges element-wise (a reduction operation on one
/// element type). Public only so that the public `Reduction` trait can name it; the
/// module is private.
pub trait Combine: Send + Sync {
    /// `inout = input ⊕ inout` when `in_is_left`, else `inout = inout ⊕ input`.
    fn combine(&self, input: &[u8], inout: &mut [u8], in_is_left: bool);
    /// `out = left ⊕ right`.
    fn combine_to(&self, left: &[u8], right: &[u8], out: &mut [u8]);
}

/// One step of a schedule. Peers are ranks of the schedule's communicator.
enum Step {
    Send {
        peer: usize,
        span: Span,
    },
    Recv {
        peer: usize,
        span: Span,
    },
    /// Wait for every send and receive started so far.
    Fence,
    /// `dst = left ⊕ right`; `dst` is `left`, `right`, or overlaps neither.
    Reduce {
        left: Span,
        right: Span,
        dst: Span,
    },
    Copy {
        src: Span,
        dst: Span,
    },
}

/// What a message of communicator rank `peer` shows about the collectives it runs,
/// against those rank `me` runs, by their codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disagreement {
    /// Under the number of this rank's collective of code `mine`, the peer runs
    /// the one of code `theirs`.
    SameNumber { mine: u8, theirs: u8 },
    /// The peer sent this rank a message in a collective of code `theirs` that this
    /// rank has finished without it: the two disagree on what it sends.
    Finished { theirs: u8 },
}

/// The report of a [`Disagreement`] between communicator ranks `me` and `peer`:
/// `report(disagreement, (me, peer))` (the caller numbers the collectives; the
/// engine knows none of their names).
pub(crate) type ClashReport = fn(Disagreement, (usize, usize)) -> String;

/// Bits at the bottom of a route's tag that hold the code of the collective (and of
/// how it runs); the bits above hold the low bits of its number on the communicator.
const KIND_BITS: u32 = 8;
const KIND_MASK: u32 = (1 << KIND_BITS) - 1;

/// Where a schedule's messages go: the communicator's collective context, under a
/// tag that carries the collective's number on the communicator and the code of
/// which collective it is and how it runs, so that ranks that run different
/// collectives as the same one, or one collective in ways whose messages differ, see
/// it (`engine/clash.rs`).
#[derive(Clone)]
pub(crate) struct Route {
    pub ctx: u32,
    pub tag: i32,
    /// The collective's number on the communicator (the tag holds its low bits).
    pub seq: u32,
    /// The communicator's incarnation (`comm.rs`): with the context and the number,
    /// the collective's name among all of the job's.
    pub incarnation: u64,
    /// This rank in the communicator.
    pub rank: usize,
    /// World rank of every communicator rank.
    pub group: Arc<[u32]>,
    /// Reports ranks that run different collectives under this route's number.
    pub report: ClashReport,
}

impl Route {
    /// The route of collective number `seq` (its low 23 bits go into the tag) on the
    /// communicator with collective context `ctx`, a collective the caller codes as
    /// `kind`.
    pub(crate) fn new(
        (ctx, incarnation): (u32, u64),
        seq: u32,
        kind: u8,
        (rank, group): (usize, Arc<[u32]>),
        report: ClashReport,
    ) -> Route {
        let tag = (seq << KIND_BITS | u32::from(kind)) & TAG_UB as u32;
        Route {
            ctx,
            tag: tag as i32,
            seq,
            incarnation,
            rank,
            group,
            report,
        }
    }

    /// The name and code of the collective, as the launcher compares it with the
    /// other ranks' ([`crate::bootstrap::waits`]).
    pub(crate) fn wait(&self) -> crate::bootstrap::waits::Wait {
        crate::bootstrap::waits::Wait {
            ctx: self.ctx,
            incarnation: self.incarnation,
            seq: self.seq,
            code: Route::number_kind(self.tag).1,
        }
    }

    /// The collective's number (its low bits) and code.
    fn number_kind(tag: i32) -> (u32, u8) {
        let tag = tag as u32;
        (tag >> KIND_BITS, (tag & KIND_MASK) as u8)
    }

    /// The code of this route's collective and that of the collective the sender of
    /// `env` runs, where that is another collective with the same number on the same
    /// communicator.
    pub(crate) fn clash(&self, env: &Envelope) -> Option<(u8, u8)> {
        let (_, mine) = Route::number_kind(self.tag);
        let (_, theirs) = Route::number_kind(env.tag);
        (self.same_number(env) && theirs != mine).then_some((mine, theirs))
    }

    /// Whether `env`, a message on this route's communicator, was sent in a
    /// collective numbered before this route's (by less than half the numbers the
    /// tag holds, which wrap), and the code of that collective.
    pub(crate) fn earlier(&self, env: &Envelope) -> Option<u8> {
        let (seq, _) = Route::number_kind(self.tag);
        let (their_seq, theirs) = Route::number_kind(env.tag);
        let numbers = (TAG_UB as u32 >> KIND_BITS) + 1;
        let behind = seq.wrapping_sub(their_seq) & (numbers - 1);
        (env.ctx == self.ctx && behind > 0 && behind < numbers / 2).then_some(theirs)
    }

    /// Whether `env` was sent in this route's collective (its number, any code).
    pub(crate) fn same_number(&self, env: &Envelope) -> bool {
        env.ctx == self.ctx && Route::number_kind(env.tag).0 == Route::number_kind(self.tag).0
    }
}

pub(crate) struct Schedule {
    route: Route,
    steps: Vec<Step>,
    /// Whether a transfer was added since the last fence (builder state).
    unfenced: bool,
    /// Whether transfers of empty spans are dropped (builder state).
    skip_empty: bool,
    next: usize,
    /// Requests started and not yet retired, with the bytes a receive must get
    /// (`None` for sends).
    inflight: Vec<(ReqId, Option<usize>)>,
    send: UserBuf,
    recv: UserBufMut,
    temps: Vec<TempBuf>,
    op: Option<Box<dyn Combine>>,
    failed: Option<Error>,
}

impl Schedule {
    pub(crate) fn new(route: Route, send: UserBuf, recv: UserBufMut) -> Schedule {
        let (steps, inflight, temps) = SPARE
            .try_with(|s| s.borrow_mut().take())
            .unwrap_or_else(|_| Spare::fresh());
        Schedule {
            route,
            steps,
            unfenced: false,
            skip_empty: false,
            next: 0,
            inflight,
            send,
            recv,
            temps,
            op: None,
            failed: None,
        }
    }

    /// Adds a temporary of `len` bytes (of unspecified content: steps must write
    /// it before they read it); returns its buffer id.
    pub(crate) fn temp(&mut self, len: usize) -> Buf {
        self.temps.push(TempBuf::new(len));
        Buf::Temp(self.temps.len() - 1)
    }

    /// Where data to be combined into `out` can be received while `cur`, the other
    /// operand, is still needed: `out` itself (combined in place there: no temporary
    /// and a smaller working set) unless it is `cur`, else a temporary of `out`'s
    /// length, made once into `spare` and reused.
    pub(crate) fn landing(&mut self, cur: Span, out: Span, spare: &mut Option<Span>) -> Span {
        if cur != out {
            return out;
        }
        *spare.get_or_insert_with(|| Span::new(self.temp(out.len), 0, out.len))
    }

    /// Sets the reduction applied by [`Step::Reduce`].
    pub(crate) fn set_op(&mut self, op: Box<dyn Combine>) {
        self.op = Some(op);
    }

    /// Drops the transfers of empty spans added from now on, on both sides: for an
    /// alltoallv, where a block that the counts make empty is common (a sparse
    /// exchange) and both sides read its length from the same counts. Where ranks'
    /// counts disagree on such a block, a message sent to a rank that expects none is
    /// found unreceived in a later collective (`engine/clash.rs`); a rank that expects
    /// one not sent
    /// waits until the launcher's timeout (the README's one exception).
    pub(crate) fn skip_empty_transfers(&mut self) {
        self.skip_empty = true;
    }

    /// Sends `span` to `peer`, an empty message if the span is empty (its peer
    /// expects one whatever the counts, see the module's comment), unless
    /// [`Schedule::skip_empty_transfers`].
    pub(crate) fn send(&mut self, peer: usize, span: Span) {
        if span.len > 0 || !self.skip_empty {
            self.transfer(Step::Send { peer, span });
        }
    }

    /// Receives exactly `span.len` bytes from `peer` into `span` (an empty message if
    /// the span is empty, unless [`Schedule::skip_empty_transfers`]).
    pub(crate) fn recv(&mut self, peer: usize, span: Span) {
        if span.len > 0 || !self.skip_empty {
            self.transfer(Step::Recv { peer, span });
        }
    }

    /// Sends an empty message to `peer` (a synchronisation token).
    pub(crate) fn signal(&mut self, peer: usize) {
        self.transfer(Step::Send {
            peer,
            span: Span::new(Buf::Send, 0, 0),
        });
    }

    /// Receives the empty message [`Schedule::signal`] sends.
    pub(crate) fn await_signal(&mut self, peer: usize) {
        self.transfer(Step::Recv {
            peer,
            span: Span::new(Buf::Recv, 0, 0),
        });
    }

    fn transfer(&mut self, step: Step) {
        self.steps.push(step);
        self.unfenced = true;
    }

    /// Waits for every transfer started so far.
    pub(crate) fn fence(&mut self) {
        if self.unfenced {
            self.steps.push(Step::Fence);
            self.unfenced = false;
        }
    }

    /// `dst = left ⊕ right` with the schedule's operation, once every transfer
    /// started so far has completed.
    pub(crate) fn reduce(&mut self, left: Span, right: Span, dst: Span) {
        debug_assert!(self.op.is_some(), "a schedule with reduce steps has an op");
        debug_assert!(left.len == right.len && left.len == dst.len);
        if dst.len > 0 {
            self.fence();
            self.steps.push(Step::Reduce { left, right, dst });
        }
    }

    /// Copies `src` into `dst` (nothing if they are the same bytes), once every
    /// transfer started so far has completed.
    pub(crate) fn copy(&mut self, src: Span, dst: Span) {
        debug_assert_eq!(src.len, dst.len);
        if src.len > 0 && src != dst {
            self.fence();
            self.steps.push(Step::Copy { src, dst });
        }
    }

    /// Where the schedule's messages go.
    pub(crate) fn route(&self) -> &Route {
        &self.route
    }

    /// This rank in the schedule's communicator.
    pub(crate) fn rank(&self) -> usize {
        self.route.rank
    }

    /// Number of ranks in the schedule's communicator.
    pub(crate) fn size(&self) -> usize {
        self.route.group.len()
    }

    fn view(&self, span: Span) -> UserBuf {
        match span.buf {
            Buf::Send => self.send.sub(span.off, span.len),
            _ => self.view_mut(span).as_const(),
        }
    }

    fn view_mut(&self, span: Span) -> UserBufMut {
        match span.buf {
            Buf::Send => unreachable!("schedules never write into the send buffer"),
            Buf::Recv => self.recv.sub(span.off, span.len),
            Buf::Temp(i) => self.temps[i].view().sub(span.off, span.len),
        }
    }

    /// Takes the result of a finished send or receive (`expect`: the bytes a receive
    /// must get); a fatal failure ends the schedule, others fail it at its end. The
    /// steps after such a failure (ranks disagreeing on counts) still run, with
    /// whatever the buffers hold, so that every peer still gets the messages it waits
    /// for and fails or finishes too instead of waiting forever.
    fn retire(&mut self, result: Result<Status>, expect: Option<usize>) -> Result<()> {
        match result {
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                self.failed.get_or_insert(e);
            }
            Ok(status) => {
                if let Some(want) = expect.filter(|&want| want != status.bytes) {
                    self.failed.get_or_insert(Error::InvalidArgument(format!(
                        "received {} bytes from rank {} where {want} were expected",
                        status.bytes, status.source
                    )));
                }
            }
        }
        Ok(())
    }

    /// Starts and retires whatever can move. Returns `Some(result)` when finished.
    pub(crate) fn advance(&mut self, eng: &mut Engine) -> Result<Option<Result<Status>>> {
        loop {
            let mut i = 0;
            while i < self.inflight.len() {
                let (id, expect) = self.inflight[i];
                match eng.core.reqs.take_done(id) {
                    None => i += 1,
                    Some(r) => {
                        self.inflight.swap_remove(i);
                        self.retire(r, expect)?;
                    }
                }
            }
            if self.next == self.steps.len() {
                if !self.inflight.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(match self.failed.take() {
                    Some(e) => Err(Error::InvalidArgument(format!(
                        "a collective's buffers or counts do not agree across ranks: {}",
                        match e {
                            Error::InvalidArgument(why) => why,
                            // The tag is the collective's own, of no use to the caller.
                            Error::Truncated {
                                source_rank,
                                message_bytes,
                                buffer_bytes,
                                ..
                            } => format!(
                                "{message_bytes} bytes from rank {source_rank} do not fit in {buffer_bytes} bytes"
                            ),
                            other => other.to_string(),
                        }
                    ))),
                    None => Ok(Status::empty()),
                }));
            }
            match self.steps[self.next] {
                Step::Fence => {
                    if !self.inflight.is_empty() {
                        return Ok(None);
                    }
                }
                Step::Send { peer, span } => {
                    let buf = self.view(span);
                    let world = self.route.group[peer] as usize;
                    let (ctx, src, tag) = (self.route.ctx, self.route.rank as i32, self.route.tag);
                    if let Some(id) = eng.start_send(ctx, src, world, tag, buf, false)? {
                        self.inflight.push((id, None));
                    }
                }
                Step::Recv { peer, span } => {
                    let buf = self.view_mut(span);
                    let pattern = Pattern::new(
                        self.route.ctx,
                        Source::Rank(peer as i32),
                        TagSel::Tag(self.route.tag),
                        Some(self.route.group[peer] as usize),
                    );
                    // A reduction reads what it receives at once (see `RecvOp::keep`).
                    match eng.start_recv_keeping(pattern, buf, self.op.is_some())? {
                        Started::Pending(id) => self.inflight.push((id, Some(span.len))),
                        Started::Done(r) => self.retire(r, Some(span.len))?,
                    }
                }
                Step::Reduce { left, right, dst } => {
                    let op = self
                        .op
                        .as_deref()
                        .expect("a schedule with reduce steps has an op");
                    let out = self.view_mut(dst);
                    if dst == right {
                        op.combine(self.view(left).as_slice(), out.as_mut_slice(), true);
                    } else if dst == left {
                        op.combine(self.view(right).as_slice(), out.as_mut_slice(), false);
                    } else {
                        op.combine_to(
                            self.view(left).as_slice(),
                            self.view(right).as_slice(),
                            out.as_mut_slice(),
                        );
                    }
                }
                Step::Copy { src, dst } => {
                    let (input, out) = (self.view(src), self.view_mut(dst));
                    copy(out.as_mut_slice(), input.as_slice());
                }
            }
            self.next += 1;
        }
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        if !self.inflight.is_empty() {
            // Requests still point into the temporaries (the job is failing): never
            // free memory a transport may yet write.
            for t in self.temps.drain(..) {
                t.leak();
            }
            return;
        }
        self.steps.clear();
        self.temps.clear();
        let parts = (
            std::mem::take(&mut self.steps),
            std::mem::take(&mut self.inflight),
            std::mem::take(&mut self.temps),
        );
        // Destroyed (thread exit): the closure, and `parts` with it, is dropped unrun.
        let _ = SPARE.try_with(|s| s.borrow_mut().put(parts));
    }
}

type Parts = (Vec<Step>, Vec<(ReqId, Option<usize>)>, Vec<TempBuf>);

/// The emptied storage of finished schedules, reused by the next ones on this thread,
/// so a short collective allocates nothing.
#[derive(Default)]
struct Spare {
    parts: Vec<Parts>,
}

/// Most sets of storage kept.
const SPARE_MAX: usize = 8;

impl Spare {
    fn take(&mut self) -> Parts {
        self.parts.pop().unwrap_or_else(Spare::fresh)
    }

    /// New storage, for when none is kept.
    fn fresh() -> Parts {
        (
            Vec::with_capacity(16),
            Vec::with_capacity(4),
            Vec::with_capacity(2),
        )
    }

    fn put(&mut self, parts: Parts) {
        if self.parts.len() < SPARE_MAX {
            self.parts.push(parts);
        }
    }
}

// Reached with `try_with`, never `with`: a `Universe` kept in a thread-local of the
// user's finalizes (and may drop schedules) while the thread's thread-locals are
// destroyed, possibly after this one. Destroyed, it keeps nothing.
thread_local! {
    static SPARE: std::cell::RefCell<Spare> = std::cell::RefCell::new(Spare::default());
}
