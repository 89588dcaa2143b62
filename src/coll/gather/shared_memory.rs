//! Gather over the node's collective area: every rank writes its block; the root
//! waits for all and copies the blocks out (see `coll/shared_memory.rs`).
//!
//! Cost: one arrival per rank; `p` blocks copied out at the root.

use crate::coll::shared_memory::Meeting;
use crate::error::Result;

/// Gathers each rank's block of `block` bytes into the root's `recv`, in rank order.
/// The block is `send`, or if `None` (in place) the root's block of `recv` at the
/// root and the start of `recv` elsewhere.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    send: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
    root: usize,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    let at = if rank == root { root * block } else { 0 };
    m.write(block, |slot| {
        slot.copy_from_slice(send.unwrap_or_else(|| &recv[at..at + block]))
    })?;
    m.publish(false);
    if rank != root {
        return Ok(());
    }
    m.wait_all()?;
    for r in 0..size {
        recv[r * block..(r + 1) * block].copy_from_slice(m.read(r, block)?);
    }
    Ok(())
}
