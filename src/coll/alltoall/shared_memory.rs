//! Alltoall over the node's collective area (see `coll/shared_memory.rs`), in pieces:
//! for each piece every rank writes the same stretch of each of its blocks for the
//! others (one large buffer at most), waits for all, and copies out the stretch each
//! rank wrote for it; one collective number per piece, so a rank may write its next
//! pieces while slower ranks still read the earlier ones. The selection keeps to one
//! piece (`select::ALLTOALL_AREA`). Larger, where the node allows single copies
//! (from 3 ranks, see `select::lend`), the calls go by lent copies or in pieces, as
//! rank 0 learns is faster (`engine/two_ways.rs`) and decides for runs of calls of a
//! size class, kept per communicator as the 2-rank learned collectives keep theirs
//! (`coll/learned.rs`). Lent: every rank lends its send buffer, copies its block
//! straight from each other rank's and waits in a second collective until every
//! rank has finished copying from it. A call whose run says pieces writes a loan of
//! nothing and goes on in pieces at once, without waiting for the others. Where no
//! run is left, every rank lends and waits, and rank 0's loan carries the next run,
//! whose first call goes its way from there (in pieces, the loans unused). Every
//! loan says its rank's role, so that ranks whose runs fell out of step (after a
//! disagreement on the counts) all fail alike ([`in_step`]). Pieces also run where
//! the area is forced (`OXMPI_COLL_ALLTOALL=shared_memory`) and nothing is lent.
//!
//! Cost: through the area, one arrival per rank and piece, and each block copied in
//! and out once; lent, two arrivals per rank and one copy per block (a system call
//! per peer, which pins every page it reads).

use std::time::Instant;

use crate::coll::learned::{DECIDED, decide};
use crate::coll::select::Collective;
use crate::coll::shared_memory::{LARGE, Meeting};
use crate::copy::copy;
use crate::engine::two_ways;
use crate::error::{Error, Result};

/// The most bytes of each block one piece carries: one piece of every block fills at
/// most a large buffer.
pub(crate) fn piece(block: usize, size: usize) -> usize {
    block.min(LARGE / size.max(1)).max(1)
}

/// Exchanges blocks of `block` bytes: `send` (or, if `None`, `recv` in place) holds
/// one block per rank.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    send: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
) -> Result<()> {
    if m.lends() {
        return lent(m, send, recv, block);
    }
    pieces(m, send, recv, block, false)
}

/// The blocks through the area, a piece of every block at a time (this rank's own
/// block copied straight across); `fresh`: the first piece takes a collective
/// number of its own (the current one was used to lend).
fn pieces(
    m: &mut Meeting<'_>,
    send: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
    fresh: bool,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    // In place, this rank's own block is already where it belongs.
    if let Some(send) = send {
        let own = rank * block..(rank + 1) * block;
        copy(&mut recv[own.clone()], &send[own]);
    }
    m.set_shape(block * size, 1);
    let step = piece(block, size);
    let mut off = 0;
    loop {
        let len = (block - off).min(step);
        if off > 0 || fresh {
            m.next_piece(len * size);
        }
        // Piece `off..off + len` of block `j` at `j * len` (this rank's own left out).
        // In place, what this piece overwrites below has just been written here.
        let src = send.unwrap_or(recv);
        m.write(len * size, |slot| {
            for j in (0..size).filter(|&j| j != rank) {
                copy(
                    &mut slot[j * len..(j + 1) * len],
                    &src[j * block + off..j * block + off + len],
                );
            }
        })?;
        m.publish(false);
        m.wait_all()?;
        m.read_each(len * size, |r, theirs| {
            copy(
                &mut recv[r * block + off..r * block + off + len],
                &theirs[rank * len..(rank + 1) * len],
            );
        })?;
        off += len;
        if off >= block {
            return Ok(());
        }
    }
}

/// Copies this rank's block of every rank's lent buffer (its own from `from`) into
/// `recv`; every rank lent one ([`in_step`]).
fn copy_lent_blocks(m: &mut Meeting<'_>, from: &[u8], recv: &mut [u8], block: usize) -> Result<()> {
    let (rank, size) = m.rank_size();
    // Starting with the next rank spreads the readers over the lenders.
    for r in (1..=size).map(|i| (rank + i) % size) {
        let dst = &mut recv[r * block..(r + 1) * block];
        if r == rank {
            copy(dst, &from[r * block..(r + 1) * block]);
            continue;
        }
        let (loan, _) = m.lent(r).expect("every rank lent its buffer");
        m.copy_lent(r, &loan.source(), rank * block, dst)?;
    }
    Ok(())
}

/// A deciding rank's note where it is not rank 0, whose note carries the run it
/// decides ([`DECIDED`] set); a rank that goes by its run notes 0.
const ASKING: u64 = 1 << 62;
const _: () = assert!(ASKING != DECIDED);

/// Whether `r` lent a buffer of `bytes` in all, in the same role as this rank:
/// with no run left (`deciding`) every rank asks and rank 0 decides; by a run (of
/// lent copies) none does. Ranks whose runs fell out of step (a disagreement on the
/// counts left some in a run and others not, or in runs of different ways) see the
/// same loans and each finds some rank not in step, so all fail alike.
fn in_step(m: &Meeting<'_>, r: usize, bytes: usize, deciding: bool) -> bool {
    let Some((loan, total)) = m.lent(r) else {
        return false;
    };
    let role = match (deciding, r) {
        (false, _) => loan.note() == 0,
        (true, 0) => loan.note() & DECIDED != 0,
        (true, _) => loan.note() == ASKING,
    };
    total == bytes && !loan.is_empty() && role
}

