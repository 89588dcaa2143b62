//! Allreduce over the node's collective area, in rank order (see
//! `coll/shared_memory.rs`).
//!
//! Up to [`WHOLE`] (32 KiB), while `p` vectors come to less than [`PIECES_FROM`]:
//! every rank writes its vector, waits for all, and combines all vectors itself.
//! Cost: one arrival per rank, then `p` vectors read and `p - 1` combines on every
//! rank. Longer vectors go in pieces of a large buffer
//! (128 KiB), each
//! in two collectives: every rank writes its piece (all but its own `1/p` segment,
//! which nobody else reads), then combines that segment of the piece from every
//! rank's (a reduce-scatter) and writes it, then copies every rank's segment out (an
//! allgather). Cost per piece: two arrivals per rank, and each
//! rank reads the piece about twice instead of `p` times. Either way every element is
//! `x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))`, computed from the same operands in the same order
//! whichever rank computes it, so all ranks get the same bits, the same inputs give
//! the same bits whichever way the vector went, and non-commutative operations work.
//! On 2 ranks, where the node allows single copies, vectors longer than [`WHOLE`]
//! do not go through the area: the ranks lend their buffers ([`lent`]).

use crate::coll::shared_memory::{DESCRIPTOR, LARGE, Loan, Meeting, WHOLE};
use crate::copy::copy;
use crate::engine::schedule::Combine;
use crate::error::Result;
use crate::userbuf::TempBuf;

/// Vectors that fit a slot go in pieces all the same once every rank would read this
/// many bytes combining all of them (the vector times the ranks): 8 ranks, 16 /
/// 32 KiB in 0.65 / 0.53 of the time, 16 ranks, 8-32 KiB 0.49-0.90, 4 ranks, 32 KiB
/// 0.89; at half as much per rank 1.0-1.05 (medians of 3-4 interleaved rounds).
const PIECES_FROM: usize = 128 * 1024;

/// The length of the pieces a vector of `esz`-byte elements goes in.
pub(crate) fn piece_len(esz: usize) -> usize {
    (LARGE / esz.max(1)).max(1) * esz.max(1)
}

/// Reduces `input` (or, if `None`, `recv` in place) of every rank into `recv`.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    input: Option<&[u8]>,
    recv: &mut [u8],
    esz: usize,
    op: &dyn Combine,
) -> Result<()> {
    let len = recv.len();
    m.set_shape(len, esz);
    if m.lends() {
        return lent(m, input, recv, esz, op);
    }
    if len > WHOLE || len * m.rank_size().1 >= PIECES_FROM {
        return run_pieces(m, input, recv, esz, op);
    }
    m.write(len, |slot| copy(slot, input.unwrap_or(recv)))?;
    m.publish(false);
    m.wait_all()?;
    // A rank with a longer vector may have lent its buffers instead (2 ranks).
    combine_all(m, input, recv, op).inspect_err(|_| m.release_lenders())
}

/// `out = x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))` over the slots of every rank (all published),
/// with this rank's operand taken from `own` where it is still at hand (not in
/// place) rather than read back from its slot: the line a rank just published is
/// often on its way to a reader, and reading it back cost here about as much as a
/// transfer between cores (on 2 ranks, a tenth of a short allreduce).
pub(crate) fn combine_all(
    m: &Meeting<'_>,
    own: Option<&[u8]>,
    out: &mut [u8],
    op: &dyn Combine,
) -> Result<()> {
    let (len, (rank, size)) = (out.len(), m.rank_size());
    let part = |r| match own {
        Some(own) if r == rank => Ok(own),
        _ => m.read(r, len),
    };
    in_rank_order(size, part, out, op)
}

/// `out = x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))` where `part(r)` is rank `r`'s operand.
fn in_rank_order<'d>(
    size: usize,
    part: impl Fn(usize) -> Result<&'d [u8]>,
    out: &mut [u8],
    op: &dyn Combine,
) -> Result<()> {
    if size == 1 {
        copy(out, part(0)?);
        return Ok(());
    }
    op.combine_to(part(size - 2)?, part(size - 1)?, out);
    for r in (0..size - 2).rev() {
        op.combine(part(r)?, out, true);
    }
    Ok(())
}

/// The pieces of a long vector: reduce-scatter then allgather, per piece.
fn run_pieces(
    m: &mut Meeting<'_>,
    input: Option<&[u8]>,
    recv: &mut [u8],
    esz: usize,
    op: &dyn Combine,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    let (total, step) = (recv.len(), piece_len(esz));
    let mut off = 0;
    while off < total {
        let len = step.min(total - off);
        let elems = len / esz;
        let bound = |r: usize| r * elems / size * esz;
        let mine = bound(rank)..bound(rank + 1);
        if off > 0 {
            m.next_piece(len);
        }
        m.write(len, |slot| {
            let piece = &input.unwrap_or(recv)[off..off + len];
            if input.is_some() {
                // Nobody reads this rank's own segment: it combines that from its
                // input (in place the input is overwritten, so the slot keeps it).
                copy(&mut slot[..mine.start], &piece[..mine.start]);
                copy(&mut slot[mine.end..], &piece[mine.end..]);
            } else {
                copy(slot, piece);
            }
        })?;
        m.publish(false);
        m.wait_all()?;
        for r in 0..size {
            // Every rank checks every rank's length and element size here, so all
            // fail at the same step.
            m.read(r, len)?;
        }
        // Every rank's piece was checked above, so combining cannot fail here.
        let mut combined = Ok(());
        m.next_piece_from(elems.div_ceil(size) * esz, mine.len(), |seg, piece| {
            let part = |r: usize| match input {
                // As in `combine_all`: this rank's operand from its own memory.
                Some(input) if r == rank => Ok(&input[off..off + len][mine.clone()]),
                _ => Ok(&piece.read(r)[mine.clone()]),
            };
            combined = in_rank_order(size, part, seg, op);
        })?;
        debug_assert!(combined.is_ok());
        m.publish(false);
        m.wait_all()?;
        for r in 0..size {
            let at = off + bound(r)..off + bound(r + 1);
            let n = at.len();
            copy(&mut recv[at], m.read(r, n)?);
        }
        off += len;
    }
    Ok(())
}

