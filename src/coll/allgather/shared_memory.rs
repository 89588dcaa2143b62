//! Allgather over the node's collective area (see `coll/shared_memory.rs`). Blocks
//! that fit the area: every rank writes its block, waits for all, and copies every
//! block out. Larger blocks, where the node allows single copies (from 3 ranks, see
//! `select::lend`): every rank lends its block, copies every other rank's straight
//! from its buffer, and waits in a second collective until every rank has finished
//! copying from its own.
//!
//! Cost: through the area, one arrival per rank, one block in and `p` out per rank;
//! lent, two arrivals per rank and `p - 1` copies.

use crate::coll::shared_memory::Meeting;
use crate::copy::copy;
use crate::error::Result;

/// Gathers `mine` (or, if `None`, this rank's block of `recv`) of every rank into
/// `recv`, blocks of `block` bytes in rank order.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    mine: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
) -> Result<()> {
    if m.lends() {
        return lent(m, mine, recv, block);
    }
    let (rank, _) = m.rank_size();
    let own = rank * block..(rank + 1) * block;
    m.write(block, |slot| {
        copy(slot, mine.unwrap_or_else(|| &recv[own.clone()]))
    })?;
    m.publish(false);
    m.wait_all()?;
    if let Some(mine) = mine {
        copy(&mut recv[own], mine);
    }
    m.read_each(block, |r, theirs| {
        copy(&mut recv[r * block..(r + 1) * block], theirs);
    })
}

fn lent(m: &mut Meeting<'_>, mine: Option<&[u8]>, recv: &mut [u8], block: usize) -> Result<()> {
    let (rank, size) = m.rank_size();
    let own = rank * block..(rank + 1) * block;
    m.set_shape(block, 1);
    // In place, others copy this rank's block of `recv` while it fills the others.
    m.lend(mine.unwrap_or(&recv[own.clone()]), 0)?;
    m.publish(false);
    let mut outcome = m.wait_all();
    if outcome.is_ok() {
        if let Some(mine) = mine {
            copy(&mut recv[own], mine);
        }
        // Starting with the next rank spreads the readers over the lenders.
        for r in (1..size).map(|i| (rank + i) % size) {
            let dst = &mut recv[r * block..(r + 1) * block];
            let step = match m.lent(r) {
                Some((loan, total)) if total == block => m.copy_lent(r, &loan.source(), 0, dst),
                _ => m.read(r, block).map(drop),
            };
            if step.is_err() {
                outcome = step;
                break;
            }
        }
    }
    let done = m.close_loan();
    outcome.and(done)
}
