//! Alltoall over the node's collective area (see `coll/shared_memory.rs`), in pieces:
//! for each piece every rank writes the same stretch of each of its blocks for the
//! others (one large buffer at most), waits for all, and copies out the stretch each
//! rank wrote for it; one collective number per piece, so a rank may write its next
//! pieces while slower ranks still read the earlier ones. The selection keeps to one
//! piece (`select::ALLTOALL_AREA`). Larger, where the node allows single copies
//! (from 3 ranks, see `select::lend`), every rank lends its send buffer, and rank 0
//! says with its loan how all go, as it learned (`engine/two_ways.rs`): each rank
//! copies its block straight from each other rank's and waits in a second collective
//! until every rank has finished copying from it, or all go in pieces after all.
//! Pieces also run where the area is forced (`OXMPI_COLL_ALLTOALL=shared_memory`)
//! and nothing is lent.
//!
//! Cost: through the area, one arrival per rank and piece, and each block copied in
//! and out once; lent, two arrivals per rank and one copy per block (a system call
//! per peer, which pins every page it reads).

use std::time::Instant;

use crate::coll::shared_memory::{LARGE, Meeting};
use crate::copy::copy;
use crate::error::Result;

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
/// `recv`; fails at the first rank that wrote data or disagrees on the counts.
fn copy_lent_blocks(m: &mut Meeting<'_>, from: &[u8], recv: &mut [u8], block: usize) -> Result<()> {
    let (rank, size) = m.rank_size();
    // Starting with the next rank spreads the readers over the lenders.
    for r in (1..=size).map(|i| (rank + i) % size) {
        let dst = &mut recv[r * block..(r + 1) * block];
        if r == rank {
            copy(dst, &from[r * block..(r + 1) * block]);
            continue;
        }
        match m.lent(r) {
            Some((loan, total)) if total == block * size => {
                m.copy_lent(r, &loan.source(), rank * block, dst)?
            }
            _ => m.read(r, block * size).map(drop)?,
        }
    }
    Ok(())
}

/// Rank 0's note when all go in pieces through the area instead of copying from the
/// lent buffers.
const IN_PIECES: u64 = 1;

fn lent(m: &mut Meeting<'_>, send: Option<&[u8]>, recv: &mut [u8], block: usize) -> Result<()> {
    let (rank, size) = m.rank_size();
    let start = Instant::now();
    // Rank 0 chooses between lent copies and pieces through the area, and says so
    // with its loan: a lent copy pins every page it reads, which dominates where a
    // cache line crosses between the cores in 0.06 us (pieces 0.49-0.61 of the time
    // from 256 KiB per rank on 4 ranks), while the second copy through the area
    // costs more where it takes 0.25 us (pieces 1.2-1.3 of the time).
    let choice = (rank == 0).then(|| m.alltoall_ways().choose(block * size));
    let note = match choice {
        Some(c) if !c.first => IN_PIECES,
        _ => 0,
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
    m.set_shape(block * size, 1);
    m.lend(from, note)?;
    m.publish(false);
    let mut outcome = m.wait_all();
    // All ranks see alike whether they agree on the counts (a rank that differs from
    // one differs from all that agree with that one), and so take the same way.
    let agreed = outcome.is_ok()
        && (0..size).all(|r| matches!(m.lent(r), Some((_, total)) if total == block * size));
    // A call in which a rank put memory on huge pages as it lent is not timed: that
    // took it up to milliseconds, which would stand for the way in the estimate.
    let collapsed = (0..size).any(|r| m.lent(r).is_some_and(|(loan, _)| loan.collapsed()));
    if agreed && m.lent(0).is_some_and(|(loan, _)| loan.note() == IN_PIECES) {
        // Nobody copies from the lent buffers: no loan to close.
        outcome = pieces(m, send, recv, block, true);
    } else {
        outcome = outcome.and_then(|()| copy_lent_blocks(m, from, recv, block));
        let done = m.close_loan();
        outcome = outcome.and(done);
    }
    if let Some(c) = choice.filter(|c| c.record && outcome.is_ok() && !collapsed) {
        let ns = start.elapsed().as_nanos() as f64;
        m.alltoall_ways().record(block * size, c.first, ns);
    }
    outcome
}
