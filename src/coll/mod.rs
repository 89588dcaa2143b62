//! Collective operations (MPI's chapter 5) as methods of [`Comm`], and the reduction
//! operations they apply ([`op`]).
//!
//! Each operation lives in its own folder: `mod.rs` holds the public methods (blocking,
//! in-place and nonblocking forms) and validates the arguments, each algorithm is one
//! file that appends its steps to a [`Schedule`], and [`select`] picks the algorithm.
//! Short blocking collectives of a communicator whose ranks are one node's may instead
//! meet in the node's shared-memory area ([`shared_memory`]; the `shared_memory.rs`
//! file of each operation that has that path).
//! Invariant: the blocking and nonblocking forms of an operation are planned by the
//! same function, and the plan depends only on arguments every rank agrees on (sizes,
//! counts, root, operation) and the form, so all ranks of a call plan alike.

mod allgather;
mod allgatherv;
pub(crate) mod allreduce;
mod alltoall;
mod alltoallv;
mod barrier;
mod bcast;
mod blocks;
mod exscan;
mod fold;
mod gather;
mod gatherv;
mod kernels;
pub(crate) mod learned;
pub mod op;
mod reduce;
mod reduce_local;
mod reduce_scatter;
mod reduce_scatter_block;
mod scan;
mod scatter;
mod scatterv;
pub(crate) mod select;
mod shared_memory;
mod tree;
mod value_index;

pub use reduce_local::reduce_local;
pub use select::{Collective, set_algorithm};
pub use value_index::ValueIndex;

use std::cell::Cell;

use bytemuck::Pod;

use crate::comm::Comm;
use crate::engine::schedule::{Combine, Schedule};
use crate::engine::{self, Engine};
use crate::error::{Error, Rank, Result};
use crate::request::{Request, Scope};
use crate::userbuf::{UserBuf, UserBufMut};
use shared_memory::{Beside, Meeting, Venue};

/// Which form of a collective is being planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Blocking,
    Nonblocking,
}

/// How one collective call runs.
enum Plan<'c> {
    /// A schedule of messages (either form). Boxed, so that the common plan of a short
    /// blocking collective, a meeting, is a few words to return and pass on (an
    /// unboxed schedule made every call copy the plan twice).
    Schedule(Box<Schedule>),
    /// A meeting in the node's collective area (blocking calls only), with the
    /// reduction, if any; `learned`: rank 0 learned that the call meets there
    /// (`learned.rs`), and learns from its time.
    Node {
        venue: Venue<'c>,
        op: Option<Box<dyn Combine>>,
        learned: bool,
    },
}

impl Comm {
    /// Runs a blocking collective's `plan`: its schedule, or `node` (the operation's
    /// shared-memory algorithm) in a meeting of collective `coll`.
    fn run_plan(
        &self,
        plan: Plan<'_>,
        coll: Collective,
        node: impl FnOnce(&mut Meeting<'_>, Option<&dyn Combine>) -> Result<()>,
    ) -> Result<()> {
        match plan {
            Plan::Schedule(sched) => self.run_beside(*sched, coll),
            Plan::Node { venue, op, learned } => {
                // The call's time is learned from as it ends, whatever its outcome: a
                // check of the outcome after the meeting (which holds it rather than
                // returning it as it comes) cost a 2-rank bcast of 1-64 B 3-12% of its
                // time, and a second call of `node` elsewhere 15% (its closure was no
                // longer inlined).
                let _learning = learned.then(|| learned::Learning::new(self, coll));
                self.meet(coll, venue, |m| node(m, op.as_deref()))
            }
        }
    }

    /// Starts a nonblocking collective's plan (always a schedule) in `scope`.
    fn start_plan_in<'s>(&self, scope: &'s Scope<'s, '_>, plan: Plan<'_>) -> Result<Request<'s>> {
        match plan {
            Plan::Schedule(sched) => self.start_in(scope, *sched),
            Plan::Node { .. } => {
                unreachable!("nonblocking collectives are never planned on the node")
            }
        }
    }

    /// The TCP eager limit if this communicator's traffic crosses TCP (it spans
    /// nodes, or `OXMPI_TRANSPORT=tcp`); every rank of it gets the same answer (see
    /// `Network::tcp_among`), so the selection may depend on it.
    fn tcp_among(&self) -> Result<Option<usize>> {
        engine::with(|e| Ok(e.net.tcp_among(self.group())))
    }

    /// The algorithm of `coll` (no reduction) moving `bytes` on this communicator as
    /// messages: [`select::choose_linked`] with its size and whether it crosses TCP.
    fn choose_linked(&self, coll: Collective, bytes: usize) -> Result<select::Algorithm> {
        select::choose_linked(
            coll,
            bytes,
            self.size() as usize,
            self.tcp_among()?.is_some(),
        )
    }

    /// Runs `sched` to completion. The schedule is driven directly by this call, not
    /// through the request table, which keeps short collectives short.
    fn run_blocking(&self, mut sched: Schedule) -> Result<()> {
        engine::with(|e| drive(e, &mut sched, &|| false).map(|_| ()))
    }

    /// Runs `sched`, a blocking collective `coll`: on a communicator of one node's
    /// ranks, beside any rank that meets in the node's area in the same collective,
    /// or runs another one under its number ([`Beside`]), also where `coll` itself
    /// never meets there (a rank that failed its own argument checks in it, taking
    /// no part, may go on to one that does). If one does, this rank's messages may
    /// never all come, and the job fails (a fatal error: the schedule's requests
    /// still point into the caller's buffers). Where rank 0 learned that the call
    /// goes as messages (`learned.rs`), it learns from its time.
    fn run_beside(&self, sched: Schedule, coll: Collective) -> Result<()> {
        let outcome = self.run_beside_unlearned(sched, coll);
        if learned::under_way() {
            self.learned_call_done(coll, outcome.is_ok());
        }
        outcome
    }

    /// [`Comm::run_beside`], learning nothing.
    fn run_beside_unlearned(&self, mut sched: Schedule, coll: Collective) -> Result<()> {
        let Some(slots) = self.node_indices()? else {
            return self.run_blocking(sched);
        };
        let rank = self.rank() as usize;
        engine::with(|e| {
            let beside = Beside::enter(e, slots, rank, coll);
            let apart = Cell::new(None);
            let alarm = || {
                apart.set(beside.apart());
                apart.get().is_some()
            };
            let other = match drive(e, &mut sched, &alarm) {
                Ok(true) => return Ok(()),
                Ok(false) => apart.get().expect("the alarm rang: a rank is apart"),
                // A rank that ran another collective may have left the job before
                // this one noticed: the mismatch is the cause to report.
                Err(err) if err.is_fatal() => {
                    beside.apart().filter(|o| o.2 != coll as u8).ok_or(err)?
                }
                Err(err) => return Err(err),
            };
            // The engine hears of the failure: it is fatal.
            Err(beside.error(self.group(), other))
        })
    }

    /// Starts `sched` as a request of `scope`; its buffers are borrowed for `'s`.
    fn start_in<'s>(&self, scope: &'s Scope<'s, '_>, sched: Schedule) -> Result<Request<'s>> {
        let id = engine::with(|e| e.start_schedule(sched))?;
        Ok(scope.register(id))
    }

    /// A new schedule for the next collective on this communicator, `coll` run by
    /// `alg`, over `send` and `recv` (the views outlive the call: see
    /// [`crate::userbuf`]).
    fn schedule<S: Pod, R: Pod>(
        &self,
        coll: Collective,
        alg: select::Algorithm,
        send: &[S],
        recv: &mut [R],
    ) -> Schedule {
        // SAFETY: a blocking collective runs its schedule to completion before it
        // returns (`run_blocking`, `run_beside`, `run_plan`); a nonblocking one starts
        // it in the scope that it borrows both buffers for (`start_in`,
        // `start_plan_in`).
        let (send, recv) = unsafe {
            (
                UserBuf::new(bytemuck::cast_slice(send)),
                UserBufMut::new(bytemuck::cast_slice_mut(recv)),
            )
        };
        let mut s = Schedule::new(self.next_coll_route(coll, alg), send, recv);
        if coll.drops_empty_blocks() {
            s.skip_empty_transfers();
        }
        s
    }

    /// `root` as an index, if it is a rank of this communicator.
    fn check_root(&self, root: Rank) -> Result<usize> {
        if root < 0 || root >= self.size() {
            return Err(Error::InvalidRank {
                rank: root,
                size: self.size(),
            });
        }
        Ok(root as usize)
    }
}