/// The bytes of its segment a rank combines and writes out at a time when the ranks
/// lend their buffers: the chunk is still in this core's cache when it is written
/// out. 2 ranks, 512 KiB / 1 MiB: whole segments took 1.21-1.23x the time of 64 KiB
/// chunks, 32 KiB chunks 0.93-0.99x (medians of 5 interleaved rounds).
const CHUNK: usize = 32 * 1024;

/// Allreduce of a vector too long for the area where the node allows single copies
/// (see `select::lend`), in two collectives over the area: every rank lends its input
/// and its output; combines its own segment of every rank's input, copied straight
/// from the lenders, into its output (a reduce-scatter) and writes that segment
/// straight into every other rank's output (an allgather); then says so in the next
/// collective and waits until everyone has. Each segment is `x0 ⊕ (x1 ⊕ (… ⊕
/// x(p-1)))`, as everywhere on the area, computed once. In place, the part of a rank's
/// buffer another rank writes is that rank's segment of the input, which only that
/// rank reads, before it writes.
///
/// Cost per rank: `(p - 1) / p` of the vector copied in and combined, as much written
/// out, a system call per peer each way, and two arrivals, where recursive doubling's
/// messages copy and combine the whole vector. Writing the segment out beats having
/// the others read it (2 ranks, 64 KiB-1 MiB: 0.63-0.83 of the time where a cache
/// line crosses between the cores in 0.25 us): it leaves the core that just computed
/// it, while it is still in its cache.
fn lent(
    m: &mut Meeting<'_>,
    input: Option<&[u8]>,
    recv: &mut [u8],
    esz: usize,
    op: &dyn Combine,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    let elems = recv.len() / esz;
    let bound = |r: usize| r * elems / size * esz;
    m.lend(input.unwrap_or(recv), Some(recv), 0)?;
    m.publish(false);
    let mut outcome = m.wait_all();
    // Every rank checks every other's shape here, so all that disagree fail at this
    // step and leave together (a rank that wrote data instead releases the lenders in
    // the collective number `close_loan` takes).
    let mut loans = vec![None; size];
    for r in (0..size).filter(|&r| r != rank) {
        if outcome.is_err() {
            break;
        }
        outcome = m.read(r, DESCRIPTOR).map(drop);
        loans[r] = m.lent(r).map(|(loan, _)| loan);
    }
    if outcome.is_ok() {
        let mine = bound(rank)..bound(rank + 1);
        let chunk = (CHUNK / esz).max(1) * esz;
        let mut at = mine.start;
        while at < mine.end && outcome.is_ok() {
            let part = at..at.saturating_add(chunk).min(mine.end);
            outcome = combine_lent(m, &loans, input, &mut recv[part.clone()], part.start, op);
            // Starting with the next rank spreads the writers over the lenders.
            for r in (1..size).map(|i| (rank + i) % size) {
                if outcome.is_ok() {
                    let target = loans[r].as_ref().expect("checked above").target();
                    outcome = m.write_lent(r, &target, part.start, &recv[part.clone()]);
                }
            }
            at = part.end;
        }
    }
    let done = m.close_loan();
    outcome.and(done)
}

/// `seg = x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))` over bytes `at..at + seg.len()` of every rank's
/// input, the others' copied from the buffers they lent (`lenders[r]`; `None` for
/// this rank), this rank's from `input` (or, if `None`, from `seg` itself, in place).
fn combine_lent(
    m: &Meeting<'_>,
    lenders: &[Option<Loan>],
    input: Option<&[u8]>,
    seg: &mut [u8],
    at: usize,
    op: &dyn Combine,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    let n = seg.len();
    // In place, this rank's operand is saved before its segment becomes the sum.
    let mut saved;
    let own: &[u8] = match input {
        Some(input) => &input[at..at + n],
        None => {
            saved = TempBuf::new(n);
            copy(saved.as_mut_slice(), seg);
            saved.as_mut_slice()
        }
    };
    let fetch = |r: usize, dst: &mut [u8]| {
        let loan = lenders[r]
            .as_ref()
            .expect("every other rank lent its input");
        m.copy_lent(r, &loan.source(), at, dst)
    };
    let mut scratch: Option<TempBuf> = None;
    // Right to left: `seg` holds the combination of the ranks after `r` once filled.
    let mut filled = false;
    let mut own_rightmost = false;
    for r in (0..size).rev() {
        if r == rank {
            if filled {
                op.combine(own, seg, true);
            } else {
                own_rightmost = true;
            }
        } else if !filled {
            fetch(r, seg)?;
            if own_rightmost {
                op.combine(own, seg, false);
            }
            filled = true;
        } else {
            let tmp = scratch
                .get_or_insert_with(|| TempBuf::new(n))
                .as_mut_slice();
            fetch(r, tmp)?;
            op.combine(tmp, seg, true);
        }
    }
    Ok(())
}
