//! Scatter over the node's collective area: the root writes every block into its
//! slot; each rank copies its own block out (see `coll/shared_memory.rs`).
//!
//! Cost: `p` blocks copied in at the root, one block out per rank.

use crate::coll::shared_memory::Meeting;
use crate::copy::copy;
use crate::error::Result;

/// Scatters the root's `send` (`p` blocks of `block` bytes) into each rank's `mine`.
/// At the root, `mine` is `None` when its block is already in place.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    send: &[u8],
    mine: Option<&mut [u8]>,
    block: usize,
    root: usize,
) -> Result<()> {
    let (rank, size) = m.rank_size();
    if rank == root {
        m.write(block * size, |slot| copy(slot, send))?;
        m.publish(true);
        if let Some(mine) = mine {
            copy(mine, &send[root * block..(root + 1) * block]);
        }
        return Ok(());
    }
    m.publish(false);
    m.wait_for(root)?;
    let all = m.read(root, block * size)?;
    if let Some(mine) = mine {
        copy(mine, &all[rank * block..(rank + 1) * block]);
    }
    Ok(())
}