/// Why some rank's loan is not [`in_step`] with this rank's: its counts differ, or
/// (the same bytes) its runs of calls are out of step with this rank's.
fn not_in_step(m: &Meeting<'_>, bytes: usize, deciding: bool) -> Error {
    let (rank, size) = m.rank_size();
    let r = (0..size)
        .find(|&r| !in_step(m, r, bytes, deciding))
        .expect("some rank is not in step");
    match m.lent(r) {
        Some((_, total)) if total == bytes => Error::InvalidArgument(format!(
            "alltoall: rank {r} goes another way than rank {rank} by its runs of calls (the ranks disagreed on the counts in an earlier call)"
        )),
        // Its data, not a loan, where this rank lent (or a loan of other bytes):
        // reading it says how the counts differ.
        _ => m.read(r, bytes).err().unwrap_or_else(|| {
            Error::InvalidArgument(format!(
                "alltoall: rank {r} lent no buffer where rank {rank} lent one (the ranks disagree on the counts)"
            ))
        }),
    }
}

/// Lent copies or pieces through the area, as this communicator's run of calls of
/// the size class says; where none is left, every rank lends and rank 0's loan
/// carries the next run, decided as it learned (`coll/learned.rs`). A call that its
/// run sends in pieces waits for no loans, so it meets once: 4 ranks, 64 KiB
/// blocks, 0.82 of the time of lending, waiting and then going in pieces (5
/// interleaved rounds).
fn lent(m: &mut Meeting<'_>, send: Option<&[u8]>, recv: &mut [u8], block: usize) -> Result<()> {
    let bytes = block * m.rank_size().1;
    let start = Instant::now();
    m.set_shape(bytes, 1);
    let comm = m.comm();
    let next = comm
        .learned_runs()
        .take(Collective::Alltoall, two_ways::class(bytes));
    let (way, collapsed, outcome) = match next {
        Some((false, record)) => {
            // Every rank knows from the run that it goes in pieces, and lends nothing
            // without waiting for the others: a rank out of step meets a loan here
            // as in any lent alltoall, so one whose blocks went through the area
            // joins the loans' close and one that lends fails and closes: all take
            // as many collective numbers, and fail.
            let outcome = m.lend_nothing().and_then(|()| {
                m.publish(false);
                pieces(m, send, recv, block, true)
            });
            (Some((false, record)), false, outcome)
        }
        next => lend_first(m, send, recv, block, next),
    };
    // A call in which a rank put memory on huge pages as it lent is not timed: that
    // took it up to milliseconds, which would stand for the way in the estimate.
    if let Some((first, true)) = way.filter(|_| outcome.is_ok() && !collapsed) {
        let ns = start.elapsed().as_nanos() as f64;
        m.alltoall_ways().record(bytes, first, ns);
    }
    outcome
}

/// A call that lends its send buffer: its run says lent copies (`next`), or no run
/// is left and rank 0 decides the next with its loan (then the call goes the run's
/// first way). Returns the way taken (lent copies first) and whether rank 0 times it
/// (where known), whether some rank put memory on huge pages as it lent, and the
/// outcome.
fn lend_first(
    m: &mut Meeting<'_>,
    send: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
    next: Option<(bool, bool)>,
) -> (Option<(bool, bool)>, bool, Result<()>) {
    let (rank, size) = m.rank_size();
    let bytes = block * size;
    let deciding = next.is_none();
    let (note, record) = match next {
        None if rank == 0 => decide(m.alltoall_ways(), bytes),
        None => (ASKING, 0),
        Some(_) => (0, 0),
    };
    // In place, the blocks others copy must not change under them.
    let saved;
    let from = match send {
        Some(s) => s,
        None => {
            saved = recv.to_vec();
            &saved
        }
    };
    if let Err(e) = m.lend(from, note) {
        return (None, false, Err(e));
    }
    m.publish(false);
    let mut outcome = m.wait_all();
    // All ranks see alike whether they agree on the counts (a rank that differs from
    // one differs from every rank that agrees with that one), and so take the same
    // way; ranks whose runs are out of step all find one another out of step.
    let agreed = outcome.is_ok() && (0..size).all(|r| in_step(m, r, bytes, deciding));
    if outcome.is_ok() && !agreed {
        outcome = Err(not_in_step(m, bytes, deciding));
    }
    let collapsed = (0..size).any(|r| m.lent(r).is_some_and(|(loan, _)| loan.collapsed()));
    let way = match next {
        Some(_) => next,
        None if agreed => {
            let word = m.lent(0).map_or(0, |(loan, _)| loan.note());
            let way = m.comm().learned_runs().start(
                Collective::Alltoall,
                two_ways::class(bytes),
                word,
                record,
            );
            if way.is_none() {
                // Rank 0 is out of step with this rank's runs.
                outcome = Err(Error::Protocol {
                    rank: m.world_rank(rank),
                    peer: m.world_rank(0),
                    detail: format!("alltoall: rank 0 decided no run of calls ({word:#x})"),
                });
            }
            // A first call in pieces met to lend as well: its time is not the way's.
            way.map(|(first, record)| (first, record && first))
        }
        None => None,
    };
    if outcome.is_ok() && matches!(way, Some((false, _))) {
        // Nobody copies from the lent buffers: no loan to close.
        return (way, collapsed, pieces(m, send, recv, block, true));
    }
    outcome = outcome.and_then(|()| copy_lent_blocks(m, from, recv, block));
    let done = m.close_loan();
    (way, collapsed, outcome.and(done))
}