/// Runs `sched` to completion, or until `alarm` (asked when the rank would sleep)
/// holds. Returns whether it finished.
fn drive(e: &mut Engine, sched: &mut Schedule, alarm: &dyn Fn() -> bool) -> Result<bool> {
    let mut outcome = sched.advance(e)?;
    if outcome.is_none() {
        let mut failed = None;
        e.watch_driving(Some(sched.route().clone()));
        let finished = e.wait_until_or(
            |e| match sched.advance(e) {
                Ok(None) => false,
                Ok(done) => {
                    outcome = done;
                    true
                }
                Err(err) => {
                    failed = Some(err);
                    true
                }
            },
            alarm,
        );
        e.watch_driving(None);
        let finished = finished?;
        if let Some(err) = failed {
            return Err(err);
        }
        if !finished {
            return Ok(false);
        }
    }
    outcome.expect("the schedule finished").map(|_| true)
}

/// An [`Error::InvalidArgument`] saying which buffer of which operation has the wrong
/// number of elements.
fn wrong_len(op: &str, what: &str, got: usize, want: usize, why: &str) -> Error {
    Error::InvalidArgument(format!(
        "{op}: {what} holds {got} elements, needs {want} ({why})"
    ))
}

/// Checks a v-variant's `counts` and `displs` (in elements) against a buffer of
/// `len` elements on `size` ranks; `exclusive` also rejects overlapping blocks (a
/// receive layout, where two blocks would be written at once). An empty block's
/// displacement is not checked: it touches no memory (as in MPI, where ranks that
/// contribute nothing often keep any displacement).
fn check_layout(
    op: &str,
    what: &str,
    len: usize,
    counts: &[usize],
    displs: &[usize],
    size: usize,
    exclusive: bool,
) -> Result<()> {
    if counts.len() != size || displs.len() != size {
        return Err(Error::InvalidArgument(format!(
            "{op}: {what} has {} counts and {} displacements, needs one of each per rank ({size})",
            counts.len(),
            displs.len()
        )));
    }
    for (i, (&c, &d)) in counts.iter().zip(displs).enumerate() {
        if c > 0 && d.checked_add(c).is_none_or(|end| end > len) {
            return Err(Error::InvalidArgument(format!(
                "{op}: block {i} of the {what} ({c} elements at displacement {d}) ends past its {len} elements"
            )));
        }
    }
    if exclusive {
        let mut used: Vec<(usize, usize)> = counts
            .iter()
            .zip(displs)
            .filter(|(c, _)| **c > 0)
            .map(|(&c, &d)| (d, d + c))
            .collect();
        used.sort_unstable();
        if let Some(w) = used.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(Error::InvalidArgument(format!(
                "{op}: blocks of the {what} overlap (elements {}..{} and {}..{})",
                w[0].0, w[0].1, w[1].0, w[1].1
            )));
        }
    }
    Ok(())
}
