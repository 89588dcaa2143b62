//! Alltoall over the node's collective area: every rank writes all its blocks, waits
//! for all, and copies out the block each rank wrote for it (see
//! `coll/shared_memory.rs`).
//!
//! Cost: one arrival per rank; `p` blocks in and `p` blocks out per rank.

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
    m.write(block * size, |slot| {
        slot.copy_from_slice(send.unwrap_or(recv))
    })?;
    m.publish(false);
    m.wait_all()?;
    for r in 0..size {
        let theirs = m.read(r, block * size)?;
        recv[r * block..(r + 1) * block].copy_from_slice(&theirs[rank * block..(rank + 1) * block]);
    }
    Ok(())
}
