//! Broadcast over the node's collective area: the root writes the vector into its
//! slot, every other rank copies it out (see `coll/shared_memory.rs`). A vector larger
//! than a large buffer goes in pieces of one buffer each, one collective number per
//! piece, so the root fills the next buffers while the others copy out the first.
//!
//! Cost: one copy in and one copy out per rank; the root never waits for the others
//! except before reusing a slot or buffer.

use crate::coll::shared_memory::{LARGE, Meeting};
use crate::error::Result;

pub(crate) fn run(m: &mut Meeting<'_>, buf: &mut [u8], root: usize) -> Result<()> {
    let (rank, _) = m.rank_size();
    for (i, piece) in buf.chunks_mut(LARGE).enumerate() {
        if i > 0 {
            m.next_piece(piece.len());
        }
        if rank == root {
            m.write(piece.len(), |slot| slot.copy_from_slice(piece))?;
            m.publish(true);
            continue;
        }
        m.publish(false);
        m.wait_for(root)?;
        piece.copy_from_slice(m.read(root, piece.len())?);
    }
    Ok(())
}
