//! Allgather over the node's collective area: every rank writes its block, waits for
//! all, and copies every block out (see `coll/shared_memory.rs`).
//!
//! Cost: one arrival per rank; `p` blocks copied out per rank.

use crate::coll::shared_memory::Meeting;
use crate::error::Result;

/// Gathers `mine` (or, if `None`, this rank's block of `recv`) of every rank into
/// `recv`, blocks of `block` bytes in rank order.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    mine: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    let own = rank * block..(rank + 1) * block;
    m.write(block, |slot| {
        slot.copy_from_slice(mine.unwrap_or_else(|| &recv[own]))
    })?;
    m.publish(false);
    m.wait_all()?;
    for r in 0..size {
        recv[r * block..(r + 1) * block].copy_from_slice(m.read(r, block)?);
    }
    Ok(())
}
