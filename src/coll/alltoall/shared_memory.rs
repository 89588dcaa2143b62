//! Alltoall over the node's collective area (see `coll/shared_memory.rs`). Up to the
//! area's limit, every rank writes all its blocks, waits for all, and copies out the
//! block each rank wrote for it. Larger, where the node allows single copies (from 3
//! ranks, see `select::lend`), every rank lends its send buffer, copies its block straight from each other rank's,
//! and waits in a second collective until every rank has finished copying from it.
//!
//! Cost: through the area, one arrival per rank and `p` blocks in and `p` blocks out
//! per rank; lent, two arrivals per rank and one copy per block.

use crate::coll::shared_memory::Meeting;
use crate::error::Result;

/// Exchanges blocks of `block` bytes: `send` (or, if `None`, `recv` in place) holds
/// one block per rank.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    send: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    if m.lends() {
        return lent(m, send, recv, block);
    }
    m.write(block * size, |slot| {
        slot.copy_from_slice(send.unwrap_or(recv))
    })?;
    m.publish(false);
    m.wait_all()?;
    // In place, this rank's own block is already where it belongs.
    if let Some(send) = send {
        let own = rank * block..(rank + 1) * block;
        recv[own.clone()].copy_from_slice(&send[own]);
    }
    m.read_each(block * size, |r, theirs| {
        recv[r * block..(r + 1) * block].copy_from_slice(&theirs[rank * block..(rank + 1) * block]);
    })
}

fn lent(m: &mut Meeting<'_>, send: Option<&[u8]>, recv: &mut [u8], block: usize) -> Result<()> {
    let (rank, size) = m.rank_size();
    // In place, the blocks others copy must not change under them.
    let copy;
    let send = match send {
        Some(s) => s,
        None => {
            copy = recv.to_vec();
            &copy
        }
    };
    m.set_shape(block * size, 1);
    m.lend(send, None)?;
    m.publish(false);
    let mut outcome = m.wait_all();
    if outcome.is_ok() {
        // Starting with the next rank spreads the readers over the lenders.
        for r in (1..=size).map(|i| (rank + i) % size) {
            let dst = &mut recv[r * block..(r + 1) * block];
            let step = if r == rank {
                dst.copy_from_slice(&send[r * block..(r + 1) * block]);
                Ok(())
            } else {
                match m.lent(r) {
                    Some((loan, total)) if total == block * size => {
                        m.copy_lent(r, &loan.source(), rank * block, dst)
                    }
                    _ => m.read(r, block * size).map(drop),
                }
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
