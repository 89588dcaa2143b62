//! Allreduce over the node's collective area, in rank order (see
//! `coll/shared_memory.rs`).
//!
//! Up to [`WHOLE`] (32 KiB), while `p` vectors come to less than [`PIECES_FROM`]:
//! every rank writes its vector, waits for all, and combines all vectors itself.
//! Cost: one arrival per rank, then `p` vectors read and `p - 1` combines on every
//! rank. Longer vectors go in pieces of a large buffer (512 KiB), each in two
//! collectives: every rank writes its piece (all but its own `1/p` segment,
//! which nobody else reads), then combines that segment of the piece from every
//! rank's (a reduce-scatter, in tiles of [`TILE`]) and writes it, into the area and
//! its own output, then copies every other rank's segment out (an allgather). Cost
//! per piece: two arrivals per rank, and each rank reads the piece about twice
//! instead of `p` times. Either way every element is
//! `x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))`, computed from the same operands in the same order
//! whichever rank computes it, so all ranks get the same bits, the same inputs give
//! the same bits whichever way the vector went, and non-commutative operations work.

use crate::coll::shared_memory::{LARGE, Meeting, WHOLE};
use crate::copy::copy;
use crate::engine::schedule::Combine;
use crate::error::Result;

/// Vectors that fit a slot go in pieces all the same once every rank would read this
/// many bytes combining all of them (the vector times the ranks): 8 ranks, 16 /
/// 32 KiB in 0.65 / 0.53 of the time, 16 ranks, 8-32 KiB 0.49-0.90, 4 ranks, 32 KiB
/// 0.89; at half as much per rank 1.0-1.05 (medians of 3-4 interleaved rounds).
const PIECES_FROM: usize = 128 * 1024;

/// Bytes of a piece's segment combined at a time: each tile of the result stays in
/// the first-level cache while every rank's operand is folded into it, and is copied
/// into this rank's output from there (nobody copies its own segment out of the area
/// afterwards). 4 ranks, 64 KiB-1 MiB in 0.92-0.95 of the time of whole segments
/// copied out later (8 ranks 0.98-0.99, 2 ranks within the noise; medians of 4-8
/// interleaved rounds); tiles of 4 / 32 KiB did no better than 16.
const TILE: usize = 16 * 1024;

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
    if len > WHOLE || len * m.rank_size().1 >= PIECES_FROM {
        return run_pieces(m, input, recv, esz, op);
    }
    m.write(len, |slot| copy(slot, input.unwrap_or(recv)))?;
    m.publish(false);
    m.wait_all()?;
    if len > FETCH_FROM {
        m.fetch_others();
    }
    combine_all(m, input, recv, op)
}

/// Vectors from which the ranks' data lines are asked for before combining
/// ([`Meeting::fetch_others`]): up to 64 bytes they lie in two lines at most, and
/// the asking gained nothing (0.99-1.03).
const FETCH_FROM: usize = 64;

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
    in_rank_order(size, part, (out, None), len.max(1), op)
}

/// `out = x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))` where `part(r)` is rank `r`'s operand, and the
/// same copied into `also` if given, in tiles of `tile` bytes (a multiple of the
/// element size).
fn in_rank_order<'d>(
    size: usize,
    part: impl Fn(usize) -> Result<&'d [u8]>,
    (out, mut also): (&mut [u8], Option<&mut [u8]>),
    tile: usize,
    op: &dyn Combine,
) -> Result<()> {
    // At least one round, where `out` is empty too: `part` checks the operands.
    let mut at = 0;
    loop {
        let end = (at + tile).min(out.len());
        let o = &mut out[at..end];
        if size == 1 {
            copy(o, &part(0)?[at..end]);
        } else {
            op.combine_to(&part(size - 2)?[at..end], &part(size - 1)?[at..end], o);
            for r in (0..size - 2).rev() {
                op.combine(&part(r)?[at..end], o, true);
            }
        }
        if let Some(also) = also.as_deref_mut() {
            copy(&mut also[at..end], o);
        }
        at = end;
        if at == out.len() {
            return Ok(());
        }
    }
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
        let tile = (TILE / esz).max(1) * esz;
        let own_out = &mut recv[off..off + len][mine.clone()];
        m.next_piece_from(elems.div_ceil(size) * esz, mine.len(), |seg, piece| {
            let part = |r: usize| match input {
                // As in `combine_all`: this rank's operand from its own memory.
                Some(input) if r == rank => Ok(&input[off..off + len][mine.clone()]),
                _ => Ok(&piece.read(r)[mine.clone()]),
            };
            combined = in_rank_order(size, part, (seg, Some(own_out)), tile, op);
        })?;
        debug_assert!(combined.is_ok());
        m.publish(false);
        m.wait_all()?;
        for r in (0..size).filter(|&r| r != rank) {
            let at = off + bound(r)..off + bound(r + 1);
            let n = at.len();
            copy(&mut recv[at], m.read(r, n)?);
        }
        off += len;
    }
    Ok(())
}
